"""The two-layer VAE: its prior, its posterior and its loss written out with
torch.distributions, and its importance weights (see also test_likelihood_models)."""
import math

import pytest
import torch
from torch import distributions as D

from companion.data import ImageSet
from companion.evaluation.likelihood import estimate, log_weights
from companion.latent import encode_all
from companion.models import HierarchicalVAE
from companion.training import fit

X = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1)).round()


def model() -> HierarchicalVAE:
    torch.manual_seed(0)
    return HierarchicalVAE(latent_dims=(4, 2), hidden=(16, 8))


def normal(mu: torch.Tensor, logvar: torch.Tensor) -> D.Independent:
    return D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1)


def test_log_prior_is_p_z2_times_p_z1_given_z2():
    m = model()
    z = torch.randn(7, 6, generator=torch.Generator().manual_seed(2))
    z1, z2 = z[:, :4], z[:, 4:]
    want = normal(*m.down(z2)).log_prob(z1) + normal(torch.zeros(2), torch.zeros(2)).log_prob(z2)
    assert torch.allclose(m.log_prior(z), want, atol=1e-5)


def test_the_loss_is_the_single_sample_negative_elbo_of_both_layers():
    m = model()
    torch.manual_seed(3)
    parts = m.loss(X)
    torch.manual_seed(3)
    q1 = normal(*m.up1(X.flatten(1)))
    z1 = q1.mean + q1.stddev * torch.randn(5, 4)
    q2 = normal(*m.up2(z1))
    z2 = q2.mean + q2.stddev * torch.randn(5, 2)
    z = torch.cat([z1, z2], 1)
    kl = q1.log_prob(z1) + q2.log_prob(z2) - m.log_prior(z)
    recon = D.Independent(D.Bernoulli(logits=m.decoder(z1)), 1).log_prob(X.flatten(1))
    assert torch.allclose(parts.kl, kl.mean(), atol=1e-4)
    assert torch.allclose(parts.reconstruction, -recon.mean(), atol=1e-4)
    assert torch.allclose(parts.total, parts.reconstruction + parts.kl)


def test_more_importance_samples_give_a_higher_bound():
    m = model()
    x = X[:1].repeat(400, 1, 1, 1)                       # 400 independent estimates for one image
    bounds = [estimate(log_weights(m, x, k, generator=torch.Generator().manual_seed(5))
                       ).log_px.mean().item() for k in (1, 8)]
    assert bounds[0] < bounds[1]


def test_codes_samples_and_training():
    m = model()
    mu, logvar = m.encode(X)
    assert mu.shape == logvar.shape == (5, 6) and encode_all(m, ImageSet(
        X, torch.zeros(5, dtype=torch.long), tuple("0123456789"), "bin")).shape == (5, 6)
    images = m.sample(3, torch.Generator().manual_seed(6))
    assert images.shape == (3, 1, 28, 28) and ((images > 0) & (images < 1)).all()
    data = ImageSet((torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(7)) < 0.3)
                    .float(), torch.zeros(64, dtype=torch.long), tuple("0123456789"), "bin")
    history = fit(m, data, epochs=3, batch_size=32, progress=False)
    assert all(math.isfinite(v) for v in history.loss) and history.loss[-1] < history.loss[0]


def test_two_sizes_each_or_a_clear_message():
    with pytest.raises(ValueError, match="two stochastic layers: pass two sizes each"):
        HierarchicalVAE(latent_dims=(4, 2, 1), hidden=(16, 8))
