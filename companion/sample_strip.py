"""Watch a VAE learn: decode the same latent points every N batches while it trains.

`train_or_load_with_strip` trains like `checkpoints.train_or_load` and also returns the
"strip": the images decoded from n fixed points z ~ N(0, I) before training and every
`every` batches after. The strip is saved next to the checkpoint, so a cached model comes
back with the strip of the run that actually trained it. Taking a snapshot draws no random
numbers, so the trained weights are the same with or without the strip.

The idea of sampling every 50 batches to watch training comes from the R torch book
(Keydana, ch. 16).
"""
from __future__ import annotations

from pathlib import Path

import torch

from companion import checkpoints, settings
from companion.data import ImageSet
from companion.training import History, fit


def strip_path(model, data: ImageSet, test_data: ImageSet | None, n: int, fit_kwargs: dict) -> Path:
    """Where the strip of this exact training run is stored (beside its checkpoint)."""
    key = checkpoints.cache_key(model, data, test_data, fit_kwargs)
    return settings.data_dir() / "checkpoints" / f"{type(model).__name__}-{key}-strip{n}.pt"


def train_or_load_with_strip(model, data: ImageSet, test_data: ImageSet | None = None,
                             n: int = 8, **fit_kwargs) -> tuple[History, torch.Tensor, list[int]]:
    """Train (or load) model; return (history, strip [S, n, 1, 28, 28], the S batch counts)."""
    if "on_batch" in fit_kwargs:
        raise ValueError("train_or_load_with_strip sets on_batch itself; leave it out.")
    spath = strip_path(model, data, test_data, n, fit_kwargs)
    ckpt = spath.with_name(spath.name.replace(f"-strip{n}.pt", ".pt"))
    if ckpt.exists() and spath.exists():
        history = checkpoints.train_or_load(model, data, test_data, **fit_kwargs)
        blob = torch.load(spath, map_location="cpu", weights_only=True)
        return history, blob["images"], blob["steps"].tolist()
    device = next(model.parameters()).device
    z = torch.randn(n, model.latent_dim, generator=torch.Generator().manual_seed(0)).to(device)
    frames, steps = [], []

    @torch.no_grad()
    def snapshot(m, step: int) -> None:
        was_training = m.training
        m.eval()                                   # BatchNorm: running statistics
        frames.append(torch.sigmoid(m.decode(z)).float().cpu())   # [n, 1, 28, 28]
        steps.append(step)
        m.train(was_training)

    snapshot(model, 0)
    history = fit(model, data, test_data=test_data, on_batch=snapshot, **fit_kwargs)
    training = {k: v for k, v in fit_kwargs.items() if k != "progress"}
    checkpoints.save(model, ckpt, history, training)
    strip = torch.stack(frames)                    # [S, n, 1, 28, 28]
    torch.save({"images": strip, "steps": torch.tensor(steps)}, spath)
    return history, strip, steps
