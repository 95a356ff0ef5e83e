"""The workshop schedules: sections marked core or deeper, timed, and README kept in step."""
import pytest
from conftest import load_script

schedule = load_script("tools", "schedule")


def markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text, figures=0, start=None, end=None):
    outputs = [{"output_type": "display_data", "data": {"image/png": "..."}}] * figures
    meta = {"execution": {"iopub.execute_input": start, "shell.execute_reply": end}} if start else {}
    return {"cell_type": "code", "metadata": meta, "source": text, "outputs": outputs}


NB = {"cells": [
    markdown("# Title\n\nfour words of intro"),
    code("import torch\n# a comment\n\nx = 1", start="2026-01-01T00:00:00Z",
         end="2026-01-01T00:00:02.5Z"),
    markdown("## 1. First idea · core\n\none two three"),
    code("plot()", figures=2, start="2026-01-01T00:00:03Z", end="2026-01-01T00:00:04Z"),
    markdown("### A detour · deeper\n\nfive six"),
    code("slow()", start="2026-01-01T00:00:05Z", end="2026-01-01T00:01:05Z"),
    markdown("## 2. Second idea · deeper\n\nseven\n\n## Exercises\n\neight nine"),
    markdown("## Summary\n\nten"),
]}


def test_sections_carry_markers_words_code_and_figures():
    found = schedule.sections(NB)
    assert [(s.title, s.marker) for s in found] == [
        ("Introduction", "core"), ("1. First idea", "core"), ("A detour", "deeper"),
        ("2. Second idea", "deeper"), ("Exercises", "deeper"), ("Summary", "core")]
    intro, first, detour = found[:3]
    assert intro.words == 5 and intro.code_lines == 2    # "Title" + four words; no comment
    assert first.figures == 2 and first.words == 6       # the heading's words count too
    assert detour.cells == [5]


def test_an_unmarked_section_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="' · core' or ' · deeper'"):
        schedule.sections({"cells": [markdown("## 3. Forgotten")]})


def test_section_seconds_come_from_the_cell_timing():
    seconds = schedule.section_seconds(NB)
    assert seconds["Introduction"] == 2.5 and seconds["1. First idea"] == 1.0
    assert seconds["A detour"] == 60.0 and seconds["Summary"] == 0.0


def test_slots_round_up_and_the_plan_puts_a_break_in_the_middle():
    assert schedule.slot(11.2, 0.5) == 15 and schedule.slot(10.0, 0.0) == 10
    lines, total = schedule.plan([("a", 60, ""), ("b", 45, ""), ("c", 60, "")], 180, pause=True)
    assert [line.split(" | ")[1] for line in lines] == ["a", "b", "break", "c"]
    assert total == 175 and lines[-1].startswith("| 1:55–2:55 |")


def test_every_notebook_marks_every_section():
    for nb in schedule.notebooks().values():
        schedule.sections(nb)   # raises for a section without a marker, naming it


def test_readme_schedule_is_the_generated_one():
    text = schedule.README.read_text()
    assert schedule.readme_block(text) == schedule.render(), (
        "README.md's schedule is out of date: run `python tools/schedule.py write` (after "
        "`python tools/pretrain.py --modes fast` if the notebooks' sections changed)")
