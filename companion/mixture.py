"""Gaussian mixtures: fit one to codes with EM, sample from it, and the aggregate posterior.

    mixture, log_likelihoods = fit_mixture(codes, k=10, seed=0)   # EM, full covariances
    z, component = mixture.sample(1000, generator)                 # codes to decode
    mixture.log_prob(z)                                            # log density, [N]
    aggregate_log_density(z, mu, logvar)                           # log q(z), [N]

EM alternates two steps from a start of k data points as means (drawn with the seed):
the E-step computes each point's responsibilities, the posterior probability of each
component, in log space (in 16 dimensions the densities themselves underflow to 0); the
M-step refits each component's weight, mean and covariance to the points, weighted by those
responsibilities. Neither step can lower the log-likelihood of the data (up to the small
ridge `reg` that the M-step adds to each covariance to keep it invertible).

The aggregate posterior q(z) = (1/N) sum_n q(z | x_n) of a VAE is a mixture too, with one
diagonal Gaussian per image and equal weights: `aggregate_log_density` evaluates it.

References: Dempster, Laird & Rubin 1977 for EM; Bishop 2006, "Pattern Recognition and
Machine Learning", section 9.2; Hoffman & Johnson 2016, "ELBO surgery", for q(z).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from companion.gaussians import full_gaussian_log_density, gaussian_log_density

COVARIANCES = ("full", "diag")


@dataclass
class GaussianMixture:
    """sum_k weights[k] N(means[k], covs[k]): K components in L dimensions."""
    weights: torch.Tensor   # [K], sums to 1
    means: torch.Tensor     # [K, L]
    covs: torch.Tensor      # [K, L, L]

    def component_log_densities(self, z: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(z_n; mean_k, cov_k) for every point and component, [N, K]."""
        log_n = full_gaussian_log_density(z[:, None, :], self.means, self.covs)   # [N, K]
        return log_n + self.weights.log()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """The mixture's log density at each point of z [N, L], [N]."""
        return self.component_log_densities(z).logsumexp(dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """n points: (z [n, L], the component each came from [n]); on the CPU."""
        component = torch.multinomial(self.weights.cpu(), n, replacement=True,
                                      generator=generator)                          # [n]
        chol = torch.linalg.cholesky(self.covs.cpu())[component]                    # [n, L, L]
        eps = torch.randn(n, self.means.shape[1], 1, generator=generator, dtype=chol.dtype)
        return self.means.cpu()[component] + (chol @ eps).squeeze(-1), component


def e_step(z: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    """Responsibilities [N, K]: the posterior probability of each component for each point."""
    return _normalise(mixture.component_log_densities(z))


def _normalise(log_joint: torch.Tensor) -> torch.Tensor:
    """exp(log_joint) with each row scaled to sum to 1, without leaving log space first."""
    return (log_joint - log_joint.logsumexp(dim=1, keepdim=True)).exp()


def m_step(z: torch.Tensor, resp: torch.Tensor, covariance: str = "full",
           reg: float = 1e-4) -> GaussianMixture:
    """The weights, means and covariances that maximise the expected log-likelihood.

    reg is added to every variance, so a component that shrinks onto a few points stays a
    proper Gaussian; covariance="diag" keeps only the variances.
    """
    counts = resp.sum(0) + 1e-10                                         # [K] soft counts
    means = resp.T @ z / counts[:, None]                                 # [K, L]
    dim = z.shape[1]
    outer = (z[:, :, None] * z[:, None, :]).reshape(len(z), dim * dim)  # [N, L*L]: z z^T
    second = (resp.T @ outer).view(-1, dim, dim) / counts[:, None, None]  # E_k[z z^T]
    covs = second - means[:, :, None] * means[:, None, :]                # [K, L, L]
    if covariance == "diag":
        covs = torch.diag_embed(covs.diagonal(dim1=1, dim2=2))
    covs = covs + reg * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    return GaussianMixture(counts / counts.sum(), means, covs)


def fit_mixture(z: torch.Tensor, k: int, iterations: int = 100, seed: int = 0,
                covariance: str = "full", tol: float = 1e-5
                ) -> tuple[GaussianMixture, list[float]]:
    """Fit a k-component mixture to the rows of z [N, L] by EM.

    Starts from k distinct points of z (chosen with the seed) as means, the covariance of
    all of z for every component and equal weights; stops after `iterations` rounds or when
    the mean log-likelihood per point improves by less than tol. Returns the mixture and the
    mean log-likelihood of the start and after each round, the last one the returned
    mixture's (the same seed gives the same mixture).
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, not {covariance!r}")
    if not 1 <= k <= len(z):
        raise ValueError(f"k must be between 1 and the number of points ({len(z)}), not {k}")
    z = z.detach().double().cpu()
    start = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:k]
    cov = torch.cov(z.T).reshape(z.shape[1], z.shape[1])
    mixture = GaussianMixture(torch.full((k,), 1.0 / k, dtype=z.dtype), z[start].clone(),
                              cov.expand(k, -1, -1).clone())
    log_likelihoods: list[float] = []
    for round_ in range(iterations + 1):
        log_joint = mixture.component_log_densities(z)                 # [N, K], one pass
        log_likelihoods.append(log_joint.logsumexp(dim=1).mean().item())
        if round_ == iterations or round_ and log_likelihoods[-1] - log_likelihoods[-2] < tol:
            break
        mixture = m_step(z, _normalise(log_joint), covariance)
    return mixture, log_likelihoods


def aggregate_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                          chunk: int = 128) -> torch.Tensor:
    """log q(z) for q(z) = (1/N) sum_n N(z; mu_n, diag(exp(logvar_n))); z [M, L] -> [M].

    mu and logvar [N, L] are the encoder's outputs for N images. Computed in chunks of z,
    since every point meets every one of the N Gaussians.
    """
    mu, logvar = mu.to(z.device), logvar.to(z.device)
    out = [gaussian_log_density(part[:, None], mu[None], logvar[None]).sum(-1).logsumexp(dim=1)
           for part in z.split(chunk)]                                   # [m, N] -> [m] each
    return torch.cat(out) - math.log(len(mu))
