"""Is this machine ready for the workshop? One line per check, run the day before.

    python -m companion doctor          # or `make doctor`

Each line starts with ``ok:`` or ``PROBLEM:``; a problem ends with ``-> fix: <command>``.
The exit status is 1 when any check found a problem, else 0. Nothing here uses the network,
changes the environment or trains a model (the kernel check starts the notebooks' kernel once),
and no check can stop the others: whatever breaks inside one (a package that will not
import, say) is reported as that check's problem. Eleven independent checks make this module
longer than most; each is a few lines.

The trained models a core notebook needs are the cache entries its stored full-mode outputs
name (``Loaded from cache: <file>``); a core notebook is one with a section marked ``· core``.
Both come from notebooks/ in the repository and are skipped where there is none.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple

ROOT = Path(__file__).resolve().parent.parent     # the repository (or the workshop bundle)
NOTEBOOKS = ROOT / "notebooks"
MIN_PYTHON = (3, 11)
CORE_HEADING = re.compile(r"^#{2,3} .* · core\s*$", re.M)
CACHED = re.compile(r"Loaded from cache: ([\w.]+-[0-9a-f]{16}\.pt)")
OPTIONAL_DATASETS = ("kmnist",)   # no core notebook needs it: notebook 07 falls back
KERNEL = "python3"      # the kernelspec every notebook names (tools/notebooks.py's KERNEL)
KERNEL_TIMEOUT_S = 120


class Result(NamedTuple):
    ok: bool
    text: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"ok: {self.text}"
        return f"PROBLEM: {self.text} -> fix: {self.fix}"


def python() -> str:
    """How to call this interpreter from the current folder (`.venv/bin/python`, ...)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return "python" if shutil.which("python") == str(exe) else str(exe)


def install() -> str:
    """The command that installs the course into this environment, offline in a bundle."""
    if (ROOT / "wheels").is_dir() and not (ROOT / "Makefile").exists():
        return f"{python()} -m pip install --no-index --find-links wheels -e ."
    return f'{python()} -m pip install -e ".[test]"'


def check_python() -> Result:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Result(True, f"Python {version} ({sys.executable})")
    return Result(False, f"Python {version} is too old: the course needs 3.11 or newer",
                  "install Python 3.11 or newer (python.org or conda), delete .venv and set "
                  "up again as SETUP.md says")


def check_torch() -> Result:
    import torch

    from companion import settings

    device = settings.device()
    where = {"cuda": "an NVIDIA GPU", "cpu": "the CPU, as the course is sized for",
             "mps": "the Apple GPU (no float64 there: the course does that on the CPU)"}
    return Result(True, f"PyTorch {torch.__version__}, device {device}: "
                  f"{where.get(device.type, 'set by COURSE_DEVICE')}")


def check_torchvision() -> Result:
    import torchvision
    return Result(True, f"torchvision {torchvision.__version__}")


def check_jupyterlab() -> Result:
    import jupyterlab
    return Result(True, f"JupyterLab {jupyterlab.__version__}")


def check_kernel() -> Result:
    """The kernel the notebooks name starts, runs this Python and imports the course."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        return Result(False, f"no Jupyter kernel '{KERNEL}', the one every notebook names",
                      f"{python()} -m ipykernel install --sys-prefix")
    exe = spec.argv[0]
    if exe not in ("python", "python3") and Path(exe).resolve() != Path(sys.executable).resolve():
        return Result(False, f"the kernel '{KERNEL}' ({spec.resource_dir}) runs {exe}, not this "
                      "environment's Python: the notebooks would not find the course's packages",
                      f"{python()} -m ipykernel install --user --name {KERNEL}")
    start = time.perf_counter()
    answer = run_in_kernel("import companion, torch; print(torch.__version__)")
    return Result(True, f"the notebooks' kernel '{KERNEL}' starts and imports the course "
                  f"({time.perf_counter() - start:.0f} s, torch {answer})")


def run_in_kernel(code: str) -> str:
    """Start the notebooks' kernel (as JupyterLab would, quietly), run code, return its stdout."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=KERNEL, startup_timeout=KERNEL_TIMEOUT_S,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out: list[str] = []
        reply = kc.execute_interactive(code, timeout=KERNEL_TIMEOUT_S, output_hook=lambda msg:
                                       out.append(msg["content"].get("text", "")))
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
        return "".join(out).strip()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def check_widgets() -> Result:
    import ipywidgets
    from jupyter_core.paths import jupyter_path

    try:
        import jupyterlab_widgets
    except ImportError:
        jupyterlab_widgets = None
    extension = "@jupyter-widgets/jupyterlab-manager"
    found = [p for p in map(Path, jupyter_path("labextensions")) if (p / extension).is_dir()]
    if jupyterlab_widgets is None or not found:
        return Result(False, f"ipywidgets {ipywidgets.__version__} is installed but not its "
                      "JupyterLab extension (jupyterlab_widgets): the explorer's sliders would "
                      "show as text", f"{python()} -m pip install jupyterlab_widgets")
    return Result(True, f"ipywidgets {ipywidgets.__version__} with its JupyterLab extension "
                  f"(jupyterlab_widgets {jupyterlab_widgets.__version__}): sliders render")


def check_lab_settings() -> Result:
    from companion import lab_settings

    if lab_settings.installed():
        return Result(True, "JupyterLab will not ask about Jupyter news "
                      f"({lab_settings.path()})")
    return Result(False, "JupyterLab will ask each learner whether to fetch Jupyter news",
                  f"{python()} -m companion lab-settings")


def check_dataset(name: str, needed: bool) -> Callable[[], Result]:
    def check() -> Result:
        from companion.data import source_of, verify
        from companion.data.files import spec

        bad = verify(name)
        fetch = f"{python()} -m companion.data fetch {name}"
        if not bad:
            return Result(True, f"{name} verified ({source_of(name)})")
        damaged = [p for p in bad if p.kind == "damaged"]
        if damaged:
            return Result(False, f"{name} is damaged: {'; '.join(map(str, damaged))}",
                          f"delete those files, then {fetch}")
        where = f"in {os.environ.get('COURSE_DATA') or 'data/'}"
        if not needed:
            return Result(True, f"{name} is not staged {where}: optional, notebook 07 uses "
                          f"another dataset (to stage it with internet: {fetch})")
        used = "every notebook needs it" if spec(name).required else "notebook 00 shows it"
        return Result(False, f"{name} is not staged {where} ({used})", fetch)
    return check


def core_notebooks(folder: Path | None = None) -> list[str]:
    """The notebooks on the workshop path: those with a section marked `· core`."""
    names = []
    for path in sorted((folder or NOTEBOOKS).glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        if any(CORE_HEADING.search(_text(c)) for c in cells if c["cell_type"] == "markdown"):
            names.append(path.stem)
    return names


def _text(cell_or_output: dict) -> str:
    text = cell_or_output.get("source", cell_or_output.get("text", ""))
    return "".join(text) if isinstance(text, list) else text


def models_named(name: str, folder: Path | None = None) -> set[str]:
    """The cache entries a notebook's stored (full-mode) outputs say it loaded."""
    path = (folder or NOTEBOOKS) / f"{name}.ipynb"
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    return {m for o in outputs for m in CACHED.findall(_text(o))}


def cache_modes(folder: Path) -> dict[str, int]:
    """How many cache entries were written in full mode, in fast mode, or before modes were
    recorded; entries of an older format, or that cannot be read, count as 'unusable'."""
    import torch

    from companion.checkpoints import FORMAT

    counts = {"full": 0, "fast": 0, "mode not recorded": 0, "unusable": 0}
    for path in folder.glob("*.pt"):
        meta = {}
        for mmap in (True, False):   # mapped, the weights are not read; not every OS maps
            try:
                meta = json.loads(torch.load(path, map_location="cpu", weights_only=True,
                                             mmap=mmap)["meta"])
                break
            except Exception:  # noqa: BLE001 - an unreadable file is counted, not fatal
                continue
        if meta.get("format") != FORMAT:
            counts["unusable"] += 1
        else:
            counts[{True: "fast", False: "full"}.get(meta.get("fast"), "mode not recorded")] += 1
    return counts


def check_models() -> Result:
    from companion import settings

    folder = settings.data_dir() / "checkpoints"
    entries = sorted(folder.glob("*.pt"))
    size = sum(p.stat().st_size for p in entries) / 1e9
    counts = ", ".join(f"{n} {mode}" for mode, n in cache_modes(folder).items() if n)
    summary = f"model cache {folder}: {len(entries)} entries, {size:.1f} GB ({counts or 'empty'})"
    if not NOTEBOOKS.is_dir():
        if entries:
            return Result(True, summary)
        return Result(False, summary + "; every notebook will train its models (slow)",
                      "copy data/checkpoints/ from a prepared machine, or run each notebook "
                      "once the day before")
    core = core_notebooks()
    needed = {name: models_named(name) for name in core}
    missing = {name: sorted(m for m in models if not (folder / m).exists())
               for name, models in needed.items()}
    missing = {name: m for name, m in missing.items() if m}
    total = sum(map(len, needed.values()))
    if not total:   # outputs stored by a cold run name no entries: nothing to compare with
        return Result(True, f"{summary}; which models the core notebooks load is unknown: "
                      "their stored outputs name none")
    if not missing:
        return Result(True, f"{summary}; all {total} trained models of the {len(core)} core "
                      "notebooks (full mode) are there")
    short = sum(map(len, missing.values()))
    return Result(False, f"{summary}; {short} of the {total} trained models of the core "
                  f"notebooks are not cached ({', '.join(missing)}): their cells would train "
                  "them, minutes each on a laptop",
                  f"{python()} tools/nbtool.py build {' '.join(missing)}")


CHECKS: list[tuple[str, Callable[[], Result]]] = [
    ("Python", check_python), ("PyTorch", check_torch), ("torchvision", check_torchvision),
    ("JupyterLab", check_jupyterlab), ("the notebooks' kernel", check_kernel),
    ("widgets", check_widgets), ("JupyterLab settings", check_lab_settings),
    *((name, check_dataset(name, needed=name not in OPTIONAL_DATASETS))
      for name in ("mnist", "fashion-mnist", "kmnist")),
    ("trained models", check_models),
]


def run(check: Callable[[], Result], what: str) -> Result:
    """A check's result; an exception inside it becomes its problem, with the install fix."""
    try:
        return check()
    except Exception as err:  # noqa: BLE001 - a doctor reports, it does not crash
        first = (str(err).strip().splitlines() or [""])[0][:200]
        reason = f"{type(err).__name__}: {first}" if first else type(err).__name__
        return Result(False, f"{what}: could not be checked ({reason})", install())


def main() -> int:
    results = []
    for what, check in CHECKS:
        results.append(run(check, what))
        print(results[-1].line(), flush=True)
    problems = sum(not r.ok for r in results)
    if problems:
        print(f"PROBLEM: {problems} of {len(results)} checks failed -> fix: run the fixes "
              f"above, then `{python()} -m companion doctor` again")
        return 1
    print(f"ok: ready for the workshop ({len(results)} checks)")
    return 0
