"""The course's notebooks, and how every tool and test runs one.

    from notebooks import paths, execute        # tools/ is on sys.path for the tools and tests

- The list: `paths()` is notebooks/NN_topic.ipynb in order (`paths(folder)` for the learner
  copies or a copy of the course; `suffix=".py"` for the paired sources).
- The kernel: KERNEL, the kernelspec every notebook names. Jupyter resolves it to the python
  of the running environment, as nbval's --nbval-current-env does.
- The working folder: a notebook runs in the folder of its file, as JupyterLab and nbval run
  it. A copy runs where it is written (build/notebooks/, a test's folder), so nothing it writes
  lands in notebooks/.
- The timeout: none in full mode, where one cell trains models cold for many minutes on a
  laptop; CELL_TIMEOUT_FAST_S per cell in fast mode, where no cell needs a minute, so a cell
  that hangs fails the run instead of stalling it. The Makefile gives nbval the same limit
  (tests/test_project.py keeps the two equal).
- The transport: the runner talks to its kernel over Unix-domain sockets (IPC) in Jupyter's
  runtime folder, which only their owner can open, so the kernel has no reason to print its
  warning about unencrypted TCP once per notebook. Windows keeps TCP on localhost (and the
  kernel prints the warning there), as does a runtime folder whose path is too long for a socket.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAME = "[0-9][0-9]_*"            # NN_topic
KERNEL = "python3"
CELL_TIMEOUT_FAST_S = 900       # 15 min: a hung cell, not a slow one, on a busy 2-core machine
SOCKET_PATH_MAX = 100           # a Unix socket's path is limited to 104 bytes on macOS, 108 on Linux


def paths(folder: Path = NOTEBOOKS, suffix: str = ".ipynb") -> list[Path]:
    """The course's notebooks in `folder`, in order."""
    return sorted(folder.glob(NAME + suffix))


def cell_timeout() -> int | None:
    """Seconds a cell may run in the current mode (COURSE_FAST), None for no limit."""
    from companion import settings
    return CELL_TIMEOUT_FAST_S if settings.fast_mode() else None


def kernel_sockets() -> dict:
    """The kernel manager's settings: IPC sockets named for this kernel alone, else TCP."""
    if os.name == "nt":
        return {"transport": "tcp"}
    from jupyter_core.paths import jupyter_runtime_dir

    folder = Path(jupyter_runtime_dir()).resolve()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)   # as Jupyter makes it
    prefix = folder / f"kernel-{uuid.uuid4().hex}-ipc"   # the sockets are <prefix>-1 ... -5
    if len(str(prefix)) + 3 > SOCKET_PATH_MAX:
        return {"transport": "tcp"}
    return {"transport": "ipc", "ip": str(prefix)}


def without_outputs(nb: NotebookNode) -> NotebookNode:
    """The notebook with every output and execution count cleared, in place."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def execute(nb: NotebookNode, path: Path, timing: bool = False) -> NotebookNode:
    """Run every cell of `nb`, the notebook stored (or to be stored) at `path`; return it.

    The kernel inherits this process's environment (COURSE_FAST, COURSE_DATA, ...). Raises
    nbclient's CellExecutionError, with the cell and its traceback, at the first cell that
    fails. `timing` keeps each cell's start and end in its metadata (tools/schedule.py)."""
    from nbclient import NotebookClient
    from traitlets.config import Config

    config = Config({"KernelManager": kernel_sockets()})
    NotebookClient(nb, timeout=cell_timeout(), kernel_name=KERNEL, record_timing=timing,
                   store_widget_state=False, config=config,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb
