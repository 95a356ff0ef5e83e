"""Does the workshop path stand on its own? Breaks where a core cell leans on a deeper one.

    python tools/core_path.py          # list every break, for the core path and the taster

A learner who follows the core path (or the taster) skips the deeper sections. Then:
  - a code cell on the path must not use a name whose latest definition before it was made
    by a skipped cell (a function, a model, a variable: without it the cell fails, or shows
    other numbers than the stored ones);
  - prose on the path must not point back at a skipped section of the same notebook
    ("as section 2 showed", "§2") as if the learner had read it. A forward pointer
    ("section 6 goes further") is an invitation, not a dependency, and is allowed.
tests/test_core_path.py fails on any break; schedule.py decides which sections the path takes.
"""
from __future__ import annotations

import ast
import builtins
import re
import sys

import schedule

SECTION_REF = re.compile(r"(?:§\s?|\b[Ss]ections?\s+)(\d+)")
# A pointer into another document: "notebook 05 §7", "Bishop (2006), section 10".
ELSEWHERE = re.compile(r"(otebook \d+\S*|\b(?:19|20)\d\d\b[^.]{0,15})\s*,?\s*$")
IGNORED = set(dir(builtins)) | {"get_ipython", "display", "__file__"}


def _bound(tree: ast.AST) -> set[str]:
    """Every name the cell binds anywhere: assignments, loop targets, defs, imports, params."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def _parse(source: str) -> ast.AST:
    code = "\n".join(line for line in source.splitlines()
                     if not line.lstrip().startswith(("%", "!")))   # IPython magics
    return ast.parse(code)


def used_and_defined(source: str) -> tuple[set[str], set[str]]:
    """(names the cell reads but does not bind itself, names it binds)."""
    tree = _parse(source)
    bound = _bound(tree)
    read = {n.id for n in ast.walk(tree)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return read - bound - IGNORED, bound


def breaks(nb: dict, on_path) -> list[str]:
    """Every break of the path that `on_path(section)` accepts, in one notebook."""
    found = []
    owner: dict[str, str] = {}          # name -> title of the section that last defined it
    parts = schedule.sections(nb)
    skipped_titles = {s.title for s in parts if not on_path(s)}
    for position, part in enumerate(parts):
        earlier = {s.number: s.title for s in parts[:position]
                   if s.number and s.title in skipped_titles}
        taken = on_path(part)
        for index in part.cells:
            used, defined = used_and_defined(schedule._text(nb["cells"][index]))
            if taken:
                for name in sorted(used):
                    if owner.get(name) in skipped_titles:
                        found.append(f"{part.title!r} uses `{name}`, last defined in the "
                                     f"skipped section {owner[name]!r}")
            for name in defined:
                owner[name] = part.title
        if taken:
            for match in SECTION_REF.finditer(part.prose):
                number = match.group(1)
                before = part.prose[max(0, match.start() - 40):match.start()]
                if number in earlier and not ELSEWHERE.search(before):
                    found.append(f"{part.title!r} refers back to the skipped section "
                                 f"{earlier[number]!r}: {match.group(0)!r}")
    return list(dict.fromkeys(found))      # a name used by two cells of a section: one line


def all_breaks() -> dict[str, list[str]]:
    """{'02_vae_theory (core)': [...], '03_reparameterization (taster)': [...], ...}."""
    out = {}
    nbs = schedule.notebooks()
    for name, nb in nbs.items():
        out[f"{name} (core)"] = breaks(nb, schedule.core)
    for prefix, what, _ in schedule.TASTER:
        name = next(n for n in nbs if n.startswith(prefix))
        out[f"{name} (taster)"] = breaks(nbs[name], schedule.taster_part(what))
    return {k: v for k, v in out.items() if v}


def main() -> int:
    found = all_breaks()
    for where, lines in found.items():
        print(where)
        print("\n".join(f"  {line}" for line in lines))
    print(f"{sum(map(len, found.values()))} breaks" if found else "the paths stand on their own")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
