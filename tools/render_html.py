"""Render the executed notebooks as web pages, with an index page.

    python tools/render_html.py [--out site] [NOTEBOOK ...]

Each notebooks/NN_topic.ipynb becomes site/NN_topic.html with the outputs stored in it (nothing
is re-executed), and site/index.html lists them by title (`make html`). `make course` renders
the copies it runs into build/notebooks/ the same way, beside them. Open an index.html in a
browser: no server and no internet are needed. Figures are embedded in the pages, and the
formulas are typeset by MathJax 2, copied from the Python package jupyter-server-mathjax into
mathjax/ beside the pages; nothing is loaded from the web. The sliders of the interactive
explorer need a running kernel, so the pages show the static figures only.
"""
from __future__ import annotations

import argparse
import html
import json
import shutil
import sys
from pathlib import Path

from notebooks import NOTEBOOKS, ROOT, paths

INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 3rem auto; padding: 0 1rem;
       line-height: 1.5; color: #222; }}
li {{ margin: 0.4rem 0; }}
.name {{ color: #777; font-family: monospace; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>The course's notebooks {note}. To run them yourself, open them in JupyterLab
(<code>make lab</code>).</p>
<ul>
{items}
</ul>
</body>
</html>
"""


def title_of(nb: dict, fallback: str) -> str:
    """The first Markdown heading of a notebook, without the leading '#'s."""
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for line in source.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return fallback


# The parts of MathJax 2 that TeX input, typeset by the HTML-CSS output with the STIX web fonts,
# can load (2.4 MB of the package's 12 MB); MathJax fetches most of them on demand.
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
MATHJAX_PARTS = ["MathJax.js", "LICENSE", "config/TeX-AMS-MML_HTMLorMML-full.js",
                 "config/Safe.js", "extensions", "jax/element", "jax/input/TeX",
                 "jax/output/HTML-CSS", "fonts/HTML-CSS/STIX-Web/woff"]
# Extensions for MathML input and the accessibility explorer (3.8 MB): the pages use neither.
MATHJAX_SKIP = shutil.ignore_patterns("a11y", "MathML")

# nbconvert's "lab" page, with nothing loaded from the web: MathJax from the local copy, told to
# use the only web fonts the copy has; no require.js (no output here needs it); no Mermaid
# (no notebook draws a diagram; one would show as its source text).
PAGE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock -%}
{%- block html_head_js_mermaidjs -%}{%- endblock -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web",
                                 imageFont: null}});
</script>
{{ super() }}
{%- endblock -%}
"""

STORED = "with the outputs of their last full-mode run"
TITLE = "Variational Autoencoders, from first principles"


def mathjax_source() -> Path:
    """The MathJax 2 files that the package jupyter-server-mathjax installs."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise SystemExit("the web pages typeset their formulas with MathJax from the Python "
                         'package jupyter-server-mathjax: pip install -e ".[test]" '
                         "(or pip install jupyter-server-mathjax)") from None
    return Path(jupyter_server_mathjax.__file__).parent / "static"


def copy_mathjax(target: Path) -> None:
    """Put a fresh copy of the MathJax parts the pages use into `target`."""
    source = mathjax_source()
    shutil.rmtree(target, ignore_errors=True)
    for part in MATHJAX_PARTS:
        (target / part).parent.mkdir(parents=True, exist_ok=True)
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, ignore=MATHJAX_SKIP)
        else:
            shutil.copy2(source / part, target / part)


def render(notebooks: list[Path], out: Path, note: str = STORED, title: str = TITLE) -> Path:
    """Write one HTML page per notebook and an index.html linking them; return the index.

    `note` completes the index's sentence "The course's notebooks ..." (where the outputs
    come from)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", raw_template=PAGE_TEMPLATE,
                            mathjax_url=f"mathjax/MathJax.js?config={MATHJAX_CONFIG}")
    out.mkdir(parents=True, exist_ok=True)
    copy_mathjax(out / "mathjax")
    items = []
    for ipynb in notebooks:
        nb = nbformat.read(ipynb, as_version=4)
        nb.metadata.pop("widgets", None)   # widget state loads a widget manager from the web
        name = title_of(json.loads(ipynb.read_text()), ipynb.stem)
        body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
        page = out / f"{ipynb.stem}.html"
        page.write_text(body, encoding="utf-8")
        items.append(f'<li><a href="{page.name}">{html.escape(name)}</a> '
                     f'<span class="name">{ipynb.stem}</span></li>')
        print(page, flush=True)
    index = out / "index.html"
    index.write_text(INDEX.format(title=html.escape(title), note=html.escape(note),
                                  items="\n".join(items)), encoding="utf-8")
    print(f"open {index}")
    return index


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="output folder")
    parser.add_argument("notebooks", nargs="*", help="names like 08_latent_arithmetic (all if none)")
    args = parser.parse_args(argv)
    chosen = [NOTEBOOKS / (Path(n).stem + ".ipynb") for n in args.notebooks] or paths()
    missing = [p.name for p in chosen if not p.exists()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}")
        return 1
    render(chosen, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
