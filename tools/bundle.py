"""The workshop on a USB stick: one folder that installs and runs the course with no network.

    python tools/bundle.py [--out build/workshop-bundle] [--no-wheels] [--torch-index URL]

`make workshop-bundle` writes, into build/workshop-bundle/:

    README.md          how to install it offline and start (for learners, in plain steps)
    wheels/            every package that running the notebooks needs, as wheels for this
                       platform (this Python version, OS and CPU): what `requirements.txt` names,
                       with their dependencies, at the versions installed here
    requirements.txt   those packages: the course's own dependencies, the notebook kernel and
                       the build backend, never the test tools (pytest, nbval, jupytext, ...)
    pyproject.toml, companion/, LICENSE
                       the course's package, installed from here in editable mode, so that it
                       finds data/ beside it as it does in a clone (no COURSE_DATA to set)
    data/              the verified datasets, and the trained models that the notebooks' stored
                       full-mode outputs load (their cache entries), so nothing trains in the room
    exercises/         the learner copies of the notebooks
    site/              every notebook as a web page with its stored outputs (`make html`)

The wheelhouse needs the package registries once, here; the bundle never does. `--no-wheels`
leaves wheels/ out (for a quick look, and the tests). Anything missing (a dataset the course
needs, a trained model) is reported in one line each and makes the exit status 1, after the
rest is written; INCOMPLETE.txt in the bundle then lists it too.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path

from notebooks import NOTEBOOKS, ROOT, paths

OUT = ROOT / "build" / "workshop-bundle"
# Running the notebooks needs the kernel besides the package's own dependencies; installing the
# package from the bundle needs its build backend (pip builds it with no network).
RUNTIME_EXTRAS = ["ipykernel", "setuptools"]
PACKAGE_FILES = ["pyproject.toml", "LICENSE"]

README = """# {title}: the workshop bundle

Everything the course needs, for {platform}. Nothing here uses the network.

## Install (once, the day before)

You need Python {python} on {os_name}, the same as the machine that wrote this bundle (its
wheels are built for it). Copy this folder from the stick to your disk (the notebooks read
and write in it), then, in that folder, in a terminal:

    python -m venv .venv
    {venv_python} -m pip install --no-index --find-links wheels -e .
    {venv_python} -m companion lab-settings
    {venv_python} -m companion doctor

The last command checks the machine, one line per check: every line should start with `ok:`.
A line that starts with `PROBLEM:` ends with the command that fixes it.

## Start

    {venv_jupyter} lab exercises/

and open `00_welcome_and_data.ipynb`. Its first cell prints the mode, the device and where
the data came from. The notebooks find the datasets and the trained models in `data/`.

## Also here

- `site/index.html`: every notebook as a web page with its outputs, for reading along without
  running anything (open it in a browser; the formulas need no internet).
- `requirements.txt`: the packages in `wheels/`.

Written {date} by `make workshop-bundle` from the course's repository.
"""


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def name_of(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def runtime_requirements() -> list[str]:
    """The packages the notebooks need to run, pinned to the versions installed here."""
    names = [name_of(r) for r in project()["dependencies"]] + RUNTIME_EXTRAS
    return [f"{n}=={importlib.metadata.version(n)}" for n in names]


def installed_pins() -> list[str]:
    """name==version of every distribution in this environment but the course's own."""
    own = project()["name"].lower()
    pins = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()
            if d.metadata["Name"] and d.metadata["Name"].lower() != own}
    return [f"{n}=={v}" for n, v in sorted(pins.items())]


def wheelhouse(out: Path, torch_index: str | None) -> None:
    """wheels/: what requirements.txt names and what it needs, at this environment's versions."""
    constraints = out / "constraints.txt"
    constraints.write_text("\n".join(installed_pins()) + "\n")
    command = [sys.executable, "-m", "pip", "wheel", "--wheel-dir", str(out / "wheels"),
               "-r", str(out / "requirements.txt"), "-c", str(constraints)]
    if torch_index:
        command += ["--extra-index-url", torch_index]
    try:
        subprocess.run(command, check=True)
    finally:
        constraints.unlink()


def dataset_folders() -> tuple[list[str], list[str]]:
    """(the dataset folders to copy, one line for each needed dataset that is missing)."""
    from companion.data import DATASETS, verify

    from companion.doctor import OPTIONAL_DATASETS

    folders, missing = [], []
    for name, s in DATASETS.items():
        if not verify(name):
            folders.append(s.folder)
        elif name not in OPTIONAL_DATASETS:
            missing.append(f"{name} is not staged: `python -m companion.data fetch {name}`")
    return folders, missing


def trained_models() -> set[str]:
    """The cache entries the notebooks' stored outputs load, all notebooks (homework too)."""
    from companion.doctor import models_named
    return {m for ipynb in paths() for m in models_named(ipynb.stem, NOTEBOOKS)}


def copy_data(out: Path) -> list[str]:
    """data/: verified datasets and the notebooks' trained models; returns what is missing."""
    from companion import settings

    source = settings.data_dir()
    folders, missing = dataset_folders()
    for folder in folders:
        shutil.copytree(source / folder, out / "data" / folder)
    cache = out / "data" / "checkpoints"
    cache.mkdir(parents=True)
    absent, wanted = [], sorted(trained_models())
    if not wanted:
        missing.append("the notebooks' stored outputs name no cached models (a cold run stored "
                       "them): run `make notebooks` with the models cached, then bundle again")
    for entry in wanted:
        if (source / "checkpoints" / entry).exists():
            shutil.copy2(source / "checkpoints" / entry, cache / entry)
        else:
            absent.append(entry)
    if absent:
        some = ", ".join(absent[:3]) + (", ..." if len(absent) > 3 else "")
        counted = "1 trained model is" if len(absent) == 1 else f"{len(absent)} trained models are"
        missing.append(f"{counted} not in the cache ({some}): run `make pretrain` first")
    return missing


def site(out: Path) -> None:
    """site/: the pages `make html` wrote, if they are newer than every notebook; else fresh."""
    from render_html import render

    built = ROOT / "site" / "index.html"
    if built.exists() and all(built.stat().st_mtime >= p.stat().st_mtime for p in paths()):
        shutil.copytree(built.parent, out / "site")
    else:
        render(paths(), out / "site")


def readme() -> str:
    windows = sys.platform == "win32"
    scripts = ".venv\\Scripts\\" if windows else ".venv/bin/"
    return README.format(
        title="Variational Autoencoders, from first principles",
        platform=f"{platform.system()} {platform.machine()}, Python "
                 f"{platform.python_version()} ({sysconfig.get_platform()})",
        python=".".join(platform.python_version_tuple()[:2]), os_name=platform.system(),
        venv_python=f"{scripts}python", venv_jupyter=f"{scripts}jupyter",
        date=time.strftime("%Y-%m-%d"))


def build(out: Path, wheels: bool = True, torch_index: str | None = None) -> list[str]:
    """Write the bundle into out (emptied first); return one line per thing that is missing."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in PACKAGE_FILES:
        shutil.copy2(ROOT / name, out / name)
    shutil.copytree(ROOT / "companion", out / "companion",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (out / "README.md").write_text(readme())
    (out / "requirements.txt").write_text("\n".join(runtime_requirements()) + "\n")
    shutil.copytree(ROOT / "exercises", out / "exercises",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    missing = copy_data(out)
    site(out)
    if wheels:
        wheelhouse(out, torch_index)
    if missing:      # a stick handed out as it is must say that it is not ready
        (out / "INCOMPLETE.txt").write_text(
            "This bundle is incomplete; rebuild it after fixing:\n"
            + "".join(f"- {line}\n" for line in missing))
    return missing


def size(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e9


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the bundle's folder (emptied)")
    parser.add_argument("--no-wheels", action="store_true", help="leave out the wheelhouse")
    parser.add_argument("--torch-index", default=None,
                        help="another index for PyTorch, e.g. its CPU-only builds")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    missing = build(args.out.resolve(), not args.no_wheels, args.torch_index or None)
    for line in missing:
        print(f"PROBLEM: {line}")
    print(f"{args.out}: {size(args.out):.2f} GB in {time.perf_counter() - start:.0f} s"
          + (" (no wheels)" if args.no_wheels else ""))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
