"""JupyterLab settings for the course: no prompt about Jupyter news, no update check.

    python -m companion lab-settings     # write them where this environment's JupyterLab reads

JupyterLab 4 asks every new user whether to fetch "official Jupyter news" and, if so, checks
for updates: a prompt that interrupts the first exercise, and requests a workshop room's Wi-Fi
does not need. An administrator switches both off with an *overrides* file in the app settings
folder, `<sys.prefix>/share/jupyter/lab/settings/overrides.d/`, which sets the defaults every
user starts from (a user can still change them in Settings). The course's file there is
`vae-course.json`: it leaves any other overrides file alone. `make install` writes it.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

PLUGIN = "@jupyterlab/apputils-extension:notification"
OVERRIDES = {PLUGIN: {"fetchNews": "false", "checkForUpdates": False}}   # "false": Never
FILE = "vae-course.json"


def app_settings_dir() -> Path:
    """The folder whose overrides this environment's JupyterLab applies."""
    try:
        from jupyterlab.commands import get_app_dir   # honours JUPYTERLAB_DIR, user installs
    except ImportError:
        return Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"
    return Path(get_app_dir()) / "settings"


def path() -> Path:
    return app_settings_dir() / "overrides.d" / FILE


def installed() -> bool:
    """True when the course's overrides are in place, with these values."""
    try:
        return json.loads(path().read_text(encoding="utf-8")) == OVERRIDES
    except (OSError, ValueError):
        return False


def install() -> Path:
    """Write the overrides file (idempotent); return where it went."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(OVERRIDES, indent=2) + "\n", encoding="utf-8")
    return target
