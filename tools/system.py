"""System packages the course can use: install one where possible, else say how in one line.

    python tools/system.py dataset-fashion-mnist   # Fashion-MNIST offline (make data)
    python tools/system.py chromium                # the real-browser test (make test)

Nothing happens when what the package provides is already there. With apt-get present and
running as root (a container, CI) the Debian package is installed. Anywhere else (no root,
macOS, Windows) one line says which command would provide it, and the course goes on without
it: the exit status is 0 either way, because what needs the package says so itself.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MAC_BROWSERS = ("/Applications/Chromium.app/Contents/MacOS/Chromium",
                "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome")


def chromium() -> Path | None:
    """The Chromium the browser test drives: COURSE_CHROMIUM if set, else one found on this
    machine (PATH, macOS's Applications, Playwright's own download), else None."""
    if os.environ.get("COURSE_CHROMIUM"):
        path = Path(os.environ["COURSE_CHROMIUM"]).expanduser()
        return path if path.is_file() else None
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return Path(found)
    for path in map(Path, MAC_BROWSERS):
        if path.is_file():
            return path
    return _playwright_chromium()


def _playwright_chromium() -> Path | None:
    """The browser `python -m playwright install chromium` downloaded, if it did."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    with sync_playwright() as playwright:
        path = Path(playwright.chromium.executable_path)
    return path if path.is_file() else None


def fashion_mnist_present() -> bool:
    """True when Debian's files are there, or Fashion-MNIST is already staged and verified."""
    try:
        from companion.data import verify
        from companion.data.sources import DEBIAN_FASHION
    except ImportError:       # the course is not installed yet: nothing to go by
        return False
    return DEBIAN_FASHION.is_dir() or not verify("fashion-mnist")


@dataclass(frozen=True)
class Package:
    purpose: str                  # what the course uses it for
    present: Callable[[], bool]   # True when nothing needs installing
    elsewhere: str                # the one-line advice where apt-get cannot install it


PACKAGES = {
    "dataset-fashion-mnist": Package(
        "Fashion-MNIST without a web download",
        fashion_mnist_present,
        "it is downloaded from the web instead (`python -m companion.data fetch fashion-mnist`)"),
    "chromium": Package(
        "the real-browser test (tests/test_browser.py)",
        lambda: chromium() is not None,
        "run `python -m playwright install chromium` (or set COURSE_CHROMIUM to a Chromium)"),
}


def is_root() -> bool:
    return getattr(os, "geteuid", lambda: 1)() == 0   # no geteuid on Windows


def can_apt() -> bool:
    """True where apt-get exists and this process may use it (root)."""
    return shutil.which("apt-get") is not None and is_root()


def apt_install(package: str) -> bool:
    """apt-get install the package; apt-get's output is shown only when it fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", package]
    done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:               # a fresh container has no package lists yet
        done = subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True,
                              text=True)
        if done.returncode == 0:
            done = subprocess.run(install, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print((done.stdout + done.stderr)[-2000:], file=sys.stderr)
    return done.returncode == 0


def fix(name: str) -> str:
    """The command that would provide the package where this process cannot install it."""
    if not shutil.which("apt-get"):
        return PACKAGES[name].elsewhere
    sudo = "" if is_root() else "sudo "
    return f"run `{sudo}apt-get install -y {name}`"


def ensure(name: str) -> str | None:
    """Install the package if it is needed and possible; else return the one line of advice."""
    package = PACKAGES[name]
    if package.present():
        return None
    if name == "chromium" and os.environ.get("COURSE_CHROMIUM"):   # installing would not help
        return (f"COURSE_CHROMIUM={os.environ['COURSE_CHROMIUM']} is not a file "
                f"({package.purpose}): point it at a Chromium binary, or unset it")
    if not can_apt():
        return f"{name} is not installed ({package.purpose}): {fix(name)}"
    print(f"{name}: installing with apt-get, for {package.purpose}", flush=True)
    if apt_install(name) and package.present():
        return None
    return f"{name}: apt-get could not install it ({package.purpose}): {fix(name)}"


def main(argv: list[str]) -> int:
    unknown = [a for a in argv if a not in PACKAGES]
    if not argv or unknown:
        print(f"usage: python tools/system.py {{{','.join(PACKAGES)}}} ...", file=sys.stderr)
        return 2
    for name in argv:
        if line := ensure(name):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
