"""Fixtures shared by several test files."""
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

from companion.data import ImageSet

ROOT = Path(__file__).resolve().parent.parent


@pytest.hookimpl(tryfirst=True, optionalhook=True)   # before pytest-xdist's own choice
def pytest_xdist_make_scheduler(config, log):
    """With pytest-xdist's default distribution (`-n 2`), all cells of a notebook go to one
    worker, in order, since nbval runs them one after another in one kernel; every other test
    goes to whichever worker is free. (xdist's own `--dist loadgroup` needs the test ids to
    change, which pytest 9.2 no longer allows.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return file if file.endswith(".ipynb") else nodeid

    return NotebookScheduling(config, log)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """An empty data directory in full mode: the real data/ folder and its cache stay untouched."""
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    monkeypatch.delenv("COURSE_FAST", raising=False)
    return tmp_path


def random_images(n: int) -> ImageSet:
    """n seeded random images with label 0: enough to train a model for a step or two."""
    g = torch.Generator().manual_seed(0)
    return ImageSet(torch.rand(n, 1, 28, 28, generator=g), torch.zeros(n, dtype=torch.long),
                    tuple("0123456789"), f"random[{n}]")


def require(available: bool, reason: str) -> None:
    """Skip a test that needs something this machine lacks (a system package); in CI, where
    CI=true, fail it instead, because there the project installs everything it needs."""
    if available:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


def load_script(folder: str, name: str):
    """Import <folder>/<name>.py as a module (bench/ and tools/ hold scripts, not packages).

    The folder goes on sys.path, as it is when the script runs, for the siblings it imports."""
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))
    spec = importlib.util.spec_from_file_location(f"{folder}_{name}", ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module
