"""fit(): learning, determinism, warm-up, callbacks, the NaN guard, Ctrl-C and devices."""
import pytest
import torch

from companion.checkpoints import train_or_load
from companion.data import ImageSet, load
from companion.models import MLPVAE, Autoencoder
from companion.training import TrainingDiverged, evaluate, fit


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
    assert steps == [4, 8, 12, 16]


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
