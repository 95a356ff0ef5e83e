"""The training loop: `fit(model, data, ...) -> History`, for autoencoders and VAEs alike.

Adam with lr 1e-3 and betas (0.9, 0.999): the settings of the Hasktorch tutorial, the R torch
book and the journal-club notebook's VAE (the slides do not show theirs). The loop guards
against targets a Bernoulli likelihood cannot model (checked once per dataset), against a loss
that turns NaN or infinite (it stops before that step touches the weights) and against Ctrl-C
(it keeps the weights of the last finished epoch and marks the History as interrupted).

Callbacks: `fit(..., on_batch=f, every=k)` calls f(model, step) before the first batch
(step 0) and after every k batches. `SampleStrip` is such a callback: it decodes the same
latent points each time, so you can watch a VAE learn (an idea from the R torch book's VAE
chapter, which samples every 50 batches).

(A little over 250 lines: the loop, its guards and its one callback belong together.)
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from companion import settings
from companion.data import Batches, ImageSet
from companion.losses import (RECONSTRUCTION, LossParts, elbo_loss, label_nll,
                              total_correlation, vq_loss)
from companion.models import eval_mode

PRECISIONS = ("fp32", "bf16")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model keeps its last good weights."""

    def __init__(self, message: str, history: "History | None" = None):
        super().__init__(message)
        self.history = history


@dataclass
class History:
    """Per-epoch averages of the training loss and its parts, and of the test loss.

    `loss` is what was minimised, at the beta of each batch (lower during KL warm-up);
    `full_beta_loss` and the test numbers always use the final beta, so they compare.
    """
    loss: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    full_beta_loss: list[float] = field(default_factory=list)   # reconstruction + beta * kl
    test_loss: list[float] = field(default_factory=list)   # negative test ELBO when beta = 1
    test_reconstruction: list[float] = field(default_factory=list)
    test_kl: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)
    interrupted: bool = False   # Ctrl-C stopped training before the last epoch

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)


class SampleStrip:
    """A callback for `fit` that decodes the same n points z ~ N(0, I) at every call.

    The points come from a private generator seeded with `seed`, and decoding happens in eval
    mode without gradients, so the weights are trained exactly as without the strip.
    After training, `images` is [S, n, 1, 28, 28] (pixel means) and `steps` the S batch counts.
    """

    def __init__(self, n: int = 8, seed: int = 0):
        self.n, self.seed = n, seed
        self.frames: list[torch.Tensor] = []
        self.steps: list[int] = []

    @torch.no_grad()
    def __call__(self, model, step: int) -> None:
        generator = torch.Generator().manual_seed(self.seed)   # the global RNG is untouched
        z = torch.randn(self.n, model.latent_dim, generator=generator)
        with eval_mode(model):   # BatchNorm uses its running statistics, Dropout is off
            images = torch.sigmoid(model.decode(z.to(next(model.parameters()).device)))
        self.frames.append(images.float().cpu())   # [n, 1, 28, 28]
        self.steps.append(step)

    @property
    def images(self) -> torch.Tensor:
        return torch.stack(self.frames)   # [S, n, 1, 28, 28]

    def state(self) -> dict:
        """What a checkpoint stores: the settings and the images taken."""
        return {"n": self.n, "seed": self.seed, "images": self.images,
                "steps": torch.tensor(self.steps)}

    def matches(self, state: dict | None) -> bool:
        """Whether a stored strip was taken with this strip's settings."""
        return state is not None and (state["n"], state["seed"]) == (self.n, self.seed)

    def restore(self, state: dict) -> None:
        """Take the images of a stored strip (one that `matches`)."""
        self.frames, self.steps = list(state["images"]), state["steps"].tolist()


def loss_parts(model, x: torch.Tensor, beta: float = 1.0, likelihood: str = "bernoulli",
               free_bits: float = 0.0, tc_weight: float = 0.0,
               labels: torch.Tensor | None = None) -> LossParts:
    """The loss of one batch: the beta-ELBO for a VAE, the reconstruction term for an AE.

    A VQ-VAE (`is_vq`) gets `vq_loss`; a VAE whose decoder learns its sigma (`learns_sigma`)
    returns log sigma as a fourth output, for the Gaussian likelihood. A classifier
    (`is_classifier`) gets -log p(y|x), a conditional VAE (`is_conditional`) sees the labels.
    """
    if getattr(model, "is_classifier", False):
        nll = label_nll(model(x).float(), _labels(model, labels)).mean()
        return LossParts(nll, nll, torch.zeros((), device=x.device))
    if getattr(model, "is_conditional", False):
        logits, mu, logvar = (t.float() for t in model(x, _labels(model, labels)))
        return elbo_loss(logits, x, mu, logvar, beta, likelihood, free_bits=free_bits)
    if getattr(model, "is_vq", False):
        logits, z_e, z_q = (t.float() for t in model(x))
        return vq_loss(logits, x, z_e, z_q, beta, model.commitment, likelihood)
    if model.is_vae:
        logits, mu, logvar, *sigma = (t.float() for t in model(x))   # the loss in float32 always
        log_sigma = sigma[0] if getattr(model, "learns_sigma", False) else None
        parts = elbo_loss(logits, x, mu, logvar, beta, likelihood, free_bits=free_bits,
                          log_sigma=log_sigma)
        if tc_weight:   # beta-TCVAE: the total correlation of a fresh sample z ~ q(z|x)
            tc = total_correlation(model.reparameterize(mu, logvar), mu, logvar).mean()
            parts = parts._replace(total=parts.total + tc_weight * tc)
        return parts
    recon = RECONSTRUCTION[likelihood](model(x).float(), x).mean()
    return LossParts(recon, recon, torch.zeros((), device=x.device))


def _labels(model, labels: torch.Tensor | None) -> torch.Tensor:
    """The batch's labels, or a clear error for a model that needs them and got none."""
    if labels is None:
        raise ValueError(f"{type(model).__name__} learns from labels: pass labels=y with each "
                         "batch x (fit and evaluate do so for every (x, y) batch).")
    return labels


def make_optimizer(model, lr: float = 1e-3) -> torch.optim.Adam:
    """Adam with the sources' settings (betas 0.9, 0.999); the fused kernel where there is one."""
    device = next(model.parameters()).device
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), fused=True)
        except (RuntimeError, TypeError):   # older torch: no fused kernel for this device
            pass
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))


def train_step(model, optimizer, x: torch.Tensor, beta: float = 1.0,
               likelihood: str = "bernoulli", precision: str = "fp32",
               free_bits: float = 0.0, tc_weight: float = 0.0,
               labels: torch.Tensor | None = None) -> LossParts:
    """One optimisation step on batch x (with its labels); returns its loss parts, detached.

    precision="bf16" runs the model's matrix products in bfloat16 (torch.autocast); the
    weights, the loss and Adam stay in float32. A NaN or infinite loss raises
    TrainingDiverged before the weights change.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        parts = loss_parts(model, x, beta, likelihood, free_bits=free_bits, tc_weight=tc_weight,
                           labels=labels)
    if not torch.isfinite(parts.total):
        what = "NaN" if math.isnan(parts.total.item()) else "infinite"
        raise TrainingDiverged(
            f"The loss became {what} (reconstruction={parts.reconstruction.item():.4g}, "
            f"kl={parts.kl.item():.4g}). Training stopped before this batch changed the "
            "weights, so the model keeps its last good weights. Check that the inputs are "
            "finite and in [0, 1], then try a smaller lr.")
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    optimizer.step()
    return LossParts(*(p.detach() for p in parts))


@torch.no_grad()
def evaluate(model, data: ImageSet, beta: float = 1.0, likelihood: str = "bernoulli",
             batch_size: int = 1000) -> LossParts:
    """Average loss parts over a whole dataset (per image), with the model in eval mode."""
    sums = torch.zeros(3, dtype=torch.float64)
    with eval_mode(model):
        for x, y in Batches(data, batch_size, shuffle=False):
            parts = loss_parts(model, x, beta, likelihood, labels=y)
            sums += torch.stack(parts).double().cpu() * len(x)
    return LossParts(*(s.item() / len(data) for s in sums))


def check_device(model, *datasets: ImageSet | None) -> None:
    """Raise a clear RuntimeError when the model's weights and the data are on different devices.

    One comparison per dataset, made once before training: without it the first forward pass
    fails deep inside PyTorch with a message about tensors on two devices.
    """
    param = next(model.parameters(), None)
    if param is None:
        return
    for data in datasets:
        if data is not None and data.images.device != param.device:
            raise RuntimeError(
                f"The model is on {param.device} but the data are on {data.images.device}: "
                "move the model with model.to(settings.device()) before training "
                "(companion.data.load puts the data on settings.device(); an ImageSet "
                "moves with data.to(device)).")


def check_targets(likelihood: str, *datasets: ImageSet | None) -> None:
    """Raise a clear ValueError when a Bernoulli likelihood meets pixels outside [0, 1].

    Binary cross-entropy has no minimum for a target above 1 (or below 0): the loss falls
    without end and measures nothing. Checked once per dataset, before training.
    """
    if likelihood != "bernoulli":
        return
    for data in datasets:
        if data is None or data.images.numel() == 0 or data.images.is_meta:
            continue
        low, high = (v.item() for v in torch.aminmax(data.images))
        if low < 0 or high > 1:
            raise ValueError(
                f"The Bernoulli likelihood needs pixels in [0, 1], but {data.tag} ranges from "
                f"{low:.3g} to {high:.3g}: its loss would fall below zero without end. Rescale "
                "the images to [0, 1] (undo the standardisation, or (x - min) / (max - min)), "
                'or train with a loss that accepts any value: likelihood="mse".')


def fit(model, data: ImageSet, epochs: int = 10, beta: float = 1.0, lr: float = 1e-3,
        batch_size: int = 128, test_data: ImageSet | None = None, likelihood: str = "bernoulli",
        seed: int = 0, warmup_epochs: float = 0.0, dynamic_binarization: bool = False,
        precision: str = "fp32", on_batch: Callable | None = None, every: int = 50,
        progress: bool = True, free_bits: float = 0.0, tc_weight: float = 0.0) -> History:
    """Train model on data; return the per-epoch History.

    fit reseeds the global random number generator with torch.manual_seed(seed), so a run
    repeats exactly; COURSE_SEED_OFFSET shifts that seed (`settings.training_seed`): another
    run, with another data order, other binarizations and other noise. beta weights the KL
    term; with warmup_epochs > 0 it ramps linearly from 0 to beta over that many epochs (KL
    warm-up). free_bits > 0 trains with a floor of that many nats on each latent dimension's KL
    (see `losses.free_bits_kl`); the test numbers stay the true negative ELBO. tc_weight > 0
    adds tc_weight times the total correlation of the codes (`losses.total_correlation`) to the
    loss: beta = 1, tc_weight = b - 1 is the beta-TCVAE of Chen et al. (2018) with weight b on
    TC. precision: see `train_step`.
    on_batch(model, step) is called before the first batch (step 0) and after every `every`
    batches. The model and the data must be on the same device (see `check_device`).
    """
    check_device(model, data, test_data)
    check_targets(likelihood, data, test_data)
    seed = settings.training_seed(seed)
    torch.manual_seed(seed)
    batches = Batches(data, batch_size, shuffle=True, seed=seed,
                      dynamic_binarization=dynamic_binarization)
    optimizer = make_optimizer(model, lr)
    history, step = History(), 0
    ramp = max(1, round(warmup_epochs * len(batches)))
    model.train()
    if on_batch is not None:
        on_batch(model, 0)
    with tqdm(total=epochs * len(batches), desc="training", disable=not progress) as bar:
        for epoch in range(epochs):
            last_good = copy.deepcopy(model.state_dict())
            # summed on the device: a copy to the host every step would stall a GPU
            sums, start = torch.zeros(3, device=data.images.device), time.perf_counter()
            try:
                for x, y in batches:
                    b = beta * min(1.0, step / ramp) if warmup_epochs > 0 else beta
                    try:
                        parts = train_step(model, optimizer, x, b, likelihood, precision,
                                           free_bits=free_bits, tc_weight=tc_weight, labels=y)
                    except TrainingDiverged as err:
                        model.eval()
                        raise TrainingDiverged(f"Epoch {epoch + 1}, batch {step + 1}: {err}",
                                               history) from None
                    sums += torch.stack(parts) * len(x)
                    step += 1
                    bar.update()
                    if on_batch is not None and step % every == 0:
                        on_batch(model, step)
            except KeyboardInterrupt:
                model.load_state_dict(last_good)
                history.interrupted = True
                print(f"Interrupted: kept the weights after epoch {epoch} of {epochs}.")
                break
            means = sums.cpu() / len(data)   # waits for the device: the clock reads true
            _record(history, means, beta, len(data) / (time.perf_counter() - start))
            if test_data is not None:
                test = evaluate(model, test_data, beta, likelihood)
                history.test_loss.append(test.total)
                history.test_reconstruction.append(test.reconstruction)
                history.test_kl.append(test.kl)
            bar.set_postfix(loss=f"{history.loss[-1]:.2f}")
    model.eval()
    return history


def _record(history: History, means: torch.Tensor, beta: float, images_per_s: float) -> None:
    history.loss.append(means[0].item())
    history.reconstruction.append(means[1].item())
    history.kl.append(means[2].item())
    history.full_beta_loss.append((means[1] + beta * means[2]).item())
    history.images_per_s.append(images_per_s)
