"""Checkpoints: round trip, refusal of a mismatched one, the train-or-load cache and what
it must never keep (interrupted runs are tested with fit, in test_training.py)."""
import inspect
import json
import math
import threading

import pytest
import torch
from conftest import random_images

from companion import checkpoints
from companion.checkpoints import (CheckpointMismatch, cache_key, cache_path, load, save,
                                   train_or_load)
from companion.data import ImageSet
from companion.losses import Objective
from companion.models import MLPVAE, Autoencoder, ConvVAE
from companion.training import History, SampleStrip, evaluate


def tiny_data(n=256):
    return random_images(n)


def test_round_trip_keeps_weights_and_history(tmp_path):
    model = MLPVAE(3)
    history = History(loss=[1.0, 0.5])
    path = save(model, tmp_path / "m.pt", history, {"epochs": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]   # no temporary file left
    loaded, meta = load(path, device="cpu")
    assert isinstance(loaded, MLPVAE) and loaded.latent_dim == 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 loaded.state_dict().values()))
    assert meta["history"]["loss"] == [1.0, 0.5] and meta["training"] == {"epochs": 2}
    assert meta["format"] == checkpoints.FORMAT


def test_checkpoint_of_another_latent_size_is_refused(tmp_path):
    path = save(MLPVAE(2), tmp_path / "m.pt")
    with pytest.raises(CheckpointMismatch, match=r"holds MLPVAE\(latent_dim=2, hidden=400, "
                                                 r"likelihood=bernoulli\), but the model given "
                                                 r"is MLPVAE\(latent_dim=20"):
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
    key = cache_key(model, data, {"epochs": 2})
    assert key == cache_key(MLPVAE(2), data, {"epochs": 2, "lr": 1e-3})  # default filled in
    assert key != cache_key(model, data, {"epochs": 3})
    assert key != cache_key(MLPVAE(3), data, {"epochs": 2})
    assert key != cache_key(model, data.subset(100), {"epochs": 2})
    monkeypatch.setenv("COURSE_FAST", "1")
    assert key != cache_key(model, data, {"epochs": 2})
    monkeypatch.delenv("COURSE_FAST")
    monkeypatch.setattr(checkpoints, "FORMAT", checkpoints.FORMAT + 1)   # a code change
    assert key != cache_key(model, data, {"epochs": 2})


def test_cache_key_follows_the_training_tensors_not_the_tag():
    model, data = MLPVAE(2), tiny_data()
    key = cache_key(model, data, {"epochs": 2})
    copy = ImageSet(data.images.clone(), data.labels.clone(), data.classes, "another tag")
    assert cache_key(model, copy, {"epochs": 2}) == key              # same tensors, other tag
    pixel = data.images.clone()
    pixel[17, 0, 5, 9] += 0.01
    assert cache_key(model, ImageSet(pixel, data.labels, data.classes, data.tag),
                     {"epochs": 2}) != key                            # one pixel
    other = ImageSet(data.images[1:], data.labels[1:], data.classes, data.tag)
    shorter = ImageSet(data.images[:-1], data.labels[:-1], data.classes, data.tag)
    assert len({key, cache_key(model, other, {"epochs": 2}),
                cache_key(model, shorter, {"epochs": 2})}) == 3      # other subsets, same tag


def test_cache_key_leaves_out_the_test_set_and_the_callbacks():
    model, data = MLPVAE(2), tiny_data()
    key = cache_key(model, data, {"epochs": 2})
    for unrelated in ({"test_data": tiny_data(64)}, {"progress": False}, {"on_batch": print},
                      {"progress": True, "on_batch": SampleStrip()}):
        assert cache_key(model, data, {"epochs": 2, **unrelated}) == key, unrelated
    assert cache_key(model, data, {"epochs": 2, "objective": Objective()}) == key   # default
    assert cache_key(model, data, {"epochs": 2, "objective": Objective(beta=4)}) != key


def test_cache_key_refuses_an_unknown_setting_and_lists_fits_parameters():
    model, data = MLPVAE(2), tiny_data()
    with pytest.raises(TypeError, match=r"'beta'.*fit takes: epochs, objective, lr, batch_size, "
                                        r"test_data, seed.*objective=Objective\(beta=\.\.\."):
        cache_key(model, data, {"epochs": 2, "beta": 4})


def test_code_version_changes_when_a_models_code_or_the_losses_change(monkeypatch):
    import sys

    from companion import gaussians, losses
    from companion.models import VAE
    vae, conv = MLPVAE(2), ConvVAE(2, channels=(4, 8))
    versions = {m: checkpoints.code_version(m) for m in (vae, conv)}
    key = cache_key(vae, tiny_data(), {"epochs": 2})
    assert checkpoints.code_version(MLPVAE(3)) == versions[vae]        # the code, not the config
    real = inspect.getsource

    def edited(*changed):
        monkeypatch.setattr(inspect, "getsource",
                            lambda obj: real(obj) + ("# edited" if obj in changed else ""))

    edited(sys.modules[MLPVAE.__module__])          # the module of the model's own class
    assert checkpoints.code_version(vae) != versions[vae]
    assert checkpoints.code_version(conv) == versions[conv]
    assert cache_key(vae, tiny_data(), {"epochs": 2}) != key
    for module in (sys.modules[VAE.__module__], losses, gaussians):   # shared by both models
        edited(module)
        assert all(checkpoints.code_version(m) != versions[m] for m in (vae, conv)), module
    edited()
    assert checkpoints.code_version(vae) == versions[vae]


def test_code_version_covers_the_modules_of_a_models_parts(monkeypatch):
    import sys

    from companion.models import PriorVAE
    vae, mixture = MLPVAE(2), PriorVAE(2, hidden=8, prior="mixture", components=3)
    versions = {m: checkpoints.code_version(m) for m in (vae, mixture)}
    real = inspect.getsource
    priors = sys.modules[type(mixture.prior).__module__]                 # companion.priors
    monkeypatch.setattr(inspect, "getsource",
                        lambda obj: real(obj) + ("# edited" if obj is priors else ""))
    assert checkpoints.code_version(mixture) != versions[mixture]      # its prior's code
    assert checkpoints.code_version(vae) == versions[vae]


def test_code_version_covers_a_model_class_written_outside_the_package():
    class Mine(MLPVAE):
        pass

    class Other(MLPVAE):
        def decode(self, z):
            return super().decode(z)

    assert checkpoints.code_version(Mine(2)) != checkpoints.code_version(MLPVAE(2))
    assert checkpoints.code_version(Mine(2)) != checkpoints.code_version(Other(2))


def test_a_seed_offset_gets_its_own_cache_key_and_offset_zero_keeps_the_old_one(monkeypatch):
    monkeypatch.delenv("COURSE_SEED_OFFSET", raising=False)
    model, data = MLPVAE(2), tiny_data()
    key = cache_key(model, data, {"epochs": 2})
    monkeypatch.setenv("COURSE_SEED_OFFSET", "0")
    assert cache_key(model, data, {"epochs": 2}) == key
    monkeypatch.setenv("COURSE_SEED_OFFSET", "1")
    shifted = cache_key(model, data, {"epochs": 2})
    monkeypatch.setenv("COURSE_SEED_OFFSET", "2")
    assert len({key, shifted, cache_key(model, data, {"epochs": 2})}) == 3


def test_a_new_fit_option_with_a_default_keeps_the_cache_key(monkeypatch):
    model, data = MLPVAE(2), tiny_data()
    key = cache_key(model, data, {"epochs": 2})
    params = list(checkpoints.FIT_SIGNATURE.parameters.values())
    added = inspect.Parameter("new_option", inspect.Parameter.KEYWORD_ONLY, default=0.5)
    monkeypatch.setattr(checkpoints, "FIT_SIGNATURE",
                        checkpoints.FIT_SIGNATURE.replace(parameters=params + [added]))
    assert key == cache_key(model, data, {"epochs": 2})
    assert key != cache_key(model, data, {"epochs": 2, "new_option": 0.7})


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


def no_training(*args, **kwargs):
    raise AssertionError("fit must not run when the cache holds the model")


def test_a_cached_model_with_another_test_set_is_loaded_and_measured_on_this_one(
        scratch, monkeypatch):
    train, first_test, second_test = tiny_data(), random_images(64), random_images(32)
    second_test = ImageSet(1 - second_test.images, second_test.labels, second_test.classes,
                           "flipped")
    torch.manual_seed(0)
    trained = MLPVAE(2, hidden=16)
    kwargs = dict(epochs=3, batch_size=64, progress=False)
    history = train_or_load(trained, train, first_test, **kwargs)
    assert len(history.test_loss) == 3 and all(map(math.isfinite, history.test_loss))
    monkeypatch.setattr(checkpoints, "fit", no_training)

    same_test = train_or_load(MLPVAE(2, hidden=16), train, first_test, **kwargs)
    assert same_test == history                                 # the same test set: as stored

    model = MLPVAE(2, hidden=16)
    torch.manual_seed(5)
    again = train_or_load(model, train, second_test, **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 trained.state_dict().values()))
    assert again.loss == history.loss and again.reconstruction == history.reconstruction
    for column in (again.test_loss, again.test_reconstruction, again.test_kl):
        assert len(column) == 3 and all(math.isnan(v) for v in column[:2])
        assert math.isfinite(column[-1])
    torch.manual_seed(5)                                        # the same z noise as inside
    measured = evaluate(model, second_test)
    assert again.test_loss[-1] == pytest.approx(measured.total)
    assert again.test_kl[-1] == pytest.approx(measured.kl)
    assert again.test_loss[-1] != pytest.approx(history.test_loss[-1])

    without = train_or_load(MLPVAE(2, hidden=16), train, **kwargs)
    assert without.loss == history.loss and without.test_loss == []   # no test set: no columns


def test_two_writers_of_the_same_file_leave_one_that_loads(tmp_path, monkeypatch):
    real_save, both_writing = torch.save, threading.Barrier(2, timeout=10)

    def slow_save(obj, f):   # both threads hold a temporary file before either renames it
        real_save(obj, f)
        both_writing.wait()

    monkeypatch.setattr(torch, "save", slow_save)
    models, errors = [MLPVAE(2), MLPVAE(2)], []

    def write(model):
        try:
            save(model, tmp_path / "same.pt", History(loss=[1.0]))
        except Exception as err:   # noqa: BLE001 - collected and reported by the assert
            errors.append(err)

    threads = [threading.Thread(target=write, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded, _ = load(tmp_path / "same.pt", device="cpu")
    assert any(all(torch.equal(a, b) for a, b in zip(m.state_dict().values(),
                                                     loaded.state_dict().values())) for m in models)
    assert [p.name for p in tmp_path.iterdir()] == ["same.pt"]


def test_weights_that_do_not_fit_are_refused_and_leave_the_model_untouched(tmp_path):
    path = save(MLPVAE(2), tmp_path / "m.pt")
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["mu.weight"] = torch.zeros(3, 400)     # as if the code had changed
    torch.save(blob, path)
    model = MLPVAE(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatch, match="do not fit MLPVAE"):
        load(path, model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_of_an_older_format_is_refused(tmp_path):
    path = save(MLPVAE(2), tmp_path / "m.pt")
    blob = torch.load(path, weights_only=True)
    blob["meta"] = json.dumps({**json.loads(blob["meta"]), "format": 1})
    torch.save(blob, path)
    with pytest.raises(CheckpointMismatch, match=r"another version of the course code \(format "
                                                 r"1; this code reads format \d+\)"):
        load(path)


@pytest.mark.parametrize("damage", ["truncated", "older format"])
def test_a_cache_entry_that_cannot_be_loaded_is_reported_and_trained_again(
        scratch, capsys, damage):
    torch.manual_seed(0)
    kwargs = dict(epochs=1, progress=False)
    train_or_load(MLPVAE(2), tiny_data(), **kwargs)
    trained = MLPVAE(2)
    path, = (scratch / "checkpoints").glob("MLPVAE-*.pt")
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    else:
        blob = torch.load(path, weights_only=True)
        blob["meta"] = json.dumps({**json.loads(blob["meta"]), "format": 1})
        torch.save(blob, path)
    capsys.readouterr()
    torch.manual_seed(0)
    again = MLPVAE(2)
    history = train_or_load(again, tiny_data(), **kwargs)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"Cannot use the cached {path.name} (")
    assert out[0].endswith("training it again.")
    assert history.epochs == 1
    load(path, trained, device="cpu")                       # the new entry loads again
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(),
                                                 trained.state_dict().values()))


def test_train_or_load_refuses_bernoulli_on_bad_targets_before_a_cache_hit(scratch):
    data = tiny_data()
    shifted = ImageSet(data.images * 2 - 0.5, data.labels, data.classes, "shifted")
    model = MLPVAE(2)
    save(model, cache_path(model, cache_key(model, shifted, {"epochs": 1})), History())
    with pytest.raises(ValueError,
                       match=r"shifted ranges from -0\.5.*likelihood=\"squared_error\""):
        train_or_load(model, shifted, epochs=1, progress=False)


# -- the sample strip, cached with its checkpoint ---------------------------------------------

def test_strip_is_cached_with_its_checkpoint(scratch, monkeypatch):
    torch.manual_seed(0)
    first, strip = ConvVAE(2, channels=(4, 8)), SampleStrip(n=3, every=4)
    kwargs = dict(epochs=2, batch_size=16, progress=False)
    history = train_or_load(first, tiny_data(96), strip=strip, **kwargs)
    assert strip.steps == [0, 4, 8, 12] and history.epochs == 2
    assert len(list((scratch / "checkpoints").iterdir())) == 1   # one file: weights and strip

    monkeypatch.setattr(checkpoints, "fit", no_training)
    second, again = ConvVAE(2, channels=(4, 8)), SampleStrip(n=3, every=4)
    assert train_or_load(second, tiny_data(96), strip=again, **kwargs) == history
    assert again.steps == strip.steps and torch.equal(again.images, strip.images)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values()))
    assert train_or_load(ConvVAE(2, channels=(4, 8)), tiny_data(96), **kwargs) == history


def test_a_cached_model_without_the_strip_asked_for_is_trained_again(scratch, capsys):
    kwargs = dict(epochs=1, batch_size=64, progress=False)
    torch.manual_seed(0)
    train_or_load(MLPVAE(2), tiny_data(), **kwargs)
    # none cached, then another n, then another every
    for strip in (SampleStrip(n=2, every=2), SampleStrip(n=3, every=2), SampleStrip(n=3, every=1)):
        torch.manual_seed(0)
        train_or_load(MLPVAE(2), tiny_data(), strip=strip, **kwargs)
        assert "cached without this sample strip" in capsys.readouterr().out
        assert strip.steps == list(range(0, 5, strip.every))


def test_train_or_load_takes_a_strip_or_an_on_batch_not_both(scratch):
    with pytest.raises(ValueError, match="either strip or on_batch"):
        train_or_load(MLPVAE(2), tiny_data(), strip=SampleStrip(), on_batch=print)
