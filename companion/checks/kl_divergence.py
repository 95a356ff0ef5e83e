"""Self-checks for the exercises of notebook 04 (the KL divergence).

    check_kl_diagonal(fn)        section 3 (core): the closed-form KL of a diagonal Gaussian to
                                 N(0, I), [N, L] -> [N]; hands on the course's answer,
                                 `companion.gaussians.kl_divergence`, while it is not written
    check_kl_two_gaussians(fn)   Exercise 1: KL(N(mu, e^logvar) || N(m, e^logs2))
    check_kl_to_laplace_mc(fn)   Exercise 2: the KL to a Laplace prior, by Monte Carlo
    check_effective_beta(fn)     Exercise 3: the beta a loss snippet trains with

Each check runs the learner's function on inputs whose right answer is known (taken from
torch.distributions or from the definition) and names the usual mistake when the answer is
wrong: the reverse direction KL(p || q), a sign slip, a missing 1/2, probabilities where
log-probabilities belong, a 'mean' that also divides by the number of classes.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.distributions import Independent, Laplace, Normal, kl_divergence

from companion import gaussians
from companion.checks import ExerciseError, as_double, close, expect, passed, self_check, unwritten


# --- core exercise: the closed-form KL of a diagonal Gaussian to N(0, I) ---------------------

def _diagonal_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """mu, logvar [6, 5], float64: six examples, five dimensions, sigma^2 from e^-3 to e^2."""
    g = torch.Generator().manual_seed(12)
    mu = 1.5 * torch.randn(6, 5, generator=g, dtype=torch.float64)
    logvar = -3 + 5 * torch.rand(6, 5, generator=g, dtype=torch.float64)
    return mu, logvar


@self_check(reference=gaussians.kl_divergence)
def check_kl_diagonal(kl_diagonal: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Core exercise: kl_diagonal(mu, logvar [N, L]) = KL(N(mu, diag e^logvar) || N(0, I)), [N]."""
    mu, logvar = _diagonal_inputs()
    n, latent = mu.shape
    try:
        out = kl_diagonal(mu.clone(), logvar.clone())
    except Exception as err:
        if isinstance(err, ExerciseError) or unwritten(err):
            raise
        raise ExerciseError(f"Calling your function raised {type(err).__name__}: {err}\n"
                            "It gets mu and logvar, two tensors of shape [N, L].") from err
    expect(isinstance(out, torch.Tensor), f"return a torch.Tensor, not {type(out).__name__}")
    shape = tuple(out.shape)
    expect(shape != (), "one number for the whole batch: return one KL per example, shape [N]. "
           "Sum over the latent dimension only (dim=-1), not over the batch as well")
    expect(shape != (n, latent), "one KL per example and dimension, shape [N, L]: the KL of "
           "the diagonal Gaussian is the sum of them, so sum over the latent dimension (dim=-1)")
    expect(shape != (latent,), f"shape [L] = [{latent}]: you reduced over the batch (dim=0). "
           "Sum over the latent dimension, the last one (dim=-1)")
    out = as_double(out, (n,), "one KL per example", finite=True)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    want = kl_divergence(q, p)                                              # [N]
    var = logvar.exp()

    def kl_with(mean_sq=mu**2, variance=var, log_variance=logvar, one=1.0, half=0.5):
        return half * (mean_sq + variance - log_variance - one).sum(-1)

    mistakes = [
        (-want, "that is -KL, the term as it appears in the ELBO, "
                "0.5 * sum(1 + logvar - mu^2 - exp(logvar)). The loss adds the KL itself: "
                "flip the sign"),
        (0.5 * (mu**2 + var + logvar + 1).sum(-1),
         "a sign slip: -(log sigma^2 + 1) belongs in the bracket, not +(log sigma^2 + 1). "
         "At the prior (mu = 0, logvar = 0) a KL must be exactly 0"),
        (kl_with(variance=(0.5 * logvar).exp()),
         "you used sigma = exp(logvar / 2) where the formula has the variance "
         "sigma^2 = exp(logvar)"),
        (kl_with(variance=var**2),
         "you used (sigma^2)^2 = exp(logvar)^2 where the formula has sigma^2 = exp(logvar): "
         "logvar already is the log of the variance"),
        (kl_with(variance=logvar), "you used logvar itself as the variance: sigma^2 = exp(logvar)"),
        (kl_with(log_variance=0.5 * logvar),
         "the log term is log sigma^2 = logvar, not log sigma = logvar / 2"),
        (kl_with(log_variance=torch.zeros_like(logvar)),
         "the log sigma^2 term is missing: KL = 0.5 * (mu^2 + sigma^2 - log sigma^2 - 1)"),
        (kl_with(half=1.0), "twice the right answer: the bracket carries a factor 1/2"),
        (kl_with(mean_sq=mu.abs()), "the mean enters squared: mu^2, not |mu|"),
        (kl_with(mean_sq=mu), "the mean enters squared: mu^2, not mu"),
        (want / latent, "you averaged over the latent dimensions; sum them: the KL of "
                        "independent dimensions adds up (a mean would divide it by L)"),
    ]
    for value, hint in mistakes:
        expect(not close(out, value), hint)
    at_prior = as_double(kl_diagonal(torch.zeros_like(mu), torch.zeros_like(logvar)), (n,),
                         "one KL per example", finite=True)
    expect(bool(at_prior.abs().max() < 1e-9),
           "at the prior (mu = 0, logvar = 0) the KL must be exactly 0: check the '- 1'")
    expect(close(out, want),
           "compare with torch.distributions: 0.5 * (mu^2 + exp(logvar) - logvar - 1), "
           "summed over the latent dimension (dim=-1), one number per example")
    passed("one KL per example, equal to torch.distributions' for six diagonal Gaussians and "
           "exactly 0 at the prior.")


# --- exercise 1: KL between two univariate Gaussians ------------------------------------

def _two_gaussians() -> tuple[torch.Tensor, ...]:
    """Parameters (mu, logvar, m, logs2) of q = N(mu, e^logvar) and p = N(m, e^logs2), [12]."""
    g = torch.Generator().manual_seed(4)
    mu, logvar, m, logs2 = torch.randn(4, 12, generator=g, dtype=torch.float64)
    return 2 * mu, logvar, m, logs2


@self_check
def check_kl_two_gaussians(kl_two_gaussians: Callable[..., torch.Tensor]) -> None:
    """Exercise 1: kl_two_gaussians(mu, logvar, m, logs2) = KL(N(mu, e^logvar) || N(m, e^logs2))."""
    mu, logvar, m, logs2 = _two_gaussians()
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(m, (0.5 * logs2).exp())
    want = kl_divergence(q, p)                                            # [12]
    out = as_double(kl_two_gaussians(mu.clone(), logvar.clone(), m.clone(), logs2.clone()),
                     (12,), "one KL per pair of Gaussians, element by element")
    expect(bool(torch.isfinite(out).all()), "the result contains NaN or infinity")
    expect(not close(out, kl_divergence(p, q)),
           "that is KL(p || q), the reverse direction: the expectation is under q = N(mu, e^logvar)")
    std_prior = 0.5 * (mu**2 + logvar.exp() - logvar - 1)
    expect(not close(out, std_prior),
           "that is the KL to N(0, 1): your answer ignores the prior's mean m and log-variance logs2")
    expect(bool((out > -1e-9).all()),
           "some values are negative, and a KL never is: check the sign of each log-variance term")
    expect(not close(out, 2 * want), "twice the right answer: the whole bracket carries a factor 1/2")
    expect(not close(out, 0.5 * (logs2 - logvar + logvar.exp() / logs2.exp() + (mu - m)**2 - 1)),
           "divide (mu - m)^2 by the prior's variance e^logs2 too, not only sigma^2")
    same = as_double(kl_two_gaussians(mu.clone(), logvar.clone(), mu.clone(), logvar.clone()),
                      (12,), "one KL per pair of Gaussians")
    expect(bool(same.abs().max() < 1e-6),
           "KL(q || q) must be 0, but yours is not when both Gaussians are the same: "
           "check the '- 1' and the log-variance terms")
    expect(close(out, want),
           "expected 0.5 * (logs2 - logvar + (e^logvar + (mu - m)^2) / e^logs2 - 1); "
           "compare yours with torch.distributions.kl_divergence on a few numbers")
    passed("your KL matches torch.distributions for twelve pairs of Gaussians.")


# --- exercise 3: the beta that a loss snippet trains with -------------------------------

def _true_effective_beta(n_pixels: int, latent_dim: int, batch_size: int) -> float:
    """The snippet's loss is (recon_sum + beta * kl_sum) / (N * D) with beta = N * D."""
    return float(n_pixels * batch_size)


@self_check
def check_effective_beta(effective_beta: Callable[[int, int, int], float]) -> None:
    """Exercise 3: effective_beta(n_pixels, latent_dim, batch_size) for the notebook's snippet."""
    cases = [(784, 20, 128), (784, 2, 64), (3072, 32, 16)]
    for d, L, n in cases:
        out = effective_beta(d, L, n)
        expect(isinstance(out, (int, float)) or (isinstance(out, torch.Tensor) and out.numel() == 1),
               f"return a number, not {type(out).__name__}")
        out, want = float(out), _true_effective_beta(d, L, n)
        expect(abs(out - d / L) > 1e-9,
               "n_pixels / latent_dim is the beta of the notebook's loss, where the KL was also "
               "averaged. Here the KL is summed, over the batch too")
        expect(abs(out * want - 1) > 1e-9, "upside down: beta multiplies the KL of the real ELBO")
        expect(abs(out - d) > 1e-9,
               f"for D={d}, L={L}, N={n} you return D: the KL is summed over the batch as well, "
               "while the reconstruction is averaged over it")
        expect(abs(out - want) <= 1e-9 * want,
               f"for D={d}, L={L}, N={n}: write the snippet's loss as (sum of reconstruction + "
               "beta * sum of KL) / (a constant) and read beta off")
    passed("beta = n_pixels * batch_size: with batch 128, a beta of 100352, and it changes "
           "whenever you change the batch size.")


# --- exercise 2: the KL to a Laplace prior, by Monte Carlo -----------------------------------

LAPLACE_SCALE = 2.5   # b of the prior Laplace(0, b) in the check; log(2b) = 1.6 nats, easy to see


def _gaussians_for_laplace() -> tuple[torch.Tensor, torch.Tensor]:
    """Means and log-variances [8] of the Gaussians q = N(mu, e^logvar) of exercise 2."""
    g = torch.Generator().manual_seed(6)
    mu, logvar = torch.randn(2, 8, generator=g, dtype=torch.float64)
    return 1.5 * mu, logvar


def _laplace_term_std(q: Normal, p: Laplace) -> torch.Tensor:
    """Standard deviation of log q(z) - log p(z) under z ~ q, from 200 000 draws; [8]."""
    eps = torch.randn(200_000, *q.loc.shape, generator=torch.Generator().manual_seed(7),
                      dtype=torch.float64)
    z = q.loc + q.scale * eps
    return (q.log_prob(z) - p.log_prob(z)).std(0)


@self_check
def check_kl_to_laplace_mc(kl_to_laplace_mc: Callable[..., tuple]) -> None:
    """Exercise 2: kl_to_laplace_mc(mu, logvar, b, n_samples, generator) -> (estimate, stderr)."""
    mu, logvar = _gaussians_for_laplace()
    b, n = LAPLACE_SCALE, 20_000
    q, p = Normal(mu, (0.5 * logvar).exp()), Laplace(torch.zeros_like(mu), b)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        out = kl_to_laplace_mc(mu.clone(), logvar.clone(), b, n, torch.Generator().manual_seed(0))
        expect(isinstance(out, (tuple, list)) and len(out) == 2,
               "return two tensors, (estimate, standard_error), one of each per Gaussian")
        return (as_double(out[0], (8,), "the estimate, one KL per Gaussian", finite=True),
                as_double(out[1], (8,), "the standard error, one per Gaussian", finite=True))

    estimate, stderr = run()
    expect(torch.equal(estimate, run()[0]),
           "two calls with the same seeded generator gave different numbers: draw the noise "
           "with torch.randn(..., generator=generator)")
    want = kl_divergence(q, p)                                      # [8], the closed form
    se = _laplace_term_std(q, p) / math.sqrt(n)                     # [8], the right standard error

    def near(value: torch.Tensor) -> bool:                          # within 6 SE, or 5 %
        return bool(((estimate - value).abs() <= 6 * se + 0.05 * value.abs()).all())

    entropy_q = q.entropy()
    mean_abs_z = b * (want + entropy_q - math.log(2 * b))           # E_q|z|, from the closed form
    q_wide = Normal(mu, logvar.exp())                               # std e^logvar: the usual slip
    if not near(want):
        expect(not near(-want), "your estimates are minus the KL: average log q(z) - log p(z), "
               "not log p(z) - log q(z)")
        reverse = kl_divergence(p, q)
        expect(not (near(reverse) or near(-reverse)), "you sampled z from the Laplace: draw "
               "the samples from q = N(mu, e^logvar), the distribution on the left of KL(q || p)")
        expect(not near(want - math.log(2 * b)), "your Laplace log-density misses its "
               "normaliser: log p(z) = -log(2b) - |z| / b")
        expect(not near(want + mean_abs_z * (1 - 1 / b)), "divide |z| by the scale b in the "
               "Laplace log-density: log p(z) = -log(2b) - |z| / b")
        expect(not (near(kl_divergence(q_wide, p)) or near(kl_divergence(q_wide, p)
                                                           - kl_divergence(q_wide, q))),
               "the standard deviation is exp(logvar / 2), not exp(logvar): "
               "z = mu + exp(0.5 * logvar) * eps")
    expect(bool(((estimate - want).abs() <= 5 * se).all()),
           f"an estimate is {((estimate - want).abs() / se).max():.0f} standard errors from "
           "the true KL: average log N(z; mu, e^logvar) - log Laplace(z; 0, b) over "
           "z = mu + exp(logvar / 2) * eps, and compare with torch.distributions.kl_divergence")
    ratio = stderr / se
    root = math.sqrt(n)
    expect(not bool(((ratio > 0.8 * root) & (ratio < 1.25 * root)).all()),
           "that is the standard deviation of the terms: the standard error divides it by "
           "the square root of the number of samples")
    expect(not bool(((ratio > 0.8 / root) & (ratio < 1.25 / root)).all()),
           "your standard error is divided by S: divide the standard deviation by sqrt(S)")
    expect(bool(((ratio > 0.8) & (ratio < 1.25)).all()),
           "the standard error should be the standard deviation of the S terms / sqrt(S)")
    passed("all eight estimates lie within their error bars of torch.distributions' closed "
           "form, and no closed form was needed to get them.")
