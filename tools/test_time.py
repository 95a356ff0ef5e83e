"""Time a command (`make test-time`: make test's suite) and write bench/results/test_time.json.

    python tools/test_time.py COMMAND ...

The JSON holds the wall-clock seconds, the CPU cores this process may use and the date. A
command that fails writes nothing: the time of a suite that did not pass says nothing.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULT = Path(__file__).resolve().parent.parent / "bench" / "results" / "test_time.json"


def cores() -> int:
    """The CPU cores this process may run on (its affinity where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def main(command: list[str], out: Path = RESULT) -> int:
    """Run `command`; if it passes, write its seconds, the cores and the date to `out`."""
    start = time.perf_counter()
    code = subprocess.run(command).returncode
    seconds = round(time.perf_counter() - start, 1)
    if code != 0:
        print(f"failed (exit status {code}) after {seconds:.0f} s; {out.name} not written")
        return code
    result = {"seconds": seconds, "cores": cores(), "date": dt.date.today().isoformat()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{seconds:.0f} s on {result['cores']} cores, written to {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python tools/test_time.py COMMAND ...")
    sys.exit(main(sys.argv[1:]))
