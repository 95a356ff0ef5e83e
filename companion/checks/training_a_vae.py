"""Self-checks for the exercises of notebook 05 (training and evaluating a VAE).

Exercise 1 asks for the IWAE bound from a table of log importance weights; exercise 2 for
the negative ELBO of a batch built from torch.distributions objects. Each check compares
with a reference computed here and names the usual mistake when the answer is wrong.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import (ExerciseError, as_double, close, expect, passed, self_check,
                              unwritten)
from companion.gaussians import kl_divergence
from companion.losses import bernoulli_nll


@self_check
def check_iwae(iwae_from_log_weights: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1: iwae_from_log_weights(log_w [k, N]) = log (1/k) sum_i exp(log_w[i]), [N]."""
    g = torch.Generator().manual_seed(5)
    log_w = (-95 + 4 * torch.randn(64, 7, generator=g, dtype=torch.float64))   # [k=64, N=7]
    want = torch.logsumexp(log_w, 0) - math.log(64)
    out = as_double(iwae_from_log_weights(log_w.clone()), (7,),
                  "one bound per image: reduce over the k samples (dimension 0)")
    expect(not close(out, log_w.mean(0)),
           "that is the mean of log w: the ELBO estimate, not IWAE. Average the weights "
           "themselves inside the log")
    expect(not close(out, want + math.log(64)),
           "off by log k: you summed the weights; the bound takes their mean (subtract log k)")
    expect(bool(torch.isfinite(out).all()),
           "the result is not finite: exp(-95) is fine, but exp of a log-weight near -1000 "
           "underflows to 0. Use torch.logsumexp")
    expect(close(out, want), "compare with log((1/k) * sum_i w_i), computed with torch.logsumexp")
    far = -1000 + log_w                                     # typical of real images
    out = as_double(iwae_from_log_weights(far.clone()), (7,), "one bound per image")
    expect(bool(torch.isfinite(out).all()) and close(out, want - 1000),
           "with log-weights near -1000 your answer is not finite or wrong: exp underflows "
           "to 0 there. Use torch.logsumexp, which subtracts the maximum first")
    passed("IWAE_k = logsumexp(log w) - log k, stable for log-weights of real images.")


def _elbo_inputs(seed: int, n: int, latent: int, logvar_range: tuple[float, float]):
    """logits, binary x [n, 784] and mu, logvar [n, latent], float64, with gradients."""
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, 784, generator=g, dtype=torch.float64)
    x = (torch.rand(n, 784, generator=g, dtype=torch.float64) < 0.2).double()
    mu = torch.randn(n, latent, generator=g, dtype=torch.float64)
    low, high = logvar_range
    logvar = low + (high - low) * torch.rand(n, latent, generator=g, dtype=torch.float64)
    return logits.requires_grad_(), x, mu.requires_grad_(), logvar.requires_grad_()


def _call_loss(fn: Callable, *args) -> torch.Tensor:
    """The learner's loss on args, as a float64 number; a crash or a cut graph becomes a hint."""
    try:
        out = fn(*(t.detach().clone().requires_grad_(t.requires_grad) for t in args))
    except Exception as err:
        if isinstance(err, ExerciseError) or unwritten(err):
            raise
        hint = "It gets logits and x of shape [N, 784], and mu and logvar of shape [N, L]."
        if "scale" in str(err):
            hint = ("D.Normal(loc, scale) takes the standard deviation, exp(0.5 * logvar), "
                    "which is always positive; logvar itself is not.")
        elif "probs" in str(err):
            hint = ("The decoder's outputs are logits, any real number: D.Bernoulli(logits=...), "
                    "not probs=...")
        raise ExerciseError(f"Calling your function raised {type(err).__name__}: {err}\n{hint}"
                            ) from err
    expect(not isinstance(out, (tuple, list)), "return only the total, one number, not a "
           "tuple such as (total, reconstruction, KL)")
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the result is not connected "
           "to the inputs, so no gradient could train the model: build it from torch "
           "operations only (no .item(), no torch.tensor(...) around a result, no torch.no_grad)")
    return as_double(out, (), "one number, the negative ELBO averaged over the batch")


@self_check
def check_elbo_from_distributions(negative_elbo: Callable[..., torch.Tensor]) -> None:
    """Exercise 2: negative_elbo(logits, x [N, 784], mu, logvar [N, L]) -> batch mean of -ELBO."""
    logits, x, mu, logvar = _elbo_inputs(8, n=16, latent=5, logvar_range=(0.2, 1.5))
    with torch.no_grad():
        recon = bernoulli_nll(logits, x)                                   # [N], summed over pixels
        kl = kl_divergence(mu, logvar)                                     # [N], summed over L
        want = (recon + kl).mean()
        mistakes = [
            (-want, "that is the ELBO itself; the loss to minimise is its negative, "
                    "-log p(x|z) + KL"),
            ((recon + kl).sum(), "that is the sum over the batch; take the mean, so that the "
                                 "loss, and the learning rate that suits it, do not depend on the "
                                 "batch size"),
            (recon.mean() + kl.sum(), "the KL is summed over the batch while the reconstruction "
                                      "is averaged: the KL then weighs N times more (beta = N). "
                                      "Average both over the batch"),
            ((recon / 784 + kl).mean(), "the reconstruction is averaged over the 784 pixels "
                                        "instead of summed: the KL then weighs 784 times more, "
                                        "a beta-VAE with beta = 784 by accident. Sum log_prob "
                                        "over the pixels (dimension 1)"),
            ((recon + kl / 5).mean(), "the KL is averaged over the latent dimensions; sum it: "
                                      "the KL of independent dimensions adds up"),
            ((recon + kl_divergence(mu, 2 * logvar.log())).mean(),
             "you passed logvar as the scale of D.Normal, as if it were the standard deviation. "
             "The scale is sigma = exp(0.5 * logvar)"),
            ((recon + kl_divergence(mu, 2 * logvar)).mean(),
             "you passed exp(logvar), the variance, as the scale of D.Normal; the scale is the "
             "standard deviation, sigma = exp(0.5 * logvar)"),
            (recon.mean(), "the KL term is missing: add KL(q(z|x) || N(0, I)), summed over the "
                           "latent dimensions"),
            ((recon - kl).mean(), "the KL enters with the wrong sign: -ELBO = reconstruction + KL"),
        ]
    out = _call_loss(negative_elbo, logits, x, mu, logvar)
    for value, hint in mistakes:
        expect(not close(out, value), hint)
    expect(close(out, want), "per image: minus the sum over pixels of "
           "D.Bernoulli(logits=logits).log_prob(x), plus the sum over latent dimensions of "
           "D.kl_divergence(q, p) with q = D.Normal(mu, exp(0.5 * logvar)) and p = D.Normal(0, 1); "
           "then the mean over the batch")
    logits, x, mu, logvar = _elbo_inputs(9, n=64, latent=20, logvar_range=(-6.0, 1.0))
    with torch.no_grad():
        want = (bernoulli_nll(logits, x) + kl_divergence(mu, logvar)).mean()
    out = _call_loss(negative_elbo, logits, x, mu, logvar)
    expect(bool(torch.isfinite(out)) and close(out, want),
           "right on the first batch, wrong on one with the negative log-variances of a trained "
           "encoder (sigma < 1): check how you turn logvar into the scale, exp(0.5 * logvar)")
    passed("-ELBO = mean over the batch of [-sum_pixels log p(x|z) + sum_dims KL(q || p)], "
           "from torch.distributions.")
