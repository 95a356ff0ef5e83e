"""The linear-Gaussian model against torch.distributions, Bayes' rule and Monte Carlo."""
import math

import pytest
import torch
from test_gaussians import random_q
from torch.distributions import MultivariateNormal

from companion.gaussians import full_gaussian_log_density, sample_gaussian
from companion.models.linear_gaussian import LinearGaussian, _beta_elbo_cholesky, fit_q

MODEL = LinearGaussian.random(data_dim=5, latent_dim=2, sigma=0.5, seed=0)
X, Z = MODEL.sample(4, torch.Generator().manual_seed(1))


def test_random_is_seeded_and_shaped():
    again = LinearGaussian.random(data_dim=5, latent_dim=2, sigma=0.5, seed=0)
    assert torch.equal(again.W, MODEL.W) and torch.equal(again.b, MODEL.b)
    assert MODEL.W.shape == (5, 2) and MODEL.data_dim == 5 and MODEL.latent_dim == 2
    assert X.shape == (4, 5) and Z.shape == (4, 2) and X.dtype == torch.float64


def test_log_marginal_matches_torch():
    want = MultivariateNormal(MODEL.b, MODEL.marginal_cov()).log_prob(X)
    assert torch.allclose(MODEL.log_marginal(X), want, atol=1e-10)


def test_likelihood_and_prior_match_torch():
    lik = MultivariateNormal(Z @ MODEL.W.T + MODEL.b, MODEL.sigma**2 * torch.eye(5, dtype=torch.float64))
    assert torch.allclose(MODEL.log_likelihood(X, Z), lik.log_prob(X), atol=1e-10)
    prior = MultivariateNormal(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    assert torch.allclose(MODEL.log_prior(Z), prior.log_prob(Z), atol=1e-10)


def test_posterior_satisfies_bayes_rule_at_any_z():
    mean, cov = MODEL.posterior(X)
    z = torch.randn(6, 4, 2, dtype=torch.float64) * 3                    # anywhere, not only near the mode
    bayes = MODEL.log_likelihood(X, z) + MODEL.log_prior(z) - full_gaussian_log_density(z, mean, cov)
    assert torch.allclose(bayes, MODEL.log_marginal(X).expand(6, 4), atol=1e-9)


def test_elbo_identity_and_bound_forrandom_q():
    mean, cov = random_q(4, 2, seed=5)
    gap = MODEL.log_marginal(X) - MODEL.elbo(X, mean, cov)
    assert torch.allclose(gap, MODEL.kl_to_posterior(X, mean, cov), atol=1e-9)
    assert (gap > 0).all()
    post_mean, post_cov = MODEL.posterior(X)
    assert torch.allclose(MODEL.elbo(X, post_mean, post_cov), MODEL.log_marginal(X), atol=1e-10)


def test_elbo_matches_monte_carlo():
    mean, cov = random_q(2, 2, seed=6)
    z = sample_gaussian(mean, cov, 200_000, torch.Generator().manual_seed(7))   # [S, 2, 2]
    terms = MODEL.log_likelihood(X[:2], z) + MODEL.log_prior(z) - full_gaussian_log_density(z, mean, cov)
    stderr = terms.std(0) / math.sqrt(len(terms))
    assert ((terms.mean(0) - MODEL.elbo(X[:2], mean, cov)).abs() < 4 * stderr).all()


def test_beta_weights_only_the_kl():
    mean, cov = random_q(4, 2, seed=10)
    recon, kl = MODEL.reconstruction(X, mean, cov), MODEL.kl_to_prior(mean, cov)
    assert torch.allclose(MODEL.elbo(X, mean, cov, beta=3.0), recon - 3 * kl)
    assert torch.allclose(MODEL.elbo(X, mean, cov, beta=0.0), recon)


def test_fit_q_finds_the_posterior():
    trace = fit_q(MODEL, X[:2], steps=400)
    assert len(trace) == 401
    assert torch.equal(trace[0][0], torch.zeros(2, 2))                 # starts at the prior
    gaps = [(MODEL.log_marginal(X[:2]) - MODEL.elbo(X[:2], m, c)).max().item()
            for m, c in (trace[0], trace[-1])]
    assert gaps[1] < 1e-5 < gaps[0]
    post_mean, post_cov = MODEL.posterior(X[:2])
    assert torch.allclose(trace[-1][0], post_mean, atol=1e-3)
    assert torch.allclose(trace[-1][1], post_cov.expand(2, 2, 2), atol=1e-3)


def test_fit_q_diagonal_stays_diagonal_and_keeps_a_gap():
    trace = fit_q(MODEL, X[:1], diagonal=True, steps=400)
    mean, cov = trace[-1]
    assert cov[0, 0, 1] == 0 and cov[0, 1, 0] == 0
    gap = (MODEL.log_marginal(X[:1]) - MODEL.elbo(X[:1], mean, cov)).item()
    # the best diagonal q matches the posterior precision's diagonal (a known mean-field result)
    _, post_cov = MODEL.posterior(X[:1])
    best_var = 1 / torch.linalg.inv(post_cov).diagonal()
    assert torch.allclose(cov[0].diagonal(), best_var, rtol=1e-3)
    assert gap > 1e-4


@pytest.mark.parametrize("beta", [0.5, 4.0])
def test_fit_q_with_beta_moves_away_from_the_posterior(beta):
    mean, cov = fit_q(MODEL, X[:1], beta=beta, steps=400)[-1]
    assert MODEL.kl_to_posterior(X[:1], mean, cov).item() > 1e-3


def test_fit_q_takes_one_beta_per_row():
    both = fit_q(MODEL, X[:2], beta=torch.tensor([1.0, 4.0], dtype=torch.float64), steps=50)[-1]
    one = fit_q(MODEL, X[1:2], beta=4.0, steps=50)[-1]
    assert torch.allclose(both[0][1:], one[0]) and torch.allclose(both[1][1:], one[1])


def test_the_cholesky_objective_of_fit_q_is_the_elbo():
    g = torch.Generator().manual_seed(12)
    m = torch.randn(4, 2, generator=g, dtype=torch.float64)
    log_diag = torch.randn(4, 2, generator=g, dtype=torch.float64)
    chol = torch.diag_embed(log_diag.exp()) + torch.randn(4, 2, 2, generator=g, dtype=torch.float64).tril(-1)
    cov = chol @ chol.transpose(-2, -1)
    for beta in (1.0, 2.5):
        assert torch.allclose(_beta_elbo_cholesky(MODEL, X, m, chol, log_diag, beta),
                              MODEL.elbo(X, m, cov, beta), atol=1e-10)
