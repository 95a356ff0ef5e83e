"""A conv VAE with a Gaussian decoder whose standard deviation sigma is fitted, not chosen.

    p(x | z) = N(x; sigmoid(logits(z)), sigma^2)

    sigma="shared"   one sigma for every pixel, at its best value for the batch in hand:
                     sigma^2 = the mean squared error of the reconstructions, so no
                     optimizer has to find it (the "optimal sigma" of Rybkin et al. 2021)
    sigma="pixel"    the decoder draws a second channel: log sigma of each pixel of each image

`decode(z)` returns the logits whose sigmoid is the mean image, so sampling, reconstructions
and `SampleStrip` work as for every VAE; `nll(x, z)` hands log sigma to
`losses.gaussian_nll`, so the loss of every VAE (`VAE.loss`) uses it.

The shared sigma is computed without a gradient: at its best value the loss does not change
with sigma, so the weights get the same gradient either way (and the backward pass is shorter).

A sigma per pixel can shrink without end where the decoder predicts a pixel almost exactly
(the blank background of Fashion-MNIST): the likelihood there grows without bound and
dominates the loss, although the images get no better. `min_sigma` puts a floor under sigma.

References: Mattei & Frellsen 2018, "Leveraging the Exact Likelihood of Deep Latent Variable
Models" (the unbounded likelihood); Rybkin, Daniilidis & Levine 2021, "Simple and Effective
VAE Training with Calibrated Decoders" (the shared sigma set to its best value).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from companion.losses import gaussian_nll
from companion.models.conv import ConvVAE

SIGMAS = ("shared", "pixel")
TINY_ERROR = 1e-12   # the smallest mean squared error a shared sigma is fitted to: log(0) = -inf


class GaussianConvVAE(ConvVAE):
    """The course's ConvVAE with a Gaussian decoder whose sigma fits the data."""

    def __init__(self, latent_dim: int = 16, channels: tuple[int, int] = (32, 64),
                 sigma: str = "shared", min_sigma: float = 0.0):
        super().__init__(latent_dim, channels, likelihood="gaussian")
        if sigma not in SIGMAS:
            raise ValueError(f"sigma must be one of {SIGMAS}, not {sigma!r}")
        if not 0 <= min_sigma < 1:
            raise ValueError(f"min_sigma is a floor on a standard deviation of pixels in [0, 1]: "
                             f"use a number in [0, 1), not {min_sigma}")
        self.sigma, self.min_sigma = sigma, min_sigma
        if sigma == "pixel":   # the output layer draws two channels, 14 -> 28: logits and log sigma
            self.decoder[-1] = nn.ConvTranspose2d(channels[0], 2, 4, stride=2, padding=1)

    def decode_with_sigma(self, z: torch.Tensor, x: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits [N, 1, 28, 28], log sigma [] or [N, 1, 28, 28]), sigma at least min_sigma.
        A shared sigma is fitted to the images x that z came from, so it needs them."""
        out = self.decoder(z)
        if self.sigma == "pixel":
            logits, log_sigma = out[:, :1], out[:, 1:]
        elif x is None:
            raise ValueError("A shared sigma is the RMSE of the reconstructions: pass the "
                             "images too, decode_with_sigma(z, x).")
        else:
            logits = out
            with torch.no_grad():
                error = (torch.sigmoid(logits.float()) - x.view_as(logits)).pow(2).mean()
                log_sigma = 0.5 * error.clamp(min=TINY_ERROR).log()
        if self.min_sigma > 0:
            log_sigma = log_sigma.clamp(min=math.log(self.min_sigma))
        return logits, log_sigma

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        return out[:, :1] if self.sigma == "pixel" else out

    def nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log N(x; sigmoid(logits), sigma^2) with the model's sigma, summed over pixels, [N]."""
        logits, log_sigma = self.decode_with_sigma(z, x)
        return gaussian_nll(logits.float(), x.view_as(logits), log_sigma=log_sigma.float())
