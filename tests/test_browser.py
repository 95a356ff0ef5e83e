"""The course in a real browser, headless Chromium driven by Playwright.

The latent explorer: the test copies notebook 08 into a temporary folder, starts JupyterLab
there in fast mode, opens the copy, runs all cells from the Run menu, drags the first latent
slider of the explorer and checks that the PNG the explorer shows changed. A screenshot is
saved to ``build/browser/explorer.png``.

The web pages of ``make html``: the test renders notebook 02 into a temporary folder, opens the
page with the network cut and checks that MathJax typeset every formula and every figure shows,
with no request leaving the machine.

Needs the ``playwright`` Python package (in the ``test`` extra) and a Chromium: the one
COURSE_CHROMIUM names, else one on this machine (``make test`` installs Debian's where it can;
``python tools/system.py chromium`` says how elsewhere). Without one the test is skipped, and
it fails when CI=true: CI must run it. Marked ``browser`` (``pytest -m "not browser"``).
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from conftest import ROOT, load_script, require

system = load_script("tools", "system")
render_html = load_script("tools", "render_html")
notebooks = load_script("tools", "notebooks")
NOTEBOOK = notebooks.NOTEBOOKS / "08_latent_arithmetic.ipynb"
SCREENSHOT = ROOT / "build" / "browser" / "explorer.png"
MATH_NOTEBOOK = notebooks.NOTEBOOKS / "02_vae_theory.ipynb"   # the one with the most formulas
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
PNG_HEX = "89504e470d0a1a0a"   # the eight signature bytes every PNG starts with
pytestmark = pytest.mark.browser
RUN_TIMEOUT_S = 150   # fast mode runs notebook 08 in well under a minute on 2 cores

# User settings for the fresh JupyterLab: no "get Jupyter news?" toast over the page, and no
# "Select Kernel" dialog (it appears now and then when the page opens, even for a running kernel).
LAB_SETTINGS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false"},
                "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True}}

# True once the open notebook's kernel is connected and idle (read from window.jupyterapp).
KERNEL_READY_JS = """() => {
    const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const session = panel && panel.sessionContext && panel.sessionContext.session;
    const kernel = session && session.kernel;
    return !!(kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle');
}"""

# True once the first code cell is queued or has run: its prompt is no longer "[ ]:".
RUNNING_JS = """() => {
    const prompt = document.querySelector('.jp-CodeCell .jp-InputPrompt');
    return !!prompt && /\\[[^\\]\\s]+\\]/.test(prompt.textContent);
}"""

# The bytes of the <img> of the visible explorer panel, as hex: the widget draws a blob: URL.
IMAGE_BYTES_JS = """async (img) => {
    const buffer = await (await fetch(img.src)).arrayBuffer();
    return Array.from(new Uint8Array(buffer), b => b.toString(16).padStart(2, '0')).join('');
}"""

# Sets window.mathTypeset once MathJax has typeset the page: its queue holds the startup and
# the page's first typeset, so what is queued now runs after them.
MATH_DONE_JS = "() => { MathJax.Hub.Queue(() => { window.mathTypeset = true; }); }"

# What the reader sees: the text of the Markdown cells, the count of typeset formulas and of
# formulas MathJax could not read, and the figures that did not load.
PAGE_STATE_JS = """() => ({
    text: Array.from(document.querySelectorAll('.jp-MarkdownCell'), c => c.innerText).join('\\n'),
    typeset: document.querySelectorAll('.MathJax, .MathJax_Display').length,
    errors: document.querySelectorAll('.MathJax_Error, .noError, merror').length,
    images: document.images.length,
    broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length,
})"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Poll the server's status API until it answers (or fail with its log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout:.0f} s")


@pytest.fixture
def lab(tmp_path):
    """JupyterLab serving a fresh, output-free copy of notebook 08 in fast mode; yields its URL."""
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir()
    home.mkdir()
    notebook = notebooks.without_outputs(nbformat.read(NOTEBOOK, as_version=4))
    notebook.metadata.pop("widgets", None)          # no stale widget state from the last run
    nbformat.write(notebook, root / "explorer.ipynb")
    for plugin, settings in LAB_SETTINGS.items():
        package, name = plugin.rsplit(":", 1)
        (home / "settings" / package).mkdir(parents=True, exist_ok=True)
        (home / "settings" / package / f"{name}.jupyterlab-settings").write_text(
            json.dumps(settings))

    port, token = free_port(), "course-browser-test"
    env = {**os.environ, "COURSE_FAST": "1", "OMP_NUM_THREADS": "1",
           "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython")}
    log = open(tmp_path / "jupyterlab.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--ServerApp.open_browser=False",
         "--LabApp.expose_app_in_browser=True",
         "--allow-root"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}", process)
        yield f"{base}/lab/tree/explorer.ipynb?token={token}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        print((tmp_path / "jupyterlab.log").read_text()[-4000:])   # shown when the test fails


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium under Playwright with a fresh profile (a browser context)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser test needs the Python package playwright: "
                    'pip install -e ".[test]" (or pip install playwright)')
    chromium = system.chromium()
    require(chromium is not None, "no Chromium for the browser test: "
            "`python tools/system.py chromium` installs one or says how")
    profile = tmp_path / "chromium-profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(chromium), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000})
        try:
            yield context
        finally:
            context.close()


def image_bytes(image) -> str:
    """The PNG bytes the widget's <img> shows, as a hex string."""
    return image.evaluate(IMAGE_BYTES_JS)


def run_all_cells(page, attempts: int = 3) -> None:
    """Run > Run All Cells from the menu bar, again if the click came before the page was ready."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    for _ in range(attempts):
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
        try:
            page.wait_for_function(RUNNING_JS, timeout=15_000)
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")                   # close the menu if it is still open
    raise AssertionError(f"Run > Run All Cells started nothing in {attempts} attempts")


def drag_toward_middle(page, slider, pixels: float = 25) -> None:
    """Drag a slider's handle with the mouse, toward the middle of its track."""
    track, handle = slider.locator(".noUi-target").bounding_box(), \
        slider.locator(".noUi-handle").bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    direction = 1 if x < track["x"] + track["width"] / 2 else -1
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + direction * pixels, y, steps=10)
    page.mouse.up()


def test_explorer_slider_changes_the_decoded_image(browser, lab):   # no lab without a browser
    page = browser.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto(lab)
        page.locator(".jp-Notebook .jp-CodeCell").first.wait_for()
        page.wait_for_function(KERNEL_READY_JS, timeout=90_000)
        run_all_cells(page)

        tab = page.locator(".widget-tab").first            # the explorer: three panels in tabs
        tab.wait_for(state="attached", timeout=RUN_TIMEOUT_S * 1000)
        tab.evaluate("element => element.scrollIntoView({block: 'start'})")
        slider = tab.locator(".widget-hslider", has=page.locator(".widget-label", has_text="z1"))
        image = tab.locator("img.widget-image").first      # the visible "latent sliders" panel
        image.wait_for()
        readout = slider.locator(".widget-readout")
        before, value_before = image_bytes(image), readout.inner_text()
        assert before.startswith(PNG_HEX), "the explorer's picture is not a PNG"
        width, natural = image.evaluate("img => [img.clientWidth, img.naturalWidth]")
        assert 0 < width <= 1.1 * natural, f"the picture is drawn {width} px wide, not {natural}"

        drag_toward_middle(page, slider)
        after, deadline = before, time.monotonic() + 60   # the kernel may still be running cells
        while after == before and time.monotonic() < deadline:
            page.wait_for_timeout(250)
            after = image_bytes(image)
        assert readout.inner_text() != value_before, "dragging the z1 slider did not move it"
        assert after != before, "the decoded image did not change after the z1 slider moved"
        assert after.startswith(PNG_HEX)
    finally:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        if not page.is_closed():
            page.screenshot(path=str(SCREENSHOT))


def test_web_page_typesets_its_formulas_offline(browser, tmp_path):
    render_html.render([MATH_NOTEBOOK], tmp_path / "site")
    page_path = tmp_path / "site" / f"{MATH_NOTEBOOK.stem}.html"
    left_the_machine = []

    def offline(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            left_the_machine.append(route.request.url)
            route.abort()

    browser.route("**/*", offline)
    page = browser.new_page()
    page.goto(page_path.as_uri())
    assert page.evaluate("() => !!(window.MathJax && MathJax.Hub)"), \
        "MathJax did not load from the mathjax/ folder beside the page"
    page.evaluate(MATH_DONE_JS)
    page.wait_for_function("() => window.mathTypeset === true", timeout=60_000)
    state = page.evaluate(PAGE_STATE_JS)

    assert left_the_machine == [], f"the page asked the web for {left_the_machine}"
    assert state["typeset"] > 50, f"only {state['typeset']} formulas were typeset"
    assert state["errors"] == 0, f"MathJax could not read {state['errors']} formulas"
    source = [line for line in state["text"].splitlines()
              if "$" in line or "\\begin{" in line or "\\(" in line]
    assert source == [], "formulas left as LaTeX source:\n" + "\n".join(source)
    assert state["images"] > 0 and state["broken"] == 0, \
        f"{state['broken']} of {state['images']} figures did not load"
