"""Gaussian mixtures as prior objects: N(0, I), a VAE's aggregate posterior, EM fits.

    prior = GaussianMixture.standard_normal(16)                    # N(0, I), one component
    q = GaussianMixture.aggregate_posterior(mu, logvar)            # q(z), one per image
    mixture, log_likelihoods = fit_mixture(codes, k=10, seed=0)    # EM, full covariances
    z, component = mixture.sample(1000, generator)                 # codes to decode
    mixture.log_prob(z)                                            # log density, [N]

Each of them is a `GaussianMixture` with `log_prob` and `sample`, like the prior objects of
Tomczak's "Deep Generative Modeling", so they can stand in for one another. The per-class
Gaussians of a latent space (`companion.latent.fit_class_gaussians`) are one more.

EM alternates two steps from a start of k data points as means (drawn with the seed):
the E-step computes each point's responsibilities, the posterior probability of each
component, in log space (in 16 dimensions the densities themselves underflow to 0); the
M-step refits each component's weight, mean and covariance to the points, weighted by those
responsibilities. Neither step can lower the log-likelihood of the data (up to the small
ridge that the M-step adds to each covariance to keep it invertible).

The aggregate posterior q(z) = (1/N) sum_n q(z | x_n) of a VAE is a mixture too, with one
diagonal Gaussian per image and equal weights.

References: Dempster, Laird & Rubin 1977 for EM; Bishop 2006, "Pattern Recognition and
Machine Learning", section 9.2; Hoffman & Johnson 2016, "ELBO surgery", for q(z); Tomczak
2022, "Deep Generative Modeling", for priors as objects.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from companion.arguments import check_counts
from companion.gaussians import (full_gaussian_log_density, gaussian_log_density,
                                 sample_diagonal, sample_gaussian)

COVARIANCES = ("full", "diag")


@dataclass
class GaussianMixture:
    """sum_k weights[k] N(means[k], C_k): K Gaussians in L dimensions.

    C_k is the full covariance covs[k], or, when covs is None, the diagonal matrix
    exp(logvars[k]): kept in log space like an encoder's output, since the variance of a
    collapsed posterior is too small for float32.
    """
    weights: torch.Tensor                 # [K], sums to 1
    means: torch.Tensor                   # [K, L]
    covs: torch.Tensor | None = None      # [K, L, L] full covariances, or
    logvars: torch.Tensor | None = None   # [K, L] log-variances of diagonal ones

    def __post_init__(self):
        if (self.covs is None) == (self.logvars is None):
            raise ValueError("A GaussianMixture takes either covs [K, L, L] (full covariances) "
                             "or logvars [K, L] (diagonal ones): pass exactly one of them.")

    @classmethod
    def standard_normal(cls, dim: int, device: torch.device | str | None = None,
                        dtype: torch.dtype = torch.float32) -> GaussianMixture:
        """N(0, I) in dim dimensions, a VAE's prior: a mixture of one component."""
        if not dim >= 1:
            raise ValueError(f"dim is the number of latent dimensions, >= 1, not {dim!r}.")
        zeros = torch.zeros(1, dim, device=device, dtype=dtype)
        return cls(torch.ones(1, device=device, dtype=dtype), zeros, logvars=zeros)

    @classmethod
    def aggregate_posterior(cls, mu: torch.Tensor, logvar: torch.Tensor) -> GaussianMixture:
        """q(z) = (1/N) sum_n N(mu_n, diag(exp(logvar_n))) of the encoder's outputs [N, L]."""
        if len(mu) == 0:
            raise ValueError("q(z) needs the encoder's mu and logvar of at least one image.")
        weights = torch.full((len(mu),), 1 / len(mu), dtype=mu.dtype, device=mu.device)
        return cls(weights, mu, logvars=logvar)

    def component_log_densities(self, z: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(z_n; mean_k, C_k) for every point and component, [N, K]."""
        if self.covs is None:
            log_n = gaussian_log_density(z[:, None], self.means, self.logvars).sum(-1)
        else:
            log_n = full_gaussian_log_density(z[:, None, :], self.means, self.covs)  # [N, K]
        return log_n + self.weights.log()

    def log_prob(self, z: torch.Tensor, chunk: int = 128) -> torch.Tensor:
        """The mixture's log density at each point of z [N, L], [N].

        Computed for `chunk` points at a time, since every point meets every component.
        """
        return torch.cat([self.component_log_densities(part).logsumexp(dim=1)
                          for part in z.split(chunk)])

    def sample(self, n: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """n points: (z [n, L], the component each came from [n]), on the means' device."""
        check_counts("sample", n=n)
        device = self.weights.device if generator is None else generator.device
        component = torch.multinomial(self.weights.to(device), n, replacement=True,
                                      generator=generator).to(self.means.device)   # [n]
        return self._draw(1, generator, component)[0], component

    def sample_each(self, n: int, generator: torch.Generator | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n points from every component, in component order: (z [K*n, L], component [K*n])."""
        check_counts("sample_each", n=n)
        k, dim = self.means.shape
        z = self._draw(n, generator).transpose(0, 1).reshape(k * n, dim)     # [n, K, L] -> [K*n, L]
        return z, torch.arange(k, device=self.means.device).repeat_interleave(n)

    def _draw(self, n: int, generator: torch.Generator | None,
              component: torch.Tensor | slice = slice(None)) -> torch.Tensor:
        """n draws from each of the chosen components, [n, len(component), L]."""
        if self.covs is None:
            return sample_diagonal(self.means[component], self.logvars[component], n, generator)
        return sample_gaussian(self.means[component], self.covs[component], n, generator)


def e_step(z: torch.Tensor, mixture: GaussianMixture) -> torch.Tensor:
    """Responsibilities [N, K]: the posterior probability of each component for each point."""
    return _normalise(mixture.component_log_densities(z))


def _normalise(log_joint: torch.Tensor) -> torch.Tensor:
    """exp(log_joint) with each row scaled to sum to 1, without leaving log space first."""
    return (log_joint - log_joint.logsumexp(dim=1, keepdim=True)).exp()


def m_step(z: torch.Tensor, resp: torch.Tensor, covariance: str = "full",
           reg: float = 1e-4) -> GaussianMixture:
    """The weights, means and covariances that maximise the expected log-likelihood.

    Every variance gets a ridge of reg times the mean variance of z's coordinates (taken as
    at least 1e-4), so that a component on L points or fewer, or a coordinate that never
    varies (a collapsed latent dimension), still has an invertible covariance.
    covariance="diag" keeps only the variances. With one-hot resp, these are the mean and
    covariance of each group of points.
    """
    counts = resp.sum(0) + 1e-10                                         # [K] soft counts
    means = resp.T @ z / counts[:, None]                                 # [K, L]
    diff = z[:, None, :] - means                                         # [N, K, L]
    covs = torch.einsum("nk,nki,nkj->kij", resp, diff, diff) / counts[:, None, None]
    if covariance == "diag":
        covs = torch.diag_embed(covs.diagonal(dim1=1, dim2=2))
    spread = z.var(0, correction=0).mean().clamp_min(1e-4)              # mean variance
    covs = covs + reg * spread * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
    return GaussianMixture(counts / counts.sum(), means, covs)


def fit_mixture(z: torch.Tensor, k: int, iterations: int = 100, seed: int = 0,
                covariance: str = "full", tol: float = 1e-5
                ) -> tuple[GaussianMixture, list[float]]:
    """Fit a k-component mixture to the rows of z [N, L] by EM, in float64 on the CPU.

    Starts from k distinct points of z (chosen with the seed) as means, the covariance of
    all of z for every component and equal weights; stops after `iterations` rounds or when
    the mean log-likelihood per point improves by less than tol. Returns the mixture and the
    mean log-likelihood of the start and after each round, the last one the returned
    mixture's (the same seed gives the same mixture).
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, not {covariance!r}")
    if z.ndim != 2 or len(z) == 0:
        raise ValueError("fit_mixture takes points z [N, L] with N >= 1, not a tensor of "
                         f"shape {list(z.shape)}.")
    if not 1 <= k <= len(z):
        raise ValueError("k must be between 1 and the number of points "
                         f"({len(z)}), not {k!r}: pass fewer components or more points.")
    if not iterations >= 0:
        raise ValueError(f"iterations must be >= 0, not {iterations!r}.")
    z = z.detach().cpu().double()
    start = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))[:k]
    everything = m_step(z, torch.ones(len(z), 1, dtype=z.dtype), covariance)   # one component
    mixture = GaussianMixture(torch.full((k,), 1.0 / k, dtype=z.dtype), z[start].clone(),
                              everything.covs.expand(k, -1, -1).clone())
    log_likelihoods: list[float] = []
    for round_ in range(iterations + 1):
        log_joint = mixture.component_log_densities(z)                 # [N, K], one pass
        log_likelihoods.append(log_joint.logsumexp(dim=1).mean().item())
        if round_ == iterations or round_ and log_likelihoods[-1] - log_likelihoods[-2] < tol:
            break
        mixture = m_step(z, _normalise(log_joint), covariance)
    return mixture, log_likelihoods
