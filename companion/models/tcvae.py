"""beta-TCVAE with a stratified estimate of the total correlation (Chen et al. 2018).

The total correlation of the aggregate posterior, TC = KL(q(z) || prod_d q(z_d)), needs
log q(z_i) = log (1/N) sum_n q(z_i | x_n) over all N training images, for z_i ~ q(z | x_i).
A batch of M images has to stand in for the N. `companion.losses.total_correlation` weighs
the M posteriors of the batch alike, 1/M each. Stratified, the image z_i came from is a stratum
of its own, counted exactly with weight 1/N, and the other M - 1 images of the batch stand for
the other N - 1 images of the data:

    q(z_i) ~ (1/N) q(z_i | x_i) + (N - 1) / (N (M - 1)) * sum_{j != i} q(z_i | x_j),

an unbiased estimate of q(z_i) when the batch's other images are a random draw from the rest,
and the same for each coordinate's q(z_id). Chen et al.'s minibatch stratified sampling gives
the own image the same weight 1/N and splits the rest a little differently. Its logarithm is
still biased, the more so the sharper the posteriors and the smaller the batch: train with
large batches (Chen et al. use 2048).
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from companion.arguments import check_counts
from companion.gaussians import gaussian_log_density
from companion.losses import LossParts, Objective, elbo
from companion.models.mlp import DeepMLPVAE


def stratified_log_q(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                     dataset_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The stratified estimates of log q(z_i) [M] and of each log q(z_id) [M, L], for the
    batch's samples z [M, L] and posteriors (mu, logvar) [M, L], out of dataset_size images."""
    m, n = len(z), dataset_size
    if not 2 <= m <= n:
        raise ValueError(f"The stratified estimate needs a batch of 2 to dataset_size={n} "
                         f"images, not {m}: train with batch_size >= 2 (large batches are best).")
    log_q = gaussian_log_density(z[:, None], mu[None], logvar[None])   # [M, M, L] log q(z_id|x_j)
    log_w = torch.full((m, m), math.log((n - 1) / (n * (m - 1))), dtype=z.dtype,
                       device=z.device)
    log_w.fill_diagonal_(-math.log(n))                                   # the own image: 1/N
    joint = (log_q.sum(2) + log_w).logsumexp(1)                          # [M]
    marginals = (log_q + log_w[..., None]).logsumexp(1)                  # [M, L]
    return joint, marginals


def stratified_total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                                 dataset_size: int) -> torch.Tensor:
    """log q(z_i) - sum_d log q(z_id) with the stratified estimates, one term per example [M]."""
    joint, marginals = stratified_log_q(z, mu, logvar, dataset_size)
    return joint - marginals.sum(1)


class TCVAE(DeepMLPVAE):
    """The DeepMLPVAE trained with the stratified TC estimate over dataset_size training images:
    Objective(beta=1, tc_weight=b - 1) minimises reconstruction + KL + (b - 1) TC."""

    def __init__(self, latent_dim: int = 10, hidden: tuple[int, ...] = (512, 512),
                 image_size: int = 32, dataset_size: int = 2):
        super().__init__(latent_dim, hidden, image_size)
        check_counts("TCVAE", dataset_size=dataset_size)
        self.dataset_size = dataset_size

    def loss(self, x, y=None, objective=Objective()):
        mu, logvar = (t.float() for t in self.encode(x))
        z = self.reparameterize(mu, logvar)
        parts = elbo(self.nll(x, z), z, mu, logvar, replace(objective, tc_weight=0.0))
        tc = stratified_total_correlation(z, mu, logvar, self.dataset_size).mean()
        return LossParts(parts.total + objective.tc_weight * tc, parts.reconstruction, parts.kl)
