"""The web pages of `make html` work offline: MathJax is copied beside them, nothing loads from
the web, and every formula of the notebooks reaches MathJax whole. (tests/test_browser.py
checks in Chromium that a page typesets its formulas with the network cut.)"""
import re
from html.parser import HTMLParser

import nbformat
from conftest import load_script
from nbconvert.filters.markdown_mistune import markdown2html_mistune

render_html = load_script("tools", "render_html")
notebooks = load_script("tools", "notebooks")
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
       "rkJggg==")   # a 1x1 PNG


def test_pages_load_mathjax_from_beside_them_and_nothing_from_the_web(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"widgets": {"state": {}}})   # stored widget state
    formula = "$$\\mathrm{KL}(q\\,\\|\\,p) \\ge 0$$"
    nb.cells = [nbformat.v4.new_markdown_cell(f"# 99 · Maths\n\n{formula}"),
                nbformat.v4.new_code_cell("plot()", execution_count=1, outputs=[
                    nbformat.v4.new_output("display_data", {"image/png": PNG})])]
    nbformat.write(nb, tmp_path / "99_maths.ipynb")
    site = tmp_path / "site"
    (site / "mathjax").mkdir(parents=True)
    (site / "mathjax" / "stale.js").write_text("")
    render_html.render([tmp_path / "99_maths.ipynb"], site)
    page = (site / "99_maths.html").read_text()

    scripts = re.findall(r'<script[^>]* src="([^"]*)"', page)
    assert scripts == [f"mathjax/MathJax.js?config={render_html.MATHJAX_CONFIG}"]
    assert not re.search(r"""(src=|href=|url\(|import\()\s*["']?(https?:)?//""", page)
    assert "\\mathrm{KL}" in page and 'src="data:image/png;base64,' in page
    copy = site / "mathjax"
    for name in ["MathJax.js", "config/TeX-AMS-MML_HTMLorMML-full.js", "config/Safe.js",
                 "extensions/Safe.js", "jax/output/HTML-CSS/fonts/STIX-Web/fontdata.js",
                 "fonts/HTML-CSS/STIX-Web/woff/STIXMathJax_Main-Regular.woff"]:
        assert (copy / name).is_file(), f"{name} is missing from the MathJax copy"
    assert not (copy / "stale.js").exists()                  # each render starts a fresh copy
    size = sum(f.stat().st_size for f in copy.rglob("*") if f.is_file())
    assert 1e6 < size < 4e6, f"the MathJax copy holds {size / 1e6:.1f} MB"


class FormulaSplits(HTMLParser):
    """The text of each paragraph, list item, heading or table cell whose `$`s are odd in
    number: there Markdown split a formula, and MathJax shows it as LaTeX source."""
    BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th"}

    def __init__(self):
        super().__init__()
        self.open, self.in_code, self.split = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self.open.append([tag, ""])
        if tag in ("code", "pre"):
            self.in_code += 1

    def handle_endtag(self, tag):
        if tag in ("code", "pre"):
            self.in_code -= 1
        if tag in self.BLOCKS and self.open:
            text = self.open.pop()[1]
            if text.count("$") % 2:
                self.split.append(" ".join(text.split())[:100])

    def handle_data(self, data):
        if self.open and not self.in_code:
            self.open[-1][1] += data


def test_markdown_keeps_every_formula_whole():
    """JupyterLab reads a formula before the Markdown around it; the pages' Markdown comes
    first. A line inside $...$ that starts with `+ `, `- ` or `1. ` opens a list there, and
    `\\$` loses its backslash."""
    split = []
    for path in notebooks.paths():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                parser = FormulaSplits()
                parser.feed(markdown2html_mistune(cell.source))
                split += [f"{path.name}: {text}" for text in parser.split]
    assert not split, "a formula is split by Markdown (keep + and - inside it off the start " \
                      "of a line):\n" + "\n".join(split)
