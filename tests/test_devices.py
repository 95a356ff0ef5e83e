"""The helpers run on an Apple-Silicon GPU, which has no float64, checked without a Mac.

On MPS, `x.double().cpu()` fails: the conversion happens while x is still on the GPU, which
has no float64. `x.cpu().double()` is fine. To catch the first and allow the second, a test
needs tensors that *stand for* tensors on such a device. `OnAccelerator` is that mark: a
tensor subclass that keeps its numbers on the CPU, whose `.cpu()` and `.to("cpu")` return
plain tensors, and whose `__torch_function__` refuses, as MPS does, any operation that would
leave a float64 tensor on the accelerator: `.double()`, `.to(torch.float64)`, a `*_like`
factory with dtype=torch.float64, or type promotion with a float64 CPU tensor. `.numpy()` is
refused too, as on every accelerator.

Why not other designs: a TorchFunctionMode alone sees every call but cannot tell which
tensors are "on the accelerator", since here all of them are on the CPU; the subclass carries
that mark from the inputs into every result. The meta device has float64 and holds no
values, so code that reads numbers (`.item()`, Cholesky, EM) cannot run on it.

Limits: the mark follows operations, not `device=x.device` (that is the CPU here): a float64
tensor made that way is a plain CPU tensor, caught only when it meets a marked one. A model's
weights stay plain; marking the data marks everything computed from it.
"""
import pytest
import torch

from companion.data import ImageSet
from companion.evaluation.disentanglement import mig
from companion.evaluation.likelihood import importance_weighted, log_weights
from companion.evaluation.samples import Yardstick, frechet_distance, frechet_gaussians
from companion.gaussians import kl_monte_carlo, sample_diagonal, sample_gaussian
from companion.latent import encode_all, fit_class_gaussians, knn_classify, nearest_distance
from companion.latent_arithmetic import class_means, slant
from companion.mixture import GaussianMixture, fit_mixture
from companion.models import MLPVAE, DigitClassifier


class Float64OnAccelerator(RuntimeError):
    """What MPS raises (as a TypeError, which Python would turn into NotImplemented here)."""


class OnAccelerator(torch.Tensor):
    """A CPU tensor that stands for one on a device without float64 (MPS)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.numpy:
            raise TypeError("can't convert an accelerator tensor to numpy: call .cpu() first")
        if _to_cpu(func, args, kwargs):
            with torch._C.DisableTorchFunctionSubclass():
                out = func(*args, **kwargs)
            return out.as_subclass(torch.Tensor)
        out = super().__torch_function__(func, types, args, kwargs)
        if any(isinstance(t, cls) and t.dtype == torch.float64 for t in _tensors(out)):
            raise Float64OnAccelerator(f"{func.__name__}: cannot convert a MPS Tensor to float64 "
                                       "dtype as the MPS framework doesn't support float64 (move "
                                       "it to the CPU first)")
        return out


def _to_cpu(func, args, kwargs) -> bool:
    """Whether func moves a tensor to the CPU: x.cpu(), x.to("cpu"), x.to(device=cpu_device)."""
    if func is torch.Tensor.cpu:
        return True
    if func is not torch.Tensor.to:
        return False
    places = [*args[1:], kwargs.get("device")]
    return any(isinstance(p, (str, torch.device)) and torch.device(p).type == "cpu"
               for p in places)


def _tensors(out):
    """The tensors in a result: a tensor, or a (named) tuple or list of them."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in _tensors(item)]
    return []


def on_accelerator(t: torch.Tensor) -> torch.Tensor:
    return t.as_subclass(OnAccelerator)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int, seed: int = 0, binary: bool = False) -> ImageSet:
    """n random images on the pretend accelerator."""
    x = torch.rand(n, 1, 28, 28, generator=gen(seed))
    x = (x > 0.7).float() if binary else x
    return ImageSet(on_accelerator(x), on_accelerator(torch.arange(n) % 10),
                    tuple("0123456789"), f"random[{n}]")


# --- the pretend accelerator itself ----------------------------------------------------------

def test_the_pretend_accelerator_refuses_float64_the_way_mps_does():
    x = on_accelerator(torch.randn(4, 3))
    for make_float64 in (lambda: x.double(), lambda: x.to(torch.float64),
                         lambda: x.to(dtype=torch.float64), lambda: x.type(torch.float64),
                         lambda: torch.zeros_like(x, dtype=torch.float64),
                         lambda: x + torch.ones(3, dtype=torch.float64),
                         lambda: x.double().cpu()):
        with pytest.raises(Float64OnAccelerator):
            make_float64()
    with pytest.raises(TypeError, match="numpy"):
        x.numpy()
    assert type(x * 2) is OnAccelerator and type(x.sum(0)) is OnAccelerator
    for moved in (x.cpu(), x.to("cpu"), x.to(torch.device("cpu"), torch.float64)):
        assert type(moved) is torch.Tensor
    assert x.cpu().double().dtype == torch.float64 and (x + 1.5).dtype == torch.float32


# --- the helpers, given tensors on the pretend accelerator -----------------------------------

def test_gaussian_samplers_and_the_monte_carlo_kl():
    mean, cov = on_accelerator(torch.zeros(2, 3)), on_accelerator(torch.eye(3) * 2)
    assert sample_gaussian(mean, cov, 5, gen(1)).shape == (5, 2, 3)
    assert sample_diagonal(mean, mean, 5, gen(2)).shape == (5, 2, 3)
    assert kl_monte_carlo(mean, mean, 10, gen(3)).mean.shape == (2,)


def test_mixtures_em_and_the_aggregate_posterior():
    z = on_accelerator(torch.randn(300, 2, generator=gen(4)))
    mixture, history = fit_mixture(z, 3, iterations=5)
    assert len(history) > 1
    prior = GaussianMixture.standard_normal(2)
    draws, _ = prior.sample(10, gen(5))
    q = GaussianMixture.aggregate_posterior(z[:50], on_accelerator(torch.zeros(50, 2)))
    assert q.log_prob(z).shape == (300,) and prior.log_prob(z).shape == (300,)
    assert torch.isfinite(q.log_prob(on_accelerator(draws))).all()


def test_latent_helpers():
    codes = on_accelerator(torch.randn(60, 2, generator=gen(6)))
    labels = on_accelerator(torch.arange(60) % 3)
    gaussians = fit_class_gaussians(codes, labels)
    z, wanted = gaussians.sample_each(4, gen(7))
    assert z.shape == (12, 2) and wanted.shape == (12,)
    assert nearest_distance(z, codes).shape == (12,)
    assert knn_classify(z, codes, labels, k=5).shape == (12,)
    assert class_means(codes, labels).shape == (3, 2)
    assert slant(images(4).images).shape == (4,)
    torch.manual_seed(0)
    assert encode_all(MLPVAE(latent_dim=2, hidden=8), images(5), batch_size=2).shape == (5, 2)


def test_mig():
    factors = on_accelerator(torch.randint(0, 4, (400, 2), generator=gen(8)))
    z = factors.float() + on_accelerator(0.1 * torch.randn(400, 2, generator=gen(9)))
    assert mig(z, factors).score > 0.5


def test_frechet_distances_and_the_yardstick():
    a = on_accelerator(torch.randn(40, 4, generator=gen(10)))
    b = on_accelerator(torch.randn(40, 4, generator=gen(11)))
    assert frechet_distance(a, b) > 0
    assert frechet_gaussians(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T)) > 0
    torch.manual_seed(0)
    judge = DigitClassifier(channels=(4, 8), features=16).eval()
    yardstick = Yardstick(judge, images(40, seed=1).images)
    assert yardstick.score(images(40, seed=2).images).frechet > 0


def test_likelihood_estimates():
    torch.manual_seed(0)
    vae, data = MLPVAE(latent_dim=2, hidden=8).eval(), images(4, binary=True)
    assert importance_weighted(vae, data, k=3, batch_size=2).log_px.shape == (4,)
    assert log_weights(vae, data.images, 3, "prior", gen(12)).shape == (3, 4)


def test_training_evaluates_and_fits():
    from companion.training import evaluate, fit
    torch.manual_seed(0)
    vae, data = MLPVAE(latent_dim=2, hidden=8), images(8)
    history = fit(vae, data, epochs=1, batch_size=4, test_data=data, progress=False)
    assert history.epochs == 1
    assert evaluate(vae, data).total > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_cuda_device_draws_land_on_the_means_device_and_repeat_the_cpu_draws():
    mean = torch.zeros(2, 3, device="cuda")
    on_gpu = sample_gaussian(mean, 2 * torch.eye(3, device="cuda"), 4, gen(1))
    assert on_gpu.is_cuda
    assert torch.allclose(on_gpu.cpu(), sample_gaussian(mean.cpu(), 2 * torch.eye(3), 4, gen(1)),
                          atol=1e-3)                        # atol: a TF32 matmul, if enabled
    codes = torch.randn(30, 2, generator=gen(2)).cuda()
    z, y = fit_class_gaussians(codes, torch.arange(30, device="cuda") % 3).sample_each(2, gen(3))
    assert z.is_cuda and y.is_cuda
