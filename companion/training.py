"""The training loop: `fit(model, data, ...) -> History`, for autoencoders and VAEs alike.

Adam with lr 1e-3 and betas (0.9, 0.999), as in every source document. The loop guards
against a loss that turns NaN or infinite (it stops before that step touches the weights)
and against Ctrl-C (it keeps the weights of the last finished epoch).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from companion.data import Batches, ImageSet
from companion.losses import RECONSTRUCTION, LossParts, elbo_loss
from companion.models import VAE


PRECISIONS = ("fp32", "bf16")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the model keeps its last good weights."""

    def __init__(self, message: str, history: "History | None" = None):
        super().__init__(message)
        self.history = history


@dataclass
class History:
    """Per-epoch averages of the training loss and its parts, and of the test loss."""
    loss: list[float] = field(default_factory=list)
    reconstruction: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)   # negative test ELBO when beta = 1
    test_reconstruction: list[float] = field(default_factory=list)
    test_kl: list[float] = field(default_factory=list)
    images_per_s: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.loss)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)


def loss_parts(model, x: torch.Tensor, beta: float = 1.0, likelihood: str = "bernoulli") -> LossParts:
    """The loss of one batch: the beta-ELBO for a VAE, the reconstruction term for an AE."""
    if isinstance(model, VAE):
        logits, mu, logvar = (t.float() for t in model(x))   # the loss in float32 always
        return elbo_loss(logits, x, mu, logvar, beta, likelihood)
    recon = RECONSTRUCTION[likelihood](model(x).float(), x).mean()
    return LossParts(recon, recon, torch.zeros((), device=x.device))


def make_optimizer(model, lr: float = 1e-3) -> torch.optim.Adam:
    """Adam with the sources' settings (betas 0.9, 0.999); the fused kernel where there is one."""
    device = next(model.parameters()).device
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999),
                            fused=device.type in ("cpu", "cuda"))


def train_step(model, optimizer, x: torch.Tensor, beta: float = 1.0,
               likelihood: str = "bernoulli", precision: str = "fp32") -> LossParts:
    """One optimisation step on batch x; returns its loss parts, detached.

    precision="bf16" runs the model's matrix products in bfloat16 (torch.autocast); the
    weights, the loss and Adam stay in float32. A NaN or infinite loss raises
    TrainingDiverged before the weights change.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        parts = loss_parts(model, x, beta, likelihood)
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
    was_training = model.training
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64)
    for x, _ in Batches(data, batch_size, shuffle=False):
        sums += torch.stack(loss_parts(model, x, beta, likelihood)).double().cpu() * len(x)
    model.train(was_training)
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


def fit(model, data: ImageSet, epochs: int = 10, beta: float = 1.0, lr: float = 1e-3,
        batch_size: int = 128, test_data: ImageSet | None = None, likelihood: str = "bernoulli",
        seed: int = 0, warmup_epochs: float = 0.0, dynamic_binarization: bool = False,
        precision: str = "fp32", on_batch: Callable | None = None, every: int = 50,
        progress: bool = True) -> History:
    """Train model on data; return the per-epoch History.

    beta weights the KL term; with warmup_epochs > 0 it ramps linearly from 0 to beta over
    that many epochs (KL warm-up). precision: see `train_step`. on_batch(model, step) is
    called every `every` batches. The model and the data must be on the same device (see
    `check_device`).
    """
    check_device(model, data, test_data)
    torch.manual_seed(seed)
    batches = Batches(data, batch_size, shuffle=True, seed=seed,
                      dynamic_binarization=dynamic_binarization)
    optimizer = make_optimizer(model, lr)
    history, step = History(), 0
    ramp = max(1, round(warmup_epochs * len(batches)))
    bar = tqdm(total=epochs * len(batches), desc="training", disable=not progress)
    model.train()
    for epoch in range(epochs):
        last_good = copy.deepcopy(model.state_dict())
        sums, start = torch.zeros(3), time.perf_counter()
        try:
            for x, _ in batches:
                b = beta * min(1.0, step / ramp) if warmup_epochs > 0 else beta
                try:
                    parts = train_step(model, optimizer, x, b, likelihood, precision)
                except TrainingDiverged as err:
                    model.eval()
                    raise TrainingDiverged(f"Epoch {epoch + 1}, batch {step + 1}: {err}",
                                           history) from None
                sums += torch.stack(parts).cpu() * len(x)
                step += 1
                bar.update()
                if on_batch is not None and step % every == 0:
                    on_batch(model, step)
        except KeyboardInterrupt:
            model.load_state_dict(last_good)
            print(f"Interrupted: kept the weights after epoch {epoch} of {epochs}.")
            break
        seconds = time.perf_counter() - start
        _record(history, sums / len(data), len(data) / seconds)
        if test_data is not None:
            test = evaluate(model, test_data, beta, likelihood)
            history.test_loss.append(test.total)
            history.test_reconstruction.append(test.reconstruction)
            history.test_kl.append(test.kl)
        bar.set_postfix(loss=f"{history.loss[-1]:.2f}")
    bar.close()
    model.eval()
    return history


def _record(history: History, means: torch.Tensor, images_per_s: float) -> None:
    history.loss.append(means[0].item())
    history.reconstruction.append(means[1].item())
    history.kl.append(means[2].item())
    history.images_per_s.append(images_per_s)
