"""Looking inside models: layer shapes, parameter counts, training speed."""
import torch
from torch import nn

from companion.introspect import (images_per_second, layer_shapes, parameter_count, side_by_side,
                               summary)
from companion.models import MLPVAE, BatchNormConvVAE, ConvVAE, SimpleConvVAE


def images(n=4):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


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


def test_summary_lists_every_layer(capsys):
    rows = summary(MLPVAE(2), torch.rand(3, 1, 28, 28))
    shapes = dict(rows)
    assert shapes["mu"] == (3, 2) and shapes["decoder.2"] == (3, 784)
    out = capsys.readouterr().out
    assert "parameters" in out and f"{sum(p.numel() for p in MLPVAE(2).parameters()):,}" in out
    rows = summary(nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.Flatten()), torch.rand(1, 1, 28, 28))
    assert rows == [("0", (1, 4, 13, 13)), ("1", (1, 676))]
