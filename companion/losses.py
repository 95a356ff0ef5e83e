"""Reconstruction terms, the KL divergence to the prior, and the ELBO with beta.

Reductions, stated once: every per-example function **sums** over pixels (or latent
dimensions) and returns one number per example, shape [N]. `elbo_loss` then takes the
**mean over the batch**. Summing inside an example keeps the two ELBO terms on the same
scale -- both are log-densities of the whole image -- so beta = 1 means the real ELBO. A
mean over pixels would shrink the reconstruction term 784-fold against the KL and silently
change beta. The batch mean makes the learning rate independent of the batch size.

The KL term is `companion.gaussians.kl_divergence`, the closed form against N(0, I).

Reference: Higgins et al. 2017 for beta.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from companion.gaussians import gaussian_log_density, kl_divergence


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for Bernoulli pixels, from logits; x must lie in [0, 1]. Shape [N]."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def squared_error(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors between sigmoid(logits) and x (the 'MSE' loss). Shape [N]."""
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)


def gaussian_nll(logits: torch.Tensor, x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """-log N(x; sigmoid(logits), sigma^2 I): squared error / (2 sigma^2) + a constant. Shape [N]."""
    logvar = torch.full_like(x, 2 * math.log(sigma))
    return -gaussian_log_density(x, torch.sigmoid(logits), logvar).flatten(1).sum(1)


def rmse(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Root mean squared error per image (the loss of the conv VAE in the VAE slides). Shape [N]."""
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).mean(1).sqrt()


RECONSTRUCTION = {"bernoulli": bernoulli_nll, "mse": squared_error}


class LossParts(NamedTuple):
    """Batch means: total = reconstruction + beta * kl (the negative ELBO when beta = 1)."""
    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def elbo_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0, likelihood: str = "bernoulli") -> LossParts:
    """The beta-weighted negative ELBO and its two parts, each a mean over the batch."""
    if likelihood not in RECONSTRUCTION:
        raise ValueError(f"likelihood must be one of {list(RECONSTRUCTION)}, not {likelihood!r}")
    recon = RECONSTRUCTION[likelihood](logits, x).mean()
    kl = kl_divergence(mu, logvar).mean()
    return LossParts(recon + beta * kl, recon, kl)
