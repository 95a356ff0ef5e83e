"""A VAE with two stochastic layers and bottom-up inference (Burda et al. 2016, section 5).

    generative:  z2 ~ N(0, I),   z1 ~ p(z1 | z2) = N(m(z2), diag(exp(s(z2)))),   x ~ p(x | z1)
    inference:   z1 ~ q(z1 | x),   z2 ~ q(z2 | z1)

One draw of (z1, z2) per image gives the loss

    -ELBO ~ -log p(x | z1) + [log q(z1|x) + log q(z2|z1) - log p(z1|z2) - log p(z2)],

the bracket being the `kl` part: a single-sample estimate of KL(q(z1, z2 | x) || p(z1, z2)).

The code of an image is the pair z = [z1, z2], latent_dim = L1 + L2 numbers, so the
likelihood estimates see both layers: `nll(x, z)` decodes from z1, `log_prior(z)` is
log p(z1|z2) + log p(z2), and `sample_posterior(x)` draws z with its log q(z|x). `encode(x)`
gives q(z1|x) and q(z2|z1) at z1's mean, side by side: its means are the code whose
coordinates the active-unit count of notebook 05 measures, layer by layer.
"""
from __future__ import annotations

import torch
from torch import nn

from companion.arguments import check_counts
from companion.gaussians import draw_eps, gaussian_log_density, sample_diagonal
from companion.losses import LossParts, Objective, check_likelihood
from companion.models.base import IMAGE_SHAPE, VAE, GaussianHead, check_images, eval_mode
from companion.priors import standard_normal_log_prob


class HierarchicalVAE(VAE):
    """Two stochastic layers of latent_dims = (L1, L2) numbers, one hidden layer of
    hidden = (H1, H2) units in each step: 784-H1-z1-H2-z2 up, z2-H2-z1-H1-784 down."""
    refuses = ("free_bits", "tc_weight")   # terms of a closed-form, per-dimension KL

    def __init__(self, latent_dims: tuple[int, int] = (20, 10),
                 hidden: tuple[int, int] = (400, 200), likelihood: str = "bernoulli"):
        super().__init__()
        check_counts("HierarchicalVAE", latent_dims=latent_dims, hidden=hidden)
        if len(latent_dims) != 2 or len(hidden) != 2:
            raise ValueError(f"HierarchicalVAE has two stochastic layers: pass two sizes each, "
                             f"e.g. latent_dims=(20, 10), hidden=(400, 200), not "
                             f"{list(latent_dims)} and {list(hidden)}.")
        check_likelihood(likelihood)
        (l1, l2), (h1, h2) = latent_dims, hidden
        self.latent_dims, self.latent_dim, self.likelihood = (l1, l2), l1 + l2, likelihood
        self.up1 = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), GaussianHead(h1, l1))  # q(z1|x)
        self.up2 = nn.Sequential(nn.Linear(l1, h2), nn.ReLU(), GaussianHead(h2, l2))   # q(z2|z1)
        self.down = nn.Sequential(nn.Linear(l2, h2), nn.ReLU(), GaussianHead(h2, l1))  # p(z1|z2)
        self.decoder = nn.Sequential(nn.Linear(l1, h1), nn.ReLU(), nn.Linear(h1, 784))  # p(x|z1)

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z [N, L1 + L2] as (z1 [N, L1], z2 [N, L2])."""
        return z[..., :self.latent_dims[0]], z[..., self.latent_dims[0]:]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) [N, L1 + L2]: q(z1|x), and q(z2|z1) at z1 = its mean."""
        check_images(self, x)
        mu1, logvar1 = self.up1(x.flatten(1))
        mu2, logvar2 = self.up2(mu1)
        return torch.cat([mu1, mu2], -1), torch.cat([logvar1, logvar2], -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of p(x | z1) [N, 1, 28, 28] for codes z = [z1, z2]."""
        return self.decoder(self.split(z)[0]).view(-1, *IMAGE_SHAPE)

    def sample_posterior(self, x: torch.Tensor, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """z = [z1, z2] ~ q(z1|x) q(z2|z1) and log q(z|x) of each image: [N, L1 + L2] and [N]."""
        check_images(self, x)
        mu1, logvar1 = (t.float() for t in self.up1(x.flatten(1)))
        z1 = sample_diagonal(mu1, logvar1, 1, generator)[0]
        mu2, logvar2 = (t.float() for t in self.up2(z1))
        z2 = sample_diagonal(mu2, logvar2, 1, generator)[0]
        log_q = (gaussian_log_density(z1, mu1, logvar1).sum(-1)
                 + gaussian_log_density(z2, mu2, logvar2).sum(-1))
        return torch.cat([z1, z2], -1), log_q

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z1 | z2) + log p(z2) of codes z = [z1, z2] [N, L1 + L2], shape [N]."""
        z1, z2 = self.split(z)
        mu1, logvar1 = (t.float() for t in self.down(z2))
        return gaussian_log_density(z1, mu1, logvar1).sum(-1) + standard_normal_log_prob(z2)

    def loss(self, x, y=None, objective=Objective()):
        self.check_objective(objective)
        z, log_q = self.sample_posterior(x)
        recon, kl = self.nll(x, z).mean(), (log_q - self.log_prior(z)).mean()
        return LossParts(recon + objective.beta * kl, recon, kl)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (pixel means): z2 ~ N(0, I), z1 ~ p(z1|z2), decoded; in eval mode."""
        like = next(self.parameters())
        with eval_mode(self):
            z2 = draw_eps((n, self.latent_dims[1]), like, generator)
            mu1, logvar1 = self.down(z2)
            z1 = sample_diagonal(mu1, logvar1, 1, generator)[0]
            return torch.sigmoid(self.decode(torch.cat([z1, z2], -1)))
