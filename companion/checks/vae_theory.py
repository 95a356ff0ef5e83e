"""Self-checks for the exercises of notebook 02 (the ELBO).

    check_mc_elbo(fn)          core exercise (section 3): the Monte Carlo ELBO of a Gaussian q;
                               hands on the course's answer while unwritten
    check_beta_optimal_q(fn)   Exercise 1: the q that maximizes the beta-ELBO, in closed form

Both work on the linear-Gaussian model of `companion.models.linear_gaussian`, where the right
answer is known exactly. The checks name the usual mistakes: averaging weights instead of their
logarithms, leaving out log p(z) or -log q(z|x), flipping a sign; putting beta on the wrong part
of the optimal q. They run under `torch.random.fork_rng`, so a learner's function that draws from
the global generator leaves the notebook's random numbers untouched.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import as_double, expect, passed, self_check
from companion.gaussians import full_gaussian_log_density, sample_gaussian
from companion.models.linear_gaussian import LinearGaussian


def _problem() -> tuple[LinearGaussian, torch.Tensor]:
    """A fixed model (D=4, K=2) and three observations from it."""
    model = LinearGaussian.random(data_dim=4, latent_dim=2, sigma=0.7, seed=21)
    x, _ = model.sample(3, torch.Generator().manual_seed(22))
    return model, x



# --- core exercise: the ELBO by Monte Carlo ----------------------------------------------

def _reference_mc_elbo(model, x, mean, cov, n_samples, generator=None):
    """The course's answer: mean over n_samples z ~ N(mean, cov) of log p(x, z) - log q(z). [N]"""
    z = sample_gaussian(mean, cov, n_samples, generator)                          # [S, N, K]
    log_w = model.log_likelihood(x, z) + model.log_prior(z) - full_gaussian_log_density(z, mean, cov)
    return log_w.mean(0)


def _some_q(model: LinearGaussian, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A Gaussian q per observation that is deliberately not the posterior: [N, K], [K, K]."""
    post_mean, _ = model.posterior(x)
    cov = torch.tensor([[0.30, 0.10], [0.10, 0.20]], dtype=torch.float64)
    return post_mean + 0.4, cov


@self_check(reference=_reference_mc_elbo)
def check_mc_elbo(mc_elbo: Callable[..., torch.Tensor]) -> None:
    """Core exercise: mc_elbo(model, x, mean, cov, n_samples, generator) estimates the ELBO, [N]."""
    with torch.random.fork_rng():
        _check_mc_elbo(mc_elbo)


def _check_mc_elbo(mc_elbo: Callable[..., torch.Tensor]) -> None:
    model, x = _problem()
    mean, cov = _some_q(model, x)
    n = 20_000
    out = as_double(mc_elbo(model, x, mean, cov, n, torch.Generator().manual_seed(23)),
                    (len(x),), "one ELBO estimate per observation", finite=True)
    again = as_double(mc_elbo(model, x, mean, cov, n, torch.Generator().manual_seed(25)),
                      (len(x),), "one ELBO estimate per observation", finite=True)
    want = model.elbo(x, mean, cov)
    # the standard error that a correct estimate has at this n, from our own samples
    z = sample_gaussian(mean, cov, n, torch.Generator().manual_seed(24))          # [n, N, K]
    terms = model.log_likelihood(x, z) + model.log_prior(z) - full_gaussian_log_density(z, mean, cov)
    tol = 5 * terms.std(0) / math.sqrt(n) + 1e-6                                 # [N]
    k = model.latent_dim
    entropy = 0.5 * (torch.logdet(cov) + k * (1 + math.log(2 * math.pi)))       # H(q), closed form
    log_prior = -0.5 * (cov.trace() + mean.pow(2).sum(1) + k * math.log(2 * math.pi))  # E_q log p(z)

    def near(value: torch.Tensor) -> bool:
        return bool(((out - value).abs() < tol).all())

    expect(bool(((out - again).abs() < 2 * tol).all()),
           "two calls with different generators disagree by more than Monte Carlo noise "
           f"({(out - again).abs().max():.2f} nats): average over all n_samples draws")
    expect(not near(want - entropy),
           "you left out -log q(z|x): the ELBO averages log p(x|z) + log p(z) - log q(z|x)")
    expect(not near(want - 2 * entropy),
           "the sign of log q(z|x) is flipped: it enters the ELBO with a minus")
    expect(not near(want - log_prior),
           "you left out log p(z), the prior: log p(x, z) = log p(x|z) + log p(z)")
    expect(not near(model.reconstruction(x, mean, cov)),
           "that is only the reconstruction term E_q[log p(x|z)]: add log p(z) - log q(z|x)")
    log_px = model.log_marginal(x)
    expect(not ((out - log_px).abs() < tol + 0.25 * (log_px - want)).all(),
           "your estimates are close to log p(x), above the ELBO: that happens when you average "
           "the weights p(x, z) / q(z|x) and then take the log. Average the logs instead")
    expect(near(want),
           f"expected about {want.numpy().round(3).tolist()}, got {out.numpy().round(3).tolist()}. "
           "Draw n_samples z from N(mean, cov), and average log p(x|z) + log p(z) - log q(z|x) "
           "over the samples (dim 0)")
    passed(f"your Monte Carlo ELBO agrees with the closed form within "
           f"{float(tol.max()):.2f} nats for all three observations.")


# --- exercise 1: the q that maximizes the beta-ELBO ----------------------------------------

def _beta_optimum(model: LinearGaussian, x: torch.Tensor, beta: float):
    """Reference: precision A = beta I + W^T W / sigma^2; mean = A^-1 W^T (x - b) / sigma^2, cov = beta A^-1."""
    eye = torch.eye(model.latent_dim, dtype=x.dtype)
    a_inv = torch.linalg.inv(beta * eye + model.W.T @ model.W / model.sigma**2)
    mean = (x - model.b) @ model.W @ a_inv / model.sigma**2
    return mean, beta * a_inv


@self_check
def check_beta_optimal_q(beta_optimal_q: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Exercise 1: beta_optimal_q(model, x, beta) -> (mean [N, K], cov [K, K]) maximizing the beta-ELBO."""
    model, x = _problem()
    k = model.latent_dim
    # atol=1e-5 below: an answer solved in float32 is off by ~4e-7 in means of ~2.5
    for beta in (1.0, 0.3, 4.0):
        answer = beta_optimal_q(model, x, beta)
        expect(isinstance(answer, tuple) and len(answer) == 2, "return a pair (mean, cov)")
        mean = as_double(answer[0], (len(x), k), f"the mean at beta={beta}", finite=True)
        cov = as_double(answer[1], (k, k), f"the covariance at beta={beta}", finite=True)
        want_mean, want_cov = _beta_optimum(model, x, beta)
        post_mean, post_cov = model.posterior(x)
        if beta == 1.0:
            expect(torch.allclose(mean, post_mean, atol=1e-5) and torch.allclose(cov, post_cov, atol=1e-5),
                   "at beta = 1 the best q is the exact posterior p(z|x) = model.posterior(x); "
                   "yours is not")
            continue
        expect(not (torch.allclose(mean, post_mean, atol=1e-5) and torch.allclose(cov, post_cov, atol=1e-5)),
               f"at beta={beta} you return the posterior: beta weighs the KL to the prior, so the "
               "best q moves toward N(0, I)")
        expect(torch.allclose(mean, want_mean, atol=1e-5),
               f"the mean is wrong at beta={beta}: set the gradient with respect to the mean to zero, "
               "W^T (x - b - W m) / sigma^2 - beta m = 0, and solve for m")
        expect(not torch.allclose(cov, want_cov / beta, atol=1e-5),
               f"the covariance at beta={beta} misses a factor beta: the gradient with respect to "
               "the covariance gives S^-1 = I + W^T W / (beta sigma^2)")
        expect(torch.allclose(cov, want_cov, atol=1e-5),
               f"the covariance is wrong at beta={beta}: set the gradient of the beta-ELBO with "
               "respect to S to zero (d tr(AS)/dS = A, d log det S / dS = S^-1)")
        better = model.elbo(x, mean, cov, beta) >= model.elbo(x, want_mean, want_cov, beta) - 1e-9
        expect(bool(better.all()), f"your q does not maximize the beta-ELBO at beta={beta}")
    passed("your q matches the closed-form optimum of the beta-ELBO at beta = 0.3, 1 and 4.")
