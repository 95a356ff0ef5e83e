"""Estimating the marginal likelihood log p(x) = log ∫ p(x|z) p(z) dz of a VAE by sampling.

Every estimate here is the log of an average of importance weights w = p(x, z) / r(z), with
z drawn from a proposal r:

    proposal="prior"     r = p(z):     w = p(x|z)      (the naive Monte Carlo estimate)
    proposal="encoder"   r = q(z|x):   w = p(x|z) p(z) / q(z|x)   (importance sampling)

For 28 x 28 images the weights are e^-100 and smaller, which float32 rounds to 0, so they
are kept as logarithms and averaged with logsumexp (`log_mean_exp`).

References: Burda, Grosse & Salakhutdinov 2015 (arXiv:1509.00519) for the importance-sampled
estimate; Kong 1992 and Chatterjee & Diaconis 2018 ("The sample size required in importance
sampling") for the effective sample size and why about exp(KL) samples are needed.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from companion.evaluation.likelihood import log_weights as iwae_log_weights


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(mean(exp(a))) along dim, without ever forming exp(a)."""
    return torch.logsumexp(a, dim) - math.log(a.shape[dim])


def effective_sample_size(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Kong's (sum w)^2 / sum w^2 from log-weights: 1 when one sample carries all the weight."""
    return (2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim)).exp()


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) for every pair: logits [S, 784] of S codes, images x [N, ...] -> [S, N].

    Per pixel log p = x * logit - softplus(logit), the negative of binary cross-entropy
    with logits, so one matrix product scores every code against every image.
    """
    logits, x = logits.flatten(1), x.flatten(1)
    return logits @ x.T - F.softplus(logits).sum(1, keepdim=True)


@torch.no_grad()
def log_weights(model, x: torch.Tensor, n_samples: int, proposal: str = "encoder",
                generator: torch.Generator | None = None, chunk: int = 10_000,
                q: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Log importance weights log p(x, z) - log r(z) of n_samples draws per image: [S, N].

    With proposal="prior" one set of codes z ~ N(0, I) is shared by all images (each image
    still gets an unbiased estimate); with "encoder" every image draws from its own
    q(z|x) = N(mu, diag(exp(logvar))), where (mu, logvar) = q if given, else model.encode(x).
    The mean of the log-weights over the samples is a Monte Carlo estimate of the ELBO of q.
    """
    device = x.device
    if proposal == "prior":
        z = torch.randn(n_samples, model.latent_dim, generator=generator).to(device)  # [S, L]
        return torch.cat([bernoulli_log_likelihood(model.decode(part), x)               # [s, N]
                          for part in z.split(chunk)])
    if proposal == "encoder":   # importance sampling: the IWAE weights of the evaluation module
        return iwae_log_weights(model, x, n_samples, max(1, chunk // len(x)), generator, q)
    raise ValueError(f"proposal must be 'prior' or 'encoder', not {proposal!r}")


def log_px_estimate(model, x: torch.Tensor, n_samples: int, proposal: str = "encoder",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Estimate log p(x) per image, [N]: the log of the average importance weight."""
    return log_mean_exp(log_weights(model, x, n_samples, proposal, generator), dim=0)


def running_estimates(log_w: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """The estimate from the first K weights, for each K in sizes: [len(sizes), N]."""
    return torch.stack([log_mean_exp(log_w[:k], dim=0) for k in sizes])
