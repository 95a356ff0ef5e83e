"""fit(): learning, determinism, warm-up, callbacks, the guards (NaN, Ctrl-C, targets,
devices, arguments), train/eval mode, the sample strip, the optimizer's fallback, and a loop
that knows no model kinds."""
import ast
import contextlib
import inspect
import re

import pytest
import torch
from conftest import random_images
from torch import nn

from companion import checkpoints, losses, training
from companion.checkpoints import train_or_load
from companion.data import ImageSet, load
from companion.losses import RECONSTRUCTION, Objective
from companion.models import (MLPVAE, MODELS, VQVAE, Autoencoder, BatchNormConvVAE,
                              ConditionalVAE, eval_mode)
from companion.training import (History, SampleStrip, TrainingDiverged, autocast, evaluate, fit,
                                make_optimizer, train_step)


@pytest.fixture(scope="module")
def mnist():
    train = load("mnist", "train", device="cpu")
    return train.subset(1024), load("mnist", "test", device="cpu").subset(512)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_vae_learns_and_history_is_complete(mnist):
    train, test = mnist
    torch.manual_seed(0)
    model = MLPVAE(latent_dim=8)
    before = evaluate(model, test).total
    history = fit(model, train, epochs=3, test_data=test, progress=False)
    assert history.epochs == 3 and len(history.test_loss) == 3
    assert history.test_loss[-1] < before - 100
    assert history.loss[-1] < history.loss[0]
    assert all(kl >= 0 for kl in history.kl)
    for total, rec, kl in zip(history.loss, history.reconstruction, history.kl):
        assert total == pytest.approx(rec + kl, rel=1e-5)
    assert not model.training


def test_autoencoder_trains_with_the_squared_error(mnist):
    torch.manual_seed(0)
    model = Autoencoder(2, 100, likelihood="squared_error")
    history = fit(model, mnist[0], epochs=2, progress=False)
    assert history.kl == [0.0, 0.0] and history.loss[1] < history.loss[0]
    x = mnist[0].images[:64]
    assert evaluate(model, mnist[0].subset(64)).reconstruction == pytest.approx(
        losses.squared_error(model(x), x).mean().item(), rel=1e-5)   # the model's own loss


def test_a_seed_offset_trains_as_the_shifted_seed_would(mnist, monkeypatch):
    runs = {}
    for offset, seed in ((0, 5), (2, 3), (0, 3)):
        monkeypatch.setenv("COURSE_SEED_OFFSET", str(offset))
        torch.manual_seed(0)
        model = MLPVAE(4)
        fit(model, mnist[0], epochs=1, seed=seed, progress=False)
        runs[offset, seed] = weights(model)
    assert same(runs[0, 5], runs[2, 3]) and not same(runs[0, 3], runs[2, 3])


def test_cpu_training_repeats_bit_for_bit(mnist):
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MLPVAE(4)
        fit(model, mnist[0], epochs=1, seed=5, progress=False)
        runs.append(weights(model))
    assert same(*runs)


def test_warmup_ramps_beta_from_zero(mnist):
    torch.manual_seed(0)
    warm = fit(MLPVAE(4), mnist[0], epochs=1, objective=Objective(warmup_epochs=1),
               progress=False)
    torch.manual_seed(0)
    plain = fit(MLPVAE(4), mnist[0], epochs=1, progress=False)
    assert warm.loss[0] < plain.loss[0]  # the KL counts for less while beta ramps up


def test_callback_before_training_and_after_every_batch(mnist):
    steps = []
    fit(MLPVAE(2), mnist[0], epochs=1, batch_size=64, on_batch=lambda m, s: steps.append(s),
        progress=False)
    assert steps == list(range(17))   # before training, then after each of the 16 batches


def test_nan_loss_stops_with_a_clear_message_and_keeps_good_weights(mnist):
    images = mnist[0].images[:256].clone()
    images[200] = float("nan")  # lands in some batch of the first epoch
    bad = ImageSet(images, mnist[0].labels[:256], mnist[0].classes, "with-nan")
    model = MLPVAE(2)
    with pytest.raises(TrainingDiverged,
                       match=r"Epoch 1, batch \d: the loss became NaN.*last good weights") as err:
        fit(model, bad, epochs=2, batch_size=64, progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert err.value.history.epochs == 0


def test_ctrl_c_keeps_the_last_finished_epoch(mnist):
    model, snapshots = MLPVAE(2), {}

    def interrupt(m, step):    # 8 batches per epoch: step 8 ends epoch 1, step 12 is in epoch 2
        snapshots[step] = weights(m)
        if step == 12:
            raise KeyboardInterrupt

    history = fit(model, mnist[0], epochs=3, batch_size=128, on_batch=interrupt, progress=False)
    assert history.epochs == 1
    assert same(weights(model), snapshots[8])
    assert not same(weights(model), snapshots[12])


def test_model_and_data_on_different_devices_fail_early_with_a_clear_message(mnist, scratch):
    # "meta" tensors have a device but no memory: a second device without a GPU.
    train, test = mnist
    on_meta = MLPVAE(2).to("meta")
    with pytest.raises(RuntimeError, match=r"model is on meta but the data are on cpu: move "
                                           r"the model with model\.to\(settings\.device\(\)\)"):
        fit(on_meta, train, epochs=1, progress=False)
    with pytest.raises(RuntimeError, match="model is on meta but the data are on cpu"):
        train_or_load(on_meta, train, epochs=1, progress=False)      # through the cache, too
    assert not (scratch / "checkpoints").exists()                      # nothing was saved
    train_or_load(MLPVAE(2), train, epochs=1, progress=False)            # now it is cached
    with pytest.raises(RuntimeError, match="model is on meta but the data are on cpu"):
        train_or_load(MLPVAE(2).to("meta"), train, epochs=1, progress=False)   # a cache hit
    meta_test = test.to("meta")
    with pytest.raises(RuntimeError, match="model is on cpu but the data are on meta"):
        fit(MLPVAE(2), train, epochs=1, test_data=meta_test, progress=False)   # test data too


# -- KL warm-up: which beta each number uses ------------------------------------------------

def test_warmup_history_also_records_the_loss_at_the_full_beta(mnist):
    torch.manual_seed(0)
    warm = fit(MLPVAE(4), mnist[0], epochs=2, objective=Objective(beta=2.0, warmup_epochs=1),
               progress=False)
    for full, rec, kl in zip(warm.full_beta_loss, warm.reconstruction, warm.kl):
        assert full == pytest.approx(rec + 2.0 * kl, rel=1e-6)
    assert warm.full_beta_loss[0] > warm.loss[0]        # the ramp kept epoch 1's beta low
    assert warm.full_beta_loss[1] == pytest.approx(warm.loss[1], rel=1e-5)   # full beta after
    torch.manual_seed(0)
    plain = fit(MLPVAE(4), mnist[0], epochs=1, progress=False)
    assert plain.full_beta_loss[0] == pytest.approx(plain.loss[0], rel=1e-5)


# -- the model interface: the loss contract, train/eval mode ---------------------------------

class Noisy(nn.Module):
    """A tiny VAE-like model with BatchNorm and Dropout, outside the course's class tree: it
    keeps the contract (likelihood, check_objective, loss, sample) and nothing else."""
    likelihood = "bernoulli"
    latent_dim = 2

    def check_objective(self, objective):   # every setting applies to its ELBO
        pass

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 4))
        self.dec = nn.Sequential(nn.Linear(2, 784), nn.BatchNorm1d(784), nn.Dropout(0.5))

    def decode(self, z):
        return self.dec(z).view(-1, 1, 28, 28)

    def loss(self, x, y=None, objective=Objective()):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        nll = losses.bernoulli_nll(self.decode(mu), x)
        return losses.elbo(nll, mu, mu, logvar, objective)

    @torch.no_grad()
    def sample(self, n, generator=None):
        with eval_mode(self):
            return torch.sigmoid(self.decode(torch.randn(n, 2, generator=generator)))


def test_fit_trains_any_model_that_keeps_the_loss_contract():
    torch.manual_seed(0)
    model, data = Noisy(), random_images(64)
    before = weights(model)
    history = fit(model, data, epochs=2, batch_size=16, objective=Objective(beta=2.0),
                  progress=False)
    assert not same(before, weights(model)) and not model.training
    for total, reconstruction, kl in zip(history.loss, history.reconstruction, history.kl):
        assert kl > 0 and total == pytest.approx(reconstruction + 2.0 * kl, rel=1e-5)


def test_fit_knows_no_model_kinds():
    """training.py asks the model for its loss and nothing else: no isinstance/getattr on the
    model, no hasattr, and no course model's class name anywhere in its code."""
    tree = ast.parse(inspect.getsource(training))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    names |= {alias.asname or alias.name for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) for alias in node.names}
    course = {name for name, cls in MODELS.items() if cls.__module__.startswith("companion.")}
    assert course and not names & (course | {"VAE", "LatentModel", "Model"})
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "getattr", "isinstance", "hasattr", "type"):
            first = node.args[0] if node.args else None
            assert not (isinstance(first, ast.Name) and first.id == "model"), ast.unparse(node)
    assert "is_vae" not in names   # the kind flags of the old loop are gone


@pytest.mark.parametrize("caller", ["train", "eval", "frozen BatchNorm"])
def test_evaluate_and_the_strip_run_in_eval_mode_and_restore_the_callers_mode(caller):
    torch.manual_seed(0)
    model, data = Noisy(), random_images(64)
    model.train(caller != "eval")
    if caller == "frozen BatchNorm":
        model.dec[1].eval()                                # a mode set layer by layer
    modes = [m.training for m in model.modules()]
    stats = model.dec[1].running_mean.clone()
    first, second = evaluate(model, data), evaluate(model, data)
    assert first == second                                 # Dropout off: the same numbers
    strip = SampleStrip(n=3, every=1)
    strip(model, 0)
    strip(model, 1)
    assert torch.equal(strip.frames[0], strip.frames[1])
    assert torch.equal(model.dec[1].running_mean, stats)  # BatchNorm only read its statistics
    assert [m.training for m in model.modules()] == modes


# -- the sample strip ---------------------------------------------------------------------------

def test_strip_is_taken_before_training_and_every_n_batches():
    torch.manual_seed(0)
    strip = SampleStrip(n=3, every=4)
    fit(MLPVAE(2), random_images(96), epochs=2, batch_size=16, on_batch=strip, progress=False)
    assert strip.steps == [0, 4, 8, 12] and strip.images.shape == (4, 3, 1, 28, 28)
    assert 0 <= strip.images.min() and strip.images.max() <= 1
    assert not torch.equal(strip.images[0], strip.images[-1])


def test_strip_does_not_change_training():
    kwargs = dict(epochs=1, batch_size=16, progress=False)
    torch.manual_seed(0)
    with_strip = BatchNormConvVAE(2, width=4)
    fit(with_strip, random_images(96), on_batch=SampleStrip(n=2, every=2), **kwargs)
    torch.manual_seed(0)
    plain = BatchNormConvVAE(2, width=4)
    fit(plain, random_images(96), **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(with_strip.state_dict().values(),
                                                 plain.state_dict().values()))


# -- guards ---------------------------------------------------------------------------------

def test_bernoulli_refuses_targets_outside_0_1_and_names_the_fix(mnist):
    train, test = mnist
    standardised = ImageSet((train.images - 0.13) / 0.31, train.labels, train.classes, "std")
    fix = 'likelihood="squared_error"'
    assert fix.split('"')[1] in RECONSTRUCTION            # the fix names a loss that exists
    with pytest.raises(ValueError, match=r"Bernoulli likelihood needs pixels in \[0, 1\], but "
                                         r"std ranges from -0\.419 to 2\.81.*Rescale.*" + fix):
        fit(MLPVAE(2), standardised, epochs=1, progress=False)
    with pytest.raises(ValueError, match="std ranges from"):            # test data, too
        fit(MLPVAE(2), train, epochs=1, test_data=standardised, progress=False)
    history = fit(Autoencoder(2, likelihood="squared_error"), standardised.subset(256), epochs=1,
                  progress=False)
    assert history.epochs == 1


def test_progress_bar_is_closed_when_training_diverges(mnist, monkeypatch):
    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.closed = False
            bars.append(self)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def update(self, n=1):
            pass

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            self.closed = True

    monkeypatch.setattr(training, "tqdm", Bar)
    images = mnist[0].images[:128].clone()
    images[100] = float("nan")
    bad = ImageSet(images, mnist[0].labels[:128], mnist[0].classes, "with-nan")
    with pytest.raises(TrainingDiverged):
        fit(MLPVAE(2), bad, epochs=1, batch_size=64)
    assert len(bars) == 1 and bars[0].closed


def test_ctrl_c_inside_train_or_load_caches_nothing(mnist, scratch, monkeypatch, capsys):
    model, snapshots = MLPVAE(2), {}

    def interrupt(m, step):    # 8 batches per epoch: stop in the middle of epoch 2
        snapshots[step] = weights(m)
        if step == 12:
            raise KeyboardInterrupt

    history = train_or_load(model, mnist[0], epochs=3, on_batch=interrupt, progress=False)
    assert history.interrupted and history.epochs == 1
    assert same(weights(model), snapshots[8])                 # the last finished epoch, in memory
    assert "Nothing was cached" in capsys.readouterr().out
    assert not list((scratch / "checkpoints").glob("*"))      # nothing written, not even a temp
    calls = []
    monkeypatch.setattr(checkpoints, "fit", lambda *a, **k: calls.append(1) or History())
    train_or_load(MLPVAE(2), mnist[0], epochs=3, progress=False)
    assert calls == [1]                                       # the next run trains again


def test_ctrl_c_with_a_strip_caches_nothing(scratch):
    class Stop(SampleStrip):
        def __call__(self, model, step):
            super().__call__(model, step)
            if step == 4:
                raise KeyboardInterrupt

    strip = Stop(n=2, every=4)
    history = train_or_load(MLPVAE(2), random_images(96), strip=strip, epochs=2,
                            batch_size=16, progress=False)
    assert history.interrupted and strip.steps == [0, 4]
    assert not list((scratch / "checkpoints").glob("*"))


# -- the optimizer ----------------------------------------------------------------------------

@pytest.mark.parametrize("error", [RuntimeError, TypeError])
def test_make_optimizer_falls_back_when_fused_adam_is_missing(monkeypatch, error):
    real = torch.optim.Adam

    def old_adam(params, fused=None, **kwargs):   # what torch < 2.4 does on the CPU
        if fused:
            raise error("`fused=True` requires all the params to be CUDA tensors")
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", old_adam)
    model = MLPVAE(2)
    optimizer = make_optimizer(model)
    assert not optimizer.defaults["fused"] and optimizer.defaults["betas"] == (0.9, 0.999)
    before = weights(model)
    training.train_step(model, optimizer, random_images(8).images)
    assert not same(before, weights(model))


def test_make_optimizer_uses_the_fused_kernel_where_there_is_one():
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    fused_on_cpu = (major, minor) >= (2, 4)   # torch 2.4 added the fused CPU kernel
    assert bool(make_optimizer(MLPVAE(2)).defaults["fused"]) == fused_on_cpu


# -- the total-correlation penalty (beta-TCVAE) -------------------------------------------------

def test_tc_weight_adds_the_total_correlation_of_the_sampled_codes():
    from companion.losses import total_correlation
    torch.manual_seed(0)
    model, x = MLPVAE(3), random_images(64).images
    torch.manual_seed(1)
    plain = model.loss(x)
    torch.manual_seed(1)
    penalised = model.loss(x, objective=Objective(tc_weight=4.0))
    torch.manual_seed(1)
    mu, logvar = model.encode(x)
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)         # the z the decoder scores
    tc = total_correlation(z, mu, logvar).mean()
    assert torch.equal(penalised.reconstruction, plain.reconstruction)
    assert torch.equal(penalised.kl, plain.kl)
    assert torch.allclose(penalised.total, plain.total + 4.0 * tc)


def test_fit_with_tc_weight_trains_and_gets_its_own_cache_key(mnist):
    train, _ = mnist
    torch.manual_seed(0)
    model = MLPVAE(4)
    history = fit(model, train, epochs=2, batch_size=64, objective=Objective(tc_weight=5.0),
                  progress=False)
    assert history.loss[-1] < history.loss[0]
    torch.manual_seed(0)
    plain = MLPVAE(4)
    fit(plain, train, epochs=2, batch_size=64, progress=False)
    assert not same(weights(model), weights(plain))
    key = checkpoints.cache_key(model, train, {"epochs": 2})
    assert key == checkpoints.cache_key(model, train, {"epochs": 2,
                                                       "objective": Objective(tc_weight=0.0)})
    assert key != checkpoints.cache_key(model, train, {"epochs": 2,
                                                       "objective": Objective(tc_weight=5.0)})


# -- the NaN guard: no step changes the weights from the bad batch on -------------------------

FUSED_ON_CPU = tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 4)
needs_fused = pytest.mark.skipif(not FUSED_ON_CPU, reason="torch < 2.4 has no fused Adam on the CPU")


def adam_state(optimizer):
    return [{k: v.clone() for k, v in optimizer.state[p].items()}
            for group in optimizer.param_groups for p in group["params"]]


def same_state(a, b):
    return all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
               for x, y in zip(a, b))


def train_with_a_nan_batch(monkeypatch, fused: bool):
    """fit for 3 epochs of 4 batches, where batch 6 (epoch 2) alone holds NaN pixels; returns
    the model, the weights and Adam state after each step, and the TrainingDiverged raised."""
    optimizers = []

    def adam(model, lr=1e-3):
        optimizers.append(torch.optim.Adam(model.parameters(), lr=lr, fused=fused))
        return optimizers[-1]

    monkeypatch.setattr(training, "make_optimizer", adam)
    data = random_images(64)
    clean, snapshots = data.images.clone(), {}

    def on_batch(model, step):
        snapshots[step] = weights(model), adam_state(optimizers[0])
        data.images.copy_(clean)
        if step == 5:                     # the next batch, the 6th, is all NaN
            data.images.fill_(float("nan"))

    torch.manual_seed(0)
    model = MLPVAE(2, hidden=16)
    with pytest.raises(TrainingDiverged) as err:
        fit(model, data, epochs=3, batch_size=16, on_batch=on_batch, progress=False)
    assert optimizers[0].defaults["fused"] == fused
    return model, snapshots, err.value


@needs_fused
def test_fused_adam_skips_the_nan_batch_and_every_later_one_and_fit_stops_at_the_epoch_end(
        monkeypatch):
    model, snapshots, err = train_with_a_nan_batch(monkeypatch, fused=True)
    assert sorted(snapshots) == list(range(9))          # epoch 2 ran to its end (steps 6..8)
    good_weights, good_adam = snapshots[5]
    assert not same(snapshots[4][0], good_weights)      # the good batches did train
    for step in (6, 7, 8):                              # the NaN batch and the good ones after
        assert same(snapshots[step][0], good_weights), step
        assert same_state(snapshots[step][1], good_adam), step
    assert same(weights(model), good_weights)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert re.match(r"Epoch 2, batch 2: the loss became NaN", str(err))
    assert err.history.epochs == 1 and len(err.history.loss) == 1 and not model.training


def test_adam_without_a_fused_kernel_stops_at_once_with_the_weights_before_the_nan_batch(
        monkeypatch):
    model, snapshots, err = train_with_a_nan_batch(monkeypatch, fused=False)
    assert sorted(snapshots) == list(range(6))          # nothing ran after the NaN batch
    assert same(weights(model), snapshots[5][0])
    assert re.match(r"Epoch 2, batch 2: the loss became NaN", str(err))
    assert err.history.epochs == 1


@pytest.mark.parametrize("fused", [pytest.param(True, marks=needs_fused), False])
def test_train_step_alone_raises_at_once_and_leaves_the_weights(fused):
    model = MLPVAE(2, hidden=16)
    optimizer = torch.optim.Adam(model.parameters(), fused=fused)
    train_step(model, optimizer, random_images(8).images)
    before, state = weights(model), adam_state(optimizer)
    bad = torch.full((8, 1, 28, 28), float("nan"))
    with pytest.raises(TrainingDiverged, match="Batch 1: the loss became NaN"):
        train_step(model, optimizer, bad)
    assert same(weights(model), before) and same_state(adam_state(optimizer), state)


# -- autocast and the argument checks ---------------------------------------------------------

def test_autocast_is_a_null_context_for_fp32_and_refuses_an_unknown_precision():
    cpu = torch.device("cpu")
    plain = autocast(cpu, "fp32")
    assert isinstance(plain, contextlib.nullcontext) and not isinstance(plain, torch.autocast)
    assert isinstance(autocast(cpu, "bf16"), torch.autocast)
    with pytest.raises(ValueError,
                       match=r"precision must be one of \('fp32', 'bf16'\), not 'fp16'"):
        autocast(cpu, "fp16")
    model = MLPVAE(2, hidden=16)
    before = weights(model)
    with pytest.raises(ValueError, match="precision must be one of"):   # before any step
        fit(model, random_images(32), epochs=1, precision="fp16", progress=False)
    assert same(weights(model), before)


EMPTY = ImageSet(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), ("0",), "empty")


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(epochs=0), ValueError, r"fit\(epochs=0\): epochs takes a whole number >= 1"),
    (dict(epochs=2.5), ValueError, r"fit\(epochs=2\.5\): epochs takes a whole number >= 1"),
    (dict(batch_size=0), ValueError, r"fit\(batch_size=0\): batch_size takes a whole number"),
    (dict(lr=0), ValueError, r"lr is a learning rate > 0, not 0: e\.g\. lr=1e-3"),
    (dict(lr=-1e-3), ValueError, r"lr is a learning rate > 0"),
    (dict(objective=4), TypeError, r"objective is an Objective, e\.g\. Objective\(beta=4\), not 4"),
    (dict(data=EMPTY), ValueError, r"training set is empty: pass a dataset with at least one"),
])
def test_fit_refuses_bad_arguments_and_says_what_to_pass(kwargs, error, message):
    model = MLPVAE(2, hidden=16)
    before = weights(model)
    kwargs = {"data": random_images(32), "progress": False, **kwargs}
    with pytest.raises(error, match=message):
        fit(model, **kwargs)
    assert same(weights(model), before)


def test_fit_and_train_or_load_refuse_the_old_loss_keywords(scratch):
    with pytest.raises(TypeError, match="beta"):
        fit(MLPVAE(2, hidden=16), random_images(32), beta=4, progress=False)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'beta'.*fit takes: "
                                        r"epochs, objective, lr, batch_size.*"
                                        r"objective=Objective\(beta=\.\.\."):
        train_or_load(MLPVAE(2, hidden=16), random_images(32), beta=4)
    assert not (scratch / "checkpoints").exists()


# -- the sample strip with every kind of generative model -------------------------------------

def test_strip_records_frames_only_at_multiples_of_every():
    torch.manual_seed(0)
    strip, model = SampleStrip(n=2, seed=3, every=3), MLPVAE(2, hidden=16)
    for step in range(10):
        strip(model, step)
    assert strip.steps == [0, 3, 6, 9] and strip.images.shape == (4, 2, 1, 28, 28)
    assert strip.state()["every"] == 3
    assert SampleStrip(n=2, seed=3, every=3).matches(strip.state())
    for other in (SampleStrip(n=2, seed=3, every=4), SampleStrip(n=3, seed=3, every=3),
                  SampleStrip(n=2, seed=4, every=3)):
        assert not other.matches(strip.state())
    for bad in (dict(every=0), dict(n=0), dict(every=2.5)):
        with pytest.raises(ValueError, match=rf"{next(iter(bad))}=.*whole number >= 1"):
            SampleStrip(**bad)


@pytest.mark.parametrize("model", [VQVAE(codes=8, code_dim=4, channels=(4, 8)),
                                   ConditionalVAE(latent_dim=2, hidden=16)],
                         ids=lambda m: type(m).__name__)
def test_strip_works_with_a_vq_vae_and_a_conditional_vae(model):
    data = random_images(48)
    data = ImageSet(data.images, torch.arange(48) % 10, data.classes, "labelled")
    strip = SampleStrip(n=10, every=2)
    fit(model, data, epochs=1, batch_size=8, on_batch=strip, progress=False)
    assert strip.steps == [0, 2, 4, 6] and strip.images.shape == (4, 10, 1, 28, 28)
    assert 0 <= strip.images.min() and strip.images.max() <= 1
    assert not torch.equal(strip.images[0], strip.images[-1])     # the model learned between
    again = model.sample(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(strip.images[-1], again)                   # the same draws each time


def test_evaluate_uses_the_objectives_beta_alone():
    torch.manual_seed(0)
    model, data = MLPVAE(3, hidden=16), random_images(40)
    results = []
    for objective in (Objective(beta=2.0), Objective(beta=2.0, free_bits=5.0, tc_weight=3.0,
                                                      warmup_epochs=4)):
        torch.manual_seed(1)
        results.append(evaluate(model, data, objective, batch_size=16))
    assert results[0] == results[1]
    total, reconstruction, kl = results[0]
    assert total == pytest.approx(reconstruction + 2.0 * kl, rel=1e-6)
    assert all(isinstance(v, float) for v in results[0])


@needs_fused
def test_the_guard_keeps_no_autograd_graph_across_steps(monkeypatch):
    guards = []

    class Recorded(training.Guard):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            guards.append(self)

    monkeypatch.setattr(training, "Guard", Recorded)
    fit(MLPVAE(2, hidden=16), random_images(64), epochs=2, batch_size=16, progress=False)
    assert guards[0].first is not None
    assert not any(p.requires_grad for p in guards[0].first)


def test_an_unbounded_log_variance_overflows_and_fit_keeps_the_weights(mnist):
    """A log-variance head at 100: exp overflows float32, the loss and its gradient are inf; fit
    raises TrainingDiverged and leaves every weight as it was."""
    torch.manual_seed(0)
    model = MLPVAE(2)
    with torch.no_grad():
        model.logvar.bias.fill_(100.0)
    parts = model.loss(mnist[0].images[:32])
    parts.total.backward()
    assert not torch.isfinite(parts.total) and not torch.isfinite(model.logvar.bias.grad).all()
    before = weights(model)
    with pytest.raises(TrainingDiverged, match="last good weights"):
        fit(model, mnist[0].subset(128), epochs=1, batch_size=64, progress=False)
    assert same(before, weights(model))
