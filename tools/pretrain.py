"""Train and cache every model the course uses, and time each notebook in each mode.

    python tools/pretrain.py                                  # all notebooks, modes fast,full,warm
    python tools/pretrain.py --modes fast,warm 05_training_a_vae 08_latent_arithmetic

Modes: `fast` runs a notebook with COURSE_FAST=1; `full` runs it in full mode, training and
caching in <data>/checkpoints/ every model that is not cached yet (cold on a fresh machine:
`make clean-cache` first to measure that); `warm` runs it in full mode again, from the cache.
Notebooks are executed in memory from notebooks/NN_topic.ipynb; the committed files are never
written. Results are merged into bench/results/timings.json (so partial runs add up) and the
table is printed and written to bench/results/timings.md. Fast mode also records the seconds
of each section, from which `tools/schedule.py` derives the workshop schedules.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

from notebooks import NOTEBOOKS, ROOT, execute, paths

RESULTS = ROOT / "bench" / "results"
MODES = ("fast", "full", "warm")
COLUMNS = {"fast": "fast", "full": "full (cold)", "warm": "full (warm cache)"}


def checkpoint_files() -> set[str]:
    """The cached models (a sample strip is stored inside its model's file)."""
    from companion import settings
    folder = settings.data_dir() / "checkpoints"
    return {p.name for p in folder.glob("*.pt")}


def measure(ipynb: Path, mode: str) -> dict:
    """Run one notebook in one mode (in memory); return seconds, models trained and any error."""
    import nbformat

    nb = nbformat.read(ipynb, as_version=4)
    saved = os.environ.get("COURSE_FAST")
    if mode == "fast":
        os.environ["COURSE_FAST"] = "1"
    else:
        os.environ.pop("COURSE_FAST", None)
    before = checkpoint_files()
    start = time.perf_counter()
    error = None
    try:   # the kernel inherits this process's environment
        execute(nb, ipynb, timing=True)
    except Exception as exc:  # noqa: BLE001 - report any failure in the table, go on
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200]}"
    finally:
        if saved is None:
            os.environ.pop("COURSE_FAST", None)
        else:
            os.environ["COURSE_FAST"] = saved
    seconds = time.perf_counter() - start
    trained = len(checkpoint_files() - before)
    result = {"seconds": round(seconds, 1), "trained": trained, "error": error,
              "date": dt.date.today().isoformat()}
    if mode in ("fast", "warm") and error is None:   # warm: what tools/schedule.py plans with
        from schedule import section_seconds   # noqa: PLC0415 - a sibling script
        result["sections"] = section_seconds(nb)
    return result


def cell(result: dict | None, mode: str) -> str:
    if result is None:
        return "not measured"
    if result["error"]:
        return f"failed ({result['error']})"
    text = f"{result['seconds']:.0f} s"
    if mode == "full":
        n = result["trained"]
        text += f" ({n} model{'s' * (n != 1)} cached)" if n else " (nothing cached)"
    return text


def table(results: dict[str, dict[str, dict]]) -> str:
    lines = ["| notebook | " + " | ".join(COLUMNS[m] for m in MODES) + " |",
             "|---|" + "---|" * len(MODES)]
    for name in sorted(results):
        lines.append(f"| `{name}` | " + " | ".join(cell(results[name].get(m), m) for m in MODES)
                     + " |")
    totals = []
    for m in MODES:
        runs = [r[m] for r in results.values() if m in r and not r[m]["error"]]
        complete = len(runs) == len(results)
        totals.append(f"{sum(r['seconds'] for r in runs) / 60:.1f} min" if complete else "—")
    lines.append("| **all** | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", type=_modes, default=list(MODES),
                        help="comma-separated, from fast,full,warm (default: all three)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier measurements")
    parser.add_argument("notebooks", nargs="*", help="names like 05_training_a_vae (all if none)")
    return parser.parse_args(argv)


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(MODES)}")
    return modes


def main(argv: list[str]) -> int:
    args = parse(argv)
    names = [Path(n).stem for n in args.notebooks] or [p.stem for p in paths()]
    store = RESULTS / "timings.json"
    results = {} if args.fresh or not store.exists() else json.loads(store.read_text())["notebooks"]
    failed = 0
    for mode in [m for m in MODES if m in args.modes]:      # full before warm
        for name in names:
            result = measure(NOTEBOOKS / f"{name}.ipynb", mode)
            results.setdefault(name, {})[mode] = result
            failed += bool(result["error"])
            print(f"{name:32s} {COLUMNS[mode]:18s} {cell(result, mode)}", flush=True)
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    machine = (f"{platform.machine()}, {os.cpu_count()} CPU cores, OMP_NUM_THREADS={threads}, "
               f"Python {platform.python_version()}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps({"machine": machine, "notebooks": results}, indent=1) + "\n")
    write_markdown(machine, results)
    print("\n" + table(results))
    return 1 if failed else 0


def write_markdown(machine: str, results: dict[str, dict[str, dict]]) -> None:
    text = (f"# Notebook run times\n\nWall-clock time of each notebook, executed end to end by "
            f"`make pretrain` (kernel start included) on {machine}. In brackets: how many models "
            f"a cold run trained and added to the cache.\n\n"
            f"{table(results)}\n")
    (RESULTS / "timings.md").write_text(text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
