"""`make doctor`: one line per check, ok or PROBLEM with its fix; it never crashes, and `make
lab` and `make doctor` start without touching the network."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import load_script

from companion import checkpoints, doctor, lab_settings
from companion.models import MLPVAE

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^(ok: .+|PROBLEM: .+ -> fix: .+)$")


def test_doctor_in_this_repository_prints_one_verdict_a_line():
    done = subprocess.run([sys.executable, "-m", "companion", "doctor"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    lines = done.stdout.splitlines()
    assert len(lines) == len(doctor.CHECKS) + 1, done.stdout + done.stderr
    assert all(LINE.match(line) for line in lines), done.stdout
    problems = [line for line in lines if line.startswith("PROBLEM:")]
    assert done.returncode == (1 if problems else 0), done.stdout
    assert lines[-1].startswith("ok: ready") == (not problems)


def test_a_missing_dataset_is_a_problem_with_the_command_that_stages_it(scratch):
    result = doctor.run(doctor.check_dataset("mnist", needed=True), "mnist")
    assert not result.ok and "mnist is not staged" in result.text
    assert result.line().endswith("-> fix: " + f"{doctor.python()} -m companion.data fetch mnist")
    optional = doctor.run(doctor.check_dataset("kmnist", needed=False), "kmnist")
    assert optional.ok and "optional" in optional.text


def test_a_damaged_dataset_says_delete_then_fetch(scratch):
    raw = scratch / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\0" * 100)
    result = doctor.check_dataset("mnist", needed=True)()
    assert not result.ok and "damaged" in result.text
    assert result.fix.startswith("delete those files, then ")


def test_a_check_that_breaks_is_reported_and_the_others_still_run(monkeypatch, capsys):
    def broken():
        raise ImportError("No module named 'torch'")
    checks = [("PyTorch", broken), ("Python", doctor.check_python)]
    monkeypatch.setattr(doctor, "CHECKS", checks)
    assert doctor.main() == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == ("PROBLEM: PyTorch: could not be checked (ImportError: No module named "
                      f"'torch') -> fix: {doctor.install()}")
    assert out[1].startswith("ok: Python ") and out[2].startswith("PROBLEM: 1 of 2 checks")
    monkeypatch.setattr(doctor, "MIN_PYTHON", (99, 0))
    assert not doctor.check_python().ok


def test_missing_core_models_name_their_notebooks_and_the_command(scratch, monkeypatch):
    folder = scratch / "notebooks"
    folder.mkdir()

    def notebook(name, heading, outputs):
        cells = [{"cell_type": "markdown", "source": [f"## {heading}\n"], "metadata": {}},
                 {"cell_type": "code", "source": "x", "metadata": {}, "execution_count": 1,
                  "outputs": [{"output_type": "stream", "name": "stdout", "text": outputs}]}]
        (folder / f"{name}.ipynb").write_text(json.dumps({"cells": cells}))
    notebook("01_core", "1. The idea · core", ["Loaded from cache: MLPVAE-0123456789abcdef.pt\n",
                                                "Loaded from cache: MLPVAE-fedcba9876543210.pt\n"])
    notebook("07_deeper", "1. More · deeper", "Loaded from cache: ConvVAE-0000000000000000.pt\n")
    monkeypatch.setattr(doctor, "NOTEBOOKS", folder)
    assert doctor.core_notebooks() == ["01_core"]
    cache = scratch / "checkpoints"
    checkpoints.save(MLPVAE(2), cache / "MLPVAE-0123456789abcdef.pt")
    result = doctor.check_models()
    assert not result.ok and "1 of the 2 trained models" in result.text
    assert result.fix.endswith("tools/nbtool.py build 01_core")
    checkpoints.save(MLPVAE(2), cache / "MLPVAE-fedcba9876543210.pt")
    assert doctor.check_models().ok


def test_the_stored_outputs_name_the_models_the_core_notebooks_load():
    """What `make doctor` and `make workshop-bundle` go by: re-execute the notebooks with a
    warm cache (their `Loaded from cache:` lines name the entries) if this fails."""
    named = {name: doctor.models_named(name) for name in doctor.core_notebooks()}
    assert "05_training_a_vae" in named and named["05_training_a_vae"], named


def test_the_cache_is_counted_by_the_mode_each_entry_was_written_in(scratch, monkeypatch):
    cache = scratch / "checkpoints"
    checkpoints.save(MLPVAE(2), cache / "a.pt")
    monkeypatch.setenv("COURSE_FAST", "1")
    checkpoints.save(MLPVAE(2), cache / "b.pt")
    (cache / "c.pt").write_bytes(b"not a checkpoint")
    assert doctor.cache_modes(cache) == {"full": 1, "fast": 1, "mode not recorded": 0,
                                         "unusable": 1}


def test_the_doctor_names_the_notebooks_kernel():
    assert doctor.KERNEL == load_script("tools", "notebooks").KERNEL


def test_lab_settings_switch_off_the_news_prompt_as_jupyterlab_reads_them(tmp_path, monkeypatch):
    """The overrides file, read by jupyterlab_server's own code, against the installed schema."""
    from jupyterlab.commands import get_app_dir
    from jupyterlab_server.settings_utils import _get_overrides, get_settings

    monkeypatch.setattr(lab_settings, "app_settings_dir", lambda: tmp_path)
    assert not lab_settings.installed()
    lab_settings.install()
    assert lab_settings.installed()
    overrides, error = _get_overrides(str(tmp_path))
    assert not error and overrides == lab_settings.OVERRIDES
    schemas = Path(get_app_dir()) / "schemas"
    found, _ = get_settings(str(tmp_path), str(schemas), str(tmp_path / "user"),
                            schema_name=lab_settings.PLUGIN, overrides=overrides)
    properties = found["schema"]["properties"]
    assert properties["fetchNews"]["default"] == "false"          # "Never", not "Ask"
    assert properties["checkForUpdates"]["default"] is False
    monkeypatch.undo()
    assert lab_settings.app_settings_dir() == Path(get_app_dir()) / "settings"


def dry_run(*targets: str) -> list[str]:
    """What `make` would run for these targets with everything remade, as plain commands."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS")}
    done = subprocess.run(["make", "-n", "-B", "BIN=", *targets], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def test_lab_and_doctor_never_fetch_data_and_install_writes_the_lab_settings():
    for target in ("lab", "doctor"):
        commands = dry_run(target)
        assert not [c for c in commands if "companion.data" in c or "system.py" in c], target
    assert "python -m companion doctor" in dry_run("doctor")
    install = dry_run("install")
    assert install.index("python -m companion lab-settings") > install.index(
        'python -m pip install -e ".[test]"')


def test_install_is_not_rerun_when_its_stamp_is_current(tmp_path):
    """`make lab` on a set-up machine runs no pip: the stamp is newer than pyproject.toml."""
    (tmp_path / ".course-installed").touch()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "MAKEFLAGS")}
    done = subprocess.run(["make", "-n", f"BIN={tmp_path}/", "lab"], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=True)
    assert "pip install" not in done.stdout and "jupyter lab" in done.stdout
