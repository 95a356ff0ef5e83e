"""A VAE with an autoregressive decoder: a masked MLP (MADE) over the 784 pixels that also sees z.

    p(x | z) = prod_i p(x_i | x_1, ..., x_{i-1}, z),   each a Bernoulli with logit_i

The decoder is a MADE (Germain et al. 2015) with one or more hidden layers and direct
connections. Pixel d, in raster order, has degree d (1..784); the hidden units' degrees m_k
are spread evenly from 1 towards 783 (with 500 units the largest is 782), the same in every
hidden layer. A weight from pixel d to hidden unit k exists only when m_k >= d, from unit k
to unit k' of the next hidden layer only when m_k' >= m_k, from hidden unit k to output i only
when i > m_k, and directly from pixel d to output i only when i > d, so logit_i sees pixels
1..i-1 and never pixel i or later. z reaches every unit of the first hidden layer without a
mask: it is not part of the image.

Given the image, all 784 logits come out of one pass (teacher forcing), and -log p(x|z) is the
Bernoulli cross-entropy of those logits: the formula of the MLP decoder. `nll(x, z)` scores an
image that way, so the loss of every VAE (`VAE.loss`) trains this one too. Drawing an image takes 784 passes, one pixel at a time.

A decoder like this can model binarized MNIST without z: the kind of decoder with which
posterior collapse was described (Bowman et al. 2016; Chen et al. 2017, arXiv:1611.02731).
This small one still uses z under the plain ELBO; notebook 05 makes it collapse at beta = 3,
and measures a deeper one (layers=2) at beta = 1.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from companion.arguments import check_counts
from companion.losses import bernoulli_nll
from companion.models.base import (IMAGE_SHAPE, VAE, GaussianHead, check_images,
                                   eval_mode)

PIXELS = 784


def hidden_degrees(hidden: int, pixels: int = PIXELS) -> torch.Tensor:
    """The degrees m_k of a hidden layer's units [hidden]: 1 up to 783 at most."""
    return 1 + torch.arange(hidden) * (pixels - 1) // hidden


def made_masks(hidden: int, pixels: int = PIXELS) -> tuple[torch.Tensor, ...]:
    """The MADE masks: pixels->hidden [hidden, pixels], hidden->logits [pixels, hidden] and
    pixels->logits [pixels, pixels] (the direct connections)."""
    pixel_degree = torch.arange(1, pixels + 1)                              # 1..784
    hidden_degree = hidden_degrees(hidden, pixels)
    into_hidden = hidden_degree[:, None] >= pixel_degree[None, :]           # unit k sees pixel d
    into_output = pixel_degree[:, None] > hidden_degree[None, :]            # logit i sees unit k
    direct = pixel_degree[:, None] > pixel_degree[None, :]                  # logit i sees pixel d
    return into_hidden.float(), into_output.float(), direct.float()


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask at every call."""

    def __init__(self, mask: torch.Tensor, bias: bool = True):
        super().__init__(mask.shape[1], mask.shape[0], bias)
        self.register_buffer("mask", mask, persistent=False)   # rebuilt from the config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class AutoregressiveVAE(VAE):
    """MLP encoder 784-hidden-(mu, logvar); MADE decoder 784-hidden-...-hidden-784 (layers
    hidden layers, z added to the first) plus direct pixel-to-logit connections."""

    def __init__(self, latent_dim: int = 20, hidden: int = 500, layers: int = 1):
        super().__init__()
        check_counts("AutoregressiveVAE", latent_dim=latent_dim, hidden=hidden, layers=layers)
        self.latent_dim = latent_dim
        self.body = nn.Sequential(nn.Linear(PIXELS, hidden), nn.ReLU())   # 784 -> hidden
        self.head = GaussianHead(hidden, latent_dim)                      # hidden -> (mu, logvar)
        into_hidden, into_output, direct = made_masks(hidden)
        self.pixels_in = MaskedLinear(into_hidden)                        # 784 -> hidden, masked
        self.z_in = nn.Linear(latent_dim, hidden, bias=False)             # L -> hidden
        degree = hidden_degrees(hidden)
        onward = (degree[:, None] >= degree[None, :]).float()             # unit k' sees unit k
        self.deeper = nn.ModuleList(MaskedLinear(onward) for _ in range(layers - 1))
        self.logits_out = MaskedLinear(into_output)                       # hidden -> 784, masked
        self.direct = MaskedLinear(direct, bias=False)                    # 784 -> 784, masked

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(self, x)
        return self.head(self.body(x.flatten(1)))

    def decode(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [N, 1, 28, 28] of p(x_i | x_<i, z) for the given images x (one pass)."""
        if x is None:
            raise ValueError(
                "The autoregressive decoder scores an image given z, so decode(z, x) needs the "
                "image x too (logit i then depends on x's pixels before i). To draw images, "
                "use model.sample(n) or model.generate(z), which decode one pixel at a time.")
        check_images(self, x)
        x = x.flatten(1)                                                  # [N, 784]
        h = torch.relu(self.pixels_in(x) + self.z_in(z))                  # [N, hidden]
        for layer in self.deeper:
            h = torch.relu(layer(h))                                      # [N, hidden]
        return (self.logits_out(h) + self.direct(x)).view(-1, *IMAGE_SHAPE)   # [N, 1, 28, 28]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar), x), mu, logvar

    def nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) = -sum_i log p(x_i | x_<i, z), all 784 terms from one pass, [N]."""
        logits = self.decode(z, x).float()
        return bernoulli_nll(logits, x.view_as(logits))

    @torch.no_grad()
    def generate(self, z: torch.Tensor, generator: torch.Generator | None = None,
                 coins: torch.Tensor | None = None) -> torch.Tensor:
        """Binary images [N, 1, 28, 28] drawn from p(x|z), pixel by pixel: 784 decoder passes.

        Pixel i becomes 1 when coins[:, i] < p(x_i = 1 | x_<i, z). coins, uniform numbers
        [N, 784] or [1, 784] (one row shared by every image), are drawn from generator if not given.
        """
        if coins is None:
            coins = torch.rand(len(z), PIXELS, generator=generator)
        coins = coins.to(z.device).expand(len(z), PIXELS)
        x = torch.zeros(len(z), PIXELS, device=z.device)
        with eval_mode(self):
            for i in range(PIXELS):
                p = torch.sigmoid(self.decode(z, x).flatten(1)[:, i].float())
                x[:, i] = (coins[:, i] < p).float()                       # pixel i ~ Bernoulli(p)
        return x.view(-1, *IMAGE_SHAPE)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n binary images drawn with z ~ N(0, I): 784 decoder passes."""
        z = torch.randn(n, self.latent_dim, generator=generator)
        return self.generate(z.to(next(self.parameters()).device), generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None,
                    coins: torch.Tensor | None = None) -> torch.Tensor:
        """Binary images drawn from p(x|z) at z = mu(x), the posterior mean (see `generate`)."""
        with eval_mode(self):
            return self.generate(self.code(x), generator, coins)
