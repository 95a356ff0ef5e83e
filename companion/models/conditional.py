"""The conditional VAE: the encoder and the decoder both see the label.

    encode(x, y) -> (mu, logvar)   q(z | x, y)
    decode(z, y) -> logits         p(x | z, y)
    sample(labels)                 one image of each requested class, z ~ N(0, I)

The label enters as a one-hot vector appended to the flattened image (encoder) and to z
(decoder). Since the decoder is told the class, z is free to hold what the label does not
say: the style (slant, thickness, width). Keeping z and changing y redraws the same style as
another digit. `training.loss_parts` passes each batch's labels to a model with
`is_conditional = True`; the loss is the ELBO of p(x | y), the same formula as for the MLPVAE.
Every method that encodes or decodes (code, reconstruct, sample) takes the labels too, so
helpers written for unconditional VAEs (`latent.encode_all`, for one) do not apply to it.

Reference: Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep
Conditional Generative Models" (NeurIPS).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from companion.models.base import IMAGE_SHAPE, VAE, check_images, eval_mode
from companion.models.mlp import mlp


class ConditionalVAE(VAE):
    """MLP VAE with the label: [784 + K] -> hidden -> (mu, logvar) and [L + K] -> hidden -> 784."""
    is_conditional = True

    def __init__(self, latent_dim: int = 8, hidden: int = 400, num_classes: int = 10):
        super().__init__()
        self.latent_dim, self.num_classes = latent_dim, num_classes
        self.body = nn.Sequential(nn.Linear(784 + num_classes, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, latent_dim)                           # hidden -> L
        self.logvar = nn.Linear(hidden, latent_dim)                       # hidden -> L
        self.decoder = mlp([latent_dim + num_classes, hidden, 784])       # L + K -> 784

    def one_hot(self, y: torch.Tensor, n: int) -> torch.Tensor:
        """The labels y [n] (class indices) as one-hot rows [n, K]; a clear error otherwise."""
        if (not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (n,)
                or (n and not 0 <= int(y.min()) <= int(y.max()) < self.num_classes)):
            got = f"{y.dtype} {list(y.shape)}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(
                f"{type(self).__name__} needs one label per row: an int64 tensor [{n}] of class "
                f"indices 0..{self.num_classes - 1}, got {got}. For one class c, pass "
                f"torch.full(({n},), c).")
        return F.one_hot(y, self.num_classes).float()                      # [n, K]

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(self, x)
        h = self.body(torch.cat([x.flatten(1), self.one_hot(y, len(x))], dim=1))
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.one_hot(y, len(z))], dim=1)                 # [N, L + K]
        return self.decoder(h).view(-1, *IMAGE_SHAPE)                       # [N, 1, 28, 28]

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
    def sample(self, labels: torch.Tensor, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """One image (pixel means) per requested label, decoded from z ~ N(0, I)."""
        z = torch.randn(len(labels), self.latent_dim, generator=generator)
        with eval_mode(self):
            return torch.sigmoid(self.decode(z.to(labels.device), labels))
