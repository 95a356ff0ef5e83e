"""The training loop: `fit(model, data, epochs, objective) -> History`, for every model.

The loop knows no model kinds: each step asks the model for its loss,
`model.loss(x, y, objective)`, where y are the batch's labels and `Objective` weighs the
terms (beta, free bits, TC weight, KL warm-up); a model refuses the settings it cannot honour.

Adam with lr 1e-3 and betas (0.9, 0.999): the settings of the Hasktorch tutorial, the R torch
book and the journal-club notebook's VAE (the slides do not show theirs). The loop guards
against targets a Bernoulli likelihood cannot model (checked once per dataset), against a loss
that turns NaN or infinite (that step and every later one leave the weights alone, and fit
stops with the weights from before it) and against Ctrl-C (it keeps the weights of the last
finished epoch and marks the History as interrupted).

Callbacks: `fit(..., on_batch=f)` calls f(model, step) before the first batch (step 0) and
after every batch. `SampleStrip` is such a callback: every `every` steps it draws the same
samples, so you can watch a VAE learn (an idea from the R torch book's VAE chapter, which
samples every 50 batches).
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from companion import settings
from companion.arguments import check_counts
from companion.data import Batches, ImageSet
from companion.losses import LossParts, Objective
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
    `reconstruction` is -log p(x|z) (a classifier's -log p(y|x)); `kl` is KL(q(z|x) || p(z))
    (a VQ-VAE's constant log K per position; 0 for a model without a prior). The test
    columns are NaN for epochs that were measured on another test set (see `train_or_load`).
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
    """A callback for `fit` that draws the same n samples every `every` steps.

    It calls `model.sample(n, generator)` with a private generator seeded with `seed` each
    time, so the model decodes the same random draws and the global RNG is untouched; sampling
    runs in eval mode without gradients, so the weights are trained exactly as without it.
    After training, `images` is [S, n, 1, 28, 28] and `steps` the S batch counts.
    """

    def __init__(self, n: int = 8, seed: int = 0, every: int = 50):
        check_counts("SampleStrip", n=n, every=every)
        self.n, self.seed, self.every = n, seed, every
        self.frames: list[torch.Tensor] = []
        self.steps: list[int] = []

    @torch.no_grad()
    def __call__(self, model, step: int) -> None:
        if step % self.every:
            return
        images = model.sample(self.n, generator=torch.Generator().manual_seed(self.seed))
        self.frames.append(images.float().cpu())   # [n, 1, 28, 28]
        self.steps.append(step)

    @property
    def images(self) -> torch.Tensor:
        return torch.stack(self.frames)   # [S, n, 1, 28, 28]

    def state(self) -> dict:
        """What a checkpoint stores: the settings and the images taken."""
        return {"n": self.n, "seed": self.seed, "every": self.every, "images": self.images,
                "steps": torch.tensor(self.steps)}

    def matches(self, state: dict | None) -> bool:
        """Whether a stored strip was taken with this strip's settings."""
        return state is not None and ((state["n"], state["seed"], state.get("every"))
                                      == (self.n, self.seed, self.every))

    def restore(self, state: dict) -> None:
        """Take the images of a stored strip (one that `matches`)."""
        self.frames, self.steps = list(state["images"]), state["steps"].tolist()


def make_optimizer(model, lr: float = 1e-3) -> torch.optim.Adam:
    """Adam with the sources' settings (betas 0.9, 0.999); the fused kernel where there is one."""
    device = next(model.parameters()).device
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), fused=True)
        except (RuntimeError, TypeError):   # older torch: no fused kernel for this device
            pass
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999))


def check_precision(precision: str) -> None:
    """A clear ValueError for a precision that is not one of PRECISIONS."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")


def autocast(device: torch.device, precision: str):
    """bfloat16 autocast for precision="bf16"; for "fp32" no autocast context at all (some
    releases refuse torch.autocast on a device such as MPS even when it is disabled)."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


class Guard:
    """Keeps the weights from a NaN or infinite loss, without waiting for the device.

    `step(optimizer, parts)` marks the first non-finite loss in a tensor on the device; with
    fused Adam the mark goes in as `found_inf`, the flag with which `torch.amp.GradScaler`
    makes the kernel skip an update, so that step and every later one leave the weights
    alone. `check()` reads the mark (one wait for the device) and raises TrainingDiverged.
    Adam without a fused kernel has no such flag: then every step is checked at once.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, device: torch.device,
                 batches_per_epoch: int | None = None):
        self.fused = bool(optimizer.defaults.get("fused"))
        self.batches_per_epoch = batches_per_epoch   # to name the epoch and batch that failed
        self.bad = torch.zeros((), device=device)          # 1.0 from the first bad loss on
        self.first: LossParts | None = None                # the parts of that loss
        self.steps = torch.zeros((), dtype=torch.long, device=device)
        self.at = torch.full((), -1, dtype=torch.long, device=device)

    def step(self, optimizer, parts: LossParts) -> None:
        parts = LossParts(*(p.detach() for p in parts))   # no graph kept from step to step
        finite = torch.isfinite(parts.total)
        if not self.fused:
            if not finite:   # a wait for the device at every step
                self.bad.fill_(1.0)
                self.first, self.at = parts, self.steps.clone()
                self.check()
            optimizer.step()
            self.steps += 1
            return
        newly = (self.bad == 0) & ~finite
        self.at = torch.where(newly, self.steps, self.at)
        self.first = parts if self.first is None else LossParts(
            *(torch.where(newly, p, f) for p, f in zip(parts, self.first)))
        self.bad = torch.maximum(self.bad, (~finite).float())
        optimizer.found_inf = self.bad        # read by fused Adam, as under a GradScaler
        optimizer.step()
        self.steps += 1

    def check(self) -> None:
        """Raise TrainingDiverged if a loss was NaN or infinite (reads the mark: one wait)."""
        if self.bad.item() == 0:
            return
        total, recon, kl = (p.item() for p in self.first)
        what = "NaN" if total != total else "infinite"
        at, n = self.at.item(), self.batches_per_epoch
        where = f"Epoch {at // n + 1}, batch {at % n + 1}" if n else f"Batch {at + 1}"
        raise TrainingDiverged(
            f"{where}: the loss became {what} (reconstruction={recon:.4g}, "
            f"kl={kl:.4g}). No step changed the weights from that batch on, so the model keeps "
            "its last good weights. Check that the inputs are finite and in [0, 1], then try a "
            "smaller lr.")


def train_step(model, optimizer, x: torch.Tensor, y: torch.Tensor | None = None,
               objective: Objective = Objective(), precision: str = "fp32",
               guard: Guard | None = None) -> LossParts:
    """One optimisation step on batch x (with its labels y); returns its loss parts, detached.

    precision="bf16" runs the model's matrix products in bfloat16 (torch.autocast); the
    weights, the loss and Adam stay in float32. A NaN or infinite loss leaves the weights
    alone: it raises TrainingDiverged at once, or at guard.check() when a `Guard` is given.
    """
    with autocast(x.device, precision):
        parts = model.loss(x, y, objective)
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    if guard is None:
        guard = Guard(optimizer, x.device)
        guard.step(optimizer, parts)
        guard.check()
    else:
        guard.step(optimizer, parts)
    return LossParts(*(p.detach() for p in parts))


@torch.no_grad()
def evaluate(model, data: ImageSet, objective: Objective = Objective(),
             batch_size: int = 1000) -> LossParts:
    """Average loss parts over a whole dataset (per image), with the model in eval mode.

    Free bits and the TC weight shape training only: the numbers here use the objective's
    beta alone, so with beta = 1 `total` is the negative ELBO.
    """
    objective = Objective(beta=objective.beta)
    sums = torch.zeros(3, device=data.images.device)
    with eval_mode(model):
        for x, y in Batches(data, batch_size, shuffle=False):
            sums += torch.stack(model.loss(x, y, objective)) * len(x)
    sums = sums.cpu().double()   # to the CPU first: an MPS device has no float64
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
                "or build the model with a likelihood that accepts any value: "
                'likelihood="squared_error".')


def fit(model, data: ImageSet, epochs: int = 10, objective: Objective = Objective(),
        lr: float = 1e-3, batch_size: int = 128, test_data: ImageSet | None = None,
        seed: int = 0, dynamic_binarization: bool = False, precision: str = "fp32",
        on_batch: Callable | None = None, progress: bool = True) -> History:
    """Train model on data for a number of epochs, minimising model.loss; return the History.

    fit reseeds the global random number generator with torch.manual_seed(seed), so a run
    repeats exactly; COURSE_SEED_OFFSET shifts that seed (`settings.training_seed`): another
    run, with another data order, other binarizations and other noise. objective weighs the
    terms of the loss (`Objective`: beta, free bits, TC weight, KL warm-up); the test numbers
    use its beta alone (`evaluate`). precision: see `train_step`. on_batch(model, step) is
    called before the first batch (step 0) and after every batch. The model and the data must
    be on the same device (see `check_device`).
    """
    check_counts("fit", epochs=epochs, batch_size=batch_size)
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr is a learning rate > 0, not {lr!r}: e.g. lr=1e-3.")
    if not isinstance(objective, Objective):
        raise TypeError(f"objective is an Objective, e.g. Objective(beta=4), not {objective!r}.")
    if len(data) == 0:
        raise ValueError("The training set is empty: pass a dataset with at least one image.")
    model.check_objective(objective)   # before warm-up scales beta: the settings asked for
    check_device(model, data, test_data)
    check_targets(model.likelihood, data, test_data)
    check_precision(precision)
    seed = settings.training_seed(seed)
    torch.manual_seed(seed)
    batches = Batches(data, batch_size, shuffle=True, seed=seed,
                      dynamic_binarization=dynamic_binarization)
    optimizer = make_optimizer(model, lr)
    guard = Guard(optimizer, data.images.device, len(batches))
    history, step = History(), 0
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
                    parts = train_step(model, optimizer, x, y, objective.at(step / len(batches)),
                                       precision, guard)
                    sums += torch.stack(parts) * len(x)
                    step += 1
                    bar.update()
                    if on_batch is not None:
                        on_batch(model, step)
                guard.check()   # one wait for the device per epoch
            except KeyboardInterrupt:
                model.load_state_dict(last_good)
                history.interrupted = True
                print(f"Interrupted: kept the weights after epoch {epoch} of {epochs}.")
                break
            except TrainingDiverged as err:
                model.eval()
                raise TrainingDiverged(str(err), history) from None
            means = sums.cpu() / len(data)   # waits for the device: the clock reads true
            _record(history, means, objective.beta, len(data) / (time.perf_counter() - start))
            if test_data is not None:
                test = evaluate(model, test_data, objective)
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
