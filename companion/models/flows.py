"""Planar flows: a richer posterior q(z|x) by pushing the encoder's Gaussian sample through
K invertible steps (Rezende & Mohamed 2015).

Each step is f(z) = z + u_hat tanh(w . z + b), whose Jacobian determinant is
1 + (1 - tanh^2(w . z + b)) w . u_hat (the matrix determinant lemma). With z_0 ~ q_0(z|x), the
encoder's N(mu, diag(exp(logvar))), and z_k = f_k(z_{k-1}), the change of variables gives

    log q_K(z_K|x) = log q_0(z_0|x) - sum_k log |det df_k/dz|,

so the ELBO is still a sum of terms we can compute at one sample:

    -ELBO ~ -log p(x|z_K) + log q_K(z_K|x) - log N(z_K; 0, I).

A step is invertible only when w . u_hat >= -1. The free parameter u is moved along w to
u_hat = u + (m(w . u) - w . u) w / |w|^2 with m(a) = -1 + softplus(a) > -1 (the paper's
appendix A), so every value of u, w, b gives an invertible step.

Reference: Rezende & Mohamed 2015, "Variational Inference with Normalizing Flows"
(arXiv:1505.05770).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from companion.arguments import check_counts
from companion.gaussians import gaussian_log_density, sample_diagonal
from companion.losses import LossParts, Objective
from companion.models.mlp import MLPVAE
from companion.priors import standard_normal_log_prob


class PlanarFlow(nn.Module):
    """One planar step in dim dimensions: forward(z) -> (f(z), log |det df/dz|), [N, D] and [N]."""

    def __init__(self, dim: int):
        super().__init__()
        check_counts("PlanarFlow", dim=dim)
        self.u = nn.Parameter(0.1 * torch.randn(dim))   # small: each step starts near identity
        self.w = nn.Parameter(0.1 * torch.randn(dim))
        self.b = nn.Parameter(torch.zeros(()))

    def u_hat(self) -> torch.Tensor:
        """u moved along w so that w . u_hat = -1 + softplus(w . u) > -1: [D]."""
        wu = self.w @ self.u
        return self.u + (F.softplus(wu) - 1 - wu) * self.w / self.w.pow(2).sum()

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.tanh(z @ self.w + self.b)                      # [N]
        f = z + a[:, None] * self.u_hat()                        # [N, D]
        # det = 1 + (1 - a^2) w . u_hat with w . u_hat = softplus(w . u) - 1, written as a sum
        # of terms >= 0, so that rounding cannot take it to 0 or below when w . u_hat ~ -1
        det = a.pow(2) + (1 - a.pow(2)) * F.softplus(self.w @ self.u)   # [N]
        return f, det.log()


class FlowVAE(MLPVAE):
    """The MLP VAE with `flows` planar steps on its posterior sample (0 steps: q is the
    encoder's Gaussian). Its loss is reconstruction + beta * (log q_K(z_K|x) - log p(z_K)) at
    one z_K per image, with kl that single-sample estimate; beta and KL warm-up apply, free
    bits and a TC weight (terms of a per-dimension Gaussian KL) are refused.
    """
    refuses = ("free_bits", "tc_weight")

    def __init__(self, latent_dim: int = 20, hidden: int = 400, likelihood: str = "bernoulli",
                 flows: int = 10):   # the paper compares 2 to 80 steps
        check_counts("FlowVAE", latent_dim=latent_dim, hidden=hidden)
        if isinstance(flows, bool) or not isinstance(flows, int) or flows < 0:
            raise ValueError(f"FlowVAE(flows={flows!r}): flows takes a whole number >= 0.")
        super().__init__(latent_dim, hidden, likelihood)
        self.flows = nn.ModuleList(PlanarFlow(latent_dim) for _ in range(flows))

    def flow(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_K = f_K(...f_1(z)) and the sum of the steps' log |det|: [N, L] and [N]."""
        log_det = z.new_zeros(len(z))
        for step in self.flows:
            z, step_log_det = step(z)
            log_det = log_det + step_log_det
        return z, log_det

    def sample_posterior(self, x: torch.Tensor, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """z_K ~ q_K(z|x) and log q_K(z_K|x) of each image: [N, L] and [N]."""
        mu, logvar = (t.float() for t in self.encode(x))         # [N, L] each
        z0 = sample_diagonal(mu, logvar, 1, generator)[0]         # [N, L]
        z, log_det = self.flow(z0)
        return z, gaussian_log_density(z0, mu, logvar).sum(1) - log_det

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits decoded from z_K, mu, logvar of q_0)."""
        mu, logvar = self.encode(x)
        return self.decode(self.flow(self.reparameterize(mu, logvar))[0]), mu, logvar

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean mu pushed through the flow, [N, L]: a code the decoder knows."""
        return self.flow(self.encode(x)[0])[0]

    def loss(self, x, y=None, objective=Objective()):
        self.check_objective(objective)
        z, log_q = self.sample_posterior(x)
        recon = self.nll(x, z).mean()
        kl = (log_q - standard_normal_log_prob(z)).mean()
        return LossParts(recon + objective.beta * kl, recon, kl)
