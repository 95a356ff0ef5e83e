"""Estimates of log p(x) against numerical integration, and their helpers against the definitions."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from companion.marginal import (bernoulli_log_likelihood, effective_sample_size, log_mean_exp,
                                log_px_estimate, log_weights, running_estimates)
from companion.models import MLPVAE

torch.manual_seed(0)
VAE_1D = MLPVAE(latent_dim=1, hidden=8).eval()   # one latent dimension: p(x) is a 1-D integral
X = torch.rand(3, 1, 28, 28)


def _quadrature_log_px(model, x: torch.Tensor) -> torch.Tensor:
    """log ∫ p(x|z) N(z; 0, 1) dz on a fine grid over [-10, 10] (the reference answer)."""
    z = torch.linspace(-10, 10, 20_001).unsqueeze(1)                     # [G, 1]
    with torch.no_grad():
        log_joint = bernoulli_log_likelihood(model.decode(z), x) - 0.5 * (z**2 + math.log(2 * math.pi))
    return torch.logsumexp(log_joint.double(), 0) + math.log(20 / 20_000)


def test_log_mean_exp_matches_the_definition_and_survives_underflow():
    a = torch.randn(50, 4, dtype=torch.float64)
    assert torch.allclose(log_mean_exp(a, dim=0), a.exp().mean(0).log())
    tiny = torch.tensor([-1000.0, -1001.0, -1002.0])
    assert torch.exp(tiny).mean().log() == -math.inf                      # the naive way fails
    want = -1000 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    assert log_mean_exp(tiny).item() == pytest.approx(want, abs=1e-3)


def test_effective_sample_size_extremes_and_definition():
    assert effective_sample_size(torch.zeros(40)).item() == pytest.approx(40)
    assert effective_sample_size(torch.tensor([0.0, -50.0, -60.0])).item() == pytest.approx(1.0)
    log_w = torch.randn(30, 2, dtype=torch.float64)
    w = log_w.exp()
    assert torch.allclose(effective_sample_size(log_w), w.sum(0) ** 2 / (w**2).sum(0))


def test_bernoulli_log_likelihood_scores_every_pair():
    logits = torch.randn(5, 1, 28, 28) * 3
    out = bernoulli_log_likelihood(logits, X)                             # [5, 3]
    assert out.shape == (5, 3)
    xb = (X > 0.5).float()
    want = torch.stack([Bernoulli(logits=logits).log_prob(x.expand_as(logits)).flatten(1).sum(1)
                        for x in xb], dim=1)
    assert torch.allclose(bernoulli_log_likelihood(logits, xb), want, rtol=1e-5)


@pytest.mark.parametrize("proposal", ["prior", "encoder"])
def test_estimates_agree_with_numerical_integration(proposal):
    g = torch.Generator().manual_seed(1)
    estimate = log_px_estimate(VAE_1D, X, 20_000, proposal, generator=g)
    assert estimate.shape == (3,)
    assert torch.allclose(estimate.double(), _quadrature_log_px(VAE_1D, X), atol=0.02)


def test_mean_log_weight_is_below_the_estimate():
    log_w = log_weights(VAE_1D, X, 100, "encoder", torch.Generator().manual_seed(2))
    assert log_w.shape == (100, 3)
    assert (log_w.mean(0) <= log_mean_exp(log_w, 0)).all()                # Jensen, sample by sample


def _grayscale_bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x log sigmoid(l) + (1 - x) log sigmoid(-l) summed over pixels, for x in [0, 1]: [S, N]."""
    x = x.flatten(1)
    return (x * torch.nn.functional.logsigmoid(logits)
            + (1 - x) * torch.nn.functional.logsigmoid(-logits)).sum(-1)


def test_chunks_do_not_change_the_prior_estimate():
    a = log_weights(VAE_1D, X, 50, "prior", torch.Generator().manual_seed(3), chunk=7)
    b = log_weights(VAE_1D, X, 50, "prior", torch.Generator().manual_seed(3), chunk=10_000)
    assert torch.allclose(a, b, atol=1e-4)


def test_encoder_weights_match_torch_distributions():
    log_w = log_weights(VAE_1D, X, 20, "encoder", torch.Generator().manual_seed(4))
    eps = torch.randn(20, 3, 1, generator=torch.Generator().manual_seed(4))   # the same draws
    with torch.no_grad():
        mu, logvar = VAE_1D.encode(X)
        q = Normal(mu, (0.5 * logvar).exp())
        z = mu + q.scale * eps                                              # [20, 3, 1]
        logits = VAE_1D.decode(z.flatten(0, 1)).view(20, 3, 784)
    want = (_grayscale_bernoulli_log_prob(logits, X) + Normal(0.0, 1.0).log_prob(z).sum(-1)
            - q.log_prob(z).sum(-1))
    assert torch.allclose(log_w, want, atol=1e-3)


def test_running_estimates():
    log_w = torch.randn(100, 3)
    out = running_estimates(log_w, [1, 10, 100])
    assert out.shape == (3, 3)
    assert torch.equal(out[0], log_w[0])
    assert torch.allclose(out[2], log_mean_exp(log_w, 0))


def test_unknown_proposal_is_refused():
    with pytest.raises(ValueError, match="prior.*encoder"):
        log_weights(VAE_1D, X, 10, "posterior")
