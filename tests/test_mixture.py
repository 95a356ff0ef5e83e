"""Gaussian mixtures: torch.distributions agrees, EM recovers a known mixture, the likelihood
never falls, a seed repeats everything, a ridge survives degenerate codes; N(0, I) and the
aggregate posterior are mixtures too."""
import math

import pytest
import torch
from torch import distributions as D

from companion.mixture import GaussianMixture, e_step, fit_mixture, m_step


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


@pytest.mark.parametrize("k, kwargs, match", [
    (11, {}, "between 1 and the number of points"),
    (0, {}, "between 1 and the number of points"),
    (-2, {}, "between 1 and the number of points"),
    (2, {"covariance": "spherical"}, "covariance must be one of"),
    (2, {"iterations": -1}, "iterations must be >= 0"),
])
def test_fit_mixture_refuses_bad_settings_with_clear_messages(k, kwargs, match):
    z = torch.randn(10, 2, generator=gen(8))
    with pytest.raises(ValueError, match=match):
        fit_mixture(z, k, **kwargs)
    with pytest.raises(ValueError, match=r"z \[N, L\]"):
        fit_mixture(torch.randn(10), 2)


def test_em_survives_a_collapsed_coordinate_and_fewer_points_than_dimensions():
    z = torch.randn(200, 4, generator=gen(12), dtype=torch.float64)
    z[:, 2] = 0.7                                          # a latent dimension that never varies
    mixture, history = fit_mixture(z, 3, iterations=20, seed=0)
    assert torch.isfinite(torch.tensor(history)).all()
    assert torch.isfinite(mixture.log_prob(z)).all()
    few, _ = fit_mixture(torch.randn(3, 5, generator=gen(13)), 2, iterations=5)   # N < L
    assert torch.linalg.cholesky_ex(few.covs).info.eq(0).all()


def test_the_ridge_scales_with_the_data_and_has_a_floor():
    z = 100 * torch.randn(50, 3, generator=gen(14), dtype=torch.float64)
    resp = torch.ones(50, 1, dtype=torch.float64)
    added = m_step(z, resp).covs[0] - m_step(z, resp, reg=0.0).covs[0]
    want = 1e-4 * z.var(0, correction=0).mean() * torch.eye(3, dtype=torch.float64)
    assert torch.allclose(added, want)
    still = m_step(torch.ones(4, 3, dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64))
    floor = 1e-8 * torch.eye(3, dtype=torch.float64)            # 1e-4 x a variance of 1e-4
    assert torch.allclose(still.covs[0], floor, rtol=0, atol=1e-15)


def test_a_mixture_takes_full_or_diagonal_covariances_not_both():
    w, m = torch.ones(1), torch.zeros(1, 2)
    with pytest.raises(ValueError, match="exactly one"):
        GaussianMixture(w, m)
    with pytest.raises(ValueError, match="exactly one"):
        GaussianMixture(w, m, torch.eye(2)[None], torch.zeros(1, 2))


@pytest.mark.parametrize("n", [0, -3])
def test_sampling_refuses_a_count_below_one(n):
    with pytest.raises(ValueError, match=r"sample\(n=.*\): n takes a whole number >= 1"):
        TRUE.sample(n)
    with pytest.raises(ValueError, match=r"sample_each\(n=.*\): n takes a whole number >= 1"):
        TRUE.sample_each(n)


def test_the_constructors_refuse_empty_mixtures():
    with pytest.raises(ValueError, match="number of latent dimensions"):
        GaussianMixture.standard_normal(0)
    with pytest.raises(ValueError, match="at least one image"):
        GaussianMixture.aggregate_posterior(torch.zeros(0, 2), torch.zeros(0, 2))


def test_sample_each_draws_n_from_every_component_in_order():
    z, component = TRUE.sample_each(5000, gen(15))
    assert z.shape == (15_000, 2) and component.tolist() == [0] * 5000 + [1] * 5000 + [2] * 5000
    for k in range(3):
        assert torch.allclose(z[component == k].mean(0), TRUE.means[k], atol=0.06)
        assert torch.allclose(torch.cov(z[component == k].T), TRUE.covs[k], atol=0.08)
    assert torch.equal(TRUE.sample_each(3, gen(16))[0], TRUE.sample_each(3, gen(16))[0])


# --- N(0, I) and the aggregate posterior: mixtures with diagonal components ------------------

def test_standard_normal_is_a_one_component_mixture():
    prior = GaussianMixture.standard_normal(3)
    z = torch.randn(20, 3, generator=gen(17)) * 2
    want = D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1).log_prob(z)
    assert torch.allclose(prior.log_prob(z), want, atol=1e-6)
    draws, component = prior.sample(50_000, gen(18))
    assert draws.shape == (50_000, 3) and component.eq(0).all()
    assert torch.allclose(draws.mean(0), torch.zeros(3), atol=0.02)
    assert torch.allclose(torch.cov(draws.T), torch.eye(3), atol=0.02)


def test_diagonal_mixture_log_prob_agrees_with_torch_distributions():
    weights = torch.tensor([0.2, 0.8], dtype=torch.float64)
    means = torch.tensor([[0.0, 1.0], [3.0, -1.0]], dtype=torch.float64)
    logvars = torch.tensor([[0.0, -1.0], [0.5, 0.2]], dtype=torch.float64)
    mixture = GaussianMixture(weights, means, logvars=logvars)
    reference = D.MixtureSameFamily(D.Categorical(weights),
                                    D.Independent(D.Normal(means, (0.5 * logvars).exp()), 1))
    z = torch.randn(30, 2, generator=gen(19), dtype=torch.float64) * 3
    assert torch.allclose(mixture.log_prob(z, chunk=7), reference.log_prob(z))
    draws, component = mixture.sample(40_000, gen(20))
    assert torch.allclose(draws[component == 1].std(0), (0.5 * logvars[1]).exp(), atol=0.02)


def test_aggregate_posterior_is_the_mean_of_the_posteriors_densities():
    mu = torch.randn(7, 3, generator=gen(9))
    logvar = torch.randn(7, 3, generator=gen(10)) * 0.3
    z = torch.randn(11, 3, generator=gen(11))
    posteriors = D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1)
    want = posteriors.log_prob(z[:, None]).logsumexp(1) - math.log(7)        # [11]
    q = GaussianMixture.aggregate_posterior(mu, logvar)
    assert torch.allclose(q.log_prob(z, chunk=4), want, atol=1e-5)


def test_aggregate_posterior_with_a_collapsed_posterior_stays_finite_in_float32():
    mu = torch.randn(4, 2, generator=gen(21))
    logvar = torch.zeros(4, 2)
    logvar[1] = -120.0                       # exp(-120) is 0 in float32
    q = GaussianMixture.aggregate_posterior(mu, logvar)
    at_mean = q.log_prob(mu[1:2])            # where the collapsed posterior sits
    assert torch.isfinite(at_mean).all() and at_mean.item() > 100
    assert torch.isfinite(q.log_prob(torch.randn(5, 2, generator=gen(22)))).all()
