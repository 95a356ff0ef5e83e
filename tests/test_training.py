"""fit(): learning, determinism, warm-up, callbacks, the guards (NaN, Ctrl-C, targets,
devices), train/eval mode, the sample strip and the optimizer's fallback."""
import pytest
import torch
from conftest import random_images
from torch import nn

from companion import checkpoints, training
from companion.checkpoints import train_or_load
from companion.data import ImageSet, load
from companion.losses import RECONSTRUCTION
from companion.models import MLPVAE, Autoencoder, BatchNormConvVAE
from companion.training import (History, SampleStrip, TrainingDiverged, evaluate, fit,
                                loss_parts, make_optimizer)


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


def test_autoencoder_trains_with_mse(mnist):
    torch.manual_seed(0)
    history = fit(Autoencoder(2, 100), mnist[0], epochs=2, likelihood="mse", progress=False)
    assert history.kl == [0.0, 0.0] and history.loss[1] < history.loss[0]


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
    warm = fit(MLPVAE(4), mnist[0], epochs=1, warmup_epochs=1, progress=False)
    torch.manual_seed(0)
    plain = fit(MLPVAE(4), mnist[0], epochs=1, progress=False)
    assert warm.loss[0] < plain.loss[0]  # the KL counts for less while beta ramps up


def test_callback_every_n_batches(mnist):
    steps = []
    fit(MLPVAE(2), mnist[0], epochs=1, batch_size=64, on_batch=lambda m, s: steps.append(s),
        every=4, progress=False)
    assert steps == [0, 4, 8, 12, 16]   # before training, then every 4 of the 16 batches


def test_nan_loss_stops_with_a_clear_message_and_keeps_good_weights(mnist):
    images = mnist[0].images[:256].clone()
    images[200] = float("nan")  # lands in some batch of the first epoch
    bad = ImageSet(images, mnist[0].labels[:256], mnist[0].classes, "with-nan")
    model = MLPVAE(2)
    with pytest.raises(TrainingDiverged, match="Epoch 1, batch .*loss became NaN.*last good weights") as err:
        fit(model, bad, epochs=2, batch_size=64, progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert err.value.history.epochs == 0


def test_ctrl_c_keeps_the_last_finished_epoch(mnist):
    model, snapshots = MLPVAE(2), {}

    def interrupt(m, step):    # 8 batches per epoch: step 8 ends epoch 1, step 12 is in epoch 2
        snapshots[step] = weights(m)
        if step == 12:
            raise KeyboardInterrupt

    history = fit(model, mnist[0], epochs=3, batch_size=128, on_batch=interrupt, every=4,
                  progress=False)
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
    warm = fit(MLPVAE(4), mnist[0], epochs=2, beta=2.0, warmup_epochs=1, progress=False)
    for full, rec, kl in zip(warm.full_beta_loss, warm.reconstruction, warm.kl):
        assert full == pytest.approx(rec + 2.0 * kl, rel=1e-6)
    assert warm.full_beta_loss[0] > warm.loss[0]        # the ramp kept epoch 1's beta low
    assert warm.full_beta_loss[1] == pytest.approx(warm.loss[1], rel=1e-5)   # full beta after
    torch.manual_seed(0)
    plain = fit(MLPVAE(4), mnist[0], epochs=1, progress=False)
    assert plain.full_beta_loss[0] == pytest.approx(plain.loss[0], rel=1e-5)


# -- the model interface: is_vae, train/eval mode --------------------------------------------

class Noisy(nn.Module):
    """A tiny VAE-like model with BatchNorm and Dropout, outside the course's class tree."""
    is_vae = True
    latent_dim = 2

    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(784, 4))
        self.dec = nn.Sequential(nn.Linear(2, 784), nn.BatchNorm1d(784), nn.Dropout(0.5))

    def decode(self, z):
        return self.dec(z).view(-1, 1, 28, 28)

    def forward(self, x):
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return self.decode(mu), mu, logvar


def test_loss_parts_follows_is_vae_not_the_class():
    x = random_images(8).images
    total, reconstruction, kl = (p.item() for p in loss_parts(Noisy().eval(), x))
    assert kl > 0 and total == pytest.approx(reconstruction + kl)   # the ELBO: a VAE by its flag


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
    strip = SampleStrip(n=3)
    strip(model, 0)
    strip(model, 1)
    assert torch.equal(strip.frames[0], strip.frames[1])
    assert torch.equal(model.dec[1].running_mean, stats)  # BatchNorm only read its statistics
    assert [m.training for m in model.modules()] == modes


# -- the sample strip ---------------------------------------------------------------------------

def test_strip_is_taken_before_training_and_every_n_batches():
    torch.manual_seed(0)
    strip = SampleStrip(n=3)
    fit(MLPVAE(2), random_images(96), epochs=2, batch_size=16, every=4, on_batch=strip,
        progress=False)
    assert strip.steps == [0, 4, 8, 12] and strip.images.shape == (4, 3, 1, 28, 28)
    assert 0 <= strip.images.min() and strip.images.max() <= 1
    assert not torch.equal(strip.images[0], strip.images[-1])


def test_strip_does_not_change_training():
    kwargs = dict(epochs=1, batch_size=16, every=2, progress=False)
    torch.manual_seed(0)
    with_strip = BatchNormConvVAE(2, width=4)
    fit(with_strip, random_images(96), on_batch=SampleStrip(n=2), **kwargs)
    torch.manual_seed(0)
    plain = BatchNormConvVAE(2, width=4)
    fit(plain, random_images(96), **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(with_strip.state_dict().values(),
                                                 plain.state_dict().values()))


# -- guards ---------------------------------------------------------------------------------

def test_bernoulli_refuses_targets_outside_0_1_and_names_the_fix(mnist):
    train, test = mnist
    standardised = ImageSet((train.images - 0.13) / 0.31, train.labels, train.classes, "std")
    fix = 'likelihood="mse"'
    assert fix.split('"')[1] in RECONSTRUCTION            # the fix names a loss that exists
    with pytest.raises(ValueError, match=r"Bernoulli likelihood needs pixels in \[0, 1\], but "
                                         r"std ranges from -0\.419 to 2\.81.*Rescale.*" + fix):
        fit(MLPVAE(2), standardised, epochs=1, progress=False)
    with pytest.raises(ValueError, match="std ranges from"):            # test data, too
        fit(MLPVAE(2), train, epochs=1, test_data=standardised, progress=False)
    history = fit(Autoencoder(2), standardised.subset(256), epochs=1, likelihood="mse",
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

    history = train_or_load(model, mnist[0], epochs=3, on_batch=interrupt, every=4,
                            progress=False)
    assert history.interrupted and history.epochs == 1
    assert same(weights(model), snapshots[8])                 # the last finished epoch, in memory
    assert "Nothing was cached" in capsys.readouterr().out
    assert not list((scratch / "checkpoints").glob("*"))      # nothing written, not even a temp
    calls = []
    monkeypatch.setattr(checkpoints, "fit", lambda *a, **k: calls.append(1) or History())
    train_or_load(MLPVAE(2), mnist[0], epochs=3, every=4, progress=False)
    assert calls == [1]                                       # the next run trains again


def test_ctrl_c_with_a_strip_caches_nothing(scratch):
    class Stop(SampleStrip):
        def __call__(self, model, step):
            super().__call__(model, step)
            if step == 4:
                raise KeyboardInterrupt

    strip = Stop(n=2)
    history = train_or_load(MLPVAE(2), random_images(96), strip=strip, epochs=2,
                            batch_size=16, every=4, progress=False)
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

def test_tc_weight_adds_the_total_correlation_of_a_fresh_sample():
    from companion.losses import total_correlation
    torch.manual_seed(0)
    model, x = MLPVAE(3), random_images(64).images
    torch.manual_seed(1)
    plain = loss_parts(model, x)
    torch.manual_seed(1)
    penalised = loss_parts(model, x, tc_weight=4.0)
    torch.manual_seed(1)
    mu, logvar = model.encode(x)
    torch.randn_like(mu)                                         # the decoder's sample
    z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)         # the penalty's sample
    tc = total_correlation(z, mu, logvar).mean()
    assert torch.equal(penalised.reconstruction, plain.reconstruction)
    assert torch.equal(penalised.kl, plain.kl)
    assert torch.allclose(penalised.total, plain.total + 4.0 * tc)


def test_fit_with_tc_weight_trains_and_gets_its_own_cache_key(mnist):
    train, _ = mnist
    torch.manual_seed(0)
    model = MLPVAE(4)
    history = fit(model, train, epochs=2, batch_size=64, tc_weight=5.0, progress=False)
    assert history.loss[-1] < history.loss[0]
    torch.manual_seed(0)
    plain = MLPVAE(4)
    fit(plain, train, epochs=2, batch_size=64, progress=False)
    assert not same(weights(model), weights(plain))
    key = checkpoints.cache_key(model, train, None, {"epochs": 2})
    assert key == checkpoints.cache_key(model, train, None, {"epochs": 2, "tc_weight": 0.0})
    assert key != checkpoints.cache_key(model, train, None, {"epochs": 2, "tc_weight": 5.0})
