"""Datasets as tensors: fetch and verify the files, then load them once onto the device.

    images = load("mnist", "train")          # ImageSet: float pixels in [0, 1], [N, 1, 28, 28]
    for x, y in Batches(images, 128): ...    # seeded shuffling, no per-sample transforms
    second = load_first(["kmnist", "fashion-mnist", "mnist"])   # the first one available here

Command line: ``python -m companion.data fetch [NAME ...|all]``, ``verify``, ``info``.
"""
from __future__ import annotations

import numpy as np
import torch

from companion import settings
from companion.data.batching import Batches, binarize, train_val_split
from companion.data.errors import DataError, DataUnavailable, Problem, shown
from companion.data.files import DATASETS, Spec, problems, raw_dir, recorded_source, spec
from companion.data.imageset import ImageSet
from companion.data.sources import SOURCE_FAILURES, remedies, sources_for

__all__ = ["ImageSet", "Batches", "DataError", "DataUnavailable", "DATASETS", "Problem",
           "binarize", "fetch", "load", "load_first", "source_of", "train_val_split", "verify"]


def fetch(name: str, quiet: bool = False) -> str:
    """Make sure the files of a dataset are on disk and verified; return their source.

    Missing files are staged from the first source that works. Files that are present but
    fail verification are never used and never overwritten: the error says what to do.
    """
    s = spec(name)
    bad = problems(s)
    if not bad:
        return recorded_source(s)
    damaged = [p for p in bad if p.kind == "damaged"]
    if damaged:
        raise DataError(f"{s.name}: files failed verification, so nothing was loaded:\n"
                        + "\n".join(f"  - {p}" for p in damaged)
                        + f"\nDelete them and run `python -m companion.data fetch {s.name}` "
                        "to stage fresh copies.")
    tried = [f"files in {shown(raw_dir(s))}: {', '.join(p.file for p in bad)} missing"]
    for label, get in sources_for(s):
        try:
            get(s)
        except SOURCE_FAILURES as err:
            tried.append(f"{label}: {_reason(err)}")
            continue
        if not quiet:
            print(f"{s.name}: staged from {label} into {shown(raw_dir(s))}")
        return recorded_source(s)
    raise _unavailable(s, tried)


def _reason(err: Exception) -> str:
    """One source's failure in words, without the machine's own data path."""
    text = str(err) if isinstance(err, DataError) else f"{type(err).__name__}: {err}"
    return text.replace(str(settings.data_dir()), "<data>")


def _unavailable(s: Spec, tried: list[str]) -> DataUnavailable:
    fixes = remedies(s)
    lines = [f"Could not get {s.name}. Tried, in order:", *(f"  - {t}" for t in tried),
             "What to do (any one of these):", *(f"  - {fix}" for fix in fixes)]
    return DataUnavailable("\n".join(lines), s.name, fixes[0])


def verify(name: str) -> list[Problem]:
    """Everything wrong with a dataset's files (an empty list means verified)."""
    return problems(spec(name))


def source_of(name: str) -> str:
    """Where the files of a dataset came from ('not staged' if they are not all verified)."""
    s = spec(name)
    return "not staged" if problems(s) else recorded_source(s)


def _read_idx(path) -> np.ndarray:
    raw = path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(name: str, split: str = "train", device=None) -> ImageSet:
    """Load a verified split ('train' or 'test') into float tensors on the device."""
    s = spec(name)
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', not {split!r}")
    fetch(name)  # verifies the checksums; stages the files first if they are missing
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(raw_dir(s) / f"{prefix}-images-idx3-ubyte")
    labels = _read_idx(raw_dir(s) / f"{prefix}-labels-idx1-ubyte")
    device = device or settings.device()
    x = torch.from_numpy(images.copy()).to(device).unsqueeze(1).float().div_(255)
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    return ImageSet(x, y, s.classes, f"{s.name}/{split}")


def load_first(names: list[str], split: str = "train", device=None) -> ImageSet:
    """The split of the first dataset in names that is available here.

    Each dataset skipped on the way is reported in one printed line, with the command that
    would get it. Damaged files are not skipped: their DataError says what to do.
    """
    skipped = []
    for name in names:
        try:
            data = load(name, split, device)
        except DataUnavailable as err:
            skipped.append(err)
            continue
        for err in skipped:
            print(f"{err.summary} Using {data.dataset} instead.")
        return data
    if not skipped:
        raise DataError("load_first needs at least one dataset name")
    raise skipped[-1]
