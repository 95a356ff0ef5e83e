"""Saving, loading and caching trained models.

A checkpoint is one file: the state_dict plus a JSON string that describes the model (class
and sizes), the training settings and the history, and optionally the sample strip recorded
while it trained. It is written under a temporary name unique to the writer and then renamed
in one step, so two kernels saving the same file never leave a half-written or mixed one. It
is read with ``torch.load(..., weights_only=True)``, which unpickles tensors and plain
containers only, so opening a checkpoint from someone else cannot run their code.

`train_or_load` keys a cache under ``<data>/checkpoints/`` by a hash of the model's
description, the training settings, the datasets, the fast/full mode and `FORMAT` (not the
initial weights): a notebook run a second time loads its models instead of training them
again. Only a finished training is cached; an entry that cannot be read is reported and
trained again.

When a change to the code changes what training produces (a model's forward pass, a loss,
the training loop), bump `FORMAT`: every cached model then gets a new key and is retrained,
and `load` refuses checkpoints of the old format.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import uuid
from pathlib import Path

import torch

from companion import settings
from companion.data import ImageSet
from companion.models import build
from companion.training import History, SampleStrip, check_device, check_targets, fit

FORMAT = 2   # bump to invalidate every cached model and older checkpoints (see above)
FIT_SIGNATURE = inspect.signature(fit)  # fills in fit's defaults, so explicit == omitted
NOT_IN_KEY = ("model", "data", "test_data", "on_batch", "progress")  # cannot change the weights


class CheckpointMismatch(ValueError):
    """The checkpoint holds another architecture, size or format than the one asked for."""


def save(model, path, history: History | None = None, training: dict | None = None,
         strip: SampleStrip | None = None) -> Path:
    """Write model weights and description (and a sample strip) to path, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "model": model.describe(), "training": training or {},
            "history": history.to_dict() if history else None}
    blob = {"meta": json.dumps(meta), "state_dict": model.state_dict()}
    if strip is not None:
        blob["strip"] = strip.state()
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    try:
        torch.save(blob, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load(path, model=None, device=None):
    """Load a checkpoint; returns (model, meta). Builds the model when none is given."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No checkpoint at {path}.")
    meta, blob = _read(path)
    model = model if model is not None else build(meta["model"])
    _restore(model, path, meta, blob["state_dict"], device)
    return model, meta


def _read(path: Path) -> tuple[dict, dict]:
    """(meta, blob) of a checkpoint file; CheckpointMismatch if it is damaged or too old."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        meta = json.loads(blob["meta"])
    except Exception as err:
        raise CheckpointMismatch(f"{path.name} is not a course checkpoint (or is damaged): "
                                 f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from err
    if meta.get("format") != FORMAT:
        raise CheckpointMismatch(
            f"{path.name} was written by another version of the course code (format "
            f"{meta.get('format')}; this code reads format {FORMAT}): train the model again.")
    return meta, blob


def _restore(model, path: Path, meta: dict, state_dict: dict, device) -> None:
    """Put the weights into model, or raise CheckpointMismatch and leave it untouched."""
    if model.describe() != meta["model"]:
        raise CheckpointMismatch(
            f"{path.name} holds {_pretty(meta['model'])}, but the model given is "
            f"{_pretty(model.describe())}. Build the model with the checkpoint's settings "
            f"(or call load(path) without a model), or train this model instead.")
    own = model.state_dict()
    if own.keys() != state_dict.keys() or any(own[k].shape != v.shape
                                              for k, v in state_dict.items()):
        raise CheckpointMismatch(f"The weights in {path.name} do not fit {_pretty(meta['model'])} "
                                 "as the code defines it now: train the model again.")
    model.load_state_dict(state_dict)
    model.to(device or settings.device()).eval()


def _pretty(description: dict) -> str:
    d = dict(description)
    return f"{d.pop('model')}({', '.join(f'{k}={v}' for k, v in d.items())})"


def training_settings(model, data: ImageSet, fit_kwargs: dict) -> dict:
    """Every argument of fit that shapes the weights, defaults filled in."""
    bound = FIT_SIGNATURE.bind(model, data, **fit_kwargs)
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in NOT_IN_KEY}


def cache_key(model, data: ImageSet, test_data: ImageSet | None, fit_kwargs: dict) -> str:
    """Hash of model, training settings, datasets, mode, FORMAT and COURSE_SEED_OFFSET.

    Settings left at fit's default are not in the key (passing one explicitly changes
    nothing), so a new option of fit, added with a default, keeps every cached model.
    """
    changed = {k: v for k, v in training_settings(model, data, fit_kwargs).items()
               if v != FIT_SIGNATURE.parameters[k].default}
    described = {"model": model.describe(), "training": changed,
                 "data": data.tag, "test": test_data.tag if test_data else None,
                 "fast": settings.fast_mode(), "format": FORMAT}
    offset = settings.seed_offset()
    if offset:                        # only when set: the course's own runs keep their keys
        described["seed_offset"] = offset
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def cache_path(model, key: str) -> Path:
    """The file of a cache entry: <data>/checkpoints/<model class>-<key>.pt."""
    return settings.data_dir() / "checkpoints" / f"{type(model).__name__}-{key}.pt"


def train_or_load(model, data: ImageSet, test_data: ImageSet | None = None,
                  strip: SampleStrip | None = None, **fit_kwargs) -> History:
    """Load model weights from the cache if this exact training ran before; else train and save.

    The key covers the architecture, the training settings, the data and the mode, but not the
    initial weights: a model built after a different torch.manual_seed gets the cached one. To
    retrain it, run `make clean-cache` (or delete its file under <data>/checkpoints/).
    With a `SampleStrip`, the strip is recorded while training and cached with the weights (a
    cached model without one is trained again to record it). A run stopped with Ctrl-C keeps
    its last finished epoch in memory and caches nothing.
    """
    if strip is not None and fit_kwargs.get("on_batch") is not None:
        raise ValueError("Pass either strip or on_batch to train_or_load, not both: the strip "
                         "is the callback.")
    # before a cache hit, too: the hit would load silently
    check_device(model, data, test_data)
    check_targets(training_settings(model, data, fit_kwargs)["likelihood"], data, test_data)
    path = cache_path(model, cache_key(model, data, test_data, fit_kwargs))
    if path.exists():
        history = _from_cache(model, path, strip)
        if history is not None:
            return history
    if strip is not None:
        fit_kwargs["on_batch"] = strip
    history = fit(model, data, test_data=test_data, **fit_kwargs)
    if history.interrupted:
        print(f"Nothing was cached: run this again to train the model fully ({path.name}).")
        return history
    save(model, path, history, training_settings(model, data, fit_kwargs), strip)
    return history


def _from_cache(model, path: Path, strip: SampleStrip | None) -> History | None:
    """The cached History (weights and strip restored), or None when the entry cannot serve."""
    try:
        meta, blob = _read(path)
        history = History.from_dict(meta["history"])
        if strip is not None and not strip.matches(blob.get("strip")):
            print(f"{path.name} was cached without this sample strip: training again to "
                  "record it.")
            return None
        _restore(model, path, meta, blob["state_dict"], next(model.parameters()).device)
        if strip is not None:
            strip.restore(blob["strip"])
    except (ValueError, KeyError, TypeError) as err:
        print(f"Cannot use the cached {path.name} ({err}); training it again.")
        return None
    print(f"Loaded from cache: {path.name}")
    return history
