"""The KL divergence from its definition: Gaussian log-densities and a Monte Carlo estimate.

`companion.losses.kl_divergence` is the closed form that training uses. This module
estimates the same number the slow way, straight from the definition

    KL(q || p) = E_{z ~ q} [ log q(z) - log p(z) ],

by drawing z from q and averaging, and reports a standard error with the estimate, so a
closed form can be checked against it (and so can any other divergence of diagonal Gaussians).

References: Kullback & Leibler 1951, "On information and sufficiency"; Kingma & Welling 2013
(arXiv:1312.6114), appendix B, for the closed form this estimate checks.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)), element by element (no sum over dimensions)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp())


class Estimate(NamedTuple):
    """A Monte Carlo estimate and its standard error, one number per example."""
    mean: torch.Tensor     # [N]
    stderr: torch.Tensor   # [N] standard deviation of the samples / sqrt(number of samples)

    def interval(self, z: float = 1.96) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) of the normal-approximation confidence interval (95 % for z = 1.96)."""
        return self.mean - z * self.stderr, self.mean + z * self.stderr


def kl_monte_carlo(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 10_000,
                   generator: torch.Generator | None = None) -> Estimate:
    """Estimate KL( N(mu, diag(exp(logvar))) || N(0, I) ) per example from n_samples draws.

    mu and logvar are [N, L]; the estimate sums over the L dimensions, like the closed form.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 to give a standard error, not {n_samples}")
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"mu and logvar must both be [N, L], got {list(mu.shape)} and "
                         f"{list(logvar.shape)}")
    eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype)
    z = mu + (0.5 * logvar).exp() * eps.to(mu.device)                    # [S, N, L], z ~ q
    zero = torch.zeros_like(mu)
    log_q = gaussian_log_density(z, mu, logvar).sum(-1)                  # [S, N]
    log_p = gaussian_log_density(z, zero, zero).sum(-1)                  # [S, N]
    terms = log_q - log_p                                                # [S, N]
    return Estimate(terms.mean(0), terms.std(0) / math.sqrt(n_samples))
