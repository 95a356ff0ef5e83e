"""Self-checks for the exercises of notebook 05 (training and evaluating a VAE).

Exercise 1 asks for the IWAE bound from a table of log importance weights; exercise 2 for
the negative ELBO of a batch built from torch.distributions objects; exercise 4 for the KL
term with free bits. Each check compares with a reference computed here and names the usual
mistake when the answer is wrong.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import (ExerciseError, as_double, close, expect, passed, self_check,
                              unwritten)
from companion.gaussians import kl_divergence, kl_per_dimension
from companion.losses import bernoulli_nll, free_bits_kl


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


def _free_bits_inputs(seed: int):
    """mu, logvar [32, 6] in float64: dimensions 0-2 near the prior, 3-5 far from it."""
    g = torch.Generator().manual_seed(seed)
    spread = torch.tensor([0.05, 0.1, 0.2, 1.5, 2.0, 2.5], dtype=torch.float64)
    mu = torch.randn(32, 6, generator=g, dtype=torch.float64) * spread
    logvar = -spread + 0.1 * torch.randn(32, 6, generator=g, dtype=torch.float64)
    return mu.requires_grad_(), logvar.requires_grad_()


@self_check
def check_free_bits(free_bits_term: Callable[..., torch.Tensor]) -> None:
    """Exercise 4: free_bits_term(mu, logvar [N, L], floor) -> sum_j max(floor, batch-mean KL_j)."""
    mu, logvar = _free_bits_inputs(11)
    floor = 0.5
    with torch.no_grad():
        kl = kl_per_dimension(mu, logvar)                                 # [N, L]
        want = free_bits_kl(mu, logvar, floor)
        mistakes = [
            (kl.clamp(min=floor).mean(0).sum(), "you floored the KL of each image; free bits "
             "floor each dimension's KL averaged over the batch: average first, then the max"),
            (kl.mean(0).clamp(max=floor).sum(), "that is min(floor, KL_j): a floor is the max, "
             "so a dimension never pays less than the floor"),
            (kl.mean(0).sum(), "that is the plain KL term: the floor is missing, or applied "
             "to the total. Replace each dimension's KL by max(floor, KL_j), then sum over j"),
            (kl.sum(0).clamp(min=floor).sum(), "you summed over the batch; average the KL of "
             "each dimension over the batch"),
            (kl.mean(0).clamp(min=floor).mean(), "you averaged over the latent dimensions; sum "
             "them, as in the KL term itself"),
        ]
    try:
        out = free_bits_term(mu, logvar, floor)
    except Exception as err:
        if isinstance(err, ExerciseError) or unwritten(err):
            raise
        raise ExerciseError(f"Calling your function raised {type(err).__name__}: {err}\n"
                            "It gets mu and logvar of shape [N, L] and the floor, a number."
                            ) from err
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the result is not connected to "
           "mu and logvar, so no gradient could train the encoder: use torch operations only "
           "(torch.clamp or torch.maximum, no .item(), no max() of Python floats)")
    value = as_double(out, (), "one number, the KL term of the whole batch")
    for wrong, hint in mistakes:
        expect(not close(value, wrong), hint)
    expect(close(value, want), "per dimension j: KL_j = 0.5 * (mu^2 + exp(logvar) - logvar - 1) "
           "averaged over the batch (dimension 0); then sum over j of max(floor, KL_j)")
    got = torch.autograd.grad(out, (mu, logvar), allow_unused=True)
    got = [torch.zeros_like(t) if g is None else g.double() for g, t in zip(got, (mu, logvar))]
    want_grad = torch.autograd.grad(free_bits_kl(mu, logvar, floor), (mu, logvar))
    expect(all(float(g[:, :3].abs().max()) == 0 for g in got),
           "the value is right, but dimensions below the floor still get a gradient: the floor "
           "must cut it (torch.clamp(kl, min=floor) does)")
    expect(all(close(g[:, 3:], w[:, 3:]) for g, w in zip(got, want_grad)),
           "the value is right, but dimensions above the floor do not get the KL's usual "
           "gradient: compute the result from mu and logvar with torch operations")
    passed("free bits = sum over dimensions of max(floor, KL_j averaged over the batch); below "
           "the floor the KL term gives no gradient.")
