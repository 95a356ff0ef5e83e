"""Model shapes, the VAE interface, clear errors for wrong input shapes, the shape summary."""
import pytest
import torch
from torch import nn

from companion.models import MLPVAE, VAE, Autoencoder, build, summary


@pytest.mark.parametrize("model, latent", [(Autoencoder(2, 400), 2), (Autoencoder(2, 100), 2),
                                           (MLPVAE(20), 20), (MLPVAE(2), 2)])
def test_shapes_through_encoder_and_decoder(model, latent):
    x = torch.rand(5, 1, 28, 28)
    code = model.encode(x)
    if isinstance(model, VAE):
        mu, logvar = code
        assert mu.shape == logvar.shape == (5, latent)
        logits, mu, logvar = model(x)
        assert model.sample(3).shape == (3, 1, 28, 28)
    else:
        assert code.shape == (5, latent)
        logits = model(x)
    assert logits.shape == (5, 1, 28, 28)
    assert model(x.flatten(1)) is not None  # flat [N, 784] input works too
    rec = model.reconstruct(x)
    assert rec.shape == (5, 1, 28, 28) and 0 <= rec.min() and rec.max() <= 1


def test_layer_sizes_match_the_sources():
    ae = Autoencoder(latent_dim=2, hidden=100)
    sizes = [(m.in_features, m.out_features) for m in ae.modules() if isinstance(m, nn.Linear)]
    assert sizes == [(784, 100), (100, 2), (2, 100), (100, 784)]
    vae = MLPVAE(latent_dim=20)
    sizes = [(m.in_features, m.out_features) for m in vae.modules() if isinstance(m, nn.Linear)]
    assert sizes == [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]


@pytest.mark.parametrize("shape", [(1, 28, 28), (4, 3, 28, 28), (4, 1, 32, 32), (4, 783)])
def test_wrong_input_shape_says_what_is_expected(shape):
    with pytest.raises(ValueError, match=r"expects a batch of images shaped \[N, 1, 28, 28\]"):
        MLPVAE(2).encode(torch.rand(*shape))
    with pytest.raises(ValueError, match="Autoencoder expects"):
        Autoencoder(2)(torch.rand(*shape))


def test_reparameterize_draws_fresh_noise_per_example():
    torch.manual_seed(0)
    mu = torch.full((20_000, 2), 3.0, requires_grad=True)
    logvar = torch.full((20_000, 2), 2 * torch.log(torch.tensor(0.5)).item(), requires_grad=True)
    z = VAE.reparameterize(mu, logvar)
    assert abs(z.mean().item() - 3.0) < 0.02 and abs(z.std().item() - 0.5) < 0.02
    assert z[:, 0].std() > 0.4  # not one eps shared by the whole batch
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None


def test_build_rebuilds_from_description():
    model = MLPVAE(latent_dim=7, hidden=64)
    again = build(model.describe())
    assert isinstance(again, MLPVAE) and again.describe() == model.describe()
    with pytest.raises(ValueError, match="Unknown model 'Transformer'"):
        build({"model": "Transformer"})


def test_summary_lists_every_layer(capsys):
    rows = summary(MLPVAE(2), torch.rand(3, 1, 28, 28))
    shapes = dict(rows)
    assert shapes["mu"] == (3, 2) and shapes["decoder.2"] == (3, 784)
    out = capsys.readouterr().out
    assert "parameters" in out and f"{sum(p.numel() for p in MLPVAE(2).parameters()):,}" in out
    rows = summary(nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.Flatten()), torch.rand(1, 1, 28, 28))
    assert rows == [("0", (1, 4, 13, 13)), ("1", (1, 676))]
