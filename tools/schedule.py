"""The workshop schedules in README.md, derived from the notebooks and measured run times.

    python tools/schedule.py          # print the schedules
    python tools/schedule.py write    # put them into README.md and INSTRUCTORS.md's timetable
    python tools/schedule.py check    # fail when either is out of date

Every `## ` section of a notebook ends its heading with ` · core` (the workshop path) or
` · deeper` (homework, or if there is time); a `### ` heading may carry its own marker, else it
inherits its section's. The text before the first section and a Setup section are core;
Summary is core; Exercises and References are homework. Whether the core path stands on its
own, without the deeper sections, is tools/core_path.py's question.

A notebook's time in the room is teaching plus exercises plus running, as the Carpentries
budget a lesson: teaching minutes and exercise minutes separately, each episode with its own.
  - teaching: prose at PROSE_WPM words a minute, a teaching pace for mathematical text (not
    read-aloud speed), but an introduction or summary at SKIM_WPM (learners read the
    objectives and the recap themselves; the instructor points at them); each line of a
    display formula or derivation costs STEP_MIN, since it is written on the board and
    explained, while an inline formula counts as one word; code at CODE_LINES_PER_MIN lines a
    minute, imports at IMPORT_LINES_PER_MIN (named, not taught); FIGURE_MIN for each figure
    the stored outputs show;
  - exercises: the minutes each core exercise announces in its "**Your turn (N min).**" line;
  - running: the seconds the core cells take in full mode with the trained models cached, as
    on a laptop prepared the day before, measured per section by `make pretrain` (warm);
  - NOTEBOOK_MIN per notebook for switching, settling in and questions.
Each notebook gets that time rounded up to SLOT_MIN. The constants were set so that the core
path as it stood before it had exercises (00-08) came to 285 minutes (02: 45, 05: 55, 06: 35),
against an experienced instructor's estimate of about 255 for 20 learners who know PyTorch but
not probability (02: 45, 05: 50, 06: 30): on the safe side.

The 3-hour plan takes the core notebooks in ROOM in order, with a break: each is taught in
full or shown as a demo in fixed minutes (its core exercise is then homework). Learners work
through BEFORE the day before, and the core notebooks in neither are homework. The taster
takes the parts named in TASTER, taught or shown, and must fit 90 minutes. When a plan does
not fit, cut notebooks (demo one, or leave it for home), not the steps a notebook needs.
"""
from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field

from notebooks import ROOT, paths

README = ROOT / "README.md"
INSTRUCTORS = ROOT / "INSTRUCTORS.md"
TIMINGS = ROOT / "bench" / "results" / "timings.json"

PROSE_WPM = 60             # teaching pace for mathematical prose: 40-60 words a minute
SKIM_WPM = 150             # an introduction or summary, which learners read for themselves
STEP_MIN = 0.5             # one line of a display formula or derivation, at the board
CODE_LINES_PER_MIN = 8     # walking through a code cell and running it
IMPORT_LINES_PER_MIN = 30  # import lines: named, not taught
FIGURE_MIN = 1.0           # looking at one figure and talking about it
NOTEBOOK_MIN = 5           # per notebook: switching, settling in, questions
SLOT_MIN = 5               # slots are rounded up to this
WORKSHOP_MIN, BREAK_MIN = 180, 15
TASTER_MIN = 90
# The 3-hour room: the core notebooks it teaches in full (None) or shows as a demo of the
# given minutes (the instructor runs the core cells and talks through the figures; minutes
# set by hand). Learners do BEFORE the day before; the other core notebooks are homework.
ROOM = {"01": 15, "02": None, "03": 10, "05": None, "08": 10}
BEFORE = ("00",)
# The 90-minute taster, one arc: why an autoencoder cannot generate, the ELBO, the learner's
# own VAE (reparameterization included), the explorer. (notebook prefix, section numbers or
# titles, demo minutes or None to teach them).
TASTER = [("01", ("6",), 10), ("02", ("3",), 15), ("05", ("1",), None), ("08", ("1", "5"), 10)]

MARK = re.compile(r"^(#{2,3}) (.*?)(?: · (core|deeper))?\s*$")
ALWAYS = {"Setup": "core", "Summary": "core", "Exercises": "deeper", "References": "deeper"}
YOUR_TURN = re.compile(r"\*\*Your turn \((\d+) min\)")
DISPLAY = re.compile(r"\$\$(.*?)\$\$", re.S)
INLINE = re.compile(r"\$[^$]+\$")
BEGIN = "<!-- schedule: written by `python tools/schedule.py write`; do not edit by hand -->"
END = "<!-- end of schedule -->"
TIMETABLE_BEGIN = ("<!-- timetable: written by `python tools/schedule.py write`; do not edit by "
                   "hand -->")
TIMETABLE_END = "<!-- end of timetable -->"


@dataclass
class Section:
    """One `## ` section (or marked `### ` part) of a notebook, with what it takes to teach."""
    title: str
    marker: str
    code_lines: int = 0
    import_lines: int = 0
    figures: int = 0
    cells: list[int] = field(default_factory=list)   # indices of its code cells
    prose: str = ""                                   # its Markdown, headings included

    @property
    def number(self) -> str:
        return self.title.split(".")[0] if re.match(r"\d+\.", self.title) else ""

    @property
    def words(self) -> int:
        """Words of prose, an inline formula counting as one and display formulas as none."""
        text = INLINE.sub(" formula ", DISPLAY.sub(" ", self.prose))
        return len(re.sub(r"^#+ ", "", text, flags=re.M).split())

    @property
    def steps(self) -> int:
        """Lines of display formulas: one per line or per `\\\\` row of an aligned block."""
        return sum(max(1, len([r for r in re.split(r"\\\\|\n", block) if r.strip()]))
                   for block in DISPLAY.findall(self.prose))

    @property
    def exercise_min(self) -> int:
        return sum(int(n) for n in YOUR_TURN.findall(self.prose))

    @property
    def teaching_min(self) -> float:
        pace = SKIM_WPM if self.title in ("Introduction", "Summary") else PROSE_WPM
        return (self.words / pace + self.steps * STEP_MIN
                + self.code_lines / CODE_LINES_PER_MIN
                + self.import_lines / IMPORT_LINES_PER_MIN + self.figures * FIGURE_MIN)


def _text(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def _figures(cell: dict) -> int:
    return sum(any(k.startswith("image/") for k in out.get("data", {}))
               for out in cell.get("outputs", []))


def _code_lines(source: str) -> tuple[int, int]:
    """(lines to teach, import lines) of a code cell; blank lines and comments count as none."""
    lines = [line.strip() for line in source.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    imports = sum(line.startswith(("import ", "from ")) for line in lines)
    return len(lines) - imports, imports


def sections(nb: dict) -> list[Section]:
    """The notebook's sections in order, each with its prose, code lines, figures and cells.

    Raises ValueError for a `## ` heading without a marker (other than those in ALWAYS)."""
    found = [Section("Introduction", "core")]
    parent = "core"
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            found[-1].cells.append(index)
            taught, imports = _code_lines(_text(cell))
            found[-1].code_lines += taught
            found[-1].import_lines += imports
            found[-1].figures += _figures(cell)
            continue
        for line in _text(cell).splitlines():
            heading = MARK.match(line)
            if heading:
                level, title, marker = heading.groups()
                if level == "##":
                    marker = marker or ALWAYS.get(title)
                    if marker is None:
                        raise ValueError(f"section {title!r} has no marker: end its heading "
                                         "with ' · core' or ' · deeper'")
                    parent = marker
                    found.append(Section(title, marker))
                elif marker or found[-1].marker != parent:   # a marked ###, or the end of one
                    found.append(Section(title, marker or parent))
                line = MARK.sub(r"\2", line)
            found[-1].prose += line + "\n"
    return found


def notebooks() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in paths()}


def section_seconds(nb: dict) -> dict[str, float]:
    """Seconds per section title from an executed notebook's cell timing metadata."""
    from datetime import datetime

    out: dict[str, float] = {}
    for s in sections(nb):
        total = 0.0
        for index in s.cells:
            timing = nb["cells"][index].get("metadata", {}).get("execution", {})
            if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
                start, end = (datetime.fromisoformat(timing[k].replace("Z", "+00:00"))
                              for k in ("iopub.execute_input", "shell.execute_reply"))
                total += (end - start).total_seconds()
        out[s.title] = out.get(s.title, 0.0) + round(total, 2)
    return out


def measured(name: str) -> dict[str, float]:
    """Seconds per section of one notebook in full mode from a warm cache (`make pretrain`)."""
    runs = json.loads(TIMINGS.read_text())["notebooks"] if TIMINGS.exists() else {}
    warm = runs.get(name, {}).get("warm") or {}
    fix = f"run `python tools/pretrain.py --modes warm {name}` with its models cached"
    if "sections" not in warm:
        raise LookupError(f"no warm-cache section times for {name} in {TIMINGS.name}: {fix}")
    if warm.get("trained"):
        raise LookupError(f"{name}'s warm run trained {warm['trained']} models, so its times "
                          f"are not those of a prepared laptop: {fix}")
    return warm["sections"]


def minutes(name: str, nb: dict, keep) -> tuple[float, float, float, list[Section]]:
    """(teaching, exercise, running minutes, sections kept) for the sections `keep` accepts."""
    times = measured(name)
    kept = [s for s in sections(nb) if keep(s)]
    missing = [s.title for s in kept if s.cells and s.title not in times]
    if missing:
        raise LookupError(f"{name}: no measured time for {missing}: the section titles changed "
                          f"since the last measurement; run `python tools/pretrain.py --modes "
                          f"warm {name}`")
    running = sum(times.get(s.title, 0.0) for s in kept) / 60
    return (sum(s.teaching_min for s in kept), sum(s.exercise_min for s in kept), running, kept)


def slot(*parts: float) -> int:
    """A notebook's minutes in the room: its parts, NOTEBOOK_MIN, rounded up to SLOT_MIN."""
    return SLOT_MIN * math.ceil((sum(parts) + NOTEBOOK_MIN) / SLOT_MIN)


def clock(m: int) -> str:
    return f"{m // 60}:{m % 60:02d}"


def core(s: Section) -> bool:
    return s.marker == "core"


def taster_part(what):
    """The sections of a taster entry: its numbered sections (with their `###` parts)."""
    return lambda s: s.title in ("Introduction", "Setup") or s.number in what or s.title in what


def taught(kept: list[Section]) -> list[Section]:
    """The sections worth naming in a plan: not the introduction, setup or summary."""
    return [s for s in kept if s.title not in ("Introduction", *ALWAYS)]


def label(s: Section) -> str:
    """'3' for '3. Attribute vectors', else the title with its formulas as plain text."""
    return s.number or re.sub(r"\$([^$]*)\$", r"\1", s.title)


def short(title: str) -> str:
    return re.sub(r"^\d+\.\s*", "", title).split(":")[0].strip()


def plan(rows: list[tuple[str, int, str]], limit: int, pause: bool) -> tuple[list[str], int]:
    """Timetable lines for (notebook, minutes, what) rows, with a break near the middle."""
    lines, now = [], 0
    for name, length, what in rows:
        if pause and now >= (limit - BREAK_MIN) / 2:
            lines.append(f"| {clock(now)}–{clock(now + BREAK_MIN)} | break | |")
            now, pause = now + BREAK_MIN, False
        lines.append(f"| {clock(now)}–{clock(now + length)} | {name} | {what} |")
        now += length
    return lines, now


def plans() -> dict:
    """Everything the schedules show: the per-notebook table, the 3-hour rows and the taster's."""
    nbs = notebooks()
    table = ["| notebook | core sections | teaching (min) | exercises (min) | running (s) "
             "| slot (min) | homework: deeper sections |",
             "|---|---|---|---|---|---|---|"]
    rows, before, demos, homework, core_total = [], [], [], [], 0
    for name, nb in nbs.items():
        teaching, exercises, running, kept = minutes(name, nb, core)
        shown = taught(kept)
        deeper = [label(s) for s in taught(sections(nb)) if s.marker == "deeper"]
        length = slot(teaching, exercises, running) if shown else 0
        core_total += length
        table.append(f"| `{name}` | {', '.join(label(s) for s in shown) or '—'} | "
                     f"{teaching:.0f} | {exercises} | {running * 60:.0f} | {length or '—'} | "
                     f"{', '.join(deeper) or '—'} |")
        what = "; ".join(short(s.title) for s in shown)
        if not shown:
            continue
        if name.startswith(BEFORE):
            before.append(f"`{name}` ({length} min)")
        elif name[:2] not in ROOM:
            homework.append(f"`{name}` ({length} min)")
        elif ROOM[name[:2]]:
            demos.append(f"`{name}`")
            rows.append((f"`{name}`", ROOM[name[:2]], f"demo: {what}"))
        else:
            rows.append((f"`{name}`", length, what))
    total = plan(rows, WORKSHOP_MIN, pause=True)[1]
    if total > WORKSHOP_MIN:
        raise ValueError(f"the workshop takes {total} min, more than {WORKSHOP_MIN}: demo a "
                         "notebook or leave it out of ROOM: cut notebooks, not the steps a "
                         "notebook needs")
    taster = []
    for prefix, what, demo in TASTER:
        name = next(n for n in nbs if n.startswith(prefix))
        teaching, exercises, running, kept = minutes(name, nbs[name], taster_part(what))
        parts = "; ".join(short(s.title) for s in taught(kept))
        taster.append((f"`{name}`", demo or slot(teaching, exercises, running),
                       f"demo: {parts}" if demo else parts))
    if plan(taster, TASTER_MIN, pause=False)[1] > TASTER_MIN:
        raise ValueError(f"the taster takes more than {TASTER_MIN} min: take fewer sections "
                         "in TASTER, or demo one")
    return {"table": table, "rows": rows, "before": before, "demos": demos,
            "homework": homework, "taster": taster, "core_total": core_total}


HEAD = "| time | notebook | sections |\n|---|---|---|"


def render(p: dict | None = None) -> str:
    """The README block: per-notebook measurements, the 3-hour plan and the taster."""
    p = p or plans()
    workshop, total = plan(p["rows"], WORKSHOP_MIN, pause=True)
    taster, taster_total = plan(p["taster"], TASTER_MIN, pause=False)
    return "\n".join([
        BEGIN, "",
        f"Teaching at {PROSE_WPM} words of prose a minute ({SKIM_WPM} for an introduction or "
        f"summary), {STEP_MIN:g} min per line of a display formula, {CODE_LINES_PER_MIN} code "
        f"lines (and {IMPORT_LINES_PER_MIN} import lines) a minute and {FIGURE_MIN:g} min a "
        "figure; each core exercise's own minutes; the core cells' run time with the models "
        f"cached (`make pretrain`); {NOTEBOOK_MIN} min per notebook for switching and "
        f"questions; each slot rounded up to {SLOT_MIN} minutes. `tools/schedule.py` says where "
        "each constant comes from.", "",
        *p["table"], "",
        f"**The 3-hour workshop** ({total} min with the break). The day before, learners set "
        f"up (SETUP.md) and work through {', '.join(p['before'])}. A demo is the instructor "
        "running the notebook's core cells and talking through its figures; the core exercise "
        f"of a demo ({', '.join(p['demos'])}) is homework, as are the core paths of "
        f"{', '.join(p['homework'])}. The core path of the whole course takes "
        f"{p['core_total']} min by this model: more than one workshop.", "",
        HEAD, *workshop, "",
        f"**A 90-minute taster** for meet-ups ({taster_total} min):", "",
        HEAD, *taster, "", END])


def timetable(p: dict | None = None) -> str:
    """The instructor guide's block: when each notebook should start, and what to cut if late."""
    p = p or plans()
    lines = [TIMETABLE_BEGIN, "",
             "| by | start | if you are more than 10 minutes behind |", "|---|---|---|"]
    now, pause, previous = 0, True, None
    for name, length, what in p["rows"]:
        if pause and now >= (WORKSHOP_MIN - BREAK_MIN) / 2:
            lines.append(f"| {clock(now)} | the break ({BREAK_MIN} min) | shorten the break "
                         "to 10 minutes; never skip it |")
            now, pause = now + BREAK_MIN, False
        if previous is None:
            advice = ("start on time; a learner whose setup fails pairs with a neighbour and "
                      "runs `make doctor` in the break")
        elif previous[1].startswith("demo"):
            advice = f"stop the demo of {previous[0]} where you are and start {name} now"
        else:
            advice = (f"run the rest of {previous[0]}'s core cells yourself, set its exercise "
                      f"as homework, and start {name} now")
        lines.append(f"| {clock(now)} | {name} ({length} min{', demo' * what.startswith('demo')})"
                     f" | {advice} |")
        now, previous = now + length, (name, what)
    lines += [f"| {clock(now)} | the end | |", "", TIMETABLE_END]
    return "\n".join(lines)


def block(text: str, begin: str, end: str, where: str) -> str:
    if begin not in text or end not in text:
        raise ValueError(f"{where} has no schedule markers ({begin!r} ... {end!r})")
    return text[text.index(begin):text.index(end) + len(end)]


def readme_block(text: str) -> str:
    return block(text, BEGIN, END, "README.md")


def main(argv: list[str]) -> int:
    p = plans()                              # read and time every notebook once
    blocks = {README: (render(p), BEGIN, END),
              INSTRUCTORS: (timetable(p), TIMETABLE_BEGIN, TIMETABLE_END)}
    if not argv:
        print("\n\n".join(new for new, _, _ in blocks.values()))
        return 0
    if argv not in (["write"], ["check"]):
        print(__doc__)
        return 2
    stale = []
    for path, (new, begin, end) in blocks.items():
        text = path.read_text()
        old = block(text, begin, end, path.name)
        if argv == ["write"]:
            path.write_text(text.replace(old, new))
        elif old != new:
            stale.append(path.name)
    for name in stale:
        print(f"{name}'s schedule is out of date: run `python tools/schedule.py write`")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
