"""The conv VAEs of notebook 07, their helpers, the sample strip, the self-checks, the bench."""
import json
import sys
from dataclasses import replace

import pytest
import torch
from conftest import load_script, random_images
from torch import nn

from companion import checkpoints, sample_strip
from companion.checks import ExerciseError
from companion.checks import conv_vae as checks
from companion.conv_vae import (BADConvVAE, BatchNormConvVAE, ConvVAE, SimpleConvVAE,
                                images_per_second, layer_shapes, parameter_count, side_by_side)
from companion.models import MODELS, VAE, build
from companion.training import fit

ALL = [SimpleConvVAE(3), BatchNormConvVAE(3), BatchNormConvVAE(3, width=8), BADConvVAE(3),
       BADConvVAE(3, dropout=0.0, upsample=True), ConvVAE(3), ConvVAE(3, channels=(8, 16))]


def images(n=4):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("model", ALL, ids=lambda m: str(m.describe()))
def test_shapes_of_encode_decode_forward(model):
    model.eval()
    mu, logvar = model.encode(images())
    assert mu.shape == logvar.shape == (4, 3)
    assert model.encode(images().flatten(1))[0].shape == (4, 3)     # [N, 784] works too
    logits, mu2, _ = model(images())
    assert logits.shape == (4, 1, 28, 28) and isinstance(model, VAE)
    assert model.sample(5).shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match="expects a batch of images"):
        model.encode(torch.rand(1, 28, 28))


@pytest.mark.parametrize("model", ALL, ids=lambda m: str(m.describe()))
def test_models_rebuild_from_their_description(model):
    assert type(model).__name__ in MODELS
    described = json.loads(json.dumps(model.describe()))             # as a checkpoint stores it
    again = build(described)
    assert again.describe() == model.describe()
    assert parameter_count(again) == parameter_count(model)


def test_checkpoint_round_trip_of_a_conv_vae(tmp_path):
    model = ConvVAE(4, channels=(8, 16)).eval()
    path = checkpoints.save(model, tmp_path / "c.pt")
    loaded, _ = checkpoints.load(path, device="cpu")
    assert torch.equal(loaded.decode(torch.ones(2, 4)), model.decode(torch.ones(2, 4)))


def test_feature_sizes_match_the_sources():
    assert SimpleConvVAE(2).heads.mu.in_features == 2 * 2 * 128
    assert BatchNormConvVAE(2).heads.mu.in_features == 896            # 224 channels x 2 x 2
    assert BADConvVAE(2).heads.mu.in_features == 3136                 # 64 x 7 x 7
    assert ConvVAE(2).heads.mu.in_features == 64 * 7 * 7


def test_decoders_end_in_a_bare_layer_that_returns_logits():
    for model in ALL:
        assert isinstance(model.decoder[-1], (nn.ConvTranspose2d, nn.Conv2d)), model.describe()
    kinds = lambda m: {type(x) for x in m.modules()}
    assert nn.Dropout in kinds(BADConvVAE(2)) and nn.Dropout not in kinds(BADConvVAE(2, 0.0))
    up = BADConvVAE(2, upsample=True)
    assert nn.Upsample in kinds(up)
    assert all(m.stride == (1, 1) for m in up.modules() if isinstance(m, nn.ConvTranspose2d))


def test_layer_shapes_and_side_by_side():
    rows = layer_shapes(SimpleConvVAE(2).eval(), images(), (nn.Conv2d, nn.ConvTranspose2d))
    assert rows == ["Conv2d 32x13x13", "Conv2d 64x5x5", "Conv2d 128x2x2",
                    "ConvTranspose2d 256x4x4", "ConvTranspose2d 128x12x12",
                    "ConvTranspose2d 1x28x28"]
    every = layer_shapes(ConvVAE(2).eval(), images())
    assert "Unflatten 64x7x7" in every and every[-1] == "ConvTranspose2d 1x28x28"
    text = side_by_side({"a": ["x", "y"], "bb": ["z"]}, width=5)
    assert text.splitlines() == ["a    bb", "-    --", "x    z", "y"]


def test_parameter_count_counts_weights_and_biases():
    assert parameter_count(nn.Conv2d(1, 32, 3)) == (9 + 1) * 32
    assert parameter_count(nn.Linear(784, 10, device="meta")) == 7850


def test_images_per_second_leaves_the_model_unchanged():
    model = ConvVAE(2, channels=(4, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert images_per_second(model, images(16), steps=2, warmup=1) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model = BatchNormConvVAE(2, width=4)                              # BatchNorm buffers too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images_per_second(model, images(16), steps=2, warmup=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# -- the sample strip ---------------------------------------------------------------------

def tiny_data(n=96):
    return random_images(n)


def test_strip_is_taken_every_n_batches_and_cached(scratch, monkeypatch):
    torch.manual_seed(0)
    first = ConvVAE(2, channels=(4, 8))
    kwargs = dict(epochs=2, batch_size=16, every=4, progress=False)
    history, strip, steps = sample_strip.train_or_load_with_strip(first, tiny_data(), n=3,
                                                                  **kwargs)
    assert steps == [0, 4, 8, 12] and strip.shape == (4, 3, 1, 28, 28)   # 12 batches in all
    assert 0 <= strip.min() and strip.max() <= 1 and not torch.equal(strip[0], strip[-1])
    assert history.epochs == 2

    def no_training(*args, **kwargs):
        raise AssertionError("fit must not run when the cache holds the model and strip")

    monkeypatch.setattr(sample_strip, "fit", no_training)
    monkeypatch.setattr(checkpoints, "fit", no_training)
    second = ConvVAE(2, channels=(4, 8))
    history2, strip2, steps2 = sample_strip.train_or_load_with_strip(second, tiny_data(), n=3,
                                                                     **kwargs)
    assert history2 == history and steps2 == steps and torch.equal(strip2, strip)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                 second.state_dict().values()))


def test_snapshots_do_not_change_training(scratch):
    kwargs = dict(epochs=1, batch_size=16, every=2, progress=False)
    torch.manual_seed(0)
    with_strip = BatchNormConvVAE(2, width=4)
    sample_strip.train_or_load_with_strip(with_strip, tiny_data(), n=2, **kwargs)
    torch.manual_seed(0)
    plain = BatchNormConvVAE(2, width=4)
    fit(plain, tiny_data(), **kwargs)
    assert all(torch.equal(a, b) for a, b in zip(with_strip.state_dict().values(),
                                                 plain.state_dict().values()))


def test_strip_refuses_an_on_batch_of_its_own(scratch):
    with pytest.raises(ValueError, match="sets on_batch itself"):
        sample_strip.train_or_load_with_strip(ConvVAE(2), tiny_data(), on_batch=print)


# -- the self-checks ----------------------------------------------------------------------

def conv_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def tconv_size(size, k, s, p, op):
    return (size - 1) * s - 2 * p + k + op


def test_output_size_check_accepts_the_solution(capsys):
    checks.check_output_sizes(conv_size, tconv_size)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("conv, tconv, hint", [
    (lambda n, k, s, p: (n + 2 * p - k) / s + 1, tconv_size, "integer division"),
    (lambda n, k, s, p: (n + 2 * p - k) // s, tconv_size, "add 1"),
    (lambda n, k, s, p: (n + p - k) // s + 1, tconv_size, "Conv2d gives"),
    (conv_size, lambda n, k, s, p, op: (n - 1) * s - 2 * p + k, "forgets output_padding"),
    (conv_size, lambda n, k, s, p, op: n * s - 2 * p + k + op, "ConvTranspose2d gives"),
])
def test_output_size_check_rejects_typical_mistakes(conv, tconv, hint):
    with pytest.raises(ExerciseError, match=hint):
        checks.check_output_sizes(conv, tconv)


def upsample_decoder(latent_dim):
    return nn.Sequential(
        nn.Linear(latent_dim, 16 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (16, 7, 7)),
        nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.Conv2d(8, 1, 3, padding=1))


def test_upsample_decoder_check_accepts_the_solution(capsys):
    checks.check_upsample_decoder(upsample_decoder)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("make, hint", [
    (lambda L: ConvVAE(L).decoder, "still uses ConvTranspose2d"),
    (lambda L: nn.Sequential(nn.Linear(L, 784), nn.Unflatten(1, (1, 28, 28))), "nn.Upsample"),
    (lambda L: nn.Sequential(upsample_decoder(L), nn.Sigmoid()), "ends in Sigmoid"),
    (lambda L: nn.Sequential(*list(upsample_decoder(L))[:-2], nn.Conv2d(8, 1, 3, padding=1)),
     r"\[5, 1, 28, 28\], got \[5, 1, 14, 14\]"),
    (lambda L: "not a module", "nn.Module"),
])
def test_upsample_decoder_check_rejects_typical_mistakes(make, hint):
    with pytest.raises(ExerciseError, match=hint):
        checks.check_upsample_decoder(make)


# -- the benchmark ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bench():
    yield load_script("bench", "conv")
    del sys.modules["bench_conv"]


def test_bench_quick_mode_writes_json_and_markdown(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "QUICK", replace(bench.QUICK, train_size=256, test_size=200))
    bench.main(["--quick", "--out", str(tmp_path)])
    assert not (tmp_path / "conv.json").exists()        # a smoke test never overwrites results
    results = json.loads((tmp_path / "conv-quick.json").read_text())
    assert set(results["runs"]) == {"seed003", "course", "course-channels-last"}
    assert results["runs"]["seed003"]["speedup"] == 1.0
    for run in results["runs"].values():
        assert run["images_per_s"] > 0 and len(run["test_loss"]) == 1
    assert "| seed003 | 208,005 |" in (tmp_path / "conv-quick.md").read_text()


def test_bench_contenders_start_from_seeded_weights(bench):
    cfg = bench.Config()
    a, b = bench.new_run("course", cfg), bench.new_run("course-bf16", cfg)
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(),
                                                 b.model.state_dict().values()))
    assert isinstance(bench.new_run("seed003", cfg).model, BADConvVAE)
