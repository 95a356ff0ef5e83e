"""Gaussian log-densities, sampling and KL divergences against torch.distributions."""

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal
from torch.distributions import kl_divergence as torch_kl

from companion.gaussians import (MonteCarloEstimate, draw_eps, ellipse, full_gaussian_log_density,
                                 gaussian_kl, gaussian_log_density, kl_divergence, kl_monte_carlo,
                                 kl_per_dimension, sample_diagonal, sample_gaussian)

G = torch.Generator().manual_seed(0)
MU = torch.randn(4, 3, generator=G, dtype=torch.float64)
LOGVAR = torch.randn(4, 3, generator=G, dtype=torch.float64)


# --- diagonal Gaussians: log-density, closed-form KL, Monte Carlo KL ---------------------

def test_gaussian_log_density_matches_torch_distributions():
    z = torch.randn(4, 3, generator=G, dtype=torch.float64) * 3
    want = Normal(MU, (0.5 * LOGVAR).exp()).log_prob(z)
    assert torch.allclose(gaussian_log_density(z, MU, LOGVAR), want)


def test_gaussian_log_density_of_a_collapsed_posterior_is_finite_in_float32():
    # exp(-120) is 0 in float32: dividing by it gave 0 / 0 = nan at z = mu
    mu = torch.tensor([0.3, -2.0, 0.0])
    logvar = torch.full((3,), -120.0)
    got = gaussian_log_density(mu, mu, logvar)
    want = gaussian_log_density(mu.double(), mu.double(), logvar.double())
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert torch.allclose(got.double(), want)
    assert (gaussian_log_density(mu + 1.0, mu, logvar) == -float("inf")).all()   # not nan


def test_draw_eps_draws_on_the_generators_device_and_lands_on_likes():
    like = torch.zeros(2, device="meta", dtype=torch.float64)
    eps = draw_eps((4, 3), like, torch.Generator().manual_seed(3))
    assert eps.device.type == "meta" and eps.dtype == torch.float64 and eps.shape == (4, 3)
    cpu = draw_eps((4, 3), torch.zeros(1), torch.Generator().manual_seed(3))
    assert torch.equal(cpu, torch.randn(4, 3, generator=torch.Generator().manual_seed(3)))
    assert draw_eps((2,), like).device.type == "meta"                  # no generator: like's device


def test_sample_diagonal_has_the_right_moments_and_device():
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, -1.0]])
    z = sample_diagonal(mu, logvar, 100_000, torch.Generator().manual_seed(4))[:, 0]
    assert torch.allclose(z.mean(0), mu[0], atol=0.02)
    assert torch.allclose(z.var(0), logvar[0].exp(), rtol=0.03)
    on_meta = sample_diagonal(mu.to("meta"), logvar.to("meta"), 5, torch.Generator())
    assert on_meta.device.type == "meta" and on_meta.shape == (5, 1, 2)


def test_monte_carlo_agrees_with_closed_form_and_torch_distributions():
    est = kl_monte_carlo(MU, LOGVAR, 200_000, torch.Generator().manual_seed(1))
    closed = kl_divergence(MU, LOGVAR)
    reference = torch_kl(Normal(MU, (0.5 * LOGVAR).exp()), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(closed, reference)
    assert est.mean.shape == est.stderr.shape == (4,)
    assert bool(((est.mean - closed).abs() < 4 * est.stderr).all())
    low, high = est.interval(4.0)
    assert bool(((low < closed) & (closed < high)).all())


def test_kl_is_nonnegative_and_zero_at_the_prior():
    assert (kl_divergence(torch.randn(100, 8) * 3, torch.randn(100, 8) * 3) >= 0).all()
    assert torch.equal(kl_divergence(torch.zeros(4, 3), torch.zeros(4, 3)), torch.zeros(4))


def test_monte_carlo_stderr_shrinks_like_one_over_root_n():
    small = kl_monte_carlo(MU, LOGVAR, 10_000, torch.Generator().manual_seed(2))
    large = kl_monte_carlo(MU, LOGVAR, 160_000, torch.Generator().manual_seed(3))
    ratio = large.stderr / small.stderr                                   # expect 1/4
    assert bool(((ratio > 0.2) & (ratio < 0.3)).all())


def test_monte_carlo_is_exactly_zero_at_the_prior():
    zero = torch.zeros(2, 5, dtype=torch.float64)
    est = kl_monte_carlo(zero, zero, 100, torch.Generator().manual_seed(0))
    assert torch.equal(est.mean, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(est.stderr, torch.zeros(2, dtype=torch.float64))


def test_monte_carlo_repeats_with_a_seeded_generator():
    a = kl_monte_carlo(MU, LOGVAR, 50, torch.Generator().manual_seed(7))
    b = kl_monte_carlo(MU, LOGVAR, 50, torch.Generator().manual_seed(7))
    c = kl_monte_carlo(MU, LOGVAR, 50, torch.Generator().manual_seed(8))
    assert torch.equal(a.mean, b.mean) and not torch.equal(a.mean, c.mean)


def test_monte_carlo_keeps_float32():
    est = kl_monte_carlo(MU.float(), LOGVAR.float(), 10)
    assert est.mean.dtype == torch.float32


def test_estimate_interval_is_symmetric():
    est = MonteCarloEstimate(torch.tensor([1.0]), torch.tensor([0.5]))
    low, high = est.interval()
    assert torch.allclose(low, torch.tensor([1 - 0.98])) and torch.allclose(high, torch.tensor([1.98]))


@pytest.mark.parametrize("mu, logvar, n, match", [
    (torch.zeros(2, 3), torch.zeros(2, 3), 1, "at least 2"),
    (torch.zeros(3), torch.zeros(3), 10, r"\[N, L\]"),
    (torch.zeros(2, 3), torch.zeros(2, 4), 10, r"\[N, L\]"),
])
def test_monte_carlo_rejects_bad_inputs(mu, logvar, n, match):
    with pytest.raises(ValueError, match=match):
        kl_monte_carlo(mu, logvar, n)


# --- full-covariance Gaussians ------------------------------------------------------------

def random_q(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random Gaussian per row: mean [n, k], covariance [n, k, k] (positive definite)."""
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(n, k, generator=g, dtype=torch.float64)
    a = torch.randn(n, k, k, generator=g, dtype=torch.float64)
    return mean, a @ a.transpose(-2, -1) + 0.1 * torch.eye(k, dtype=torch.float64)


def test_gaussian_log_density_matches_torch():
    mean, cov = random_q(3, 2, seed=2)
    z = torch.randn(7, 3, 2, dtype=torch.float64)
    want = MultivariateNormal(mean, cov).log_prob(z)
    assert torch.allclose(full_gaussian_log_density(z, mean, cov), want, atol=1e-10)


def test_gaussian_kl_matches_torch_and_is_zero_on_itself():
    m1, c1 = random_q(3, 2, seed=3)
    m2, c2 = random_q(3, 2, seed=4)
    want = torch_kl(MultivariateNormal(m1, c1), MultivariateNormal(m2, c2))
    assert torch.allclose(gaussian_kl(m1, c1, m2, c2), want, atol=1e-10)
    assert gaussian_kl(m1, c1, m1, c1).abs().max() < 1e-12
    assert (gaussian_kl(m1, c1, m2, c2) > 0).all()


def test_sample_gaussian_has_the_right_moments():
    mean, cov = random_q(1, 2, seed=8)
    z = sample_gaussian(mean, cov, 100_000, torch.Generator().manual_seed(9))[:, 0]
    assert z.shape == (100_000, 2)
    assert torch.allclose(z.mean(0), mean[0], atol=0.03)
    assert torch.allclose(torch.cov(z.T), cov[0], rtol=0.03, atol=0.03)


def test_ellipse_lies_on_the_contour():
    mean, cov = random_q(1, 2, seed=11)
    xy = ellipse(mean[0], cov[0], n_std=2.0, points=50)                 # [2, 50]
    d = xy - mean[0].reshape(2, 1)
    mahalanobis = (d * torch.linalg.solve(cov[0], d)).sum(0)
    assert xy.shape == (2, 50) and torch.allclose(mahalanobis, torch.full((50,), 4.0, dtype=torch.float64))


def test_kl_per_dimension_matches_torch_distributions_one_dimension_at_a_time():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    q = Normal(mu, (0.5 * logvar).exp())
    want = torch_kl(q, Normal(0.0, 1.0))                                   # [5, 3]
    assert torch.allclose(kl_per_dimension(mu, logvar), want, atol=1e-6)
    assert torch.allclose(kl_divergence(mu, logvar), want.sum(1), atol=1e-6)


def test_turning_a_full_covariance_posterior_leaves_its_kl_to_the_prior_unchanged():
    """N(R mu, R S R^T) is as far from N(0, I) as N(mu, S): only a diagonal family sees the turn."""
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g,
                                                                               dtype=torch.float64)
    R, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    prior = MultivariateNormal(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    cov = R @ torch.diag_embed(logvar.exp()) @ R.T
    turned = torch_kl(MultivariateNormal(mu @ R.T, cov), prior)
    assert torch.allclose(turned, kl_divergence(mu, logvar), atol=1e-10)
    # the diagonal with the turned variances has a larger entropy, so a KL no larger (Hadamard)
    assert (kl_divergence(mu @ R.T, torch.diagonal(cov, dim1=-2, dim2=-1).log())
            <= kl_divergence(mu, logvar) + 1e-10).all()
