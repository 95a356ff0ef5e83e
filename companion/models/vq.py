"""A small VQ-VAE: a conv encoder, a codebook of K vectors, the nearest code, a conv decoder.

    z_e    = encoder(x)              [N, D, 7, 7]   one D-vector per 4x4 patch of the image
    k      = argmin_j |z_e - e_j|^2  [N, 7, 7]      the discrete code: 49 indices in 0..K-1
    z_q    = e_k                     [N, D, 7, 7]   the chosen codebook vectors
    logits = decoder(z_e + sg[z_q - z_e])           straight-through (sg: stop the gradient)

The argmin is a step function of z_e: its derivative is 0 almost everywhere. The
straight-through estimator uses z_q in the forward pass and, in the backward pass, copies
the decoder's gradient at z_q to z_e, as if quantizing were the identity. The codebook learns
from its own term of the loss, `losses.vq_loss`, which this model's `loss` computes. Its
weights come from the model's config (`commitment`, the paper's beta): an `Objective` with a
beta, free bits or a TC weight is refused, since the loss has no KL term to weigh.

`code(x)` gives the 49 indices and `decode(indices)` the logits, so `reconstruct` works as
for every model. `sample` draws the indices uniformly: a VQ-VAE has no prior of its own
until a second model (a PixelCNN in the paper) learns one over the indices.

Reference: van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation
Learning" (arXiv:1711.00937).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from companion.arguments import check_counts
from companion.losses import LossParts, Objective, check_likelihood, vq_loss
from companion.models.base import LatentModel, check_images, eval_mode

INITS = ("uniform", "data")   # how the codebook starts: small random codes, or encoder outputs


def nearest_code(z_e: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row for each vector: z_e [M, D], codebook [K, D] -> [M].

    The distances are computed pair by pair in float32, not as |a|^2 - 2ab + |b|^2 through a
    matrix product: under autocast that product runs in bfloat16 or float16, whose rounding
    (about 1 part in 256 for bfloat16) can exceed the gap between two nearby codes.
    """
    return torch.cdist(z_e.float(), codebook.float(),
                       compute_mode="donot_use_mm_for_euclid_dist").argmin(1)   # [M, K] -> [M]


class CodebookUsage(NamedTuple):
    """How a set of indices spreads over the K codes."""
    counts: torch.Tensor    # [K] how often each code was chosen
    perplexity: float       # exp(entropy of the code frequencies): K if all are used equally
    used: float             # fraction of the K codes chosen at least once


def codebook_usage(indices: torch.Tensor, codes: int) -> CodebookUsage:
    """Counts, perplexity and fraction used of the codes in indices (any shape)."""
    counts = torch.bincount(indices.flatten().cpu(), minlength=codes)
    p = counts.double() / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
    return CodebookUsage(counts, math.exp(entropy), (counts > 0).double().mean().item())


class VQVAE(LatentModel):
    """Encoder 1 -> c1 -> c2 -> D (28 -> 14 -> 7), K codes of size D, mirrored decoder."""

    def __init__(self, codes: int = 128, code_dim: int = 16, channels: tuple[int, int] = (32, 64),
                 commitment: float = 0.25, init: str = "uniform", likelihood: str = "bernoulli"):
        super().__init__()
        check_counts("VQVAE", codes=codes, code_dim=code_dim, channels=channels)
        check_likelihood(likelihood)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, not {init!r}")
        if not commitment >= 0:
            raise ValueError(f"VQVAE(commitment={commitment}): a weight >= 0, e.g. 0.25.")
        c1, c2 = channels
        self.codes, self.code_dim, self.commitment = codes, code_dim, commitment
        self.likelihood = likelihood
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, stride=2, padding=1), nn.ReLU(),    # 28 -> 14
            nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.ReLU(),   # 14 -> 7
            nn.Conv2d(c2, code_dim, 1))                             # 7x7 vectors of size D
        self.codebook = nn.Embedding(codes, code_dim)               # [K, D]
        nn.init.uniform_(self.codebook.weight, -1 / codes, 1 / codes)   # small codes near 0
        # init="data": the first training batch replaces the codes by K of its encoder outputs.
        # The buffer goes into checkpoints; the Python flag mirrors it, so that forward never
        # waits for the device to read it.
        self.register_buffer("waiting_for_data", torch.tensor(init == "data"))
        self._codes_pending = init == "data"
        self.register_load_state_dict_post_hook(VQVAE._after_load)
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, c2, 1), nn.ReLU(),                              # 7x7, D -> c2
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),      # 7 -> 14
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1))                  # 14 -> 28 logits

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder's continuous output z_e, [N, D, 7, 7]."""
        check_images(self, x)
        return self.encoder(x.view(-1, 1, 28, 28))

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The nearest codes: (z_q [N, D, 7, 7], indices [N, 7, 7])."""
        n, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)                 # [N*49, D]
        indices = nearest_code(flat, self.codebook.weight).view(n, h, w)
        return self.codebook(indices).permute(0, 3, 1, 2), indices    # e_k back to [N, D, 7, 7]

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The discrete code of each image: 49 indices, [N, 7, 7]."""
        return self.quantize(self.encode(x))[1]

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Logits [N, 1, 28, 28] from code indices [N, 7, 7]."""
        return self.decoder(self.codebook(indices).permute(0, 3, 1, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, z_e, z_q): the decoder sees z_q, its gradient reaches z_e (straight-through)."""
        z_e = self.encode(x)
        if self.training and self._codes_pending:
            self._codes_from(z_e)
        z_q, _ = self.quantize(z_e)
        logits = self.decoder(z_e + (z_q - z_e).detach())
        return logits, z_e, z_q

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None,
             objective: Objective = Objective()) -> LossParts:
        self.check_objective(objective)
        logits, z_e, z_q = (t.float() for t in self(x))
        return vq_loss(logits, x, z_e, z_q, self.commitment, self.likelihood, self.codes)

    @staticmethod
    def _after_load(module: "VQVAE", incompatible_keys) -> None:
        module._codes_pending = bool(module.waiting_for_data)

    @torch.no_grad()
    def _codes_from(self, z_e: torch.Tensor) -> None:
        """Set the codebook to K encoder outputs of the batch, drawn without replacement."""
        flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, self.code_dim)   # [N*49, D]
        if len(flat) < self.codes:
            raise ValueError(f"init='data' needs at least {self.codes} code vectors in the first "
                             f"batch, got {len(flat)}: use batches of at least "
                             f"{-(-self.codes // 49)} images, or fewer codes.")
        self.codebook.weight.copy_(flat[torch.randperm(len(flat), device=flat.device)[:self.codes]])
        self.waiting_for_data.fill_(False)
        self._codes_pending = False

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (pixel means) decoded from indices drawn uniformly: a uniform prior."""
        indices = torch.randint(self.codes, (n, 7, 7), generator=generator)
        with eval_mode(self):
            return torch.sigmoid(self.decode(indices.to(self.codebook.weight.device)))
