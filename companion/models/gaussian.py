"""A conv VAE with a Gaussian decoder that learns its standard deviation sigma.

    p(x | z) = N(x; sigmoid(logits(z)), sigma^2)

    sigma="shared"   one learned number for every pixel of every image
    sigma="pixel"    the decoder draws a second channel: log sigma of each pixel of each image

`decode(z)` returns the logits whose sigmoid is the mean image, so sampling, reconstructions
and `SampleStrip` work as for every VAE; `nll(x, z)` hands the learned log sigma to
`losses.gaussian_nll`, so the loss of every VAE (`VAE.loss`) trains sigma too.

A sigma per pixel can shrink without end where the decoder predicts a pixel almost exactly
(the blank background of Fashion-MNIST): the likelihood there grows without bound and
dominates the loss, although the images get no better. `min_sigma` puts a floor under sigma.

References: Mattei & Frellsen 2018, "Leveraging the Exact Likelihood of Deep Latent Variable
Models" (the unbounded likelihood); Rybkin, Daniilidis & Levine 2021, "Simple and Effective
VAE Training with Calibrated Decoders" (a learned shared sigma).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from companion.losses import gaussian_nll
from companion.models.conv import ConvVAE

SIGMAS = ("shared", "pixel")


class GaussianConvVAE(ConvVAE):
    """The course's ConvVAE with a learned sigma; sigma starts near 1."""

    def __init__(self, latent_dim: int = 16, channels: tuple[int, int] = (32, 64),
                 sigma: str = "shared", min_sigma: float = 0.0):
        super().__init__(latent_dim, channels, likelihood="gaussian")
        if sigma not in SIGMAS:
            raise ValueError(f"sigma must be one of {SIGMAS}, not {sigma!r}")
        if not 0 <= min_sigma < 1:
            raise ValueError(f"min_sigma is a floor on a standard deviation of pixels in [0, 1]: "
                             f"use a number in [0, 1), not {min_sigma}")
        self.sigma, self.min_sigma = sigma, min_sigma
        if sigma == "shared":
            self.shared_log_sigma = nn.Parameter(torch.zeros(()))       # sigma = 1
        else:   # the output layer draws two channels, 14 -> 28: logits and log sigma
            self.decoder[-1] = nn.ConvTranspose2d(channels[0], 2, 4, stride=2, padding=1)

    def decode_with_sigma(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [N, 1, 28, 28], log sigma [] or [N, 1, 28, 28]), sigma at least min_sigma."""
        out = self.decoder(z)
        if self.sigma == "shared":
            logits, log_sigma = out, self.shared_log_sigma
        else:
            logits, log_sigma = out[:, :1], out[:, 1:]
        if self.min_sigma > 0:
            log_sigma = log_sigma.clamp(min=math.log(self.min_sigma))
        return logits, log_sigma

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decode_with_sigma(z)[0]

    def nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log N(x; sigmoid(logits), sigma^2) with the learned sigma, summed over pixels, [N]."""
        logits, log_sigma = self.decode_with_sigma(z)
        return gaussian_nll(logits.float(), x.view_as(logits), log_sigma=log_sigma.float())
