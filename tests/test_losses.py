"""Losses against torch.distributions, and the properties the notebooks rely on."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from companion.gaussians import kl_divergence
from companion.losses import (bernoulli_nll, elbo_loss, gaussian_nll, rmse, squared_error,
                              total_correlation)

torch.manual_seed(0)
LOGITS = torch.randn(6, 1, 28, 28) * 3
X = torch.rand(6, 1, 28, 28)
MU, LOGVAR = torch.randn(6, 5), torch.randn(6, 5)


def test_bernoulli_nll_matches_torch_distributions():
    xb = (X > 0.5).float()
    expected = -Bernoulli(logits=LOGITS).log_prob(xb).flatten(1).sum(1)
    assert torch.allclose(bernoulli_nll(LOGITS, xb), expected, rtol=1e-5)
    assert bernoulli_nll(LOGITS, X).shape == (6,)


def test_bernoulli_nll_is_stable_for_saturated_logits():
    logits = torch.full((1, 784), 200.0)
    assert torch.isfinite(bernoulli_nll(logits, torch.zeros(1, 784))).all()


def test_gaussian_nll_matches_torch_distributions():
    for sigma in (1.0, 0.1):
        expected = -Normal(torch.sigmoid(LOGITS), sigma).log_prob(X).flatten(1).sum(1)
        assert torch.allclose(gaussian_nll(LOGITS, X, sigma), expected, rtol=1e-5)


def test_squared_error_and_rmse():
    err = (torch.sigmoid(LOGITS) - X) ** 2
    assert torch.allclose(squared_error(LOGITS, X), err.flatten(1).sum(1))
    assert torch.allclose(rmse(LOGITS, X), err.flatten(1).mean(1).sqrt())


def test_elbo_loss_parts_and_beta():
    parts = elbo_loss(LOGITS, X, MU, LOGVAR, beta=4.0)
    assert torch.isclose(parts.reconstruction, bernoulli_nll(LOGITS, X).mean())
    assert torch.isclose(parts.kl, kl_divergence(MU, LOGVAR).mean())
    assert torch.isclose(parts.total, parts.reconstruction + 4.0 * parts.kl)
    mse = elbo_loss(LOGITS, X, MU, LOGVAR, likelihood="mse")
    assert torch.isclose(mse.reconstruction, squared_error(LOGITS, X).mean())
    with pytest.raises(ValueError, match="likelihood must be one of"):
        elbo_loss(LOGITS, X, MU, LOGVAR, likelihood="poisson")


def _codes(copy: bool, n: int = 4000, sigma: float = 0.3):
    """Posteriors N(mu, sigma^2) with mu ~ N(0, I) in 3-D; with copy, mu_2 repeats mu_1."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(n, 3, generator=g)
    if copy:
        mu[:, 1] = mu[:, 0]
    logvar = torch.full_like(mu, 2 * math.log(sigma))
    return mu + sigma * torch.randn(n, 3, generator=g), mu, logvar


def test_total_correlation_is_zero_for_independent_codes_and_the_mi_for_a_copy():
    z, mu, logvar = _codes(copy=False)
    tc = total_correlation(z, mu, logvar)
    assert tc.shape == (4000,) and abs(tc.mean().item()) < 0.05
    z, mu, logvar = _codes(copy=True)
    # q(z_1, z_2) is Gaussian with correlation 1 / (1 + sigma^2): TC = I(z_1; z_2) in closed form
    rho = 1 / (1 + 0.3 ** 2)
    assert total_correlation(z, mu, logvar).mean().item() == pytest.approx(
        -0.5 * math.log(1 - rho ** 2), abs=0.05)


def test_total_correlation_ignores_scale_and_order_of_the_coordinates():
    z, mu, logvar = _codes(copy=True, n=500)
    tc = total_correlation(z, mu, logvar)
    swapped = [2, 0, 1]
    assert torch.allclose(total_correlation(z[:, swapped], mu[:, swapped], logvar[:, swapped]), tc,
                          atol=1e-4)
    assert torch.allclose(total_correlation(5 * z, 5 * mu, logvar + 2 * math.log(5)), tc, atol=1e-4)
