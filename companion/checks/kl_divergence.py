"""Self-checks for the exercises of notebook 04 (the KL divergence).

Each check runs the learner's function on inputs whose right answer is known (taken from
torch.distributions or from the definition) and names the usual mistake when the answer is
wrong: the reverse direction KL(p || q), a sign slip, a missing 1/2, probabilities where
log-probabilities belong, a 'mean' that also divides by the number of classes.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.distributions import Normal, kl_divergence

from companion.checks import as_double, close, expect, passed


# --- exercise 1: KL between two univariate Gaussians ------------------------------------

def _two_gaussians() -> tuple[torch.Tensor, ...]:
    """Parameters (mu, logvar, m, logs2) of q = N(mu, e^logvar) and p = N(m, e^logs2), [12]."""
    g = torch.Generator().manual_seed(4)
    mu, logvar, m, logs2 = torch.randn(4, 12, generator=g, dtype=torch.float64)
    return 2 * mu, logvar, m, logs2


def check_kl_two_gaussians(kl_two_gaussians: Callable[..., torch.Tensor]) -> None:
    """Exercise 1: kl_two_gaussians(mu, logvar, m, logs2) = KL(N(mu, e^logvar) || N(m, e^logs2))."""
    mu, logvar, m, logs2 = _two_gaussians()
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(m, (0.5 * logs2).exp())
    want = kl_divergence(q, p)                                            # [12]
    out = as_double(kl_two_gaussians(mu.clone(), logvar.clone(), m.clone(), logs2.clone()),
                     (12,), "one KL per pair of Gaussians, element by element")
    expect(bool(torch.isfinite(out).all()), "the result contains NaN or infinity")
    expect(not close(out, kl_divergence(p, q)),
           "that is KL(p || q), the reverse direction: the expectation is under q = N(mu, e^logvar)")
    std_prior = 0.5 * (mu**2 + logvar.exp() - logvar - 1)
    expect(not close(out, std_prior),
           "that is the KL to N(0, 1): your answer ignores the prior's mean m and log-variance logs2")
    expect(bool((out > -1e-9).all()),
           "some values are negative, and a KL never is: check the sign of each log-variance term")
    expect(not close(out, 2 * want), "twice the right answer: the whole bracket carries a factor 1/2")
    expect(not close(out, 0.5 * (logs2 - logvar + logvar.exp() / logs2.exp() + (mu - m)**2 - 1)),
           "divide (mu - m)^2 by the prior's variance e^logs2 too, not only sigma^2")
    same = as_double(kl_two_gaussians(mu.clone(), logvar.clone(), mu.clone(), logvar.clone()),
                      (12,), "one KL per pair of Gaussians")
    expect(bool(same.abs().max() < 1e-6),
           "KL(q || q) must be 0, but yours is not when both Gaussians are the same: "
           "check the '- 1' and the log-variance terms")
    expect(close(out, want),
           "expected 0.5 * (logs2 - logvar + (e^logvar + (mu - m)^2) / e^logs2 - 1); "
           "compare yours with torch.distributions.kl_divergence on a few numbers")
    passed("your KL matches torch.distributions for twelve pairs of Gaussians.")


# --- exercise 2: nn.functional.kl_div, called the right way -------------------------------

def _categoricals() -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of two batches of categorical distributions p and q, [6, 5] each."""
    g = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(6, 5, generator=g, dtype=torch.float64) * 2, dim=1)
    q = torch.softmax(torch.randn(6, 5, generator=g, dtype=torch.float64) * 2, dim=1)
    return p, q


def check_kl_categorical(kl_categorical: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Exercise 2: kl_categorical(p, q) = the batch mean of KL(p_n || q_n), a scalar."""
    p, q = _categoricals()
    rows = (p * (p / q).log()).sum(1)                                      # [6] KL(p_n || q_n)
    out = as_double(kl_categorical(p.clone(), q.clone()), (), "one number, the mean over the batch")
    expect(out.item() >= 0,
           f"your KL is {out.item():.4f} < 0: F.kl_div wants log-probabilities as its input. "
           "Pass q.log(), not q")
    reverse = (q * (q / p).log()).sum(1)
    expect(not close(out, reverse.mean()),
           "that is KL(q || p): F.kl_div(input, target) computes KL(target || input), so the "
           "input is log q and the target is p")
    expect(not close(out, rows.sum()),
           "that is the sum over the batch (reduction='sum'): use reduction='batchmean'")
    expect(not close(out, rows.mean() / p.shape[1]),
           "reduction='mean' divides by the number of classes too: use reduction='batchmean'")
    expect(close(out, rows.mean()),
           "expected the mean over rows of sum_k p log(p / q): "
           "F.kl_div(q.log(), p, reduction='batchmean')")
    passed("F.kl_div with log q as input, p as target and 'batchmean' gives KL(p || q).")


# --- exercise 3: the beta that a loss snippet trains with -------------------------------

def _true_effective_beta(n_pixels: int, latent_dim: int, batch_size: int) -> float:
    """The snippet's loss is (recon_sum + beta * kl_sum) / (N * D) with beta = N * D."""
    return float(n_pixels * batch_size)


def check_effective_beta(effective_beta: Callable[[int, int, int], float]) -> None:
    """Exercise 3: effective_beta(n_pixels, latent_dim, batch_size) for the notebook's snippet."""
    cases = [(784, 20, 128), (784, 2, 64), (3072, 32, 16)]
    for d, L, n in cases:
        out = effective_beta(d, L, n)
        expect(isinstance(out, (int, float)) or (isinstance(out, torch.Tensor) and out.numel() == 1),
               f"return a number, not {type(out).__name__}")
        out, want = float(out), _true_effective_beta(d, L, n)
        expect(abs(out - d / L) > 1e-9,
               "n_pixels / latent_dim is the beta of the notebook's loss, where the KL was also "
               "averaged. Here the KL is summed, over the batch too")
        expect(abs(out * want - 1) > 1e-9, "upside down: beta multiplies the KL of the real ELBO")
        expect(abs(out - d) > 1e-9,
               f"for D={d}, L={L}, N={n} you return D: the KL is summed over the batch as well, "
               "while the reconstruction is averaged over it")
        expect(abs(out - want) <= 1e-9 * want,
               f"for D={d}, L={L}, N={n}: write the snippet's loss as (sum of reconstruction + "
               "beta * sum of KL) / (a constant) and read beta off")
    passed("beta = n_pixels * batch_size: with batch 128, a beta of 100352, and it changes "
           "whenever you change the batch size.")
