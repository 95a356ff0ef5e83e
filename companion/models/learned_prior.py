"""A VAE whose prior p(z) is learned with it: a mixture of Gaussians or a VampPrior.

Against a prior other than N(0, I) the KL term has no closed form, so the loss estimates it
from the same z ~ q(z|x) that is decoded, one sample per image:

    KL(q(z|x) || p(z)) ~ log q(z|x) - log p(z),      z ~ q(z|x)

an unbiased estimate whose mean over the batch is the `kl` part of the loss (single draws
can be negative). prior="standard" uses this estimate too, so that the three priors are
trained and compared the same way.

Reference: Tomczak & Welling 2018, "VAE with a VampPrior" (arXiv:1705.07120).
"""
from __future__ import annotations

import torch

from companion.arguments import check_counts
from companion.gaussians import gaussian_log_density
from companion.losses import LossParts, Objective
from companion.models.base import eval_mode
from companion.models.mlp import MLPVAE
from companion.priors import MixturePrior, StandardNormalPrior, VampPrior

PRIORS = ("standard", "mixture", "vamp")


class PriorVAE(MLPVAE):
    """The MLP VAE with a prior of its choice: "standard" N(0, I), a learned "mixture" of
    `components` diagonal Gaussians, or a "vamp" prior on `components` pseudo-inputs
    (components is not used by "standard"). The defaults are the paper's: 500 pseudo-inputs.

    Its loss is reconstruction + beta * (log q(z|x) - log p(z)); beta and KL warm-up apply,
    free bits and a TC weight (terms of a closed-form, per-dimension KL) are refused.
    """
    refuses = ("free_bits", "tc_weight")

    def __init__(self, latent_dim: int = 20, hidden: int = 400, likelihood: str = "bernoulli",
                 prior: str = "vamp", components: int = 500):
        check_counts("PriorVAE", latent_dim=latent_dim, hidden=hidden, components=components)
        if prior not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, not {prior!r}")
        super().__init__(latent_dim, hidden, likelihood)
        if prior == "standard":
            self.prior = StandardNormalPrior(latent_dim)
        elif prior == "mixture":
            self.prior = MixturePrior(latent_dim, components)
        else:
            self.prior = VampPrior(latent_dim, components, self.encode)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of each code z [N, L] under the model's prior, shape [N]."""
        return self.prior.log_prob(z)

    def kl_estimate(self, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
                    ) -> torch.Tensor:
        """log q(z|x) - log p(z) at z ~ q(z|x) = N(mu, diag(exp(logvar))), all [N, L]: [N]."""
        return gaussian_log_density(z, mu, logvar).sum(1) - self.log_prior(z)

    def loss(self, x, y=None, objective=Objective()):
        self.check_objective(objective)
        mu, logvar = (t.float() for t in self.encode(x))
        z = self.reparameterize(mu, logvar)
        recon, kl = self.nll(x, z).mean(), self.kl_estimate(z, mu, logvar).mean()
        return LossParts(recon + objective.beta * kl, recon, kl)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (pixel means) decoded from z ~ p(z), the model's prior, in eval mode."""
        with eval_mode(self):
            return torch.sigmoid(self.decode(self.prior.sample(n, generator)))
