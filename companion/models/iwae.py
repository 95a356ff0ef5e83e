"""The importance-weighted autoencoder: the MLP VAE trained on the IWAE bound.

With k samples z_i ~ q(z|x) and importance weights w_i = p(x|z_i) p(z_i) / q(z_i|x), the
bound log (1/k) sum_i w_i lies between the ELBO (k = 1) and log p(x), and tightens as k grows.
Trained on it, the encoder no longer has to cover p(z|x) with one sample's worth of mass: the
decoder can use posteriors that the ELBO would punish. The weights are kept as logarithms
(e^-100 and smaller for 28 x 28 images) and averaged with logsumexp.

Reference: Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders"
(arXiv:1509.00519).
"""
from __future__ import annotations

import math

import torch

from companion.arguments import check_counts
from companion.gaussians import gaussian_log_density, kl_divergence, sample_diagonal
from companion.losses import LossParts, Objective
from companion.models.base import NO_PRIOR
from companion.models.mlp import MLPVAE
from companion.priors import standard_normal_log_prob


class IWAE(MLPVAE):
    """The MLP VAE trained on the IWAE bound with `samples` draws from q(z|x) per image.

    loss: total is -(1/N) sum_n log (1/k) sum_i w_i, the negative bound, batch mean. The
    reconstruction part is -log p(x|z_1) of the first draw and kl the closed-form
    KL(q(z|x) || N(0, I)), so reconstruction + kl is the usual single-sample negative ELBO,
    the training loss of an MLPVAE, and the two models' histories compare. The bound has no
    separate KL term, so beta, free bits, a TC weight and KL warm-up are all refused.
    """
    refuses = NO_PRIOR

    def __init__(self, latent_dim: int = 20, hidden: int = 400, likelihood: str = "bernoulli",
                 samples: int = 5):
        check_counts("IWAE", latent_dim=latent_dim, hidden=hidden, samples=samples)
        super().__init__(latent_dim, hidden, likelihood)
        self.samples = samples

    def loss(self, x, y=None, objective=Objective()):
        self.check_objective(objective)
        k, n = self.samples, len(x)
        mu, logvar = (t.float() for t in self.encode(x))                  # [N, L] each
        z = sample_diagonal(mu, logvar, k)                                 # [k, N, L]
        log_q = gaussian_log_density(z, mu, logvar).sum(-1)                # [k, N]
        log_prior = standard_normal_log_prob(z)                            # [k, N]
        images = x.repeat(k, *[1] * (x.ndim - 1))                          # [k*N, ...]
        nll = self.nll(images, z.flatten(0, 1)).view(k, n)                 # [k, N]
        log_w = -nll + log_prior - log_q                                   # [k, N]
        bound = torch.logsumexp(log_w, 0) - math.log(k)                    # [N]
        return LossParts(-bound.mean(), nll[0].mean(), kl_divergence(mu, logvar).mean())
