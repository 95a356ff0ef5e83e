"""Gaussians: log-densities, sampling, and the KL divergence in closed form and by sampling.

    gaussian_log_density(z, mu, logvar)        diagonal, element by element (no sum)
    full_gaussian_log_density(z, mean, cov)    full covariance, summed over dimensions
    draw_eps(shape, like, generator)           eps ~ N(0, I) on like's device, from any generator
    sample_diagonal(mu, logvar, n)             draws mu + exp(logvar / 2) * eps
    sample_gaussian(mean, cov, n)              draws through the Cholesky factor
    kl_divergence(mu, logvar)                  KL(N(mu, diag(exp(logvar))) || N(0, I)), closed form
    gaussian_kl(mean1, cov1, mean2, cov2)      KL between full-covariance Gaussians, closed form
    kl_monte_carlo(mu, logvar)                 the first KL from its definition, with a stderr

The Monte Carlo estimate uses KL(q || p) = E_{z ~ q}[log q(z) - log p(z)] directly, so a
closed form can be checked against it.

References: Kullback & Leibler 1951, "On information and sufficiency"; Kingma & Welling 2013
(arXiv:1312.6114), appendix B, for the closed form against N(0, I).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)), element by element (no sum over dimensions).

    (z - mu) is multiplied by exp(-logvar / 2) instead of divided by exp(logvar): in float32
    exp(logvar) rounds to 0 below logvar = -104, and 0 / 0 is nan where z = mu (a collapsed
    posterior's own sample), while exp(-logvar / 2) stays finite down to logvar = -177.
    """
    return -0.5 * (LOG_2PI + logvar + ((z - mu) * torch.exp(-0.5 * logvar)).pow(2))


def logdet(cov: torch.Tensor) -> torch.Tensor:
    """log det of symmetric positive definite matrices [..., K, K] via Cholesky."""
    return 2 * torch.linalg.cholesky(cov).diagonal(dim1=-2, dim2=-1).log().sum(-1)


def full_gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor
                              ) -> torch.Tensor:
    """log N(z; mean, cov) summed over the K dimensions; z [..., N, K] -> [..., N]."""
    diff = (z - mean).unsqueeze(-1)                                      # [..., N, K, 1]
    chol = torch.linalg.cholesky(cov)
    white = torch.linalg.solve_triangular(chol, diff, upper=False)      # L^-1 (z - mean)
    k = mean.shape[-1]
    return -0.5 * (white.pow(2).sum((-2, -1)) + logdet(cov) + k * LOG_2PI)


def draw_eps(shape: tuple[int, ...], like: torch.Tensor,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """eps ~ N(0, I) of the given shape, with like's dtype, on like's device.

    A generator draws on its own device only: eps is drawn there (the CPU for
    torch.Generator()) and then moved, so a CPU generator gives the same numbers on every device.
    """
    device = like.device if generator is None else generator.device
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=device).to(like.device)


def sample_diagonal(mu: torch.Tensor, logvar: torch.Tensor, n: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws from N(mu, diag(exp(logvar))) for each row of mu [N, L]: shape [n, N, L]."""
    return mu + torch.exp(0.5 * logvar) * draw_eps((n, *mu.shape), mu, generator)


def sample_gaussian(mean: torch.Tensor, cov: torch.Tensor, n: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """n draws from N(mean, cov) for each row of mean [N, K]: shape [n, N, K], on mean's device.

    The Cholesky factor L (cov = L L^T) is computed on the CPU, since MPS lacks it in older
    PyTorch versions; eps comes from `draw_eps`.
    """
    chol = torch.linalg.cholesky(cov.cpu()).to(mean.device)             # [.., K, K]
    eps = draw_eps((n, *mean.shape), mean, generator)                    # [n, N, K]
    return mean + (chol @ eps.unsqueeze(-1)).squeeze(-1)                 # mean + L eps


def ellipse(mean: torch.Tensor, cov: torch.Tensor, n_std: float = 1.0,
            points: int = 100) -> torch.Tensor:
    """Points [2, points] on the n_std contour of a 2-D Gaussian (to draw with ax.plot(*xy))."""
    angle = torch.linspace(0, 2 * math.pi, points, dtype=cov.dtype)
    circle = torch.stack([angle.cos(), angle.sin()])                     # [2, points]
    return mean.reshape(2, 1) + n_std * torch.linalg.cholesky(cov) @ circle


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu_j, exp(logvar_j)) || N(0, 1) ) of each latent dimension j. Shape [N, L].

    0.5 * (mu^2 + sigma^2 - log sigma^2 - 1), which is >= 0 and is 0 only at mu = 0, sigma = 1.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ), the sum of `kl_per_dimension`. Shape [N]."""
    return kl_per_dimension(mu, logvar).sum(1)


def gaussian_kl(mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor,
                cov2: torch.Tensor) -> torch.Tensor:
    """KL( N(mean1, cov1) || N(mean2, cov2) ) for full covariances; means [N, K]. Shape [N]."""
    k = mean1.shape[-1]
    solve = torch.linalg.solve(cov2, cov1)                               # [.., K, K] cov2^-1 cov1
    diff = (mean2 - mean1).unsqueeze(-1)                                 # [N, K, 1]
    mahalanobis = (diff.transpose(-2, -1) @ torch.linalg.solve(cov2, diff)).squeeze((-2, -1))
    trace = solve.diagonal(dim1=-2, dim2=-1).sum(-1)
    return 0.5 * (trace + mahalanobis - k + logdet(cov2) - logdet(cov1))


class MonteCarloEstimate(NamedTuple):
    """A Monte Carlo estimate and its standard error, one number per example."""
    mean: torch.Tensor     # [N]
    stderr: torch.Tensor   # [N] standard deviation of the samples / sqrt(number of samples)

    def interval(self, z: float = 1.96) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) of the normal-approximation confidence interval (95 % for z = 1.96)."""
        return self.mean - z * self.stderr, self.mean + z * self.stderr


def kl_monte_carlo(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int = 10_000,
                   generator: torch.Generator | None = None) -> MonteCarloEstimate:
    """Estimate KL( N(mu, diag(exp(logvar))) || N(0, I) ) per example from n_samples draws.

    mu and logvar are [N, L]; the estimate sums over the L dimensions, like the closed form.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 to give a standard error, not {n_samples}")
    if mu.shape != logvar.shape or mu.ndim != 2:
        raise ValueError(f"mu and logvar must both be [N, L], got {list(mu.shape)} and "
                         f"{list(logvar.shape)}")
    z = sample_diagonal(mu, logvar, n_samples, generator)                # [S, N, L], z ~ q
    zero = torch.zeros_like(mu)
    log_q = gaussian_log_density(z, mu, logvar).sum(-1)                  # [S, N]
    log_p = gaussian_log_density(z, zero, zero).sum(-1)                  # [S, N]
    terms = log_q - log_p                                                # [S, N]
    return MonteCarloEstimate(terms.mean(0), terms.std(0) / math.sqrt(n_samples))
