"""The conv VAEs: shapes, the sources' feature sizes, logits out, rebuilt from their description."""
import json

import pytest
import torch
from torch import nn

from companion import models
from companion.models import (MODELS, VAE, BADConvVAE, BatchNormConvVAE, ConvVAE, GaussianHead,
                              SimpleConvVAE, build)

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
    assert [p.shape for p in again.parameters()] == [p.shape for p in model.parameters()]


def test_feature_sizes_match_the_sources():
    assert SimpleConvVAE(2).heads.mu.in_features == 2 * 2 * 128
    assert BatchNormConvVAE(2).heads.mu.in_features == 896            # 224 channels x 2 x 2
    assert BADConvVAE(2).heads.mu.in_features == 3136                 # 64 x 7 x 7
    assert ConvVAE(2).heads.mu.in_features == 64 * 7 * 7
    assert all(isinstance(model.heads, GaussianHead) for model in ALL)   # the shared head


def test_the_course_conv_vae_carries_its_learning_rate():
    assert ConvVAE.lr == 3e-3 and ConvVAE(2).lr == 3e-3
    assert not hasattr(models, "LR")                                 # no module constant


def test_decoders_end_in_a_bare_layer_that_returns_logits():
    for model in ALL:
        assert isinstance(model.decoder[-1], (nn.ConvTranspose2d, nn.Conv2d)), model.describe()
    kinds = lambda m: {type(x) for x in m.modules()}
    assert nn.Dropout in kinds(BADConvVAE(2)) and nn.Dropout not in kinds(BADConvVAE(2, 0.0))
    up = BADConvVAE(2, upsample=True)
    assert nn.Upsample in kinds(up)
    assert all(m.stride == (1, 1) for m in up.modules() if isinstance(m, nn.ConvTranspose2d))


def test_sampling_a_batchnorm_vae_keeps_its_mode_and_running_statistics():
    torch.manual_seed(0)
    model = BatchNormConvVAE(4, width=8).train()
    stats = lambda: torch.cat([m.running_mean for m in model.modules()
                               if isinstance(m, nn.BatchNorm2d)]).clone()
    before = stats()
    model.sample(16)
    assert model.training and torch.equal(stats(), before)
    with torch.no_grad():                                  # the slip: decoding in training mode
        model.decode(torch.randn(16, 4))
    assert not torch.equal(stats(), before)


def test_in_training_mode_batchnorm_makes_a_sample_depend_on_its_batch():
    torch.manual_seed(0)
    model = BatchNormConvVAE(4, width=8)
    z = torch.randn(8, 4)
    other = torch.cat([z[:1], torch.randn(7, 4)])           # same first point, other companions
    with torch.no_grad():
        model.eval()
        assert torch.allclose(model.decode(z)[0], model.decode(other)[0], atol=1e-6)
        model.train()
        assert not torch.allclose(model.decode(z)[0], model.decode(other)[0], atol=1e-3)
