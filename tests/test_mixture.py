"""Gaussian mixtures by EM: torch.distributions agrees, a known mixture is recovered, the
likelihood never falls, a seed repeats everything; and the aggregate posterior's density."""
import math

import pytest
import torch
from torch import distributions as D

from companion.mixture import (GaussianMixture, aggregate_log_density, e_step, fit_mixture,
                               m_step)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


TRUE = GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
                       torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]], dtype=torch.float64),
                       torch.stack([torch.eye(2), torch.tensor([[1.0, 0.6], [0.6, 1.0]]),
                                    0.25 * torch.eye(2)]).double())


def torch_mixture(m: GaussianMixture) -> D.MixtureSameFamily:
    return D.MixtureSameFamily(D.Categorical(m.weights),
                               D.MultivariateNormal(m.means, covariance_matrix=m.covs))


def test_log_prob_agrees_with_torch_distributions():
    z = torch.randn(50, 2, generator=gen(1), dtype=torch.float64) * 4
    assert torch.allclose(TRUE.log_prob(z), torch_mixture(TRUE).log_prob(z))


def test_sampling_is_reproducible_from_a_seed_and_follows_the_weights():
    z1, c1 = TRUE.sample(20_000, gen(2))
    z2, c2 = TRUE.sample(20_000, gen(2))
    assert torch.equal(z1, z2) and torch.equal(c1, c2) and z1.shape == (20_000, 2)
    assert torch.allclose(torch.bincount(c1).double() / 20_000, TRUE.weights, atol=0.02)
    assert torch.allclose(z1[c1 == 1].mean(0), TRUE.means[1], atol=0.05)
    assert torch.allclose(torch.cov(z1[c1 == 1].T), TRUE.covs[1], atol=0.06)
    assert not torch.equal(TRUE.sample(5, gen(3))[0], TRUE.sample(5, gen(4))[0])


def test_responsibilities_sum_to_one_and_survive_points_far_from_every_component():
    z = torch.tensor([[0.0, 0.0], [6.0, 0.0], [1e3, -1e3]], dtype=torch.float64)
    resp = e_step(z, TRUE)
    assert torch.isfinite(resp).all() and torch.allclose(resp.sum(1), torch.ones(3, dtype=resp.dtype))
    assert resp[0, 0] > 0.99 and resp[1, 1] > 0.99


def test_em_recovers_a_known_mixture_and_its_likelihood_never_falls():
    z, _ = TRUE.sample(6000, gen(5))
    fitted, history = fit_mixture(z, 3, iterations=200, seed=0)
    order = torch.cdist(TRUE.means, fitted.means).argmin(1)   # components come in any order
    assert sorted(order.tolist()) == [0, 1, 2]
    assert torch.allclose(fitted.means[order], TRUE.means, atol=0.1)
    assert torch.allclose(fitted.weights[order], TRUE.weights, atol=0.03)
    assert torch.allclose(fitted.covs[order], TRUE.covs, atol=0.1)
    assert all(b >= a - 1e-9 for a, b in zip(history, history[1:]))
    assert history[-1] == pytest.approx(TRUE.log_prob(z).mean().item(), abs=0.02)


def test_the_same_seed_gives_the_same_mixture_and_another_seed_another_start():
    z, _ = TRUE.sample(500, gen(6))
    a, _ = fit_mixture(z, 4, iterations=5, seed=1)
    b, _ = fit_mixture(z, 4, iterations=5, seed=1)
    c, _ = fit_mixture(z, 4, iterations=5, seed=2)
    assert torch.equal(a.means, b.means) and torch.equal(a.covs, b.covs)
    assert not torch.equal(a.means, c.means)


def test_m_step_with_hard_assignments_gives_the_sample_statistics():
    z = torch.randn(300, 3, generator=gen(7), dtype=torch.float64)
    resp = torch.zeros(300, 2, dtype=torch.float64)
    resp[:100, 0] = resp[100:, 1] = 1
    m = m_step(z, resp, reg=0.0)
    assert torch.allclose(m.weights, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
    assert torch.allclose(m.means[1], z[100:].mean(0))
    assert torch.allclose(m.covs[0], torch.cov(z[:100].T, correction=0))
    diag = m_step(z, resp, covariance="diag", reg=0.0)
    assert torch.equal(diag.covs[0], torch.diag(m.covs[0].diagonal()))


def test_fit_mixture_refuses_bad_settings_with_clear_messages():
    z = torch.randn(10, 2, generator=gen(8))
    with pytest.raises(ValueError, match="between 1 and the number of points"):
        fit_mixture(z, 11)
    with pytest.raises(ValueError, match="covariance must be one of"):
        fit_mixture(z, 2, covariance="spherical")


def test_aggregate_log_density_is_the_mean_of_the_posteriors_densities():
    mu = torch.randn(7, 3, generator=gen(9))
    logvar = torch.randn(7, 3, generator=gen(10)) * 0.3
    z = torch.randn(11, 3, generator=gen(11))
    posteriors = D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1)
    want = posteriors.log_prob(z[:, None]).logsumexp(1) - math.log(7)        # [11]
    assert torch.allclose(aggregate_log_density(z, mu, logvar, chunk=4), want, atol=1e-5)
