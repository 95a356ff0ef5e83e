"""Reconstruction terms, the KL divergence to the prior, the ELBO with beta, the VQ-VAE loss,
and the total correlation of the codes (the penalty of beta-TCVAE).

Reductions, stated once: every per-example function **sums** over pixels (or latent
dimensions) and returns one number per example, shape [N]. `elbo_loss` then takes the
**mean over the batch**. Summing inside an example keeps the two ELBO terms on the same
scale -- both are log-densities of the whole image -- so beta = 1 means the real ELBO. A
mean over pixels would shrink the reconstruction term 784-fold against the KL and silently
change beta. The batch mean makes the learning rate independent of the batch size.

The KL term is `companion.gaussians.kl_divergence`, the closed form against N(0, I).

References: Higgins et al. 2017 for beta; Kingma et al. 2016 (arXiv:1606.04934) for free bits.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from companion.gaussians import gaussian_log_density, kl_divergence, kl_per_dimension


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for Bernoulli pixels, from logits; x must lie in [0, 1]. Shape [N]."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def squared_error(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors between sigmoid(logits) and x (the 'MSE' loss). Shape [N]."""
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)


def gaussian_nll(logits: torch.Tensor, x: torch.Tensor, sigma: float = 1.0,
                 log_sigma: torch.Tensor | None = None) -> torch.Tensor:
    """-log N(x; sigmoid(logits), sigma^2 I), summed over pixels. Shape [N].

    sigma is fixed; a decoder that learns it passes log_sigma instead, a tensor that
    broadcasts against x (one number, or one per pixel). With a fixed sigma this is the
    squared error / (2 sigma^2) plus the constant (number of pixels) * log(sigma sqrt(2 pi)).
    """
    if log_sigma is None:
        if not sigma > 0:
            raise ValueError(f"sigma is a standard deviation: use a number > 0, not {sigma}")
        log_sigma = torch.tensor(math.log(sigma), device=x.device)
    logvar = (2 * log_sigma).expand_as(x)
    return -gaussian_log_density(x, torch.sigmoid(logits), logvar).flatten(1).sum(1)


def rmse(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Root mean squared error per image (the loss of the conv VAE in the VAE slides). Shape [N]."""
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).mean(1).sqrt()


def label_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log p(y|x) of a classifier (the cross-entropy), from class logits [N, K]. Shape [N]."""
    return F.cross_entropy(logits, labels, reduction="none")


RECONSTRUCTION = {"bernoulli": bernoulli_nll, "mse": squared_error, "gaussian": gaussian_nll}


class LossParts(NamedTuple):
    """Batch means: total = reconstruction + beta * kl (the negative ELBO when beta = 1).

    With free bits, total uses the floored KL instead (see `elbo_loss`)."""
    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def free_bits_kl(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL term with free bits: sum over dimensions j of max(free_bits, KL_j), a number.

    KL_j is dimension j's KL averaged over the batch (a batch quantity, unlike the per-example
    terms above). Below the floor a dimension pays the floor, a constant, so the KL term gives
    it no gradient (Kingma et al. 2016, arXiv:1606.04934).
    """
    return kl_per_dimension(mu, logvar).mean(0).clamp(min=free_bits).sum()


def elbo_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0, likelihood: str = "bernoulli",
              free_bits: float = 0.0, log_sigma: torch.Tensor | None = None) -> LossParts:
    """The beta-weighted negative ELBO and its two parts, each a mean over the batch.

    With free_bits > 0 (nats per latent dimension) the total uses `free_bits_kl`; the kl part
    stays the true KL, so reconstruction + kl is still the negative ELBO. log_sigma: the
    learned sigma of a Gaussian decoder (likelihood "gaussian"; without it sigma = 1).
    """
    if likelihood not in RECONSTRUCTION:
        raise ValueError(f"likelihood must be one of {list(RECONSTRUCTION)}, not {likelihood!r}")
    if log_sigma is not None and likelihood != "gaussian":
        raise ValueError(f"This decoder learns the sigma of a Gaussian, so its likelihood is "
                         f'"gaussian", not {likelihood!r}: pass likelihood="gaussian".')
    if free_bits < 0:
        raise ValueError(f"free_bits is a floor in nats per latent dimension: use a number >= 0, "
                         f"not {free_bits}")
    if log_sigma is None:
        recon = RECONSTRUCTION[likelihood](logits, x).mean()
    else:
        recon = gaussian_nll(logits, x, log_sigma=log_sigma).mean()
    kl = kl_divergence(mu, logvar).mean()
    penalty = free_bits_kl(mu, logvar, free_bits) if free_bits > 0 else kl
    return LossParts(recon + beta * penalty, recon, kl)


def vq_loss(logits: torch.Tensor, x: torch.Tensor, z_e: torch.Tensor, z_q: torch.Tensor,
            beta: float = 1.0, commitment: float = 0.25,
            likelihood: str = "bernoulli") -> LossParts:
    """The VQ-VAE loss: reconstruction + beta * (codebook + commitment * commit), batch means.

    codebook = |sg[z_e] - z_q|^2 pulls the chosen code vectors toward the encoder's outputs,
    commit = |z_e - sg[z_q]|^2 keeps the encoder near its codes (sg: stop the gradient,
    `.detach()`), each summed over an example's code vectors. The `kl` part holds these two
    terms: the KL of a VQ-VAE to its uniform prior is a constant (log K per code) and is left
    out. Reference: van den Oord et al. 2017 (arXiv:1711.00937), eq. 3.
    """
    if likelihood not in RECONSTRUCTION:
        raise ValueError(f"likelihood must be one of {list(RECONSTRUCTION)}, not {likelihood!r}")
    recon = RECONSTRUCTION[likelihood](logits, x).mean()
    codebook = (z_e.detach() - z_q).pow(2).flatten(1).sum(1).mean()
    commit = (z_e - z_q.detach()).pow(2).flatten(1).sum(1).mean()
    penalty = codebook + commitment * commit
    return LossParts(recon + beta * penalty, recon, penalty)


def total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Minibatch estimate of the total correlation of q(z), one term per example. Shape [N].

    TC = KL(q(z) || prod_d q(z_d)), with q(z) the aggregate posterior. Each z_i ~ q(z|x_i);
    the batch's posteriors stand in for the whole dataset's:
    log q(z_i) ~ log (1/M) sum_j q(z_i|x_j), and the same per coordinate d for log q(z_id).
    The mean over the batch is the estimate; it needs batches of many examples. Chen et al.'s
    minibatch-weighted sampling (arXiv:1802.04942) subtracts log(N M) instead of log M (N the
    dataset size): that shifts TC by a constant and leaves its gradient unchanged.
    """
    log_q = gaussian_log_density(z[:, None], mu[None], logvar[None])   # [M, M, L]: log q(z_id | x_j)
    log_m = math.log(len(z))
    joint = log_q.sum(2).logsumexp(1) - log_m                          # [M] log q(z_i)
    product = (log_q.logsumexp(1) - log_m).sum(1)                      # [M] sum_d log q(z_id)
    return joint - product
