"""Notebook toolchain: execute notebooks from their paired sources, and check the pairing.

    python tools/nbtool.py execute [NOTEBOOK ...]   # .py -> .ipynb inputs, run, strip metadata
    python tools/nbtool.py check                    # fail if an .ipynb and its .py disagree

The .py (jupytext percent format) is the reviewed source of a notebook's inputs; the .ipynb
carries the outputs of the last run. Execution counts and outputs are kept (strict nbval
needs both); volatile metadata (timings, widget state, language versions) is removed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
# The same filter as pyproject's [tool.jupytext], passed explicitly: the CLI writes its own
# version into the header otherwise, and the pairing would then depend on jupytext's version.
JUPYTEXT = [sys.executable, "-m", "jupytext"]  # the tools of the running environment, not PATH's
TO_PY = JUPYTEXT + ["--to", "py:percent", "--opt", "notebook_metadata_filter=kernelspec,-jupytext"]


def _sources(names: list[str]) -> list[Path]:
    if not names:
        return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    return [NOTEBOOKS / (Path(n).stem + ".py") for n in names]


def strip(ipynb: Path) -> None:
    """Keep outputs and execution counts; drop every metadata key but kernelspec and tags."""
    nb = json.loads(ipynb.read_text())
    nb["metadata"] = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                     "name": "python3"}}
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags")
        cell["metadata"] = {"tags": tags} if tags else {}
    ipynb.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def execute(names: list[str]) -> int:
    for py in _sources(names):
        ipynb = py.with_suffix(".ipynb")
        subprocess.run(JUPYTEXT + ["--to", "ipynb", "--update" if ipynb.exists() else "-q", str(py)],
                       check=True)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--inplace",
             "--ExecutePreprocessor.timeout=-1", "--ExecutePreprocessor.kernel_name=python3",
             "--ExecutePreprocessor.record_timing=False",
             "--ExecutePreprocessor.store_widget_state=False", str(ipynb)], cwd=NOTEBOOKS)
        strip(ipynb)
        subprocess.run(TO_PY + ["-q", "-o", str(py), str(ipynb)], check=True)  # canonical .py
        print(f"{ipynb.name}: executed in {time.perf_counter() - start:.0f} s", flush=True)
        if done.returncode != 0:
            return done.returncode
    return 0


def check() -> int:
    """Read-only: each .ipynb, converted to py:percent, must equal its .py byte for byte."""
    bad = 0
    for py in _sources([]):
        ipynb = py.with_suffix(".ipynb")
        if not ipynb.exists():
            print(f"{ipynb.name} is missing: run `python tools/nbtool.py execute {py.name}`")
            bad += 1
            continue
        converted = subprocess.run(TO_PY + ["-o", "-", str(ipynb)],
                                   capture_output=True, text=True, check=True, cwd=NOTEBOOKS).stdout
        if converted != py.read_text():
            print(f"{ipynb.name} and {py.name} disagree: re-execute the notebook "
                  f"(`python tools/nbtool.py execute {py.name}`)")
            bad += 1
    print(f"pairing: {len(_sources([])) - bad} in sync, {bad} out of sync")
    return 1 if bad else 0


if __name__ == "__main__":
    command, *args = sys.argv[1:] or ["check"]
    sys.exit({"execute": lambda: execute(args), "check": check}[command]())
