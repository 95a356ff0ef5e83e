"""The workshop schedules in README.md, derived from the notebooks and measured run times.

    python tools/schedule.py          # print the schedules
    python tools/schedule.py write    # put them into README.md, between the schedule markers
    python tools/schedule.py check    # fail when README.md's schedules are out of date

Every `## ` section of a notebook ends its heading with ` · core` (the workshop path) or
` · deeper` (homework, or if there is time); a `### ` heading may carry its own marker, else it
inherits its section's. The text before the first section and a Setup section are core;
Summary is core; Exercises and References are homework.

A notebook's time on the core path is reading plus running:
  - reading: its core Markdown at PROSE_WPM words a minute, its core code at CODE_LINES_PER_MIN
    lines a minute, and FIGURE_MIN for each figure its stored outputs show;
  - running: the seconds its core cells took in fast mode, measured per section by
    `make pretrain` (bench/results/timings.json).
Each notebook gets that time rounded up to 5 minutes. The 3-hour plan takes the notebooks in
order, with a break, and must fit; the taster takes the parts named in TASTER and must fit 90.
"""
from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field

from notebooks import ROOT, paths

README = ROOT / "README.md"
TIMINGS = ROOT / "bench" / "results" / "timings.json"

PROSE_WPM = 120            # reading maths-heavy prose aloud and discussing it
CODE_LINES_PER_MIN = 10    # walking through a code cell
FIGURE_MIN = 0.5           # looking at one figure
SLOT_MIN = 5               # slots are rounded up to this
WORKSHOP_MIN, BREAK_MIN = 180, 10
TASTER_MIN = 90
# The 90-minute taster: (notebook prefix, "core" or the section numbers to take). The whole
# core of 01, 03 and 05 does not fit in 90 minutes; their central section does.
TASTER = [("00", "core"), ("01", ("2",)), ("03", ("2", "4")), ("05", ("1",)), ("08", ("1", "5"))]

MARK = re.compile(r"^(#{2,3}) (.*?)(?: · (core|deeper))?\s*$")
ALWAYS = {"Setup": "core", "Summary": "core", "Exercises": "deeper", "References": "deeper"}
BEGIN = "<!-- schedule: written by `python tools/schedule.py write`; do not edit by hand -->"
END = "<!-- end of schedule -->"


@dataclass
class Section:
    """One `## ` section (or marked `### ` part) of a notebook, with what it takes to teach."""
    title: str
    marker: str
    words: int = 0
    code_lines: int = 0
    figures: int = 0
    cells: list[int] = field(default_factory=list)   # indices of its code cells

    @property
    def number(self) -> str:
        return self.title.split(".")[0] if re.match(r"\d+\.", self.title) else ""

    @property
    def reading_min(self) -> float:
        return (self.words / PROSE_WPM + self.code_lines / CODE_LINES_PER_MIN
                + self.figures * FIGURE_MIN)


def _text(cell: dict) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def _figures(cell: dict) -> int:
    return sum(any(k.startswith("image/") for k in out.get("data", {}))
               for out in cell.get("outputs", []))


def sections(nb: dict) -> list[Section]:
    """The notebook's sections in order, each with its words, code lines, figures and cells.

    Raises ValueError for a `## ` heading without a marker (other than those in ALWAYS)."""
    found = [Section("Introduction", "core")]
    parent = "core"
    for index, cell in enumerate(nb["cells"]):
        if cell["cell_type"] == "code":
            found[-1].cells.append(index)
            found[-1].code_lines += sum(bool(line.strip()) and not line.strip().startswith("#")
                                        for line in _text(cell).splitlines())
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
            found[-1].words += len(MARK.sub(r"\2", line).lstrip("#").split())
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
    """The fast-mode seconds per section of one notebook, from `make pretrain`."""
    runs = json.loads(TIMINGS.read_text())["notebooks"] if TIMINGS.exists() else {}
    fast = runs.get(name, {}).get("fast") or {}
    if "sections" not in fast:
        raise LookupError(f"no fast-mode section times for {name} in {TIMINGS.name}: run "
                          f"`python tools/pretrain.py --modes fast {name}`")
    return fast["sections"]


def minutes(name: str, nb: dict, keep) -> tuple[float, float, list[Section]]:
    """(reading minutes, running minutes, sections kept) for the sections `keep` accepts."""
    times = measured(name)
    kept = [s for s in sections(nb) if keep(s)]
    reading = sum(s.reading_min for s in kept)
    missing = [s.title for s in kept if s.cells and s.title not in times]
    if missing:
        raise LookupError(f"{name}: no fast-mode time for {missing}: the section titles changed "
                          f"since the last measurement; run `python tools/pretrain.py --modes "
                          f"fast {name}`")
    running = sum(times.get(s.title, 0.0) for s in kept) / 60
    return reading, running, kept


def slot(reading: float, running: float) -> int:
    return SLOT_MIN * math.ceil((reading + running) / SLOT_MIN)


def clock(m: int) -> str:
    return f"{m // 60}:{m % 60:02d}"


def core(s: Section) -> bool:
    return s.marker == "core"


def taster_part(what):
    if what == "core":
        return core
    return lambda s: s.title in ("Introduction", "Setup") or s.number in what


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


def render() -> str:
    """The README block: per-notebook measurements, the 3-hour plan and the taster."""
    nbs = notebooks()
    table = ["| notebook | core sections | reading (min) | running, fast mode (s) | slot (min) "
             "| homework: deeper sections |",
             "|---|---|---|---|---|---|"]
    rows = []
    for name, nb in nbs.items():
        reading, running, kept = minutes(name, nb, core)
        shown = taught(kept)
        deeper = [label(s) for s in taught(sections(nb)) if s.marker == "deeper"]
        length = slot(reading, running) if shown else 0
        table.append(f"| `{name}` | {', '.join(label(s) for s in shown) or '—'} | "
                     f"{reading:.0f} | {running * 60:.0f} | {length or '—'} | "
                     f"{', '.join(deeper) or '—'} |")
        if shown:
            rows.append((f"`{name}`", length, "; ".join(short(s.title) for s in shown)))
    workshop, total = plan(rows, WORKSHOP_MIN, pause=True)
    if total > WORKSHOP_MIN:
        raise ValueError(f"the core path takes {total} min, more than the {WORKSHOP_MIN}-minute "
                         "workshop: mark more sections ' · deeper'")
    taster_rows = []
    for prefix, what in TASTER:
        name = next(n for n in nbs if n.startswith(prefix))
        reading, running, kept = minutes(name, nbs[name], taster_part(what))
        parts = [short(s.title) for s in taught(kept)]
        taster_rows.append((f"`{name}`", slot(reading, running), "; ".join(parts)))
    taster, taster_total = plan(taster_rows, TASTER_MIN, pause=False)
    if taster_total > TASTER_MIN:
        raise ValueError(f"the taster takes {taster_total} min, more than {TASTER_MIN}")
    head = "| time | notebook | sections |\n|---|---|---|"
    return "\n".join([
        BEGIN, "",
        f"Reading at {PROSE_WPM} words and {CODE_LINES_PER_MIN} code lines a minute, "
        f"{FIGURE_MIN:g} min a figure, plus the core cells' fast-mode run time from "
        "`make pretrain`; each slot is rounded up to 5 minutes.", "",
        *table, "",
        f"**The 3-hour workshop** (core path, {total} min with the break):", "",
        head, *workshop, "",
        f"**A 90-minute taster** for meet-ups ({taster_total} min):", "",
        head, *taster, "", END])


def readme_block(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"README.md has no schedule markers ({BEGIN!r} ... {END!r})")
    return text[text.index(BEGIN):text.index(END) + len(END)]


def main(argv: list[str]) -> int:
    block = render()
    if not argv:
        print(block)
        return 0
    text = README.read_text()
    if argv == ["write"]:
        README.write_text(text.replace(readme_block(text), block))
        return 0
    if argv == ["check"]:
        if readme_block(text) != block:
            print("README.md's schedule is out of date: run `python tools/schedule.py write`")
            return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
