"""make pretrain: each mode reaches the kernel, and the timing table says what happened."""
import json
import os

import pytest
from conftest import load_script

pretrain = load_script("tools", "pretrain")


def run(seconds, trained=0, error=None):
    return {"seconds": seconds, "trained": trained, "error": error, "date": "2026-01-01"}


def test_cells_say_what_was_trained_or_what_failed():
    assert pretrain.cell(run(86.4, 3), "full") == "86 s (3 models cached)"
    assert pretrain.cell(run(55.0, 1), "full") == "55 s (1 model cached)"
    assert pretrain.cell(run(12.0, 0), "full") == "12 s (nothing cached)"
    assert pretrain.cell(run(9.0, 2), "fast") == "9 s"
    assert pretrain.cell(None, "warm") == "not measured"
    assert pretrain.cell(run(3.0, 0, "CellExecutionError: boom"), "fast").startswith("failed (")


def test_totals_only_when_every_notebook_ran_without_error():
    results = {"00_a": {"fast": run(60), "full": run(120, 1)},
               "01_b": {"fast": run(30), "full": run(1, 0, "KeyError: x")}}
    last = pretrain.table(results).splitlines()[-1]
    assert last == "| **all** | 1.5 min | — | — |"


def test_each_mode_reaches_the_kernel(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    monkeypatch.delenv("COURSE_FAST", raising=False)
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "a", "execution_count": None, "metadata": {}, "outputs": [],
         "source": "import os\nassert os.environ.get('COURSE_FAST') == '1', 'not fast'"}]}
    ipynb = tmp_path / "mode.ipynb"
    ipynb.write_text(json.dumps(nb))
    assert pretrain.measure(ipynb, "fast")["error"] is None
    full = pretrain.measure(ipynb, "full")
    assert "not fast" in full["error"] and full["trained"] == 0
    assert "COURSE_FAST" not in os.environ   # restored for the next notebook


def test_modes_and_notebooks_parse_apart():
    args = pretrain.parse(["--modes", "fast,warm", "05_training_a_vae", "08_latent_arithmetic"])
    assert args.modes == ["fast", "warm"]
    assert args.notebooks == ["05_training_a_vae", "08_latent_arithmetic"]
    assert pretrain.parse([]).modes == ["fast", "full", "warm"]
    with pytest.raises(SystemExit):
        pretrain.parse(["--modes", "fast,cold"])
