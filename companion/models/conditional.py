"""The conditional VAE: the encoder and the decoder both see the label.

    encode(x, y) -> (mu, logvar)   q(z | x, y)
    decode(z, y) -> logits         p(x | z, y)
    sample(labels)                 one image of each requested class, z ~ N(0, I)

The label enters as a one-hot vector appended to the flattened image (encoder) and to z
(decoder). Since the decoder is told the class, z is free to hold what the label does not
say: the style (slant, thickness, width). Keeping z and changing y redraws the same style as
another digit. `fit` hands every model each batch's labels; this one's `loss` uses them: the
ELBO of p(x | y), the formula of every VAE (`losses.elbo`). Every method that encodes or
decodes (code, reconstruct) takes the labels too, so helpers written for unconditional VAEs
(`latent.encode_all`, for one) do not apply to it; `sample(n)` without labels draws the
classes in turn (0, 1, ..., K - 1, 0, ...).

Reference: Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep
Conditional Generative Models" (NeurIPS).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from companion.arguments import check_counts
from companion.gaussians import draw_eps
from companion.losses import LossParts, Objective, bernoulli_nll, elbo
from companion.models.base import (IMAGE_SHAPE, VAE, GaussianHead, check_images,
                                   eval_mode)
from companion.models.mlp import mlp


class ConditionalVAE(VAE):
    """MLP VAE with the label: [784 + K] -> hidden -> (mu, logvar) and [L + K] -> hidden -> 784."""

    def __init__(self, latent_dim: int = 8, hidden: int = 400, num_classes: int = 10):
        super().__init__()
        check_counts("ConditionalVAE", latent_dim=latent_dim, hidden=hidden,
                    num_classes=num_classes)
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.body = nn.Sequential(nn.Linear(784 + num_classes, hidden), nn.ReLU())
        self.head = GaussianHead(hidden, latent_dim)                      # hidden -> (mu, logvar)
        self.decoder = mlp([latent_dim + num_classes, hidden, 784])       # L + K -> 784

    def one_hot(self, y: torch.Tensor, n: int) -> torch.Tensor:
        """The labels y [n] (class indices) as one-hot rows [n, K]; a clear error otherwise."""
        # the range is checked on the CPU only: on an accelerator it would wait for the device
        if (not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (n,)
                or (n and y.device.type == "cpu"
                    and not 0 <= int(y.min()) <= int(y.max()) < self.num_classes)):
            got = f"{y.dtype} {list(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(
                f"{type(self).__name__} needs one label per row: an int64 tensor [{n}] of class "
                f"indices 0..{self.num_classes - 1}, got {got}. For one class c, pass "
                f"torch.full(({n},), c).")
        return F.one_hot(y, self.num_classes).float()                      # [n, K]

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(self, x)
        return self.head(self.body(torch.cat([x.flatten(1), self.one_hot(y, len(x))], dim=1)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is None:
            raise ValueError("A conditional VAE decodes z given a label: decode(z, y) with y an "
                             "int64 tensor of class indices, one per row of z.")
        h = torch.cat([z, self.one_hot(y, len(z))], dim=1)                 # [N, L + K]
        return self.decoder(h).view(-1, *IMAGE_SHAPE)                       # [N, 1, 28, 28]

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None,
             objective: Objective = Objective()) -> LossParts:
        if y is None:
            raise ValueError("ConditionalVAE learns from labels: pass each batch's labels y "
                             "(fit and evaluate do so for every (x, y) batch).")
        mu, logvar = (t.float() for t in self.encode(x, y))
        z = self.reparameterize(mu, logvar)
        return elbo(bernoulli_nll(self.decode(z, y).float(), x), z, mu, logvar, objective)

    def code(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The posterior mean mu of each image given its label, [N, L]."""
        return self.encode(x, y)[0]

    def forward(self, x: torch.Tensor, y: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x, y)
        return self.decode(self.reparameterize(mu, logvar), y), mu, logvar

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pixel means decoded from the code of x given its label, in eval mode."""
        with eval_mode(self):
            return torch.sigmoid(self.decode(self.code(x, y), y))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images (pixel means) decoded from z ~ N(0, I), one per label (default: the
        classes in turn), computed in eval mode."""
        device = next(self.parameters()).device
        labels = torch.arange(n) % self.num_classes if labels is None else labels
        if len(labels) != n:
            raise ValueError(f"sample(n={n}, labels=...) needs n labels, got {len(labels)}.")
        z = draw_eps((n, self.latent_dim), next(self.parameters()), generator)
        with eval_mode(self):
            return torch.sigmoid(self.decode(z, labels.to(device)))
