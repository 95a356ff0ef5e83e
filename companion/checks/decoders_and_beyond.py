"""Self-checks for the exercises of notebook 10 (decoders for grey images, a small VQ-VAE).

Each check runs the learner's function on inputs whose right answer is known (from
torch.distributions, from torch.cdist, or from the definition) and names the usual mistake:
sigma where sigma^2 belongs, a missing log sigma or log 2 pi, a mean over pixels, an argmax
where the argmin belongs, a dot product instead of a distance, the entropy instead of its
exponential, 0 * log 0 turning into NaN.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.distributions import Normal

from companion.checks import as_double, close, expect, passed, self_check

# --- exercise 1: the Gaussian negative log-likelihood ----------------------------------------


def _images() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean, x, log_sigma) for 4 images of 28x28 pixels, log_sigma one per pixel."""
    g = torch.Generator().manual_seed(10)
    mean = torch.rand(4, 1, 28, 28, generator=g, dtype=torch.float64)
    x = torch.rand(4, 1, 28, 28, generator=g, dtype=torch.float64)
    log_sigma = -1.5 + 0.5 * torch.randn(4, 1, 28, 28, generator=g, dtype=torch.float64)
    return mean, x, log_sigma


@self_check
def check_gaussian_nll(gaussian_nll: Callable[..., torch.Tensor]) -> None:
    """Exercise 1: gaussian_nll(mean, x, log_sigma) = -log N(x; mean, sigma^2), one per image."""
    mean, x, log_sigma = _images()
    sigma = log_sigma.exp()
    want = -Normal(mean, sigma).log_prob(x).flatten(1).sum(1)                   # [4]
    out = as_double(gaussian_nll(mean.clone(), x.clone(), log_sigma.clone()), (4,),
                    "one negative log-likelihood per image, summed over its pixels", finite=True)
    per_pixel = lambda t: t.flatten(1).sum(1)
    r2, half_log_2pi = (x - mean).pow(2), 0.5 * math.log(2 * math.pi)
    expect(not close(out, want / 784),
           "that is a mean over the pixels: sum them, so the image's log-density is the sum of "
           "its pixels' log-densities")
    expect(not close(out, -want), "the sign is flipped: return the *negative* log-likelihood")
    expect(not close(out, per_pixel(r2 / (2 * sigma) + log_sigma + half_log_2pi)),
           "divide the squared error by 2 sigma^2, not 2 sigma: sigma = exp(log_sigma)")
    expect(not close(out, per_pixel(r2 / (2 * sigma**2) + half_log_2pi)),
           "the log sigma term is missing: the density's normalising constant 1/(sigma sqrt(2 pi)) "
           "depends on sigma, and without it a smaller sigma always looks better")
    expect(not close(out, per_pixel(r2 / (2 * sigma**2) + 2 * log_sigma + half_log_2pi)),
           "that adds log sigma^2 = 2 log sigma: the normalising constant gives log sigma once")
    expect(not close(out, per_pixel(r2 / (2 * sigma**2) + log_sigma)),
           "close, but 0.5 * log(2 pi) per pixel is missing: it does not change the gradient, but "
           "without it the number is not a log-density")
    expect(not close(out, per_pixel(r2 / sigma**2 + log_sigma + half_log_2pi)),
           "the squared error needs its factor 1/2: (x - mean)^2 / (2 sigma^2)")
    expect(close(out, want), "expected the sum over pixels of (x - mean)^2 / (2 sigma^2) + "
           "log sigma + 0.5 log(2 pi); compare yours with torch.distributions.Normal(mean, "
           "sigma).log_prob(x) on one image")
    passed("your Gaussian NLL matches torch.distributions for four images with a sigma per pixel.")


# --- exercise 2: the nearest code ------------------------------------------------------------


def _codes() -> tuple[torch.Tensor, torch.Tensor]:
    """(z [300, 6], codebook [20, 6]): code norms differ, so a dot product picks wrong codes."""
    g = torch.Generator().manual_seed(11)
    codebook = torch.randn(20, 6, generator=g) * torch.linspace(0.2, 3, 20)[:, None]
    z = torch.randn(300, 6, generator=g)
    return z, codebook


@self_check
def check_nearest_code(nearest_code: Callable[..., torch.Tensor]) -> None:
    """Exercise 2: nearest_code(z [M, D], codebook [K, D]) -> index of the nearest row, [M]."""
    z, codebook = _codes()
    distances = torch.cdist(z, codebook)                                          # [M, K]
    want = distances.argmin(1)
    out = nearest_code(z.clone(), codebook.clone())
    expect(isinstance(out, torch.Tensor), f"return a torch.Tensor of indices, not {type(out).__name__}")
    expect(tuple(out.shape) == (300,),
           f"expected one index per vector, shape [300], got {list(out.shape)}: take the argmin "
           "over the codes, dim=1 of the [M, K] distances")
    expect(not out.is_floating_point(),
           "the result holds floats: return the *indices* of the nearest codes (argmin), not "
           "the distances")
    expect(not torch.equal(out, distances.argmax(1)), "that is the farthest code: use argmin, not argmax")
    expect(not torch.equal(out, (z @ codebook.T).argmax(1)),
           "the largest dot product z . e is not the nearest code when codes differ in length: "
           "|z - e|^2 = |z|^2 - 2 z . e + |e|^2 needs the |e|^2 term")
    expect(torch.equal(out.cpu().long(), want),
           "some indices differ from the nearest codebook rows: compute the squared distance of "
           "every z to every code ([M, K]) and take argmin over the codes")
    expect(torch.equal(nearest_code(codebook[[4, 4, 17]].clone(), codebook.clone()).cpu().long(),
                       torch.tensor([4, 4, 17])),
           "a code itself should be assigned to its own index")
    passed("every vector gets the index of its nearest code, also where a dot product would not.")


# --- exercise 3: the perplexity of code usage ------------------------------------------------


def _usage_cases() -> list[tuple[str, torch.Tensor, int, float]]:
    """(what, indices, codes, perplexity) for three ways of using a codebook."""
    p = torch.tensor([3, 1, 2, 2]) / 8
    return [("all 16 codes used equally", torch.arange(16).repeat(5), 16, 16.0),
            ("a single code", torch.full((7, 7), 3), 16, 1.0),
            ("codes 0, 1, 2, 5 of 8", torch.tensor([0, 0, 0, 1, 2, 2, 5, 5]), 8,
             math.exp(-(p * p.log()).sum().item()))]


@self_check
def check_perplexity(perplexity: Callable[[torch.Tensor, int], float]) -> None:
    """Exercise 3: perplexity(indices, codes) = exp(entropy of the code frequencies)."""
    for what, indices, codes, want in _usage_cases():
        out = perplexity(indices.clone(), codes)
        out = out.item() if isinstance(out, torch.Tensor) and out.numel() == 1 else out
        expect(isinstance(out, (int, float)), f"return a number, not {type(out).__name__}")
        expect(not math.isnan(out), "the result is NaN: unused codes have frequency 0 and "
               "0 * log 0 is NaN in torch; leave them out (p[p > 0]), their share of the "
               "entropy is 0")
        if want > 1:
            expect(not math.isclose(out, math.log(want), rel_tol=1e-4),
                   "that is the entropy: the perplexity is its exponential, exp(entropy)")
            expect(not math.isclose(out, 2 ** math.log(want), rel_tol=1e-4),
                   "2 ** (entropy in nats) mixes bases: use exp(entropy in nats), or "
                   "2 ** (entropy in bits)")
        expect(math.isclose(out, want, rel_tol=1e-4),
               f"with {what} the perplexity is {want:.3f}, yours is {out:.3f}: divide the "
               "counts by their sum to get frequencies p, then return exp(-sum p log p)")
    passed("perplexity 16 when all 16 codes are used equally, 1 for a single code, and right "
           "with unused codes in between.")
