"""Colab/Binder badges: written from pyproject's URL, idempotent, paired, and a no-op off Colab."""
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import load_script

ROOT = Path(__file__).resolve().parent.parent
badges = load_script("tools", "badges")
nbtool = load_script("tools", "nbtool")

NOTEBOOKS = ["00_welcome_and_data", "08_latent_arithmetic"]


def course_copy(tmp_path: Path, url: str | None) -> Path:
    """A repository root with two real notebooks and a pyproject naming `url`."""
    (tmp_path / "notebooks").mkdir()
    for name in NOTEBOOKS:
        for suffix in (".ipynb", ".py"):
            shutil.copy(ROOT / "notebooks" / f"{name}{suffix}", tmp_path / "notebooks")
    set_url(tmp_path, url)
    return tmp_path


def set_url(root: Path, url: str | None) -> None:
    urls = f'\n[project.urls]\nRepository = "{url}"\n' if url else ""
    (root / "pyproject.toml").write_text(f'[project]\nname = "x"\n{urls}')


def test_the_course_notebooks_agree_with_pyproject():
    assert badges.check(ROOT) == 0, "run `make badges` (or remove the stale badge cells)"


def test_write_adds_both_badges_and_the_setup_cell(tmp_path):
    root = course_copy(tmp_path, "https://github.com/someone/vae-course.git")
    assert badges.write(root) == 0
    for name in NOTEBOOKS:
        nb = json.loads((root / "notebooks" / f"{name}.ipynb").read_text())
        title, links, setup = nb["cells"][:3]
        assert title["source"][0].startswith("# ")
        assert (f"https://colab.research.google.com/github/someone/vae-course/blob/main/"
                f"notebooks/{name}.ipynb") in links["source"]
        assert (f"https://mybinder.org/v2/gh/someone/vae-course/main?labpath=notebooks%2F"
                f"{name}.ipynb") in links["source"]
        assert setup["metadata"]["tags"] == ["nbval-skip"]
        assert "https://github.com/someone/vae-course" in setup["source"]
        assert setup["source"].count("git") and not setup["outputs"]
    assert badges.check(root) == 0


def test_write_is_idempotent_and_keeps_the_pairing(tmp_path):
    root = course_copy(tmp_path, "https://github.com/someone/vae-course")
    badges.write(root)
    first = {p.name: p.read_bytes() for p in (root / "notebooks").iterdir()}
    badges.write(root)
    assert first == {p.name: p.read_bytes() for p in (root / "notebooks").iterdir()}
    for name in NOTEBOOKS:
        ipynb = root / "notebooks" / f"{name}.ipynb"
        paired = nbtool.to_py(ipynb)
        assert paired == ipynb.with_suffix(".py").read_text()
        assert "colab-badge.svg" in paired


def test_check_fails_when_the_url_changes_or_goes(tmp_path, capsys):
    root = course_copy(tmp_path, "https://github.com/someone/vae-course")
    badges.write(root)
    set_url(root, "https://github.com/another/vae-course")
    assert badges.check(root) == 1
    set_url(root, None)
    assert badges.check(root) == 1
    assert "run `make badges`" in capsys.readouterr().out


def test_write_without_a_url_changes_nothing_and_says_what_to_do(tmp_path, capsys):
    root = course_copy(tmp_path, None)
    before = {p.name: p.read_bytes() for p in (root / "notebooks").iterdir()}
    assert badges.write(root) == 1
    assert "[project.urls] Repository" in capsys.readouterr().out
    assert before == {p.name: p.read_bytes() for p in (root / "notebooks").iterdir()}
    assert badges.check(root) == 0


def test_a_url_that_is_not_github_is_refused(tmp_path):
    set_url(tmp_path, "https://gitlab.com/someone/vae-course")
    with pytest.raises(SystemExit, match="not a GitHub address"):
        badges.repository(tmp_path / "pyproject.toml")


def setup_source(content_dir: Path | None = None) -> str:
    source = badges.badge_cells("someone", "vae-course", "08_x.ipynb")[1]["source"]
    return source.replace("/content", str(content_dir)) if content_dir else source


def test_the_colab_cell_does_nothing_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path_before = list(sys.path)
    exec(setup_source(), {})
    assert sys.path == path_before and Path.cwd() == tmp_path


def test_the_colab_cell_clones_once_and_imports_from_the_clone(tmp_path, monkeypatch):
    clones, widget_managers = [], []

    def fake_run(command, check):
        clones.append(command)
        (Path(command[-1]) / "notebooks").mkdir(parents=True)

    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(
        enable_custom_widget_manager=lambda: widget_managers.append(1))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    for _ in range(2):   # running the cell again must not clone again
        exec(setup_source(tmp_path), {})
    assert clones == [["git", "clone", "--depth", "1", "https://github.com/someone/vae-course",
                       str(tmp_path / "vae-course")]]
    assert sys.path[0] == str(tmp_path / "vae-course")
    assert Path.cwd() == tmp_path / "vae-course" / "notebooks"
    assert widget_managers == [1, 1]


def test_nbval_skips_a_cell_tagged_nbval_skip(tmp_path):
    cells = [{"cell_type": "code", "id": "a", "execution_count": None, "outputs": [],
              "metadata": {"tags": ["nbval-skip"]}, "source": "raise RuntimeError('ran')"},
             {"cell_type": "code", "id": "b", "execution_count": 1, "metadata": {},
              "outputs": [{"output_type": "stream", "name": "stdout", "text": "2\n"}],
              "source": "print(1 + 1)"}]
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}}}
    (tmp_path / "skip.ipynb").write_text(json.dumps(nb))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--nbval", "--nbval-current-env", "skip.ipynb"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 passed, 1 skipped" in done.stdout


def test_the_learner_copies_badges_open_the_learner_copy():
    exercises = load_script("tools", "exercises")
    nb = json.loads((ROOT / "notebooks" / "08_latent_arithmetic.ipynb").read_text())
    cells = badges.badge_cells("someone", "vae-course", "08_latent_arithmetic.ipynb")
    nb = badges.with_badges(nb, cells)
    links = next(c for c in exercises.learner_copy(nb, "08")["cells"] if c.get("id") == "badges")
    assert "blob/main/exercises/08_latent_arithmetic.ipynb" in links["source"]
    assert "labpath=exercises%2F08_latent_arithmetic.ipynb" in links["source"]
    assert "notebooks" not in links["source"]
