"""Self-checks for the exercises of notebook 09 (better samples, measured)."""
from __future__ import annotations

from typing import Callable

import torch

from companion.checks import as_double, close, expect, passed, self_check
from companion.evaluation.samples import frechet_gaussians
from companion.mixture import GaussianMixture, e_step


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _number(out, what: str) -> float:
    """The learner's result as a float: a Python number or a tensor with one element."""
    if isinstance(out, torch.Tensor):
        expect(out.numel() == 1,
               f"{what}: return one number, got a tensor of shape {list(out.shape)}. Sum the "
               "terms over the dimensions.")
        return float(out.item())
    expect(isinstance(out, (int, float)), f"{what}: return a number, not {type(out).__name__}")
    return float(out)


@self_check
def check_frechet_diagonal(frechet_diagonal: Callable) -> None:
    """Exercise 1: the Frechet distance of N(m1, diag(v1)) and N(m2, diag(v2))."""
    m1, m2 = torch.randn(6, generator=_gen(0)), torch.randn(6, generator=_gen(1)) + 0.5
    v1, v2 = torch.rand(6, generator=_gen(2)) + 0.2, torch.rand(6, generator=_gen(3)) * 3 + 0.2
    out = _number(frechet_diagonal(m1.clone(), v1.clone(), m2.clone(), v2.clone()),
                  "frechet_diagonal")
    want = frechet_gaussians(m1, torch.diag(v1), m2, torch.diag(v2))
    means, variances = (m1 - m2).pow(2).sum().item(), (v1 - v2).pow(2).sum().item()
    roots = (v1.sqrt() - v2.sqrt()).pow(2).sum().item()
    expect(abs(out - (means + variances)) > 1e-4,
           "You compared the variances, (v1 - v2)^2. The distance compares standard "
           "deviations: the covariance term of a diagonal pair is sum (sqrt(v1) - sqrt(v2))^2.")
    expect(abs(out - ((m1 - m2).abs().sum().item() + roots)) > 1e-4,
           "The mean term is the squared distance |m1 - m2|^2: square the differences.")
    expect(abs(out - roots) > 1e-4, "You left out the mean term |m1 - m2|^2.")
    expect(abs(out - means) > 1e-4,
           "You left out the covariance term: two Gaussians with the same mean but different "
           "spreads are not at distance 0.")
    expect(abs(out - (means + (v1 + v2 - 2 * v1 * v2).sum().item())) > 1e-4,
           "The cross term is 2 sqrt(v1 v2): take the square root of the product.")
    expect(abs(out - want) < 1e-4 * max(1.0, abs(want)),
           f"You give {out:.5f}; the Frechet distance is {want:.5f}. It is "
           "sum (m1 - m2)^2 + sum (sqrt(v1) - sqrt(v2))^2.")
    same = _number(frechet_diagonal(m1, v1, m1.clone(), v1.clone()), "frechet_diagonal")
    expect(abs(same) < 1e-5, f"A Gaussian is at distance 0 from itself; you give {same:.3g}.")
    passed(f"FD = {out:.4f}, the same as the general formula with diagonal covariances.")


def _mixture(weights, means, variances) -> GaussianMixture:
    return GaussianMixture(weights.double(), means.double(), torch.diag_embed(variances.double()))


@self_check
def check_responsibilities(responsibilities: Callable) -> None:
    """Exercise 2: the E-step of EM for a mixture of diagonal Gaussians, [N, K]."""
    k, dim = 3, 16
    weights = torch.tensor([0.6, 0.3, 0.1])
    means = torch.randn(k, dim, generator=_gen(4)) * 0.3     # overlapping components
    variances = torch.rand(k, dim, generator=_gen(5)) + 0.5
    z = torch.cat([means[[0, 1, 2, 0]] + torch.randn(4, dim, generator=_gen(6)),
                   torch.full((1, dim), 60.0)])             # the last point is far from all
    out = responsibilities(z.clone(), weights.clone(), means.clone(), variances.clone())
    expect(isinstance(out, torch.Tensor), f"Return a tensor, not {type(out).__name__}.")
    expect(tuple(out.shape) != (k, len(z)),
           f"Return one row per point and one column per component, [{len(z)}, {k}]; yours "
           "is transposed.")
    out = as_double(out, (len(z), k), "responsibilities")
    want = e_step(z.double(), _mixture(weights, means, variances))
    expect(bool(torch.isfinite(out[:4]).all()), "Your result contains NaN or infinity.")
    expect(bool(torch.isfinite(out[4]).all()),
           "The point far from every component gives NaN: its densities underflow to 0 and "
           "you divide 0 by 0. Work with log densities and normalise with "
           "log_joint - log_joint.logsumexp(dim=1, keepdim=True) before the exp.")
    expect(bool((out >= 0).all()), "Responsibilities are probabilities: none may be negative.")
    rows = close(out.sum(1), torch.ones(len(z), dtype=out.dtype), atol=1e-4)
    expect(rows or not close(out.sum(0), torch.ones(k, dtype=out.dtype), atol=1e-4),
           "Your columns sum to 1. Each point's responsibilities are a distribution over the "
           "components: normalise over dim=1, the components.")
    expect(rows, "Each row must sum to 1: divide by the sum over the components (in log "
                 "space, subtract their logsumexp).")
    unweighted = e_step(z.double(), _mixture(torch.full((k,), 1 / k), means, variances))
    expect(not close(out, unweighted, atol=1e-4),
           "You left out the weights: the joint is w_k N(z; mean_k, var_k), so add log w_k.")
    expect(close(out, want, atol=1e-4),
           "Some responsibilities differ from the expected ones; largest difference "
           f"{(out - want).abs().max().item():.3g}. The log density of a diagonal Gaussian "
           "sums over the dimensions (gaussian_log_density(z, mean, log var).sum(-1)), and its "
           "variances are var, not standard deviations.")
    passed("your responsibilities match the E-step, also for a point far from every component.")
