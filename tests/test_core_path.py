"""The workshop path: it stands without the deeper sections, and learners write on it.

No kernel runs here: these tests read the notebooks and the learner copies as files.
"""
import json

import pytest
from conftest import ROOT, load_script

core_path = load_script("tools", "core_path")
schedule = load_script("tools", "schedule")
exercises = load_script("tools", "exercises")
notebooks = load_script("tools", "notebooks")


def markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text, tags=()):
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": text, "outputs": []}


def notebook(*cells):
    return {"cells": [markdown("# 99 · Title"), *cells]}


def test_the_core_path_and_the_taster_stand_on_their_own():
    found = core_path.all_breaks()
    assert not found, "\n".join(f"{where}: {line}" for where, lines in found.items()
                                for line in lines)


def test_a_core_cell_that_uses_a_deeper_definition_is_a_break():
    nb = notebook(markdown("## 1. Idea · deeper"), code("baseline = 3\ndef helper(): pass"),
                  markdown("## 2. More · core"), code("print(baseline + 1)\nhelper()"))
    found = core_path.breaks(nb, schedule.core)
    assert len(found) == 2 and "`baseline`" in found[0] and "'1. Idea'" in found[0]


def test_a_deeper_section_that_rebinds_a_core_name_breaks_the_core_cell_after_it():
    nb = notebook(markdown("## 1. Idea · core"), code("x = load()"),
                  markdown("## 2. Aside · deeper"), code("x = x[:10]"),
                  markdown("## 3. More · core"), code("show(x)"))
    assert core_path.breaks(nb, schedule.core) == [
        "'3. More' uses `x`, last defined in the skipped section '2. Aside'"]


def test_names_a_core_cell_binds_itself_builtins_and_magics_are_no_break():
    nb = notebook(markdown("## 1. Idea · deeper"), code("y = 1\nz = 2"),
                  markdown("## 2. More · core"),
                  code("%matplotlib inline\ny = 5\nprint(len([z for z in range(y)]))\n"
                       "def f(z):\n    return z"))
    assert core_path.breaks(nb, schedule.core) == []


def test_core_prose_may_point_forward_or_elsewhere_but_not_back_at_a_skipped_section():
    nb = notebook(markdown("## 1. Idea · deeper\n\nText."),
                  markdown("## 2. More · core\n\nAs section 1 showed, ... Section 3 goes on; "
                           "notebook 05 §1 and Bishop (2006), section 1 are elsewhere."),
                  markdown("## 3. Later · deeper\n\nText."),
                  markdown("## Summary\n\nIn §3 we saw ..."))
    found = core_path.breaks(nb, schedule.core)
    assert [line.split(":")[-1].strip() for line in found] == ["'section 1'", "'§3'"]


def test_the_taster_is_checked_as_its_own_path():
    nb = notebook(markdown("## 1. Idea · core"), code("vae = train()"),
                  markdown("## 2. Trick · core"), code("vae.encode(x)"))
    assert core_path.breaks(nb, schedule.core) == []
    assert core_path.breaks(nb, schedule.taster_part(("2",))) == [
        "'2. Trick' uses `vae`, last defined in the skipped section '1. Idea'"]


def core_notebooks():
    """Notebooks whose core path teaches at least one section."""
    out = []
    for path in notebooks.paths():
        nb = json.loads(path.read_text())
        if schedule.taught([s for s in schedule.sections(nb) if schedule.core(s)]):
            out.append(path)
    return out


@pytest.mark.parametrize("path", core_notebooks(), ids=lambda p: p.stem)
def test_every_core_notebook_has_learners_write_on_its_core_path(path):
    nb = json.loads(path.read_text())
    on_path = [s for s in schedule.sections(nb) if schedule.core(s)
               and any("solution" in nb["cells"][i]["metadata"].get("tags", []) for i in s.cells)]
    assert on_path, (f"{path.name}: no exercise (a cell tagged `solution`) in a core section: "
                     "learners write nothing in the workshop")
    for part in on_path:
        assert 5 <= part.exercise_min <= 10, (
            f"{path.name}, {part.title!r}: announce the exercise with "
            "'**Your turn (N min).**', N from 5 to 10, so the schedule can budget it")
        for i in part.cells:
            if "solution" in nb["cells"][i]["metadata"].get("tags", []):
                after = [c for c in nb["cells"][i + 1:] if c["cell_type"] == "code"][:1]
                assert after and "check" in schedule._text(after[0]), (
                    f"{path.name}, {part.title!r}: the cell after an exercise runs its self-check")


@pytest.mark.parametrize("path", notebooks.paths(), ids=lambda p: p.stem)
def test_a_learner_copy_differs_from_its_notebook_only_in_its_stubs(path):
    nb = json.loads(path.read_text())
    copy = json.loads((ROOT / "exercises" / path.name).read_text())
    theirs = [c for c in copy["cells"] if c.get("id") not in ("learner-copy", "badges")]
    ours = [c for c in nb["cells"] if c.get("id") != "badges"]
    assert [c.get("id") for c in theirs] == [c.get("id") for c in ours], (
        f"exercises/{path.name} has other cells than its notebook: run `make exercises`")
    for mine, learner in zip(ours, theirs):
        text = schedule._text(mine)
        if "solution" in mine["metadata"].get("tags", []):
            assert schedule._text(learner) == exercises.stub(text), mine.get("id")
            assert "exercise" in learner["metadata"]["tags"]
        else:
            assert schedule._text(learner) == text, (
                f"exercises/{path.name}, cell {mine.get('id')}: differs from the notebook "
                "outside the exercises: run `make exercises`")
        if learner["cell_type"] == "code":
            assert learner["outputs"] == [] and learner["execution_count"] is None
