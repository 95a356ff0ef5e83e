"""Every learner copy runs to the end in fast mode, as "Run All" does before any exercise is done.

Each copy in exercises/ is executed top to bottom in a fresh kernel, in its own folder, by
the course's runner (tools/notebooks.py) with COURSE_FAST=1. Its models come from the
fast-mode entries of the checkpoint cache in the data folder, the ones the notebooks' own fast
run uses; a missing one is trained and written atomically, and full-mode entries are never
touched.
Every exercise's check must say "Not attempted yet", no check may call a stub correct, and
no cell may raise. The skip_if_unwritten tests at the end cover the mechanism on its own.

A copy runs whole, although most of its cells are the notebook's own and nbval runs those
too: the state the cells before a stub leave behind exists only in a kernel that ran them, and
continuing the notebook's kernel instead would keep whatever the solutions did (a function, a
trained model, a drawn random number), so a cell that needs a solution would pass here and
fail for a learner. A stub may sit anywhere in a notebook. make test runs the copies beside
the notebooks, on two workers.
"""
import ast
import re
import time
from pathlib import Path

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from companion.checks import ExerciseError, skip_if_unwritten
from companion.data import source_of
from conftest import ROOT, load_script, require

notebooks = load_script("tools", "notebooks")
COPIES = notebooks.paths(ROOT / "exercises")
NOT_ATTEMPTED = "Not attempted yet: "


def stubs(source: str) -> set[str]:
    """Names of the functions of an exercise cell whose body raises NotImplementedError."""
    return {node.name for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and any(isinstance(s, ast.Raise) and "NotImplementedError" in ast.unparse(s)
                    for s in node.body)}


def printed(cell) -> str:
    """Everything a code cell printed to stdout."""
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stdout")


def run(copy: Path) -> nbformat.NotebookNode:
    """Execute a learner copy in its folder; fail with the first error and where it happened."""
    try:
        return notebooks.execute(nbformat.read(copy, as_version=4), copy)
    except CellExecutionError as err:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err))          # no terminal colours
        pytest.fail(f"{copy.name} stops before its end in fast mode:\n{plain}", pytrace=False)


def test_there_are_learner_copies():   # else the test below would run on nothing
    assert COPIES, "no learner copies in exercises/: run `make exercises`"


@pytest.mark.parametrize("copy", COPIES, ids=[c.stem for c in COPIES])
def test_a_learner_copy_runs_to_the_end_and_reports_every_exercise_not_attempted(copy, monkeypatch):
    require(source_of("mnist") != "not staged", "MNIST is not staged: run `make data`")
    monkeypatch.setenv("COURSE_FAST", "1")     # the kernel inherits the environment
    start = time.perf_counter()
    cells = run(copy).cells
    print(f"{copy.name}: ran to the end in {time.perf_counter() - start:.0f} s")
    codes = [c for c in cells if c.cell_type == "code"]
    exercises = [i for i, c in enumerate(codes) if "exercise" in c.metadata.get("tags", [])]
    for i in exercises:
        names = stubs(codes[i].source)
        where = f"{copy.name}, the exercise in code cell {i + 1}"
        assert names, (f"{where} defines no function, so no check can tell that it is not "
                       f"attempted yet:\n{codes[i].source}")
        after = "".join(printed(c) for c in codes[i:])
        assert any(f"{NOT_ATTEMPTED}`{name}`" in after for name in names), (
            f"{where}: no check after it said {NOT_ATTEMPTED!r} about {sorted(names)}")
    correct = [printed(c) for c in codes if "Correct:" in printed(c)]
    assert not correct, f"{copy.name}: a check accepted an unwritten stub: {correct}"


def unwritten_exercise(x):
    raise NotImplementedError("Exercise: write `unwritten_exercise`")


def test_skip_if_unwritten_stops_the_block_with_one_line_and_goes_on(capsys):
    done = []
    with skip_if_unwritten():
        done.append("before")
        unwritten_exercise(1)
        done.append("after")
    assert done == ["before"]
    assert capsys.readouterr().out == (
        f"{NOT_ATTEMPTED}`unwritten_exercise` still raises NotImplementedError, so the rest of "
        "this cell is skipped. Write your answer in the exercise's cell, run it, then run "
        "this cell again.\n")


def test_skip_if_unwritten_lets_wrong_answers_and_other_errors_through(capsys):
    with pytest.raises(ExerciseError, match="wrong"), skip_if_unwritten():
        raise ExerciseError("wrong")
    with pytest.raises(NotImplementedError, match="meta tensor"), skip_if_unwritten():
        torch = pytest.importorskip("torch")
        torch.zeros(1).to("meta").cpu()          # torch's own NotImplementedError
    with pytest.raises(ZeroDivisionError), skip_if_unwritten():
        _ = 1 / 0
    assert capsys.readouterr().out == ""


def test_skip_if_unwritten_runs_a_written_answer_unchanged(capsys):
    with skip_if_unwritten():
        total = sum([1, 2, 3])
        print(total)
    assert capsys.readouterr().out == "6\n"
