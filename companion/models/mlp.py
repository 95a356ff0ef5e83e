"""The fully connected models: a plain autoencoder and a VAE, one hidden layer each way, and
a deeper VAE for square images of any size.

The sizes follow the Hasktorch tutorial (10 Days of Grad), day 9 (784-400-L), and the 2018
journal-club notebook on VAEs (784-100-2). `DeepMLPVAE` follows the fully connected β-VAE of
Higgins et al. (2017), here two hidden layers each way (theirs: layers of 1200 units, two in
the encoder and three in the decoder, on 64 x 64 dSprites).
"""
from __future__ import annotations

import torch
from torch import nn

from companion.arguments import check_counts
from companion.losses import check_likelihood
from companion.models.base import (IMAGE_SHAPE, VAE, GaussianHead, LatentModel, check_images)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Autoencoder(LatentModel):
    """Plain autoencoder 784-hidden-L-hidden-784 (deterministic code z, no prior).

    likelihood: the loss of its reconstructions, "bernoulli" (cross-entropy) or
    "squared_error" (see `companion.losses.RECONSTRUCTION`)."""

    def __init__(self, latent_dim: int = 2, hidden: int = 400, likelihood: str = "bernoulli"):
        super().__init__()
        check_counts("Autoencoder", latent_dim=latent_dim, hidden=hidden)
        check_likelihood(likelihood)
        self.latent_dim, self.likelihood = latent_dim, likelihood
        self.encoder = mlp([784, hidden, latent_dim])    # 784 -> hidden -> L
        self.decoder = mlp([latent_dim, hidden, 784])    # L -> hidden -> 784 logits

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_images(self, x)
        return self.encoder(x.flatten(1))                # [N, L]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *IMAGE_SHAPE)    # [N, 1, 28, 28] logits


class MLPVAE(VAE):
    """VAE with one hidden layer each way: 784-hidden-(mu, logvar) and L-hidden-784."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400, likelihood: str = "bernoulli"):
        super().__init__()
        check_counts("MLPVAE", latent_dim=latent_dim, hidden=hidden)
        check_likelihood(likelihood)
        self.latent_dim, self.likelihood = latent_dim, likelihood
        # the heads as two layers of their own: the names of the VAE you write in notebook 05
        self.body = nn.Sequential(nn.Linear(784, hidden), nn.ReLU())   # 784 -> hidden
        self.mu = nn.Linear(hidden, latent_dim)                        # hidden -> L
        self.logvar = nn.Linear(hidden, latent_dim)                    # hidden -> L
        self.decoder = mlp([latent_dim, hidden, 784])                  # L -> hidden -> 784

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(self, x)
        h = self.body(x.flatten(1))
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *IMAGE_SHAPE)


class DeepMLPVAE(VAE):
    """VAE with several hidden layers each way, for square images of side `image_size`.

    hidden=(512, 512), image_size=32 gives 1024-512-512-(mu, logvar) and L-512-512-1024.
    """

    def __init__(self, latent_dim: int = 10, hidden: tuple[int, ...] = (512, 512),
                 image_size: int = 32):
        super().__init__()
        check_counts("DeepMLPVAE", latent_dim=latent_dim, hidden=hidden, image_size=image_size)
        self.latent_dim, self.image_size = latent_dim, image_size
        pixels, hidden = image_size * image_size, list(hidden)
        self.body = nn.Sequential(mlp([pixels, *hidden]), nn.ReLU())   # pixels -> ... -> hidden[-1]
        self.head = GaussianHead(hidden[-1], latent_dim)               # -> (mu, logvar)
        self.decoder = mlp([latent_dim, *hidden[::-1], pixels])        # L -> ... -> pixels

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        side = self.image_size
        if not (x.ndim == 2 and x.shape[1] == side * side
                or x.ndim == 4 and tuple(x.shape[1:]) == (1, side, side)):
            raise ValueError(
                f"This DeepMLPVAE expects images shaped [N, 1, {side}, {side}] or "
                f"[N, {side * side}], got {list(x.shape)}. Build it with "
                f"image_size={x.shape[-1]} for {x.shape[-1]} x {x.shape[-1]} images; a single "
                "image needs a batch dimension: x.unsqueeze(0).")
        return self.head(self.body(x.flatten(1)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, 1, self.image_size, self.image_size)
