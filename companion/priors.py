"""Priors p(z) as objects: N(0, I), a learned mixture of Gaussians, the VampPrior.

    prior.log_prob(z)             log p(z) of each code z [N, L], shape [N]
    prior.sample(n, generator)    n codes drawn from p(z), shape [n, L], on the prior's device
    prior.mixture()               the prior as a `GaussianMixture` at its current parameters
    standard_normal_log_prob(z)   log N(z; 0, I) of each code, the one home of that formula

They are `nn.Module`s: the learned ones have parameters that train with the VAE they belong
to, and all of them move with `.to(device)`. Used the same way, one can stand in for another
(as the prior objects of Tomczak's "Deep Generative Modeling" do).

    StandardNormalPrior   N(0, I), the prior of every VAE so far
    MixturePrior          sum_k pi_k N(m_k, diag(exp(s_k))), with pi, m and s learned
    VampPrior             (1/K) sum_k q(z | u_k): the encoder's posteriors at K learned
                          pseudo-inputs u_k (Tomczak & Welling 2018, arXiv:1705.07120)

The VampPrior keeps its pseudo-inputs as logits: u = sigmoid(logits) is always an image with
pixels in (0, 1), the inputs the encoder was built for, and unlike clipping (the paper's
hardtanh) the sigmoid never stops a pixel's gradient.

References: Tomczak & Welling 2018, "VAE with a VampPrior"; Tomczak 2022, "Deep Generative
Modeling", for priors as objects.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from companion.arguments import check_counts
from companion.gaussians import draw_eps, gaussian_log_density
from companion.mixture import GaussianMixture

IMAGE_SHAPE = (1, 28, 28)   # the pseudo-inputs' shape when no start is given


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) of each code z [..., L], summed over the last dimension: [...]."""
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    return gaussian_log_density(z, zero, zero).sum(-1)


class Prior(nn.Module):
    """A prior over codes of latent_dim dimensions; subclasses define `mixture`."""
    latent_dim: int

    def mixture(self) -> GaussianMixture:
        """The prior as a mixture of diagonal Gaussians, at the current parameters."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of each code z [N, L], shape [N]."""
        return self.mixture().log_prob(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n codes z ~ p(z), shape [n, L], on the prior's device."""
        return self.mixture().sample(n, generator)[0]


class StandardNormalPrior(Prior):
    """N(0, I) in latent_dim dimensions: nothing to learn."""

    def __init__(self, latent_dim: int):
        super().__init__()
        check_counts("StandardNormalPrior", latent_dim=latent_dim)
        self.latent_dim = latent_dim
        # not saved with the weights; there only to give the prior a device and a dtype
        self.register_buffer("origin", torch.zeros(latent_dim), persistent=False)

    def mixture(self) -> GaussianMixture:
        return GaussianMixture.standard_normal(self.latent_dim, self.origin.device,
                                               self.origin.dtype)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        check_counts("sample", n=n)
        return draw_eps((n, self.latent_dim), self.origin, generator)


class MixturePrior(Prior):
    """A learned mixture of `components` diagonal Gaussians in latent_dim dimensions.

    The means start as small random numbers (N(0, 0.5^2) draws, so the components differ),
    the variances at 1 and the weights equal; all three are learned with the VAE.
    """

    def __init__(self, latent_dim: int, components: int):
        super().__init__()
        check_counts("MixturePrior", latent_dim=latent_dim, components=components)
        self.latent_dim = latent_dim
        self.means = nn.Parameter(0.5 * torch.randn(components, latent_dim))   # [K, L]
        self.logvars = nn.Parameter(torch.zeros(components, latent_dim))       # [K, L]
        self.logits = nn.Parameter(torch.zeros(components))                    # [K] mixing

    def mixture(self) -> GaussianMixture:
        return GaussianMixture(F.softmax(self.logits, 0), self.means, logvars=self.logvars)


class VampPrior(Prior):
    """p(z) = (1/K) sum_k q(z | u_k): the encoder's posteriors at K learned pseudo-inputs.

    encoder is x -> (mu, logvar), e.g. a VAE's `encode`; it is shared, not copied, so the
    prior changes as the encoder learns (and its gradient reaches the encoder). start, if
    given, holds the first pseudo-inputs [K, ...] with pixels in [0, 1] (e.g. training
    images); else they are random grey images, sigmoid of N(0, 1) logits, shaped [K, 1, 28, 28].
    """

    def __init__(self, latent_dim: int, components: int,
                 encoder: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                 start: torch.Tensor | None = None):
        super().__init__()
        check_counts("VampPrior", latent_dim=latent_dim, components=components)
        if start is not None and len(start) != components:
            raise ValueError(f"start holds {len(start)} pseudo-inputs, but components="
                             f"{components}: pass one image per component.")
        self.latent_dim, self.encoder = latent_dim, encoder
        logits = (torch.randn(components, *IMAGE_SHAPE) if start is None
                  else torch.logit(start.detach().float().clamp(1e-3, 1 - 1e-3)))
        self.logits = nn.Parameter(logits)                                     # [K, 1, 28, 28]

    @property
    def pseudo_inputs(self) -> torch.Tensor:
        """The K pseudo-inputs u_k, images with pixels in (0, 1): [K, 1, 28, 28]."""
        return torch.sigmoid(self.logits)

    def mixture(self) -> GaussianMixture:
        mu, logvar = (t.float() for t in self.encoder(self.pseudo_inputs))    # [K, L] each
        return GaussianMixture.aggregate_posterior(mu, logvar)

