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
    markdown("## 1. First idea · core\n\none $x^2$ three\n\n$$a = b\\\\\n= c$$\n\n"
             "**Your turn (7 min).** Write it."),
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
    assert intro.words == 5                              # "Title" + four words
    assert intro.code_lines == 1 and intro.import_lines == 1   # no comment, no blank line
    assert first.figures == 2 and first.exercise_min == 7
    assert first.words == 3 + 3 + 6   # heading, prose with $x^2$ as one word, the exercise line
    assert first.steps == 2           # a display formula of two rows: two steps at the board
    assert detour.cells == [5]


def test_teaching_time_adds_prose_steps_code_and_figures_and_skims_the_summary():
    first = schedule.sections(NB)[1]
    assert first.teaching_min == pytest.approx(
        12 / schedule.PROSE_WPM + 2 * schedule.STEP_MIN + 1 / schedule.CODE_LINES_PER_MIN
        + 2 * schedule.FIGURE_MIN)
    summary = schedule.sections(NB)[-1]
    assert summary.teaching_min == pytest.approx(2 / schedule.SKIM_WPM)


def test_an_unmarked_section_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="' · core' or ' · deeper'"):
        schedule.sections({"cells": [markdown("## 3. Forgotten")]})


def test_section_seconds_come_from_the_cell_timing():
    seconds = schedule.section_seconds(NB)
    assert seconds["Introduction"] == 2.5 and seconds["1. First idea"] == 1.0
    assert seconds["A detour"] == 60.0 and seconds["Summary"] == 0.0


def test_slots_add_the_notebook_overhead_and_round_up():
    assert schedule.NOTEBOOK_MIN == 5
    assert schedule.slot(6.2, 0.5) == 15 and schedule.slot(5.0, 0.0) == 10
    assert schedule.slot(3.0, 7, 0.2) == 20


def test_the_plan_puts_a_break_in_the_middle():
    lines, total = schedule.plan([("a", 60, ""), ("b", 45, ""), ("c", 60, "")], 180, pause=True)
    assert [line.split(" | ")[1] for line in lines] == ["a", "b", "break", "c"]
    assert total == 165 + schedule.BREAK_MIN
    assert lines[-1].startswith(f"| {schedule.clock(105 + schedule.BREAK_MIN)}–")


def test_every_notebook_marks_every_section():
    for nb in schedule.notebooks().values():
        schedule.sections(nb)   # raises for a section without a marker, naming it


def test_readme_schedule_is_the_generated_one():
    text = schedule.README.read_text()
    assert schedule.readme_block(text) == schedule.render(), (
        "README.md's schedule is out of date: run `python tools/schedule.py write` (after "
        "`python tools/pretrain.py --modes warm` if the notebooks' sections changed)")


def test_the_warm_times_of_a_run_that_trained_are_refused(monkeypatch, tmp_path):
    store = tmp_path / "timings.json"
    store.write_text('{"notebooks": {"01_x": {"warm": {"trained": 2, "sections": {}}}}}')
    monkeypatch.setattr(schedule, "TIMINGS", store)
    with pytest.raises(LookupError, match="trained 2 models"):
        schedule.measured("01_x")
    with pytest.raises(LookupError, match="--modes warm 02_y"):
        schedule.measured("02_y")


def test_instructors_timetable_is_the_generated_one():
    text = schedule.INSTRUCTORS.read_text()
    block = schedule.block(text, schedule.TIMETABLE_BEGIN, schedule.TIMETABLE_END, "INSTRUCTORS.md")
    assert block == schedule.timetable(), (
        "INSTRUCTORS.md's timetable is out of date: run `python tools/schedule.py write`")


def test_the_timetable_starts_each_notebook_when_the_plan_does(monkeypatch):
    rows = [("`01_a`", 60, "x"), ("`04_b`", 5, "demo: y"), ("`02_c`", 30, "z"),
            ("`05_d`", 50, "w")]
    monkeypatch.setattr(schedule, "plans", lambda: {"rows": rows})
    monkeypatch.setattr(schedule, "BREAK_MIN", 15)
    body = [line for line in schedule.timetable().splitlines() if line.startswith("| ")][1:]
    assert [line.split(" | ")[0] for line in body] == [
        "| 0:00", "| 1:00", "| 1:05", "| 1:35", "| 1:50", "| 2:40"]
    assert "run the rest of `01_a`'s core cells yourself" in body[1] and "demo" in body[1]
    assert "stop the demo of `04_b`" in body[2] and "the break" in body[3]
    assert "run the rest of `02_c`'s core cells yourself" in body[4]
