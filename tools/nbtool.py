"""Notebook toolchain: run the notebooks into build/, re-execute them in place, check pairing.

    python tools/nbtool.py build [--out DIR] [NOTEBOOK ...]   # run copies into build/notebooks
    python tools/nbtool.py execute [NOTEBOOK ...]   # maintainer: re-execute the tracked notebooks
    python tools/nbtool.py check                    # fail if an .ipynb and its .py disagree

`build` (what `make course` runs) executes a copy of each notebook into build/notebooks/ and
renders each executed copy as a web page beside it, with an index.html; the tracked files are
not touched. `execute` writes the tracked .ipynb: the .py (jupytext percent format) is the
reviewed source of a notebook's inputs; the .ipynb carries the outputs of the last run.
Execution counts and outputs are kept (strict nbval needs both); volatile metadata (timings,
widget state, language versions) is removed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

from notebooks import NOTEBOOKS, ROOT, execute, paths, without_outputs

BUILD = ROOT / "build" / "notebooks"
JUPYTEXT = [sys.executable, "-m", "jupytext"]  # the tools of the running environment, not PATH's


def _sources(names: list[str]) -> list[Path]:
    if not names:
        return paths(suffix=".py")
    return [NOTEBOOKS / (Path(n).stem + ".py") for n in names]


def to_py(ipynb: Path) -> str:
    """The py:percent text paired with an .ipynb, under pyproject's [tool.jupytext] filters."""
    import jupytext
    from jupytext.config import load_jupytext_config

    config = load_jupytext_config(str(ipynb.resolve()))
    return jupytext.writes(jupytext.read(ipynb), "py:percent", config=config)


def strip(ipynb: Path) -> None:
    """Keep outputs and execution counts; drop every metadata key but kernelspec and tags."""
    nb = json.loads(ipynb.read_text())
    nb["metadata"] = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                     "name": "python3"}}
    for cell in nb["cells"]:
        tags = cell.get("metadata", {}).get("tags")
        cell["metadata"] = {"tags": tags} if tags else {}
    ipynb.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def execute_in_place(names: list[str]) -> int:
    """Re-execute the tracked notebooks from their .py; a failing one keeps its old outputs."""
    import nbformat
    from nbclient.exceptions import CellExecutionError

    for py in _sources(names):
        ipynb = py.with_suffix(".ipynb")
        subprocess.run(JUPYTEXT + ["--to", "ipynb", "--update" if ipynb.exists() else "-q", str(py)],
                       check=True)
        start = time.perf_counter()
        nb = nbformat.read(ipynb, as_version=4)
        try:
            nbformat.write(execute(nb, ipynb), ipynb)
            failure = None
        except CellExecutionError as err:
            failure = err
        strip(ipynb)
        py.write_text(to_py(ipynb))   # the canonical .py
        print(f"{ipynb.name}: executed in {time.perf_counter() - start:.0f} s", flush=True)
        if failure is not None:
            print(f"{ipynb.name} failed:\n{failure}", file=sys.stderr)
            return 1
    return 0


def build(names: list[str], out: Path = BUILD) -> int:
    """Execute a copy of each notebook into `out` and render the copies as web pages there.

    A notebook that fails is kept with its error (and its page shows it); the others still run.
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError
    from render_html import render

    from companion import settings

    sources = _sources(names)
    missing = [py.stem for py in sources if not py.with_suffix(".ipynb").exists()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    copies, failed = [], []
    for py in sources:
        nb = without_outputs(nbformat.read(py.with_suffix(".ipynb"), as_version=4))
        copies.append(out / py.with_suffix(".ipynb").name)
        start = time.perf_counter()
        try:                                    # the copy runs in `out`, where it is written
            execute(nb, copies[-1])
            status = "ran"
        except CellExecutionError:
            failed.append(py.stem)
            status = "FAILED"
        nbformat.write(nb, copies[-1])
        print(f"{copies[-1]}: {status} in {time.perf_counter() - start:.0f} s", flush=True)
    mode = "fast" if settings.fast_mode() else "full"
    render(copies, out, note=f"as `make course` ran them on {datetime.date.today()} "
                             f"({mode} mode)")
    if failed:
        print(f"failed: {', '.join(failed)}; each page in {out} shows the error", file=sys.stderr)
    return 1 if failed else 0


def check() -> int:
    """Read-only: each .ipynb, converted to py:percent, must equal its .py byte for byte."""
    bad = 0
    for py in _sources([]):
        ipynb = py.with_suffix(".ipynb")
        if not ipynb.exists():
            print(f"{ipynb.name} is missing: run `python tools/nbtool.py execute {py.name}`")
            bad += 1
            continue
        if to_py(ipynb) != py.read_text():
            print(f"{ipynb.name} and {py.name} disagree: re-execute the notebook "
                  f"(`python tools/nbtool.py execute {py.name}`)")
            bad += 1
    print(f"pairing: {len(_sources([])) - bad} in sync, {bad} out of sync")
    return 1 if bad else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("build", help="run copies into build/notebooks/ (make course)")
    run.add_argument("--out", type=Path, default=BUILD, help="output folder")
    run.add_argument("notebooks", nargs="*", help="names like 03_reparameterization (all if none)")
    again = commands.add_parser("execute", help="re-execute the tracked notebooks in place")
    again.add_argument("notebooks", nargs="*", help="names (all if none)")
    commands.add_parser("check", help="fail if an .ipynb and its .py disagree")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.notebooks, args.out.resolve())
    return execute_in_place(args.notebooks) if args.command == "execute" else check()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
