"""Disentanglement, measured: the Mutual Information Gap (MIG) of Chen et al. (2018), and the
FactorVAE score of Kim & Mnih (2018) as a second opinion.

For every ground-truth factor v_k, find the two latent coordinates that carry the most
information about it; MIG is their gap, as a fraction of what there is to know:

    MIG = mean_k  [ I(z_(1); v_k) - I(z_(2); v_k) ] / H(v_k)

1 means each factor lives in one coordinate alone; 0 means no coordinate stands out. Here
the latents (posterior means) are discretised into equal-width bins and the mutual
information is that of the discrete histogram, as in Locatello et al. (2019); Chen et al.
estimate it from q(z|x) instead, so scores from the two recipes differ slightly.

The FactorVAE score asks the data generator for help: hold one factor fixed, draw a batch with
the others at random, and find the latent coordinate that varies least across the batch (each
coordinate divided by its spread over the data). A disentangled code always names the same
coordinate for the same factor; the score is the accuracy of the majority vote "coordinate ->
factor" on fresh batches. Coordinates that barely vary over the data are left out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

MIN_PER_BIN = 10   # examples per bin, on average, below which mig refuses to estimate


def discretize(z: torch.Tensor, bins: int = 20) -> torch.Tensor:
    """Each column of z [N, L] cut into `bins` equal-width bins; int64 bin indices [N, L]."""
    if not bins >= 2:
        raise ValueError(f"bins must be >= 2 (e.g. 20), not {bins!r}: with one bin every "
                         "example looks the same.")
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"z must be [N, L] with N >= 1, not of shape {list(z.shape)}.")
    z = z.detach().cpu().double()
    low, high = z.min(0).values, z.max(0).values                  # [L]
    width = (high - low).clamp_min(1e-12) / bins
    return ((z - low) / width).floor().clamp(0, bins - 1).long()


def _codes(v: torch.Tensor) -> torch.Tensor:
    """Any integer labels as 0..k-1, so counts can use bincount."""
    return torch.unique(v.detach().cpu(), return_inverse=True)[1].flatten()


def entropy(v: torch.Tensor) -> float:
    """Entropy in nats of the empirical distribution of integer labels v [N]."""
    p = torch.bincount(_codes(v)).double() / len(v)
    return float(-(p * p.log()).sum())


def mutual_information(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mutual information in nats between two integer label vectors [N] (plug-in estimate)."""
    a, b = _codes(a), _codes(b)
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    joint = torch.bincount(a * nb + b, minlength=na * nb).double().view(na, nb) / len(a)
    pa, pb = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    nz = joint > 0
    return float((joint[nz] * (joint[nz] / (pa * pb).expand_as(joint)[nz]).log()).sum())


def mi_matrix(codes: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """I(z_j; v_k) for discrete codes [N, L] and factors [N, K]; returns [L, K] in nats."""
    return torch.tensor([[mutual_information(codes[:, j], factors[:, k])
                          for k in range(factors.shape[1])] for j in range(codes.shape[1])])


@dataclass
class MIGResult:
    """The MIG score with the numbers it is made of."""
    score: float                # mean over the factors that vary
    per_factor: torch.Tensor    # [K] normalised gap of each factor (nan for a constant factor)
    mi: torch.Tensor            # [L, K] I(z_j; v_k) in nats
    entropies: torch.Tensor     # [K] H(v_k) in nats


def gap(mi: torch.Tensor, entropies: torch.Tensor) -> torch.Tensor:
    """Normalised gap between the largest and second-largest MI of each factor; [K]."""
    top = mi.sort(dim=0, descending=True).values                   # [L, K], biggest first
    second = top[1] if len(top) > 1 else torch.zeros_like(top[0])
    out = (top[0] - second) / entropies
    return torch.where(entropies > 0, out, torch.full_like(out, float("nan")))


def mig(z: torch.Tensor, factors: torch.Tensor, bins: int = 20) -> MIGResult:
    """Mutual Information Gap of latents z [N, L] (e.g. posterior means) for factors [N, K]."""
    if len(z) != len(factors):
        raise ValueError(f"z has {len(z)} rows but factors has {len(factors)}; "
                         "they must describe the same examples, in the same order.")
    if z.ndim != 2 or factors.ndim != 2:
        raise ValueError(f"z must be [N, L] and factors [N, K], not of shapes {list(z.shape)} "
                         f"and {list(factors.shape)}: give a 1-D factor a column, v[:, None].")
    if len(z) < MIN_PER_BIN * bins:
        raise ValueError(f"{len(z)} examples for {bins} bins: with fewer than {MIN_PER_BIN} "
                         "examples per bin the plug-in mutual information is mostly bias. Pass "
                         f"at least {MIN_PER_BIN * bins} examples, or fewer bins.")
    codes = discretize(z, bins)
    mi = mi_matrix(codes, factors)
    h = torch.tensor([entropy(factors[:, k]) for k in range(factors.shape[1])],
                     dtype=torch.float64)
    per_factor = gap(mi.double(), h)
    varies = ~per_factor.isnan()
    if not varies.any():
        raise ValueError("every factor is constant in this sample; MIG is undefined.")
    return MIGResult(float(per_factor[varies].mean()), per_factor, mi, h)


@dataclass
class FactorVAEResult:
    """The FactorVAE score with the votes it is made of."""
    score: float              # accuracy of the majority vote on the evaluation batches
    votes: torch.Tensor       # [L, K] training votes: how often coordinate j varied least for factor k
    active: torch.Tensor      # [L] the coordinates that take part (spread over the data above a floor)


def least_varying(codes: torch.Tensor, scale: torch.Tensor, active: torch.Tensor) -> int:
    """The active coordinate whose normalised codes [M, L] vary least across the batch."""
    variance = (codes / scale).var(0)
    return int(variance.masked_fill(~active, float("inf")).argmin())


def factorvae_score(represent: Callable[[torch.Tensor], torch.Tensor], sizes: tuple[int, ...],
                    votes: int = 800, batch: int = 64, n_scale: int = 10_000,
                    min_spread: float = 0.05, seed: int = 0) -> FactorVAEResult:
    """FactorVAE score of a code. represent(factors [N, K] of indices) -> codes [N, L], e.g. the
    posterior means of rendered images; sizes: the number of values of each factor.

    Half of the votes train the majority vote (which factor each coordinate stands for), the
    other half measure its accuracy. A coordinate takes part when its spread (standard
    deviation) over n_scale random examples is at least min_spread.
    """
    if votes < 2 or batch < 2:
        raise ValueError(f"votes and batch must be at least 2, not {votes} and {batch}.")
    g = torch.Generator().manual_seed(seed)
    draw = lambda n: torch.stack([torch.randint(k, (n,), generator=g) for k in sizes], 1)
    with torch.no_grad():
        scale = represent(draw(n_scale)).float().std(0).cpu()
    active = scale >= min_spread
    if not active.any():
        raise ValueError("No coordinate varies over the data (every spread is below "
                         f"{min_spread}): the code carries nothing, so there is nothing to score.")
    picks = []
    for _ in range(votes):
        k = int(torch.randint(len(sizes), (), generator=g))
        factors = draw(batch)
        factors[:, k] = torch.randint(sizes[k], (), generator=g)       # the same value for all
        with torch.no_grad():
            codes = represent(factors).float().cpu()
        picks.append((least_varying(codes, scale, active), k))
    train, held_out = picks[:votes // 2], picks[votes // 2:]
    counts = torch.zeros(len(scale), len(sizes), dtype=torch.long)
    for j, k in train:
        counts[j, k] += 1
    named = counts.sum(1) > 0                       # a coordinate no training batch named ...
    guess = torch.where(named, counts.argmax(1), -1)  # ... stands for no factor
    score = sum(int(guess[j]) == k for j, k in held_out) / len(held_out)
    return FactorVAEResult(score, counts, active)
