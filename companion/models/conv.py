"""Convolutional VAEs: the three networks of the source documents and the course's own.

    SimpleConvVAE     the Hasktorch tutorial (10 Days of Grad), day 9: three stride-2 convs
                      -> 2x2x128, a decoder linear -> 1x1x1024 -> transposed convs 4, 6, 6
                      (stride 2) -> 28x28
    BatchNormConvVAE  the R torch book's VAE chapter (Keydana, ch. 16): four stride-2 convs
                      with BatchNorm + LeakyReLU (28 -> 14 -> 7 -> 4 -> 2, 8*width channels),
                      transposed convs back
    BADConvVAE        the VAE slides (2022): "BAD" blocks (BatchNorm, LeakyReLU, Dropout),
                      channels 1-32-64-64-64, strides 1, 2, 2, 1 -> 3136 features, mirrored
    ConvVAE           the course's canonical network: two stride-2 convs each way, no
                      full-resolution hidden layer, no BatchNorm, no Dropout (fast on a CPU)

Every decoder returns Bernoulli logits [N, 1, 28, 28]. Fixes to the sources: the output layer
has no BatchNorm, activation or Dropout after it (the slides put a BAD block there), and the
sigmoid lives in the loss (the Hasktorch tutorial and the R torch book put it inside the
decoder).

References: Kingma & Welling 2013 (arXiv:1312.6114); Odena, Dumoulin & Olah 2016,
"Deconvolution and checkerboard artifacts" (distill.pub) for upsample + conv.
"""
from __future__ import annotations

import torch
from torch import nn

from companion.arguments import check_counts
from companion.losses import check_likelihood
from companion.models.base import VAE, GaussianHead, check_images


class _ConvVAEBase(VAE):
    """encode = body -> flatten -> heads; decode = decoder -> logits [N, 1, 28, 28]."""
    body: nn.Module
    heads: GaussianHead
    decoder: nn.Module

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(self, x)
        return self.heads(self.body(x.view(-1, 1, 28, 28)).flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


class SimpleConvVAE(_ConvVAEBase):
    """10 Days of Grad: convs 4x4, 4x4, 3x3 with stride 2 and ReLU; decoder through 1x1x1024."""

    def __init__(self, latent_dim: int = 10):
        super().__init__()
        check_counts("SimpleConvVAE", latent_dim=latent_dim)
        self.latent_dim = latent_dim
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2), nn.ReLU(),      # 28x28 -> 13x13
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),     # 13x13 -> 5x5
            nn.Conv2d(64, 128, 3, stride=2), nn.ReLU())    # 5x5 -> 2x2, 512 features
        self.heads = GaussianHead(2 * 2 * 128, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 1024), nn.ReLU(),
            nn.Unflatten(1, (1024, 1, 1)),                 # 1024 channels of 1x1
            nn.ConvTranspose2d(1024, 256, 4, stride=2), nn.ReLU(),   # 1x1 -> 4x4
            nn.ConvTranspose2d(256, 128, 6, stride=2), nn.ReLU(),    # 4x4 -> 12x12
            nn.ConvTranspose2d(128, 1, 6, stride=2))                 # 12x12 -> 28x28 logits


def _down(c_in: int, c_out: int) -> list[nn.Module]:
    """Conv 3x3 stride 2 (halves the size, rounding up), BatchNorm, LeakyReLU."""
    return [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out),
            nn.LeakyReLU()]


def _up(c_in: int, c_out: int, stride: int, padding: int) -> list[nn.Module]:
    """Transposed conv 4x4 without bias (BatchNorm follows), BatchNorm, LeakyReLU."""
    return [nn.ConvTranspose2d(c_in, c_out, 4, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out), nn.LeakyReLU()]


class BatchNormConvVAE(_ConvVAEBase):
    """R torch book: width, 2w, 4w, 8w channels at 14, 7, 4, 2 pixels; 8w * 4 features."""

    def __init__(self, latent_dim: int = 2, width: int = 28):
        super().__init__()
        check_counts("BatchNormConvVAE", latent_dim=latent_dim, width=width)
        self.latent_dim = latent_dim
        w = width
        self.body = nn.Sequential(*_down(1, w),            # 28 -> 14
                                  *_down(w, 2 * w),        # 14 -> 7
                                  *_down(2 * w, 4 * w),    # 7 -> 4
                                  *_down(4 * w, 8 * w))    # 4 -> 2: 8w x 2 x 2 features
        self.heads = GaussianHead(8 * w * 2 * 2, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 8 * w), nn.Unflatten(1, (8 * w, 1, 1)),
            *_up(8 * w, 4 * w, stride=1, padding=0),       # 1 -> 4
            *_up(4 * w, 2 * w, stride=2, padding=1),       # 4 -> 8
            *_up(2 * w, w, stride=2, padding=2),           # 8 -> 14
            nn.ConvTranspose2d(w, 1, 4, stride=2, padding=1, bias=False))  # 14 -> 28 logits


def _bad(channels: int, dropout: float) -> list[nn.Module]:
    """The slides' "BAD" block: BatchNorm, LeakyReLU, Dropout (left out when dropout=0)."""
    return [nn.BatchNorm2d(channels), nn.LeakyReLU()] + ([nn.Dropout(dropout)] if dropout else [])


def _grow(c_in: int, c_out: int, upsample: bool) -> nn.Module:
    """Double the size: a stride-2 transposed conv, or nearest upsampling then a conv."""
    if upsample:
        return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, padding=1))
    return nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)


class BADConvVAE(_ConvVAEBase):
    """The VAE slides: BAD blocks, channels 1-32-64-64-64, strides 1, 2, 2, 1; mirrored decoder.

    dropout=0.5 is the source's nn.Dropout(); upsample=True swaps each stride-2 transposed
    conv for upsample + conv. The output layer is a plain transposed conv (no BAD block).
    """

    def __init__(self, latent_dim: int = 2, dropout: float = 0.5, upsample: bool = False):
        super().__init__()
        check_counts("BADConvVAE", latent_dim=latent_dim)
        if not 0 <= dropout < 1:
            raise ValueError(f"BADConvVAE(dropout={dropout}): a dropout rate is in [0, 1).")
        self.latent_dim = latent_dim
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), *_bad(32, dropout),             # 28 -> 28
            nn.Conv2d(32, 64, 3, stride=2, padding=1), *_bad(64, dropout),  # 28 -> 14
            nn.Conv2d(64, 64, 3, stride=2, padding=1), *_bad(64, dropout),  # 14 -> 7
            nn.Conv2d(64, 64, 3, padding=1), *_bad(64, dropout))            # 7 -> 7: 3136
        self.heads = GaussianHead(64 * 7 * 7, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 64 * 7 * 7), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 64, 3, padding=1), *_bad(64, dropout),   # 7 -> 7
            _grow(64, 64, upsample), *_bad(64, dropout),                    # 7 -> 14
            _grow(64, 32, upsample), *_bad(32, dropout),                    # 14 -> 28
            nn.ConvTranspose2d(32, 1, 3, padding=1))                        # 28 -> 28 logits


class ConvVAE(_ConvVAEBase):
    """The course's conv VAE: 4x4 stride-2 convs 1 -> c1 -> c2 and back, ReLU between.

    Hidden layers run at 14x14 and 7x7 only; the one full-resolution layer is the output.
    Train it with lr=ConvVAE.lr (3e-3): with the sources' 1e-3 it needs more epochs to catch
    up (bench/conv.py). likelihood: see `companion.losses.RECONSTRUCTION`.
    """
    lr = 3e-3   # its learning rate with Adam

    def __init__(self, latent_dim: int = 2, channels: tuple[int, int] = (32, 64),
                 likelihood: str = "bernoulli"):
        super().__init__()
        check_counts(type(self).__name__, latent_dim=latent_dim, channels=channels)
        check_likelihood(likelihood)
        c1, c2 = channels
        self.latent_dim, self.likelihood = latent_dim, likelihood
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.ReLU(),    # 28 -> 14
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU())   # 14 -> 7: c2*49 features
        self.heads = GaussianHead(c2 * 7 * 7, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, c2 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),   # 7 -> 14
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1))               # 14 -> 28 logits
