"""Scores for inputs a model never saw: AUROC, a threshold at a target false-positive rate,
and the background-model likelihood ratio.

Every score here is "higher = more anomalous" (for a log-likelihood, pass its negative).

    auroc(normal, anomalous)            P(a random anomalous score > a random normal one)
    threshold_at(normal, rate)          the score above which `rate` of normal inputs lie
    rates(normal, anomalous, t)         (false-positive rate, detection rate) at threshold t
    likelihood_ratio(log_p, log_p_bg)   log p(x) - log p_background(x) (Ren et al. 2019)
    perturb(images, rate, generator)    the noisy inputs a background model trains on

References: Ren et al. 2019, "Likelihood Ratios for Out-of-Distribution Detection"
(arXiv:1906.02845); Hanley & McNeil 1982 for the AUROC as a probability.
"""
from __future__ import annotations

import torch


def _scores(name: str, values: torch.Tensor) -> torch.Tensor:
    """The scores as a flat float64 tensor on the CPU, or a clear error."""
    values = torch.as_tensor(values).detach().flatten().cpu().double()
    if len(values) == 0 or not torch.isfinite(values).all():
        raise ValueError(f"{name} needs at least one score and only finite ones, got "
                         f"{len(values)} with {int((~torch.isfinite(values)).sum())} not finite.")
    return values


def auroc(normal: torch.Tensor, anomalous: torch.Tensor) -> float:
    """The area under the ROC curve: the chance that a random anomalous input scores higher
    than a random normal one, ties counting half (the Mann-Whitney statistic, from ranks)."""
    normal, anomalous = _scores("normal", normal), _scores("anomalous", anomalous)
    _, where, counts = torch.cat([normal, anomalous]).unique(return_inverse=True,
                                                            return_counts=True)
    counts = counts.double()
    below = counts.cumsum(0) - counts                       # scores below each distinct value
    ranks = (below + (counts + 1) / 2)[where]               # 1-based ranks, ties averaged
    n, m = len(normal), len(anomalous)
    return ((ranks[n:].sum() - m * (m + 1) / 2) / (n * m)).item()


def threshold_at(normal: torch.Tensor, rate: float) -> float:
    """The threshold t with at most `rate` of the given normal scores above it: choose it on
    held-out normal inputs, then flag a new input when its score is above t."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate is a false-positive rate between 0 and 1, not {rate!r}.")
    normal = _scores("normal", normal)
    return torch.quantile(normal, 1 - rate, interpolation="higher").item()


def rates(normal: torch.Tensor, anomalous: torch.Tensor, threshold: float
          ) -> tuple[float, float]:
    """(false-positive rate, detection rate): the shares of normal and of anomalous scores
    above the threshold."""
    normal, anomalous = _scores("normal", normal), _scores("anomalous", anomalous)
    return ((normal > threshold).double().mean().item(),
            (anomalous > threshold).double().mean().item())


def likelihood_ratio(log_p: torch.Tensor, log_p_background: torch.Tensor) -> torch.Tensor:
    """log p(x) - log p_background(x) per input: what the background model, trained on
    perturbed inputs, also explains (the background pixels) cancels out."""
    if log_p.shape != log_p_background.shape:
        raise ValueError(f"one background log-likelihood per input: shapes {list(log_p.shape)} "
                         f"and {list(log_p_background.shape)} differ.")
    return log_p - log_p_background


def perturb(images: torch.Tensor, rate: float, generator: torch.Generator | None = None
            ) -> torch.Tensor:
    """Images with each pixel replaced, with probability `rate`, by a uniform value in [0, 1]
    (Ren et al.'s perturbation; for binarized images, a coin flip)."""
    if not 0 <= rate <= 1:
        raise ValueError(f"rate is a probability between 0 and 1, not {rate!r}.")
    shape, device = images.shape, images.device
    hit = torch.rand(shape, generator=generator).to(device) < rate
    noise = torch.rand(shape, generator=generator).to(device)
    if set(images.unique().tolist()) <= {0.0, 1.0}:
        noise = noise.round()
    return torch.where(hit, noise, images)
