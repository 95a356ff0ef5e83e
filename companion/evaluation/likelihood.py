"""How good is a VAE as a density model? Importance-sampled estimates of log p(x).

Every estimate is the log of an average of importance weights w = p(x, z) / r(z), with z
drawn from a proposal r:

    proposal="prior"     r = p(z):     w = p(x|z)                   (naive Monte Carlo)
    proposal="encoder"   r = q(z|x):   w = p(x|z) p(z) / q(z|x)     (importance sampling)

With k samples from the encoder, the mean of log w is an estimate of the ELBO and the log of
the mean of w is the tighter IWAE bound (Burda et al. 2015, arXiv:1509.00519):

    IWAE_k(x) = log (1/k) sum_i w_i   <=   log p(x),     ELBO = IWAE_1 <= IWAE_k <= IWAE_{k+1}

A model can supply its own terms: one with `log_prior(z)` (a learned prior) is scored with
it instead of N(0, I); one with `sample_posterior(x, generator) -> (z, log q(z|x))`
(a flow, two stochastic layers) draws from its own q(z|x) instead of the encoder's Gaussian.

For 28 x 28 images the weights are e^-100 and smaller, which float32 rounds to 0, so they are
kept as logarithms and averaged with logsumexp (`log_mean_exp`).

    est = importance_weighted(model, test, k=1000)   # est.elbo, est.log_px: [N] each

References: Burda, Grosse & Salakhutdinov 2015; Kong 1992 and Chatterjee & Diaconis 2018
("The sample size required in importance sampling") for the effective sample size and why
about exp(KL) samples are needed.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from companion.arguments import check_counts
from companion.data import Batches, ImageSet
from companion.data.batching import binarize
from companion.gaussians import draw_eps, gaussian_log_density
from companion.models import LatentModel, eval_mode
from companion.priors import standard_normal_log_prob

PROPOSALS = ("prior", "encoder")


class LikelihoodEstimate(NamedTuple):
    """Per-image estimates from the same k samples: the ELBO (mean of log w) and IWAE_k."""
    elbo: torch.Tensor     # [N]  (1/k) sum_i log w_i, an unbiased estimate of the ELBO
    log_px: torch.Tensor   # [N]  log (1/k) sum_i w_i, the IWAE bound on log p(x)


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(mean(exp(a))) along dim, without ever forming exp(a)."""
    if a.shape[dim] == 0:
        raise ValueError("The mean of no values is undefined: pass at least one log-weight.")
    return torch.logsumexp(a, dim) - math.log(a.shape[dim])


def effective_sample_size(log_w: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Kong's (sum w)^2 / sum w^2 from log-weights: 1 when one sample carries all the weight."""
    return (2 * torch.logsumexp(log_w, dim) - torch.logsumexp(2 * log_w, dim)).exp()


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x|z) for every pair: logits [S, 784] of S codes, images x [N, ...] -> [S, N].

    Per pixel log p = x * logit - softplus(logit), the negative of binary cross-entropy
    with logits, so one matrix product scores every code against every image.
    """
    logits, x = logits.flatten(1), x.flatten(1)
    return logits @ x.T - F.softplus(logits).sum(1, keepdim=True)


def _prior_log_weights(model, x, n_samples, generator, chunk) -> torch.Tensor:
    """log p(x|z) for n_samples codes z ~ N(0, I) shared by every image: [S, N]."""
    if model.likelihood != "bernoulli" or type(model).nll is not LatentModel.nll:
        raise ValueError(f"proposal='prior' scores decoders whose Bernoulli logits come from z "
                         f"alone; {type(model).__name__}'s do not: use proposal='encoder'.")
    if hasattr(model, "log_prior"):
        raise ValueError(f"proposal='prior' draws z from N(0, I); {type(model).__name__} has a "
                         "prior of its own: use proposal='encoder'.")
    z = draw_eps((n_samples, model.latent_dim), x, generator)                       # [S, L]
    return torch.cat([bernoulli_log_likelihood(model.decode(part), x) for part in z.split(chunk)])


def log_prior_of(model, z: torch.Tensor) -> torch.Tensor:
    """log p(z) of codes z [c, N, L]: the model's own `log_prior` if it has one, else N(0, I)."""
    if hasattr(model, "log_prior"):
        return model.log_prior(z.flatten(0, 1)).view(z.shape[:2])
    return standard_normal_log_prob(z)


def diagonal_log_weights(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                         eps: torch.Tensor) -> torch.Tensor:
    """log p(x|z) + log p(z) - log q(z|x) at z = mu + sigma * eps, for q = N(mu,
    diag(exp(logvar))) [N, L] and standard-normal draws eps [S, N, L]: [S, N]."""
    z = mu + torch.exp(0.5 * logvar) * eps                           # [S, N, L]
    images = x.repeat(len(eps), *[1] * (x.ndim - 1))                  # [S*N, ...]
    log_lik = -model.nll(images, z.flatten(0, 1)).view(z.shape[:2])   # log p(x|z), [S, N]
    log_q = gaussian_log_density(z, mu, logvar).sum(-1)              # [S, N]
    return log_lik + log_prior_of(model, z) - log_q


def _encoder_log_weights(model, x, n_samples, generator, chunk, q) -> torch.Tensor:
    """log p(x|z) + log p(z) - log q(z|x) for n_samples z ~ q(z|x) per image: [S, N]."""
    own = hasattr(model, "sample_posterior")     # draws z and log q(z|x) itself (a flow, ...)
    if own and q is not None:
        raise ValueError(f"{type(model).__name__}'s q(z|x) is not a diagonal Gaussian: leave "
                         "q=None, so that the model draws from its own posterior.")
    if not own:
        mu, logvar = model.encode(x) if q is None else q             # [N, L] each
    per_pass = max(1, chunk // len(x))                               # samples per decoder pass
    out = []
    for start in range(0, n_samples, per_pass):
        c = min(per_pass, n_samples - start)
        if own:
            images = x.repeat(c, *[1] * (x.ndim - 1))                 # [c*N, ...]
            z, log_q = model.sample_posterior(images, generator)      # [c*N, L], [c*N]
            z, log_q = z.view(c, len(x), -1), log_q.view(c, len(x))
            log_lik = -model.nll(images, z.flatten(0, 1)).view(c, len(x))   # log p(x|z)
            out.append(log_lik + log_prior_of(model, z) - log_q)
        else:
            eps = draw_eps((c, *mu.shape), mu, generator)             # [c, N, L]
            out.append(diagonal_log_weights(model, x, mu, logvar, eps))
    return torch.cat(out)


@torch.no_grad()
def log_weights(model, x: torch.Tensor, n_samples: int, proposal: str = "encoder",
                generator: torch.Generator | None = None, chunk: int = 10_000,
                q: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Log importance weights log p(x, z) - log r(z) of n_samples draws per image: [S, N].

    With proposal="prior" one set of codes z ~ N(0, I) is shared by all images (each image
    still gets an unbiased estimate); with "encoder" every image draws from its own
    q(z|x) = N(mu, diag(exp(logvar))), where (mu, logvar) = q if given (e.g. a q optimised
    per image), else model.encode(x), or the model's own posterior and prior where it has
    them (see the module's docstring). The decoder sees at most `chunk` codes at a time.
    The model runs in eval mode.
    """
    if proposal not in PROPOSALS:
        raise ValueError(f"proposal must be one of {PROPOSALS}, not {proposal!r}")
    check_counts("log_weights", n_samples=n_samples, chunk=chunk)
    if len(x) == 0:
        raise ValueError("x holds no images: pass a batch [N, 1, 28, 28] with N >= 1.")
    with eval_mode(model):
        if proposal == "prior":
            return _prior_log_weights(model, x, n_samples, generator, chunk)
        return _encoder_log_weights(model, x, n_samples, generator, chunk, q)


def estimate(log_w: torch.Tensor) -> LikelihoodEstimate:
    """The ELBO and IWAE_k estimates from log weights [k, N]."""
    return LikelihoodEstimate(log_w.mean(0), log_mean_exp(log_w, 0))


def running_estimates(log_w: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """The estimate of log p(x) from the first K weights, for each K in sizes: [len(sizes), N]."""
    wrong = [k for k in sizes if not 1 <= k <= len(log_w)]
    if wrong:
        raise ValueError(f"sizes {wrong} are not between 1 and the number of weights per image "
                         f"({len(log_w)}): pass sizes in that range, or draw more samples.")
    return torch.stack([log_mean_exp(log_w[:k], dim=0) for k in sizes])


@torch.no_grad()
def importance_weighted(model, data: ImageSet, k: int = 1000, batch_size: int = 100,
                        chunk: int = 10_000, seed: int = 0) -> LikelihoodEstimate:
    """ELBO and IWAE_k of every image in data (binary pixels), computed in eval mode."""
    check_counts("importance_weighted", k=k, batch_size=batch_size, chunk=chunk)
    if len(data) == 0:
        raise ValueError(f"{data.tag} holds no images: pass a dataset with at least one.")
    if not bool(((data.images == 0) | (data.images == 1)).all()):
        raise ValueError("importance_weighted needs binary pixels (a Bernoulli likelihood): "
                         "binarize the data first, e.g. with binarized(data, seed).")
    generator = torch.Generator().manual_seed(seed)
    parts = [estimate(log_weights(model, x, k, "encoder", generator, chunk))
             for x, _ in Batches(data, batch_size, shuffle=False)]
    return LikelihoodEstimate(torch.cat([p.elbo for p in parts]),
                              torch.cat([p.log_px for p in parts]))


def binarized(data: ImageSet, seed: int = 0) -> ImageSet:
    """One fixed random binarization of data (pixel = 1 with probability = its intensity)."""
    generator = torch.Generator(device=data.images.device).manual_seed(seed)
    images = binarize(data.images, generator)
    return ImageSet(images, data.labels, data.classes, f"{data.tag}~binarized(seed={seed})")
