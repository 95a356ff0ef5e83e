"""Self-checks for the exercises of notebook 05 (training and evaluating a VAE).

Exercise 1 asks for the IWAE bound from a table of log importance weights; exercise 2 for
the KL of each latent dimension averaged over a dataset. Each check compares with a
reference computed here and names the usual mistake when the answer is wrong.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import as_double, close, expect, passed


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


def check_kl_per_dimension(kl_per_dimension: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                           ) -> None:
    """Exercise 2: kl_per_dimension(mu, logvar) [N, L] -> [L], each dimension's mean KL."""
    g = torch.Generator().manual_seed(6)
    mu, logvar = torch.randn(2, 50, 6, generator=g, dtype=torch.float64)
    each = 0.5 * (mu**2 + logvar.exp() - logvar - 1)                          # [N, L]
    want = each.mean(0)
    out = as_double(kl_per_dimension(mu.clone(), logvar.clone()), (6,),
                  "one number per latent dimension: average over the examples (dimension 0)")
    expect(not close(out, each.sum(0)), "that is a sum over the examples; take the mean")
    expect(not close(out, 2 * want), "twice the right answer: the KL carries a factor 1/2")
    expect(bool((out >= 0).all()), "some values are negative, and a KL never is: check the signs")
    expect(close(out, want), "per dimension: 0.5 * (mu^2 + exp(logvar) - logvar - 1), then the "
                              "mean over examples")
    passed("the KL of each latent dimension, averaged over the data.")
