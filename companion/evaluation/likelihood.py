"""How good is a VAE as a density model? Importance-weighted estimates of log p(x).

The ELBO is a lower bound on log p(x). Drawing k samples z_1..z_k from q(z|x) and
averaging the importance weights w_i = p(x, z_i) / q(z_i | x) inside the log gives a
tighter one (Burda et al. 2015, arXiv:1509.00519):

    IWAE_k(x) = log (1/k) sum_i w_i   <=   log p(x),     ELBO = IWAE_1 <= IWAE_k <= IWAE_{k+1}

and IWAE_k -> log p(x) as k grows. Reported numbers are negative log-likelihoods in nats
per image: smaller is better.

    est = importance_weighted(model, test, k=1000)   # est.elbo, est.log_px: [N] each
    est.log_px.mean()                                # ~ log p(x), averaged over the test set
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from companion.data import Batches, ImageSet
from companion.data.batching import binarize

LOG_2PI = math.log(2 * math.pi)


class Estimate(NamedTuple):
    """Per-image estimates from the same k samples: the ELBO (mean of log w) and IWAE_k."""
    elbo: torch.Tensor     # [N]  (1/k) sum_i log w_i, an unbiased estimate of the ELBO
    log_px: torch.Tensor   # [N]  log (1/k) sum_i w_i, the IWAE bound on log p(x)


@torch.no_grad()
def log_weights(model, x: torch.Tensor, k: int, chunk: int = 100,
                generator: torch.Generator | None = None,
                q: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x) for k samples z_i ~ q(z|x); [k, N].

    q = (mu, logvar) replaces the encoder's output, e.g. with a q optimised per image.
    """
    mu, logvar = model.encode(x) if q is None else q                 # [N, L] each
    std = torch.exp(0.5 * logvar)
    target = x.flatten(1)                                            # [N, 784]
    out = []
    for start in range(0, k, chunk):
        c = min(chunk, k - start)
        eps = torch.randn((c, *mu.shape), generator=generator).to(mu.device)   # [c, N, L]
        z = mu + std * eps                                           # [c, N, L]
        log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)       # [c, N]
        log_prior = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)              # [c, N]
        logits = model.decode(z.flatten(0, 1)).float().view(c, len(x), -1)   # [c, N, 784]
        log_lik = -F.binary_cross_entropy_with_logits(
            logits, target.expand_as(logits), reduction="none").sum(-1)       # [c, N]
        out.append(log_lik + log_prior - log_q)
    return torch.cat(out)                                            # [k, N]


def combine(log_w: torch.Tensor) -> Estimate:
    """The ELBO and IWAE_k estimates from log weights [k, N]."""
    k = log_w.shape[0]
    return Estimate(log_w.mean(0), torch.logsumexp(log_w, 0) - math.log(k))


@torch.no_grad()
def importance_weighted(model, data: ImageSet, k: int = 1000, batch_size: int = 100,
                        chunk: int = 100, seed: int = 0) -> Estimate:
    """ELBO and IWAE_k of every image in data (binary pixels), computed in eval mode."""
    if not bool(((data.images == 0) | (data.images == 1)).all()):
        raise ValueError("importance_weighted needs binary pixels (a Bernoulli likelihood): "
                         "binarize the data first, e.g. with binarized(data, seed).")
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    parts = [combine(log_weights(model, x, k, chunk, generator))
             for x, _ in Batches(data, batch_size, shuffle=False)]
    model.train(was_training)
    return Estimate(torch.cat([p.elbo for p in parts]), torch.cat([p.log_px for p in parts]))


def binarized(data: ImageSet, seed: int = 0) -> ImageSet:
    """One fixed random binarization of data (pixel = 1 with probability = its intensity)."""
    generator = torch.Generator(device=data.images.device).manual_seed(seed)
    images = binarize(data.images, generator)
    return ImageSet(images, data.labels, data.classes, f"{data.tag}~binarized(seed={seed})")
