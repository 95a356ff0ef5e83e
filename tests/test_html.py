"""`make html`: one page per notebook, with its stored outputs, and an index that links them."""
import json
import re
from pathlib import Path

from conftest import load_script

render_html = load_script("tools", "render_html")


def tiny_notebook(path: Path) -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                      "name": "python3"}},
          "cells": [{"cell_type": "markdown", "id": "a", "metadata": {},
                     "source": "# 99 · A <tiny> notebook\n\nSome text."},
                    {"cell_type": "code", "id": "b", "metadata": {}, "execution_count": 1,
                     "source": "print(6 * 7)",
                     "outputs": [{"output_type": "stream", "name": "stdout",
                                  "text": "stored-output-42\n"}]}]}
    path.write_text(json.dumps(nb))
    return path


def test_renders_stored_outputs_and_an_index_linking_each_page(tmp_path):
    notebook = tiny_notebook(tmp_path / "99_tiny.ipynb")
    index = render_html.render([notebook], tmp_path / "site", note="as <tested> here")
    page = tmp_path / "site" / "99_tiny.html"
    assert "stored-output-42" in page.read_text()          # outputs shown, not re-executed
    assert "The course's notebooks as &lt;tested&gt; here." in index.read_text()
    links = re.findall(r'<a href="([^"]+)">([^<]*)</a>', index.read_text())
    assert links == [("99_tiny.html", "99 · A &lt;tiny&gt; notebook")]
    assert all((index.parent / href).exists() for href, _ in links)


def test_title_is_the_first_heading():
    nb = {"cells": [{"cell_type": "code", "source": "# a comment, not a title"},
                    {"cell_type": "markdown", "source": ["Intro\n", "## 01 · Real title\n"]}]}
    assert render_html.title_of(nb, "fallback") == "01 · Real title"
    assert render_html.title_of({"cells": []}, "fallback") == "fallback"


def test_unknown_notebook_is_refused(capsys):
    assert render_html.main(["no_such_notebook"]) == 1
    assert "no such notebook" in capsys.readouterr().out
