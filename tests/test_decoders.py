"""Gaussian decoders: the NLL against torch.distributions, fixed sigma as a weighted squared
error, and the conv VAE that learns sigma (shared or per pixel, with a floor)."""
import math

import pytest
import torch
from torch.distributions import Normal

from companion import checkpoints
from companion.data import ImageSet
from companion.gaussians import kl_divergence
from companion.losses import Objective, elbo, elbo_loss, gaussian_nll, squared_error
from companion.models import ConvVAE, GaussianConvVAE, build
from companion.training import evaluate, fit

torch.manual_seed(0)
LOGITS = torch.randn(6, 1, 28, 28) * 3
X = torch.rand(6, 1, 28, 28)
MU, LOGVAR = torch.randn(6, 5), torch.randn(6, 5)


def normal_nll(log_sigma: torch.Tensor) -> torch.Tensor:
    return -Normal(torch.sigmoid(LOGITS), log_sigma.exp()).log_prob(X).flatten(1).sum(1)


@pytest.mark.parametrize("log_sigma", [torch.tensor(-1.7), torch.randn(1, 28, 28)])
def test_gaussian_nll_with_a_learned_sigma_matches_torch_distributions(log_sigma):
    assert torch.allclose(gaussian_nll(LOGITS, X, log_sigma=log_sigma), normal_nll(log_sigma),
                          rtol=1e-5)


@pytest.mark.parametrize("sigma", [1.0, 0.3, 0.05])
def test_fixed_sigma_is_squared_error_over_two_sigma_squared_plus_a_constant(sigma):
    logits = LOGITS.clone().requires_grad_()
    nll = gaussian_nll(logits, X, sigma)
    weighted = squared_error(logits, X) / (2 * sigma**2)
    constant = 784 * (math.log(sigma) + 0.5 * math.log(2 * math.pi))
    assert torch.allclose(nll, weighted + constant, rtol=1e-5)
    grad_nll, = torch.autograd.grad(nll.sum(), logits)
    grad_weighted, = torch.autograd.grad(weighted.sum(), logits)
    assert torch.allclose(grad_nll, grad_weighted, rtol=1e-4, atol=1e-7)


def test_fixed_sigma_elbo_is_the_mse_elbo_with_beta_two_sigma_squared():
    sigma = 0.2
    logits, mu = LOGITS.clone().requires_grad_(), MU.clone().requires_grad_()
    gaussian = gaussian_nll(logits, X, sigma).mean() + kl_divergence(mu, LOGVAR).mean()
    mse = elbo_loss(logits, X, mu, LOGVAR, beta=2 * sigma**2, likelihood="squared_error").total
    grads_g = torch.autograd.grad(gaussian, (logits, mu))
    grads_m = torch.autograd.grad(mse, (logits, mu))
    for g, m in zip(grads_g, grads_m):            # same direction, scaled by 1 / (2 sigma^2)
        assert torch.allclose(g, m / (2 * sigma**2), rtol=1e-4, atol=1e-7)


def test_the_best_shared_sigma_is_the_root_mean_squared_error():
    # log of the RMSE, in float64: the gradient sums 4704 terms, so a log sigma off by one
    # float32 ulp already moves it by ~1e-3
    best = (0.5 * (torch.sigmoid(LOGITS.double()) - X.double()).pow(2).mean().log()).float()
    log_sigma = best.clone().requires_grad_()
    grad, = torch.autograd.grad(gaussian_nll(LOGITS, X, log_sigma=log_sigma).sum(), log_sigma)
    assert abs(grad.item()) < 1e-2
    assert (gaussian_nll(LOGITS, X, log_sigma=best) < gaussian_nll(LOGITS, X, log_sigma=best + 0.1)).all()


@pytest.mark.parametrize("sigma", [0.0, -1.0])
def test_gaussian_nll_refuses_a_sigma_that_is_not_positive(sigma):
    with pytest.raises(ValueError, match="use a number > 0"):
        gaussian_nll(LOGITS, X, sigma)


def test_the_shared_sigma_is_the_rmse_of_the_batch_and_the_nll_uses_it():
    torch.manual_seed(0)
    model = GaussianConvVAE(latent_dim=4, channels=(4, 8))
    assert model.likelihood == "gaussian" and "likelihood" not in model.describe()
    assert build(model.describe()).likelihood == "gaussian"
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    mean = torch.sigmoid(model.decode(z))
    rmse = (mean - X).pow(2).mean().sqrt()
    want = -Normal(mean, rmse).log_prob(X).flatten(1).sum(1)
    assert torch.allclose(model.nll(X, z), want, rtol=1e-5)
    assert torch.allclose(model.nll(X.flatten(1), z), want, rtol=1e-5)   # [N, 784] too
    # at sigma^2 = MSE the batch's mean NLL is D/2 log(2 pi e MSE)
    assert model.nll(X, z).mean().item() == pytest.approx(
        392 * math.log(2 * math.pi * math.e * rmse.item() ** 2), rel=1e-5)
    # it is the best shared sigma: the NLL's derivative in log sigma vanishes there
    log_sigma = rmse.log().detach().requires_grad_()
    grad, = torch.autograd.grad(gaussian_nll(model.decode(z), X, log_sigma=log_sigma).sum(),
                                log_sigma)
    assert abs(grad.item()) < 1e-2
    # a ConvVAE told "gaussian" has sigma 1, fixed
    fixed = ConvVAE(4, channels=(4, 8), likelihood="gaussian")
    assert torch.allclose(fixed.nll(X, z), gaussian_nll(fixed.decode(z), X, 1.0), rtol=1e-5)


def test_without_a_gradient_through_sigma_the_weights_get_the_same_gradient():
    torch.manual_seed(0)
    model = GaussianConvVAE(latent_dim=4, channels=(4, 8))
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    weights = list(model.decoder.parameters())
    detached, = torch.autograd.grad(model.nll(X, z).sum(), weights[-1])
    logits = model.decode(z)
    log_sigma = 0.5 * (torch.sigmoid(logits) - X).pow(2).mean().log()     # with its gradient
    attached, = torch.autograd.grad(gaussian_nll(logits, X, log_sigma=log_sigma).sum(), weights[-1])
    assert torch.allclose(detached, attached, rtol=1e-4, atol=1e-6)


def test_a_shared_sigma_needs_the_images_and_has_a_floor():
    model = GaussianConvVAE(latent_dim=4, sigma="shared", min_sigma=0.05)
    with pytest.raises(ValueError, match="pass the images too"):
        model.decode_with_sigma(torch.zeros(3, 4))
    z = torch.zeros(3, 4)
    exact = torch.sigmoid(model.decode(z)).detach()                      # a perfect decoder
    logits, log_sigma = model.decode_with_sigma(z, exact)
    assert logits.shape == (3, 1, 28, 28) and log_sigma.shape == ()
    assert log_sigma.item() == pytest.approx(math.log(0.05))
    assert torch.isfinite(GaussianConvVAE(latent_dim=4).nll(exact, z)).all()   # no log(0)
    assert not any(p.requires_grad for p in [log_sigma]) and not hasattr(model, "shared_log_sigma")


def test_a_sigma_per_pixel_comes_from_the_decoder_and_is_floored():
    torch.manual_seed(0)
    free = GaussianConvVAE(latent_dim=4, sigma="pixel")
    floored = GaussianConvVAE(latent_dim=4, sigma="pixel", min_sigma=0.5)
    floored.load_state_dict(free.state_dict())
    z = torch.randn(3, 4) * 5
    logits, log_sigma = free.decode_with_sigma(z)
    assert logits.shape == log_sigma.shape == (3, 1, 28, 28)
    assert not torch.allclose(log_sigma[0], log_sigma[1])             # depends on z
    assert log_sigma.min() < math.log(0.5)                            # untrained: below 0.5 somewhere
    assert torch.equal(floored.decode_with_sigma(z)[1], log_sigma.clamp(min=math.log(0.5)))
    assert torch.equal(free.decode(z), logits)
    for model in (free, floored):
        assert build(model.describe()).describe() == model.describe()


@pytest.mark.parametrize("kwargs, message", [({"sigma": "image"}, "sigma must be one of"),
                                             ({"min_sigma": -0.1}, "min_sigma"),
                                             ({"min_sigma": 1.0}, "min_sigma")])
def test_learned_sigma_model_refuses_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianConvVAE(**kwargs)


def test_the_models_loss_uses_its_sigma_and_trains_it():
    torch.manual_seed(0)
    model = GaussianConvVAE(latent_dim=4, sigma="pixel")
    torch.manual_seed(1)
    outputs = model(X)
    assert len(outputs) == 3                                          # (logits, mu, logvar)
    torch.manual_seed(1)
    mu, logvar = model.encode(X)
    z = model.reparameterize(mu, logvar)
    logits, log_sigma = model.decode_with_sigma(z)
    assert torch.equal(outputs[0], logits)
    torch.manual_seed(1)
    parts = model.loss(X)
    expected = gaussian_nll(logits, X, log_sigma=log_sigma).mean()
    assert torch.isclose(parts.reconstruction, expected)
    assert torch.isclose(parts.kl, kl_divergence(mu, logvar).mean())
    torch.manual_seed(1)
    assert torch.allclose(torch.stack(model.loss(X, objective=Objective(beta=3.0))),
                          torch.stack(elbo(gaussian_nll(logits, X, log_sigma=log_sigma), z, mu,
                                           logvar, Objective(beta=3.0))))
    parts.total.backward()
    assert model.decoder[-1].weight.grad[:, 1].abs().sum() > 0       # the sigma channel learns


def test_fit_trains_a_shared_sigma_model_and_evaluate_reports_the_gaussian_nll():
    torch.manual_seed(0)
    data = ImageSet(torch.rand(128, 1, 28, 28) * 0.2, torch.zeros(128, dtype=torch.long),
                    ("x",), "noise/train")
    model = GaussianConvVAE(latent_dim=4, channels=(4, 8))
    history = fit(model, data, epochs=2, lr=2e-2, batch_size=32, progress=False)
    assert history.loss[-1] < history.loss[0]
    torch.manual_seed(3)
    test = evaluate(model, data)
    torch.manual_seed(3)
    mu, logvar = model.encode(data.images)
    assert test.reconstruction == pytest.approx(
        model.nll(data.images, model.reparameterize(mu, logvar)).mean().item(), rel=1e-4)
    # pixels outside [0, 1] are fine for a Gaussian (no Bernoulli check on its targets)
    wide = ImageSet(data.images * 4 - 1, data.labels, data.classes, "wide")
    assert fit(GaussianConvVAE(latent_dim=4, channels=(4, 8)), wide, epochs=1,
               progress=False).epochs == 1


@pytest.mark.parametrize("sigma", ["shared", "pixel"])
def test_a_gaussian_model_round_trips_through_a_checkpoint(sigma, tmp_path):
    torch.manual_seed(0)
    model = GaussianConvVAE(latent_dim=3, channels=(4, 8), sigma=sigma, min_sigma=0.01).eval()
    path = checkpoints.save(model, tmp_path / "g.pt")
    loaded, _ = checkpoints.load(path, device="cpu")
    z = torch.randn(2, 3)
    assert loaded.describe() == model.describe()
    for a, b in zip(loaded.decode_with_sigma(z, X[:2]), model.decode_with_sigma(z, X[:2])):
        assert torch.equal(a, b)


def test_a_gaussian_log_density_depends_on_the_units_of_the_pixels():
    """Rescaling pixels by 255 lowers every image's log-density by 784 log 255: a density
    above 1 (a negative loss) says nothing on its own."""
    mean = torch.sigmoid(LOGITS)
    one = -gaussian_nll(LOGITS, X, 0.1)
    scaled = Normal(255 * mean, 255 * 0.1).log_prob(255 * X).flatten(1).sum(1)
    assert torch.allclose(scaled - one, torch.full_like(one, -784 * math.log(255)), rtol=1e-4)
    assert Normal(0.0, 0.1).log_prob(torch.tensor(0.0)) > 0     # a density above 1
