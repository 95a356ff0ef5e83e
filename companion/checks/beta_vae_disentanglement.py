"""Self-checks for the exercises of notebook 06 (beta-VAE and measured disentanglement)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import expect, passed
from companion.evaluation.disentanglement import entropy, mutual_information


def _label_pairs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Test cases: independent, identical, and noisy copies of integer labels."""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (5000,), generator=g)
    noisy = torch.where(torch.rand(5000, generator=g) < 0.7, a, torch.randint(0, 4, (5000,), generator=g))
    independent = torch.randint(0, 3, (5000,), generator=g)
    shifted = a * 10 + 7                     # same information, other label values
    return [("a noisy copy", a, noisy), ("a relabelled copy", a, shifted),
            ("independent labels", a, independent)]


def check_mutual_information(mutual_information_fn: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Exercise 1: plug-in mutual information (nats) of two integer label vectors."""
    for name, a, b in _label_pairs():
        got = mutual_information_fn(a.clone(), b.clone())
        got = float(got.item() if isinstance(got, torch.Tensor) else got)
        want = mutual_information(a, b)
        expect(math.isfinite(got), f"For {name} your function returned {got}. Cells of the "
               "joint table that are empty have p = 0 and contribute 0; leave them out of the "
               "sum instead of taking log 0.")
        expect(not math.isclose(got, -want, rel_tol=1e-3, abs_tol=1e-6) or want < 1e-6,
               f"For {name} your value is negative: check the sign. MI is a sum of "
               "p(a, b) log[p(a, b) / (p(a) p(b))], and it is never below 0.")
        expect(not math.isclose(got, want / math.log(2), rel_tol=1e-3) or want < 1e-6,
               "Your value is in bits (log base 2). Use the natural log: the course counts nats.")
        expect(not math.isclose(got, entropy(a), rel_tol=1e-3) or math.isclose(want, entropy(a), rel_tol=1e-3),
               f"For {name} you returned H(a), the entropy of the first vector alone. MI "
               "compares the joint table with the product of the two marginals.")
        expect(math.isclose(got, want, rel_tol=1e-3, abs_tol=1e-6),
               f"For {name} you returned {got:.4f} nats; expected {want:.4f}. Count the pairs "
               "(a_i, b_i) into a joint table, divide by N, and sum p log(p / (p_a p_b)) over "
               "the non-empty cells.")
    passed("I(a; b) is zero for independent labels, H(a) for a relabelled copy, and in "
           "between for a noisy copy.")


def _posterior_means() -> tuple[torch.Tensor, int]:
    """Means [N, 6] of which three coordinates vary across examples and three stay near 0."""
    g = torch.Generator().manual_seed(1)
    scale = torch.tensor([1.5, 0.0, 0.8, 0.02, 0.3, 0.5])
    mu = torch.randn(2000, 6, generator=g) * scale + torch.tensor([0.0, 2.0, 0.0, -1.0, 0.0, 0.0])
    return mu, 4   # variances 2.25, 0, 0.64, 0.0004, 0.09, 0.25 -> four above 0.01


def check_active_units(active_units_fn: Callable[[torch.Tensor, float], int]) -> None:
    """Exercise 2: how many latent coordinates the encoder actually uses."""
    mu, want = _posterior_means()
    got = active_units_fn(mu.clone(), 0.01)
    expect(isinstance(got, int) and not isinstance(got, bool),
           f"active_units should return a plain int, got {type(got).__name__}. Use int(...).")
    expect(got != 6 - want, "You counted the *inactive* coordinates. A unit is active when its "
           "posterior mean changes from image to image: variance above the threshold.")
    expect(got != 6, "You counted coordinates 2 and 4, whose means are 2 and -1 for every image. An offset "
           "does not carry information; what matters is the variance across examples.")
    expect(got <= mu.shape[1], f"There are only {mu.shape[1]} coordinates, you returned {got}. "
           "Take the variance across examples (dim=0), one number per coordinate.")
    expect(got == want, f"Expected {want} active coordinates, got {got}. Compute the variance "
           "of each column of mu over the examples, mu.var(dim=0), and count those > threshold.")
    collapsed = active_units_fn(torch.zeros(100, 6) + torch.randn(1, 6), 0.01)
    expect(collapsed == 0, f"When every image has the same mean code nothing is active, but you "
           f"returned {collapsed}.")
    passed("a coordinate is active when its posterior mean varies across the data.")
