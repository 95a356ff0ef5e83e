"""Self-checks for the exercises of notebook 06 (beta-VAE, the KL of each coordinate, measured
disentanglement, total correlation)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import as_double, close, expect, passed, self_check
from companion.evaluation.disentanglement import entropy, mutual_information
from companion.gaussians import kl_per_dimension


@torch.no_grad()
def _reference_kl_per_coordinate(model, images: torch.Tensor) -> torch.Tensor:
    """Average KL of each latent coordinate over the images, [L] in nats."""
    return kl_per_dimension(*model.encode(images)).mean(0)


class _Encoder:
    """A stand-in for a VAE whose encoder returns fixed (mu, logvar), [N, L] each."""

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor):
        self.mu, self.logvar, self.latent_dim = mu, logvar, mu.shape[1]

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu.clone(), self.logvar.clone()


@self_check(reference=_reference_kl_per_coordinate)
def check_kl_per_coordinate(kl_fn: Callable[..., torch.Tensor]) -> None:
    """Core exercise: the average KL of each coordinate, [L] in nats, from model.encode."""
    g = torch.Generator().manual_seed(0)
    n, dims = 6, 4
    mu = torch.randn(n, dims, generator=g) * torch.tensor([1.5, 0.5, 0.0, 1.0])
    logvar = torch.randn(n, dims, generator=g) * 0.5 - torch.tensor([1.0, 0.3, 0.0, 2.0])
    mu[:, 2], logvar[:, 2] = 0.0, 0.0                   # coordinate 3: the prior, KL 0
    images = torch.rand(n, 1, 28, 28, generator=g)
    got = kl_fn(_Encoder(mu, logvar), images)
    what = "kl_per_coordinate"
    expect(not (isinstance(got, torch.Tensor) and tuple(got.shape) == (n,)),
           f"{what}: you returned one number per image, shape [{n}]. Sum nothing over the "
           "coordinates: average each coordinate's KL over the images (dim 0), shape [L]")
    expect(not (isinstance(got, torch.Tensor) and tuple(got.shape) == (n, dims)),
           f"{what}: you returned the KL of every image and coordinate, [{n}, {dims}]. Average "
           "over the images (dim 0) to get one number per coordinate, [L]")
    expect(not (isinstance(got, torch.Tensor) and got.dim() == 0),
           f"{what}: you returned one number, the rate. Keep the coordinates apart: [L]")
    out = as_double(got, (dims,), what)
    mu, logvar = mu.double(), logvar.double()
    want = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).mean(0)
    expect(not close(out, want * n), f"{what}: your numbers are {n} times too large: you "
           "summed over the images. Take the mean over dim 0")
    expect(not close(out, 2 * want), f"{what}: your numbers are twice the KL: the factor 1/2 "
           "in front of (mu^2 + sigma^2 - 1 - log sigma^2) is missing")
    expect(not close(out, (0.5 * (mu ** 2 + (2 * logvar).exp() - 1 - 2 * logvar)).mean(0)),
           f"{what}: you used logvar as log sigma. The encoder returns log sigma^2, so "
           "sigma^2 = logvar.exp() and log sigma^2 = logvar")
    expect(not close(out, (0.5 * (mu ** 2 + logvar.exp() - logvar)).mean(0)),
           f"{what}: the -1 is missing: a coordinate whose posterior is the prior "
           "(mu = 0, logvar = 0) must cost 0 nats, not 1/2")
    expect(not close(out, (0.5 * (mu ** 2 + logvar.exp() - 1 + logvar)).mean(0)),
           f"{what}: the sign of the log-variance term is wrong: it is - log sigma^2 = - logvar")
    expect(bool(torch.isfinite(out).all()), f"{what}: the result contains NaN or infinity. "
           "sigma^2 = logvar.exp(); never take the log of logvar")
    expect(abs(out[2].item()) < 1e-6, f"{what}: coordinate 3 of the test has mu = 0 and "
           f"logvar = 0, the prior itself, so its KL is 0; you give {out[2].item():.4f}")
    expect(close(out, want), f"{what}: expected {[round(v, 4) for v in want.tolist()]} nats, "
           f"got {[round(v, 4) for v in out.tolist()]}. KL_j = (mu_j^2 + sigma_j^2 - 1 - "
           "log sigma_j^2) / 2, averaged over the images")
    passed("the average KL of each coordinate, zero for a coordinate whose posterior is the "
           "prior.")


def _label_pairs() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Test cases: independent, identical, and noisy copies of integer labels."""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (5000,), generator=g)
    noisy = torch.where(torch.rand(5000, generator=g) < 0.7, a, torch.randint(0, 4, (5000,), generator=g))
    independent = torch.randint(0, 3, (5000,), generator=g)
    shifted = a * 10 + 7                     # same information, other label values
    return [("a noisy copy", a, noisy), ("a relabelled copy", a, shifted),
            ("independent labels", a, independent)]


@self_check
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
        # abs_tol: for independent labels the MI (~7e-4) may come as H(a) + H(b) - H(a, b), a
        # difference of ~2.5-nat entropies that float32 holds to ~3e-7
        expect(math.isclose(got, want, rel_tol=1e-3, abs_tol=1e-5),
               f"For {name} you returned {got:.4f} nats; expected {want:.4f}. Count the pairs "
               "(a_i, b_i) into a joint table, divide by N, and sum p log(p / (p_a p_b)) over "
               "the non-empty cells.")
    passed("I(a; b) is zero for independent labels, H(a) for a relabelled copy, and in "
           "between for a noisy copy.")


def _mi_and_kl() -> tuple[torch.Tensor, torch.Tensor]:
    """An MI matrix [6 coordinates, 5 factors] in nats and each coordinate's average KL [6].

    Coordinates 1, 3 and 5 are inactive (KL below 0.05). For factor 3, the largest MI sits in
    inactive coordinate 1; the right answer is coordinate 4, and each usual slip gives a
    different one (1 ignoring the KL, 5 counting from 1, 2 weighting by the KL, 3 reading a row).
    """
    mi = torch.tensor([[0.70, 0.10, 0.05, 0.20, 0.02],
                       [0.10, 0.05, 0.02, 0.90, 0.01],
                       [0.20, 0.40, 0.10, 0.30, 0.05],
                       [0.05, 0.02, 0.01, 0.45, 0.03],
                       [0.30, 0.10, 0.20, 0.50, 0.10],
                       [0.60, 0.02, 0.05, 0.10, 0.01]], dtype=torch.float64)
    kl = torch.tensor([0.8, 0.001, 1.2, 0.04, 0.3, 0.0], dtype=torch.float64)
    return mi, kl


@self_check
def check_coordinate_for(coordinate_for_fn: Callable[..., int | None]) -> None:
    """Exercise 2: the active coordinate that knows most about a factor, or None."""
    mi, kl = _mi_and_kl()

    def ask(factor: int, kl_: torch.Tensor = kl, **threshold) -> int | None:
        mi_in, kl_in = mi.clone(), kl_.clone()
        got = coordinate_for_fn(mi_in, kl_in, factor, **threshold)
        expect(torch.equal(mi_in, mi) and torch.equal(kl_in, kl_),
               "your function changed mi or kl in place (a masked_fill_ or an assignment into "
               "them): work on a copy, the notebook still needs the originals")
        expect(got is None or (isinstance(got, int) and not isinstance(got, bool)),
               f"return a plain int (e.g. int(j)) or None, not {type(got).__name__}")
        return got

    got = ask(3)
    expect(got != 1, "for factor 3 you picked coordinate 1: it has the largest MI, but its "
           "KL is 0.001 nats, so its sampled value tells the decoder almost nothing. Choose "
           "among the coordinates whose KL is above the threshold")
    expect(got != 5, "you returned 5 where coordinate 4 is meant: return the 0-based index "
           "(row 4 of mi), as torch's argmax does; the plots add 1 only to the labels")
    expect(got != 2, "for factor 3 you picked coordinate 2: the KL decides only whether a "
           "coordinate is usable, so do not weight the MI by it; among the usable ones, the "
           "largest MI wins")
    expect(got != 3, "mi[factor] is a row, one coordinate's MI with every factor: a factor is "
           "a column, mi[:, factor]")
    expect(got == 4, f"for factor 3 you returned {got}; expected coordinate 4, the largest "
           "mi[j, 3] among the coordinates with kl[j] > active")
    got = ask(0)
    expect(got == 0, f"for factor 0 you returned {got}; expected 0: when the coordinate with "
           "the largest MI is active, it is the answer")
    got = ask(3, active=0.5)
    expect(got != 4, "with active=0.5 you still picked coordinate 4, whose KL is 0.3: use the "
           "`active` argument rather than a fixed number")
    expect(got == 2, f"with active=0.5 you returned {got}; expected 2, the best of the two "
           "coordinates whose KL exceeds 0.5")
    got = ask(3, kl_=torch.full((6,), 0.01, dtype=torch.float64))
    expect(got is None, f"when no coordinate is active (a collapsed model) return None, not "
           f"{got}: no coordinate holds the factor")
    passed("a coordinate holds a factor only if the decoder can use it (KL above the "
           "threshold); among those, the largest MI decides.")


def _reference_tc(cov: torch.Tensor) -> float:
    """Total correlation of N(0, cov) in nats: (sum_j log cov_jj - log det cov) / 2."""
    return 0.5 * float(cov.diagonal().log().sum() - torch.logdet(cov))


@self_check
def check_gaussian_total_correlation(tc_fn: Callable[[torch.Tensor], float]) -> None:
    """Exercise 3: the total correlation of a Gaussian N(0, cov), in nats."""
    rho = 0.8
    unit = torch.tensor([[1.0, rho], [rho, 1.0]], dtype=torch.float64)
    scaled = torch.diag(torch.tensor([3.0, 0.1], dtype=torch.float64))
    scaled = scaled @ unit @ scaled                      # same correlation, other variances
    block = torch.eye(3, dtype=torch.float64) * 2.0
    block[0, 2] = block[2, 0] = 1.5

    def ask(cov: torch.Tensor) -> float:
        given = cov.clone()
        got = tc_fn(given)
        expect(torch.equal(given, cov), "your function changed cov in place; work on a copy")
        got = float(got.item() if isinstance(got, torch.Tensor) else got)
        expect(math.isfinite(got), f"your function returned {got}: the log of a variance or of "
               "det(cov) went wrong. Every variance and det(cov) is positive here.")
        return got

    got = ask(torch.diag(torch.tensor([0.5, 2.0, 4.0], dtype=torch.float64)))
    # 0 up to rounding: ~1e-16 in float64, a few 1e-7 for an answer computed in float32
    expect(abs(got) < 1e-5, f"for a diagonal covariance you returned {got:.4f}: independent "
           "coordinates have a total correlation of exactly 0")
    want = _reference_tc(unit)
    got = ask(unit)
    expect(not math.isclose(got, -want, rel_tol=1e-4), "your value is negative: TC is a KL "
           "divergence, never below 0. It is log of the product of the variances minus log det(cov)")
    expect(not math.isclose(got, 2 * want, rel_tol=1e-4), "your value is twice the answer: the "
           "factor 1/2 in front of the difference of the logs is missing")
    expect(not math.isclose(got, want / math.log(2), rel_tol=1e-4),
           "your value is in bits (log base 2); the course counts nats")
    expect(math.isclose(got, want, rel_tol=1e-4), f"for correlation 0.8 between two unit "
           f"variances you returned {got:.4f}; expected -log(1 - 0.8^2) / 2 = {want:.4f}")
    got = ask(scaled)
    expect(not math.isclose(got, -0.5 * float(torch.logdet(scaled)), rel_tol=1e-4),
           "with variances other than 1 your value changes: you left out the marginals, the "
           "sum of the logs of the diagonal of cov")
    expect(math.isclose(got, want, rel_tol=1e-4), f"rescaling the coordinates changed your "
           f"answer to {got:.4f}; TC does not depend on the units of each coordinate "
           f"(expected {want:.4f})")
    got = ask(block)
    expect(math.isclose(got, _reference_tc(block), rel_tol=1e-4), f"for a 3 x 3 covariance you "
           f"returned {got:.4f}; expected {_reference_tc(block):.4f}. Sum the logs of all "
           "diagonal entries, and use the log det of the whole matrix")
    passed("TC is zero for independent coordinates, ignores the units of each coordinate, and "
           "counts, in nats, what the coordinates share.")
