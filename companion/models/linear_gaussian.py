"""A latent-variable model in which every term of the ELBO has a closed form.

    z ~ N(0, I_K),        x | z ~ N(W z + b, sigma^2 I_D)

This is probabilistic PCA (Tipping & Bishop 1999). Its marginal p(x) = N(b, W W^T + sigma^2 I)
and its posterior p(z|x) are Gaussian, so log p(x), the ELBO of any Gaussian q(z|x) and the
KL divergence from q to the true posterior can all be computed exactly. That makes it the
place to check log p(x) = ELBO + KL(q(z|x) || p(z|x)) to the last digit.

    model = LinearGaussian.random(data_dim=5, latent_dim=2, seed=0)
    x, z = model.sample(1, generator)                   # x [1, D], z [1, K]
    mean, cov = model.posterior(x)                      # [1, K], [K, K]
    model.log_marginal(x) - model.elbo(x, mean, cov)    # 0: the posterior closes the gap

Shapes: x [N, D]; a Gaussian q is a mean [N, K] and a covariance [K, K] or [N, K, K].
Everything runs in float64 so that identities hold to ~1e-12. The Gaussian formulas it
builds on (log-densities, KL between full-covariance Gaussians) are in `companion.gaussians`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from companion.gaussians import LOG_2PI, full_gaussian_log_density, gaussian_kl


@dataclass
class LinearGaussian:
    """z ~ N(0, I_K), x | z ~ N(W z + b, sigma^2 I_D): a VAE whose every integral is solvable."""
    W: torch.Tensor   # [D, K] the linear "decoder"
    b: torch.Tensor   # [D]
    sigma: float      # observation noise, the same for every coordinate of x

    @classmethod
    def random(cls, data_dim: int = 5, latent_dim: int = 2, sigma: float = 0.5,
               seed: int = 0) -> "LinearGaussian":
        """A model with standard-normal weights and offsets, drawn from a seeded generator."""
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(data_dim, latent_dim, generator=g, dtype=torch.float64)
        b = torch.randn(data_dim, generator=g, dtype=torch.float64)
        return cls(W, b, sigma)

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    @property
    def data_dim(self) -> int:
        return self.W.shape[0]

    @property
    def noise_constant(self) -> float:
        """D * log(2 pi sigma^2): the normaliser of p(x|z) that every log p(x|z) term carries."""
        return self.data_dim * (LOG_2PI + 2 * math.log(self.sigma))

    def sample(self, n: int, generator: torch.Generator | None = None):
        """n pairs (x [n, D], z [n, K]) from the joint p(x, z) = p(x|z) p(z)."""
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=self.W.dtype)
        noise = torch.randn(n, self.data_dim, generator=generator, dtype=self.W.dtype)
        return z @ self.W.T + self.b + self.sigma * noise, z

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z); x [N, D], z [..., N, K] -> [..., N]."""
        residual = x - (z @ self.W.T + self.b)                           # [..., N, D]
        return -0.5 * (residual.pow(2).sum(-1) / self.sigma**2 + self.noise_constant)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) = log N(z; 0, I); z [..., N, K] -> [..., N]."""
        return -0.5 * (z.pow(2).sum(-1) + self.latent_dim * LOG_2PI)

    def marginal_cov(self) -> torch.Tensor:
        """Covariance of p(x): W W^T + sigma^2 I, [D, D]."""
        return self.W @ self.W.T + self.sigma**2 * torch.eye(self.data_dim, dtype=self.W.dtype)

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """The exact log p(x) = log N(x; b, W W^T + sigma^2 I). Shape [N]."""
        return full_gaussian_log_density(x, self.b, self.marginal_cov())

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact p(z|x) = N(mean [N, K], cov [K, K]) by Bayes' rule."""
        eye = torch.eye(self.latent_dim, dtype=self.W.dtype)
        precision = eye + self.W.T @ self.W / self.sigma**2               # [K, K]
        cov = torch.linalg.inv(precision)
        mean = (x - self.b) @ self.W @ cov / self.sigma**2                # [N, K] (cov symmetric)
        return mean, 0.5 * (cov + cov.T)

    def reconstruction(self, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """E_q[log p(x|z)] for q = N(mean, cov), in closed form. Shape [N]."""
        residual = x - (mean @ self.W.T + self.b)                        # [N, D]
        spread = (self.W @ cov @ self.W.T).diagonal(dim1=-2, dim2=-1).sum(-1)  # tr(W S W^T)
        return -0.5 * ((residual.pow(2).sum(-1) + spread) / self.sigma**2 + self.noise_constant)

    def kl_to_prior(self, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """KL( N(mean, cov) || N(0, I) ). Shape [N]."""
        eye = torch.eye(self.latent_dim, dtype=mean.dtype)
        return gaussian_kl(mean, cov, torch.zeros_like(mean), eye)

    def elbo(self, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor,
             beta: float = 1.0) -> torch.Tensor:
        """The (beta-weighted) ELBO E_q[log p(x|z)] - beta KL(q || p(z)), exactly. Shape [N]."""
        return self.reconstruction(x, mean, cov) - beta * self.kl_to_prior(mean, cov)

    def kl_to_posterior(self, x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
        """KL( q(z|x) || p(z|x) ): how far q is from the exact posterior. Shape [N]."""
        post_mean, post_cov = self.posterior(x)
        return gaussian_kl(mean, cov, post_mean, post_cov)


def _beta_elbo_cholesky(model: LinearGaussian, x: torch.Tensor, m: torch.Tensor,
                        chol: torch.Tensor, log_diag: torch.Tensor, beta) -> torch.Tensor:
    """model.elbo(x, m, L L^T, beta) from the Cholesky factor L, with no matrix inverse. [N]."""
    residual = x - (m @ model.W.T + model.b)                              # [N, D]
    spread = (model.W @ chol).pow(2).sum((-2, -1))                        # tr(W S W^T) = |W L|^2
    recon = -0.5 * ((residual.pow(2).sum(-1) + spread) / model.sigma**2 + model.noise_constant)
    kl = 0.5 * (chol.pow(2).sum((-2, -1)) + m.pow(2).sum(-1) - model.latent_dim
                - 2 * log_diag.sum(-1))                                   # log det S = 2 sum log L_ii
    return recon - beta * kl


def fit_q(model: LinearGaussian, x: torch.Tensor, beta: float | torch.Tensor = 1.0,
          diagonal: bool = False, steps: int = 300,
          lr: float = 0.05) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Maximize the beta-ELBO over a Gaussian q for each x by Adam, starting at the prior.

    q = N(m, L L^T) with L lower triangular (only its diagonal when diagonal=True) and a
    positive diagonal exp(s). beta is a number or one number per row of x, [N]. Returns the
    (mean [N, K], cov [N, K, K]) of q after every step, the prior first: steps + 1 pairs.
    """
    n, k = x.shape[0], model.latent_dim
    m = torch.zeros(n, k, dtype=x.dtype, requires_grad=True)
    s = torch.zeros(n, k, dtype=x.dtype, requires_grad=True)            # log of L's diagonal
    off = torch.zeros(n, k, k, dtype=x.dtype, requires_grad=not diagonal)
    below = torch.ones(k, k, dtype=x.dtype).tril(-1)                     # strictly lower mask
    optimizer = torch.optim.Adam([m, s] + ([] if diagonal else [off]), lr=lr)

    def cholesky() -> torch.Tensor:
        return torch.diag_embed(s.exp()) + off * below                   # [N, K, K]

    def snapshot() -> tuple[torch.Tensor, torch.Tensor]:
        chol = cholesky().detach()
        return m.detach().clone(), chol @ chol.transpose(-2, -1)

    trace = [snapshot()]
    for _ in range(steps):
        loss = -_beta_elbo_cholesky(model, x, m, cholesky(), s, beta).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        trace.append(snapshot())
    return trace
