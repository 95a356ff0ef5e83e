"""Checkpoints: round trip, refusal of a mismatched one, the train-or-load cache."""
import pytest
import torch
from conftest import random_images

from companion import checkpoints
from companion.checkpoints import CheckpointMismatch, cache_key, load, save, train_or_load
from companion.models import MLPVAE, Autoencoder
from companion.training import History


def tiny_data(n=256):
    return random_images(n)


def test_round_trip_keeps_weights_and_history(tmp_path):
    model = MLPVAE(3)
    history = History(loss=[1.0, 0.5])
    path = save(model, tmp_path / "m.pt", history, {"epochs": 2})
    assert not list(tmp_path.glob("*.part"))  # written atomically
    loaded, meta = load(path, device="cpu")
    assert isinstance(loaded, MLPVAE) and loaded.latent_dim == 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 loaded.state_dict().values()))
    assert meta["history"]["loss"] == [1.0, 0.5] and meta["training"] == {"epochs": 2}


def test_checkpoint_of_another_latent_size_is_refused(tmp_path):
    path = save(MLPVAE(2), tmp_path / "m.pt")
    with pytest.raises(CheckpointMismatch, match=r"holds MLPVAE\(latent_dim=2, hidden=400\), "
                                                 r"but the model given is MLPVAE\(latent_dim=20"):
        load(path, MLPVAE(20))


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = save(Autoencoder(2), tmp_path / "ae.pt")
    with pytest.raises(CheckpointMismatch, match="holds Autoencoder.*model given is MLPVAE"):
        load(path, MLPVAE(2))


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("hello")
    with pytest.raises(CheckpointMismatch, match="not a course checkpoint"):
        load(bogus)
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load(tmp_path / "missing.pt")


def test_cache_key_changes_with_what_changes_the_result(monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)
    model, data = MLPVAE(2), tiny_data()
    key = cache_key(model, data, None, {"epochs": 2})
    assert key == cache_key(MLPVAE(2), data, None, {"epochs": 2, "lr": 1e-3})  # default filled in
    assert key != cache_key(model, data, None, {"epochs": 3})
    assert key != cache_key(MLPVAE(3), data, None, {"epochs": 2})
    assert key != cache_key(model, data.subset(100), None, {"epochs": 2})
    monkeypatch.setenv("COURSE_FAST", "1")
    assert key != cache_key(model, data, None, {"epochs": 2})


def test_train_or_load_trains_once(scratch, monkeypatch):
    torch.manual_seed(0)
    first = MLPVAE(2)
    history = train_or_load(first, tiny_data(), epochs=1, progress=False)
    assert len(list((scratch / "checkpoints").glob("MLPVAE-*.pt"))) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("fit must not run when the cache holds the model")

    monkeypatch.setattr(checkpoints, "fit", no_training)
    second = MLPVAE(2)
    again = train_or_load(second, tiny_data(), epochs=1, progress=False)
    assert again == history
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values()))
