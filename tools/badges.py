"""Colab and Binder badges on every notebook, from the repository URL in pyproject.toml.

    python tools/badges.py write    # add or refresh each notebook's badges and Colab setup cell
    python tools/badges.py check    # fail if a notebook's badges disagree with pyproject.toml

The one source of the address is `Repository` under `[project.urls]` in pyproject.toml, a
GitHub URL such as https://github.com/OWNER/NAME. Until it is set the notebooks carry no
badges, because a badge that points nowhere is worse than none, and `check` makes sure of it.

Binder builds its image from environment.yml, which installs the companion package. Colab
opens a notebook without its repository, so `write` also adds a setup cell. That cell clones
the repository and puts `companion` on the path. It does nothing outside Colab, and it is
tagged `nbval-skip`. Both cells are written into the .ipynb and its paired .py; no stored
output changes.
"""
from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from nbtool import to_py   # the pairing's own conversion, so the check stays green
from notebooks import ROOT, paths

BRANCH = "main"
BADGES_ID, COLAB_ID = "badges", "colab-setup"
GITHUB = re.compile(r"https://github\.com/([\w.-]+)/([\w.-]+?)(?:\.git)?/?$")

COLAB_SETUP = '''\
# Only on Google Colab, which opens this notebook without the rest of the course:
# fetch the repository once and import the companion package from it.
import sys

if "google.colab" in sys.modules:
    import os
    import subprocess

    from google.colab import output

    if not os.path.isdir("/content/{name}"):
        subprocess.run(["git", "clone", "--depth", "1", "{url}", "/content/{name}"], check=True)
    sys.path.insert(0, "/content/{name}")
    os.chdir("/content/{name}/notebooks")
    output.enable_custom_widget_manager()   # ipywidgets 8 sliders (notebook 08)'''


def repository(pyproject: Path) -> tuple[str, str] | None:
    """(owner, name) of the GitHub repository in pyproject.toml, or None when none is set."""
    urls = tomllib.loads(pyproject.read_text()).get("project", {}).get("urls", {})
    url = urls.get("Repository")
    if url is None:
        return None
    match = GITHUB.match(url)
    if not match:
        raise SystemExit(f"{pyproject}: [project.urls] Repository = {url!r} is not a GitHub "
                         "address like https://github.com/OWNER/NAME; Colab and Binder need one.")
    return match.group(1), match.group(2)


def badge_cells(owner: str, name: str, notebook: str) -> list[dict]:
    """The markdown cell with both badges and the Colab setup cell, for one notebook."""
    path = f"notebooks/{notebook}"
    colab = f"https://colab.research.google.com/github/{owner}/{name}/blob/{BRANCH}/{path}"
    binder = (f"https://mybinder.org/v2/gh/{owner}/{name}/{BRANCH}"
              f"?labpath={path.replace('/', '%2F')}")
    badges = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
              f"({colab}) [![Binder](https://mybinder.org/badge_logo.svg)]({binder})")
    setup = COLAB_SETUP.format(name=name, url=f"https://github.com/{owner}/{name}")
    return [
        {"cell_type": "markdown", "id": BADGES_ID, "metadata": {}, "source": badges},
        {"cell_type": "code", "id": COLAB_ID, "execution_count": None,
         "metadata": {"tags": ["nbval-skip"]}, "outputs": [], "source": setup},
    ]


def with_badges(nb: dict, cells: list[dict]) -> dict:
    """The notebook without any old badge cells, and with `cells` after its title cell."""
    kept = [c for c in nb["cells"] if c.get("id") not in (BADGES_ID, COLAB_ID)]
    return {**nb, "cells": kept[:1] + cells + kept[1:]}


def _expected(ipynb: Path, repo: tuple[str, str] | None) -> dict:
    nb = json.loads(ipynb.read_text())
    return with_badges(nb, badge_cells(*repo, ipynb.name) if repo else [])


def write(root: Path = ROOT) -> int:
    repo = repository(root / "pyproject.toml")
    if repo is None:
        print("pyproject.toml has no [project.urls] Repository. Add the public GitHub address "
              "of the course, then run this again.")
        return 1
    for ipynb in paths(root / "notebooks"):
        ipynb.write_text(json.dumps(_expected(ipynb, repo), indent=1, ensure_ascii=False) + "\n")
        ipynb.with_suffix(".py").write_text(to_py(ipynb))
        print(f"{ipynb.name}: badges for github.com/{repo[0]}/{repo[1]}")
    print("Now run `make exercises` so the learner copies carry the badges too.")
    return 0


def check(root: Path = ROOT) -> int:
    repo = repository(root / "pyproject.toml")
    stale = [p.name for p in paths(root / "notebooks")
             if json.loads(p.read_text()) != _expected(p, repo)]
    for name in stale:
        print(f"{name}: its badges disagree with pyproject.toml; run `make badges`")
    return 1 if stale else 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    sys.exit({"write": write, "check": check}[command]())
