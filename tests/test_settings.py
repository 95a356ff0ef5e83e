"""Settings come from the environment; seeding makes CPU runs repeat."""
from pathlib import Path

import pytest
import torch

import companion
from companion import settings


def test_fast_mode_and_pick(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    assert settings.fast_mode() and settings.pick(100, 2) == 2
    monkeypatch.setenv("COURSE_FAST", "0")
    assert not settings.fast_mode() and settings.pick(100, 2) == 100


def test_data_dir_and_device_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert settings.data_dir() == tmp_path.resolve()
    monkeypatch.delenv("COURSE_DATA")
    assert settings.data_dir() == Path(settings.REPO_ROOT) / "data"
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert settings.device() == torch.device("cpu")


def test_ci_implies_offline(monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    monkeypatch.setenv("CI", "true")
    assert settings.offline()
    monkeypatch.setenv("CI", "")
    assert not settings.offline()


def test_seed_offset_shifts_training_seeds_and_explains_a_bad_value(monkeypatch):
    monkeypatch.delenv("COURSE_SEED_OFFSET", raising=False)
    assert settings.seed_offset() == 0 and settings.training_seed(5) == 5
    monkeypatch.setenv("COURSE_SEED_OFFSET", "2")
    assert settings.seed_offset() == 2 and settings.training_seed(5) == 7
    monkeypatch.setenv("COURSE_SEED_OFFSET", "two")
    with pytest.raises(ValueError, match="whole number"):
        settings.training_seed(5)


def test_seeding_repeats_random_numbers():
    settings.seed_everything(3)
    a = torch.randn(5)
    settings.seed_everything(3)
    assert torch.equal(a, torch.randn(5))


def test_setup_prints_mode_device_and_sources(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    companion.setup(seed=1, datasets=["mnist"])
    line = capsys.readouterr().out.strip()
    assert line.startswith("mode=fast | device=cpu | torch=") and "mnist from " in line
