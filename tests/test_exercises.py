"""Learner copies: stubs keep signatures and docstrings, outputs are cleared, copies are current."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
exercises = load_script("tools", "exercises")
notebooks = load_script("tools", "notebooks")

SOLUTION = '''import math


@torch.no_grad()
def area(r: float,
         scale: float = 1.0) -> float:  # a comment on the signature stays
    """Area of a circle of radius r."""
    # the formula is the answer
    return scale * math.pi * r**2


def helper(x): return 2 * x


answer = area(2.0) + helper(1)
checks.check_area(area)
area = checks.topic.check_area_core(area)
'''


def synthetic_notebook() -> dict:
    def code(source, tags=(), cell_id="c"):
        return {"cell_type": "code", "id": cell_id, "execution_count": 7,
                "metadata": {"tags": list(tags)} if tags else {}, "source": source,
                "outputs": [{"output_type": "stream", "name": "stdout", "text": "12.6\n"}]}
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                        "name": "python3"}, "language_info": {"version": "3"}},
            "cells": [{"cell_type": "markdown", "id": "t", "metadata": {}, "source": "# 99 · T"},
                      code("print(1)", cell_id="a"),
                      code(SOLUTION, tags=["solution", "nbval-ignore-output"], cell_id="s")]}


def test_stub_keeps_signature_and_docstring_and_drops_the_body():
    stub = exercises.stub(SOLUTION)
    tree = ast.parse(stub)   # still valid Python
    area = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "area")
    assert [a.arg for a in area.args.args] == ["r", "scale"]
    assert ast.unparse(area.decorator_list[0]) == "torch.no_grad()"
    assert ast.get_docstring(area) == "Area of a circle of radius r."
    assert "a comment on the signature stays" in stub
    assert "math.pi" not in stub and "the formula is the answer" not in stub
    assert 'raise NotImplementedError("Exercise: write `area`")' in stub
    assert 'raise NotImplementedError("Exercise: write `helper`")' in stub and "2 * x" not in stub
    assert "answer = ...  # your code here" in stub      # a statement becomes a placeholder
    assert "checks.check_area(area)" in stub and "import math" in stub   # checks, imports stay
    assert "area = checks.topic.check_area_core(area)" in stub   # a core check hands an answer on


def test_stub_raises_not_implemented_when_run():
    namespace = {"torch": pytest.importorskip("torch")}
    exec(exercises.stub(SOLUTION.split("answer =")[0]), namespace)
    with pytest.raises(NotImplementedError, match="Exercise: write `area`"):
        namespace["area"](1.0)


def test_stub_of_unparsable_code_is_a_placeholder():
    assert exercises.stub("%timeit f(") == "...  # your code here"


def test_learner_copy_clears_outputs_and_keeps_ids_and_kernelspec():
    nb = synthetic_notebook()
    copy = exercises.learner_copy(nb, "99_t.ipynb")
    assert nb["cells"][2]["source"] == SOLUTION            # the input is untouched
    codes = [c for c in copy["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in codes)
    assert [c["id"] for c in copy["cells"]] == ["t", "learner-copy", "a", "s"]
    assert codes[1]["metadata"]["tags"] == ["exercise", "nbval-ignore-output"]
    assert codes[1]["source"] == exercises.stub(SOLUTION) and codes[0]["source"] == "print(1)"
    assert copy["metadata"] == {"kernelspec": nb["metadata"]["kernelspec"]}


def test_build_is_deterministic_and_check_notices_drift(tmp_path, capsys):
    notebooks, out = tmp_path / "notebooks", tmp_path / "exercises"
    notebooks.mkdir()
    (notebooks / "99_t.ipynb").write_text(json.dumps(synthetic_notebook()))
    assert exercises.check(notebooks, out) == 1
    assert "99_t.ipynb is missing" in capsys.readouterr().out
    exercises.build(notebooks, out)
    first = (out / "99_t.ipynb").read_bytes()
    exercises.build(notebooks, out)
    assert (out / "99_t.ipynb").read_bytes() == first
    assert exercises.check(notebooks, out) == 0
    nb = synthetic_notebook()
    nb["cells"][1]["source"] = "print(2)"                   # the notebook changes ...
    (notebooks / "99_t.ipynb").write_text(json.dumps(nb))
    assert exercises.check(notebooks, out) == 1             # ... and its copy is stale
    assert "out of date" in capsys.readouterr().out


def test_committed_learner_copies_are_up_to_date():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "exercises.py"), "check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_notebook_has_exercises_and_no_copy_leaks_a_solution():
    for ipynb in notebooks.paths():
        nb = json.loads(ipynb.read_text())
        solutions = [c for c in nb["cells"] if "solution" in c["metadata"].get("tags", [])]
        assert solutions, f"{ipynb.name} has no cell tagged `solution`"
        copy = json.loads((ROOT / "exercises" / ipynb.name).read_text())
        stubs = [c for c in copy["cells"] if "exercise" in c["metadata"].get("tags", [])]
        assert len(stubs) == len(solutions)
        assert all("NotImplementedError" in "".join(c["source"]) for c in stubs)
