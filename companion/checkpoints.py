"""Saving, loading and caching trained models.

A checkpoint is one file: the state_dict plus a JSON string that describes the model (class
and sizes), the training settings, the history and the mode (fast or full) it was written in,
and optionally the sample strip recorded while it trained. It is written under a temporary
name unique to the writer and then renamed in one step, so two kernels saving the same file
never leave a half-written or mixed one. It is read with ``torch.load(...,
weights_only=True)``, which unpickles tensors and plain containers only, so opening a
checkpoint from someone else cannot run their code.

`train_or_load` keys a cache under ``<data>/checkpoints/`` by a hash of what shapes the
weights: the model's description, the source code of its class (and of the classes it builds
on) and of the losses, the training settings, a fingerprint of the training tensors
(`ImageSet.fingerprint`), the fast/full mode and `FORMAT` (not the initial weights, the test
set or the callbacks): a notebook run a second time loads its models instead of training them
again, and an edit to a model or a loss retrains it. Only a finished training is cached; an
entry that cannot be read is reported and trained again.

When a change to the training loop or the file layout changes what a checkpoint holds, bump
`FORMAT`: every cached model then gets a new key, and `load` refuses older checkpoints.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import sys
import uuid
from dataclasses import asdict
from pathlib import Path

import torch

from companion import gaussians, losses, settings
from companion.data import ImageSet
from companion.models import build
from companion.training import (History, SampleStrip, check_device, check_targets, evaluate,
                                fit)

FORMAT = 3   # bump to invalidate every cached model and older checkpoints (see above)
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
            "history": history.to_dict() if history else None,
            "fast": settings.fast_mode()}   # what `python -m companion doctor` counts by mode
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
    """Every argument of fit that shapes the weights, defaults filled in (as plain values)."""
    try:
        bound = FIT_SIGNATURE.bind(model, data, **fit_kwargs)
    except TypeError as err:
        raise TypeError(f"{err}. fit takes: {', '.join(list(FIT_SIGNATURE.parameters)[2:])}; "
                        "the loss's weights go in objective=Objective(beta=..., ...).") from None
    bound.apply_defaults()
    return {k: _plain(v) for k, v in bound.arguments.items() if k not in NOT_IN_KEY}


def _plain(value):
    """A setting as JSON can hold it: an Objective as its dict of weights."""
    return asdict(value) if isinstance(value, losses.Objective) else value


def code_version(model) -> str:
    """A hash of the code that computes the model and its loss: the modules of its classes
    (its own and those it builds on, with their layers and helpers) and of its parts' classes
    (a learned prior, say), `companion.losses` and `companion.gaussians`, and the source of a
    class defined outside the package (in a notebook, say) where Python can find it. An edit
    there retrains the model."""
    sources = {inspect.getsource(losses), inspect.getsource(gaussians)}
    parts = [type(part) for part in model.modules()
             if type(part).__module__.startswith("companion.")]   # a prior, a flow step, ...
    for cls in [*type(model).__mro__, *parts]:
        if cls.__module__.startswith("companion."):
            sources.add(inspect.getsource(sys.modules[cls.__module__]))
        elif not cls.__module__.startswith(("torch", "builtins")):
            try:
                sources.add(inspect.getsource(cls))
            except (OSError, TypeError):   # defined where no source is kept
                sources.add(cls.__qualname__)
    return hashlib.sha256("".join(sorted(sources)).encode()).hexdigest()[:16]


def cache_key(model, data: ImageSet, fit_kwargs: dict) -> str:
    """Hash of model, its code, training settings, training data, mode, FORMAT and
    COURSE_SEED_OFFSET: everything that shapes the weights, nothing else.

    Settings left at fit's default are not in the key (passing one explicitly changes
    nothing), so a new option of fit, added with a default, keeps every cached model.
    """
    changed = {k: v for k, v in training_settings(model, data, fit_kwargs).items()
               if v != _plain(FIT_SIGNATURE.parameters[k].default)}
    described = {"model": model.describe(), "code": code_version(model), "training": changed,
                 "data": data.fingerprint(), "fast": settings.fast_mode(), "format": FORMAT}
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

    The key covers the architecture and its code, the training settings, the training data and
    the mode, but not the initial weights: a model built after a different torch.manual_seed
    gets the cached one. To retrain it, run `make clean-cache` (or delete its file under
    <data>/checkpoints/). The test set is not in the key: a model cached with another test set
    is loaded, its last epoch's test numbers are measured again on this one, and the earlier
    epochs' test numbers become NaN (they were measured on the other set).
    With a `SampleStrip`, the strip is recorded while training and cached with the weights (a
    cached model without one is trained again to record it). A run stopped with Ctrl-C keeps
    its last finished epoch in memory and caches nothing.
    """
    if strip is not None and fit_kwargs.get("on_batch") is not None:
        raise ValueError("Pass either strip or on_batch to train_or_load, not both: the strip "
                         "is the callback.")
    # before a cache hit, too: the hit would load silently
    check_device(model, data, test_data)
    check_targets(model.likelihood, data, test_data)
    training = training_settings(model, data, fit_kwargs)
    test = test_data.fingerprint() if test_data is not None else None
    path = cache_path(model, cache_key(model, data, fit_kwargs))
    if path.exists():
        cached = _from_cache(model, path, strip)
        if cached is not None:
            history, meta = cached
            if meta["training"].get("test") != test:
                _measure_again(history, model, test_data, training["objective"])
            return history
    if strip is not None:
        fit_kwargs["on_batch"] = strip
    history = fit(model, data, test_data=test_data, **fit_kwargs)
    if history.interrupted:
        print(f"Nothing was cached: run this again to train the model fully ({path.name}).")
        return history
    save(model, path, history, {**training, "test": test}, strip)
    return history


def _measure_again(history: History, model, test_data: ImageSet | None, objective: dict) -> None:
    """Test columns for another test set: NaN for the earlier epochs, the last one measured."""
    columns = (history.test_loss, history.test_reconstruction, history.test_kl)
    if test_data is None:
        last = [[]] * len(columns)
    else:
        earlier = [math.nan] * (len(history.loss) - 1)
        last = [earlier + [v] for v in evaluate(model, test_data, losses.Objective(**objective))]
    for column, values in zip(columns, last):
        column[:] = values


def _from_cache(model, path: Path, strip: SampleStrip | None) -> tuple[History, dict] | None:
    """The cached History and meta (weights and strip restored), or None when the entry
    cannot serve."""
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
    return history, meta
