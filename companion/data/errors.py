"""What can be wrong with a dataset, said so that a person knows what to do.

Paths in messages are written relative to the data directory, as ``<data>/MNIST/raw``, so a
message reads the same on every machine (``python -m companion.data`` says what ``<data>`` is).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from companion import settings


class DataError(RuntimeError):
    """A dataset is unknown, damaged or cannot be had; the message says what to do."""


class DataUnavailable(DataError):
    """No source could provide a dataset on this machine.

    ``fix`` is the most direct remedy here (a command to run, or files to copy) and ``summary``
    one line that names the dataset and that remedy.
    """

    def __init__(self, message: str, name: str, fix: str):
        super().__init__(message)
        self.name, self.fix = name, fix
        self.summary = f"{name} is not available here; to get it: {fix}."


@dataclass(frozen=True)
class Problem:
    """One file of a dataset that cannot be used: missing, or present but damaged."""
    file: str     # e.g. "train-images-idx3-ubyte"
    kind: str     # "missing" or "damaged"
    detail: str   # what is wrong, e.g. "has 1,000 bytes, expected 60,008 (truncated ...)"
    where: str = ""  # the folder, as shown(); empty for bytes a source has not written yet

    def __str__(self) -> str:
        return f"{self.where}/{self.file} {self.detail}" if self.where else f"{self.file} {self.detail}"


def shown(path: Path) -> str:
    """A path as messages write it: ``<data>/...`` inside the data directory, else as it is."""
    try:
        return "/".join(("<data>", *path.relative_to(settings.data_dir()).parts))
    except ValueError:
        return str(path)


def data_dir_meaning() -> str:
    """What ``<data>`` stands for on this machine, without printing the machine's own path."""
    if settings.data_dir() == (settings.REPO_ROOT / "data").resolve():
        return "the data/ folder of the repository"
    return "the folder that COURSE_DATA names"
