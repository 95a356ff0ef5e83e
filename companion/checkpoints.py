"""Saving, loading and caching trained models.

A checkpoint is one file written atomically: the state_dict plus a JSON string that
describes the model (class and sizes), the training settings and the history. It is read
with ``torch.load(..., weights_only=True)``, which unpickles tensors and plain containers
only, so opening a checkpoint from someone else cannot run their code.

`train_or_load` keys a cache under ``<data>/checkpoints/`` by a hash of the model's
description, the training settings, the datasets and the fast/full mode (not the initial
weights): a notebook run a second time loads its models instead of training them again.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

import torch

import companion.conv_vae  # noqa: F401  (registers the conv VAEs, so load() can rebuild them)
from companion import settings
from companion.data import ImageSet
from companion.models import build
from companion.training import History, check_device, fit

FORMAT = 1
FIT_SIGNATURE = inspect.signature(fit)  # fills in fit's defaults, so explicit == omitted


class CheckpointMismatch(ValueError):
    """The checkpoint holds another architecture or size than the model it is loaded into."""


def save(model, path, history: History | None = None, training: dict | None = None) -> Path:
    """Write model weights and description to path (atomically: no half-written files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "model": model.describe(), "training": training or {},
            "history": history.to_dict() if history else None}
    tmp = path.with_name(path.name + ".part")
    torch.save({"meta": json.dumps(meta), "state_dict": model.state_dict()}, tmp)
    os.replace(tmp, path)
    return path


def load(path, model=None, device=None):
    """Load a checkpoint; returns (model, meta). Builds the model when none is given."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
    except Exception as err:
        raise CheckpointMismatch(f"{path} is not a course checkpoint (or is damaged): {err}. "
                                 "Delete it and train again.") from err
    if model is None:
        model = build(meta["model"])
    elif model.describe() != meta["model"]:
        raise CheckpointMismatch(
            f"{path.name} holds {_pretty(meta['model'])}, but the model given is "
            f"{_pretty(model.describe())}. Build the model with the checkpoint's settings "
            f"(or call load(path) without a model), or train this model instead.")
    model.load_state_dict(blob["state_dict"])
    model.to(device or settings.device()).eval()
    return model, meta


def _pretty(description: dict) -> str:
    d = dict(description)
    return f"{d.pop('model')}({', '.join(f'{k}={v}' for k, v in d.items())})"


def cache_key(model, data: ImageSet, test_data: ImageSet | None, fit_kwargs: dict) -> str:
    """Hash of model, training settings (defaults filled in), datasets and mode."""
    bound = FIT_SIGNATURE.bind(model, data, **fit_kwargs)
    bound.apply_defaults()
    training = {k: v for k, v in bound.arguments.items()
                if k not in ("model", "data", "test_data", "on_batch", "progress")}
    blob = json.dumps({"model": model.describe(), "training": training, "data": data.tag,
                       "test": test_data.tag if test_data else None,
                       "fast": settings.fast_mode()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_or_load(model, data: ImageSet, test_data: ImageSet | None = None,
                  **fit_kwargs) -> History:
    """Load model weights from the cache if this exact training ran before; else train and save.

    The key covers the architecture, the training settings, the data and the mode, but not the
    initial weights: a model built after a different torch.manual_seed gets the cached one. To
    retrain it, run `make clean-cache` (or delete its file under <data>/checkpoints/).
    """
    check_device(model, data, test_data)   # before a cache hit, too: it would load silently
    key = cache_key(model, data, test_data, fit_kwargs)
    path = settings.data_dir() / "checkpoints" / f"{type(model).__name__}-{key}.pt"
    if path.exists():
        _, meta = load(path, model, device=next(model.parameters()).device)
        print(f"Loaded from cache: {path.name}")
        return History.from_dict(meta["history"])
    history = fit(model, data, test_data=test_data, **fit_kwargs)
    training = {k: v for k, v in fit_kwargs.items() if k not in ("on_batch", "progress")}
    save(model, path, history, training)
    return history
