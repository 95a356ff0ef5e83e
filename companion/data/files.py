"""The three datasets, where their four files live, and how each file is checked.

Files follow torchvision's layout (``<data>/MNIST/raw/train-images-idx3-ubyte`` ...), so
torchvision's own dataset classes can read what we stage. Every file is compared with the
canonical checksum of the *uncompressed* IDX file before anything reads it; a file's digest
is remembered for the process while its size and modification time stay the same.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from companion import settings
from companion.data.errors import DataError, Problem, shown

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SIZES = (47_040_016, 60_008, 7_840_016, 10_008)  # bytes of each uncompressed file


@dataclass(frozen=True)
class Spec:
    """One dataset: its folder, its classes, the md5 of each file, its registry source."""
    name: str
    folder: str
    classes: tuple[str, ...]
    md5: tuple[str, ...] | None  # None: no canonical list; size and header are checked
    offline: str | None = None   # "wheel", "debian" or None
    required: bool = False       # the course needs it; the notebooks fall back from the others
    torchvision_class: str = field(default="", compare=False)


DATASETS = {
    "mnist": Spec(
        "mnist", "MNIST", tuple(str(d) for d in range(10)),
        ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
         "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
        offline="wheel", required=True, torchvision_class="MNIST"),
    "fashion-mnist": Spec(
        "fashion-mnist", "FashionMNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
         "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
        offline="debian", torchvision_class="FashionMNIST"),
    "kmnist": Spec(
        "kmnist", "KMNIST", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        None, offline=None, torchvision_class="KMNIST"),
}


def spec(name: str) -> Spec:
    """The Spec of a dataset, or a DataError that lists the known names."""
    key = name.lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "k-mnist": "kmnist"}.get(key, key)
    if key not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}.")
    return DATASETS[key]


def raw_dir(s: Spec) -> Path:
    return settings.data_dir() / s.folder / "raw"


# --- checking files -------------------------------------------------------------------

_DIGESTS: dict[tuple[str, int, int], str] = {}   # (path, size, mtime_ns) -> md5


def md5(path: Path) -> str:
    """The md5 of a file, computed once per process while its size and mtime stay the same."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.md5()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _defect(s: Spec, i: int, size: int, digest: Callable[[], str],
            head: Callable[[], bytes]) -> str | None:
    """What is wrong with file i of s, given its size and how to get its md5 and first bytes."""
    if size != SIZES[i]:
        return f"has {size:,} bytes, expected {SIZES[i]:,} (truncated or not an IDX file)"
    if s.md5 is not None:
        if (found := digest()) != s.md5[i]:
            return f"has md5 {found}, expected {s.md5[i]} (corrupt)"
    elif int.from_bytes(head()[:4], "big") != (2051 if "images" in FILES[i] else 2049):
        return "does not start with an IDX header"
    return None


def check_file(s: Spec, i: int, folder: Path) -> Problem | None:
    """None if file i of dataset s in folder is intact, else the Problem with it."""
    path = folder / FILES[i]
    if not path.exists():
        return Problem(FILES[i], "missing", "is missing", shown(folder))
    try:
        detail = _defect(s, i, path.stat().st_size, lambda: md5(path), lambda: _head(path))
    except OSError as err:   # e.g. no permission to read it
        detail = f"cannot be read ({type(err).__name__}: {err.strerror})"
    return Problem(FILES[i], "damaged", detail, shown(folder)) if detail else None


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(4)


def check_bytes(s: Spec, i: int, data: bytes) -> Problem | None:
    """None if the bytes of file i of dataset s are intact, else the Problem with them."""
    detail = _defect(s, i, len(data), lambda: hashlib.md5(data).hexdigest(), lambda: data)
    return Problem(FILES[i], "damaged", detail) if detail else None


def problems(s: Spec, folder: Path | None = None) -> list[Problem]:
    """Everything wrong with the four files of s in folder (empty list: all verified)."""
    folder = folder or raw_dir(s)
    return [p for i in range(len(FILES)) if (p := check_file(s, i, folder))]


def recorded_source(s: Spec) -> str:
    """Where the staged files of s came from, as recorded when they were staged."""
    record = settings.data_dir() / s.folder / "source.json"
    try:
        return json.loads(record.read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):  # no record, or not one we wrote
        return f"files found in {shown(raw_dir(s))}"
