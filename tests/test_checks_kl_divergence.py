"""The self-checks of notebook 04 (the KL divergence) accept right answers and name mistakes."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import kl_divergence as torch_kl

from companion.checks import ExerciseError
from companion.checks import kl_divergence as checks
from companion.losses import bernoulli_nll, kl_divergence

# --- exercise 1 ----------------------------------------------------------------------------

def kl_two_gaussians(mu, logvar, m, logs2):
    return 0.5 * (logs2 - logvar + (logvar.exp() + (mu - m) ** 2) / logs2.exp() - 1)


def test_check_kl_two_gaussians_accepts_the_solution(capsys):
    checks.check_kl_two_gaussians(kl_two_gaussians)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, match", [
    (lambda mu, lv, m, ls: kl_two_gaussians(m, ls, mu, lv), "reverse direction"),
    (lambda mu, lv, m, ls: 0.5 * (mu**2 + lv.exp() - lv - 1), "ignores the prior"),
    (lambda mu, lv, m, ls: 0.5 * (lv - ls + (lv.exp() + (mu - m) ** 2) / ls.exp() - 1), "negative"),
    (lambda mu, lv, m, ls: 2 * kl_two_gaussians(mu, lv, m, ls), "factor 1/2"),
    (lambda mu, lv, m, ls: 0.5 * (ls - lv + lv.exp() / ls.exp() + (mu - m) ** 2 - 1), "prior's variance"),
    (lambda mu, lv, m, ls: kl_two_gaussians(mu, lv, m, ls).sum(), "expected shape"),
    (lambda mu, lv, m, ls: kl_two_gaussians(mu, lv, m, ls).tolist(), "torch.Tensor"),
    (lambda mu, lv, m, ls: kl_two_gaussians(mu, lv, m, ls) + 0.01, "must be 0"),
    (lambda mu, lv, m, ls: 0.5 * (ls - lv + (lv.exp() + (mu - m) ** 2) / ls.exp()) - 0.4, "must be 0"),
])
def test_check_kl_two_gaussians_rejects_typical_mistakes(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        checks.check_kl_two_gaussians(wrong)


# --- exercise 2 ----------------------------------------------------------------------------

def kl_categorical(p, q):
    return F.kl_div(q.log(), p, reduction="batchmean")


def test_reference_matches_the_definition_and_torch_distributions():
    p, q = checks._categoricals()
    cat = torch.distributions.Categorical
    assert torch.allclose(kl_categorical(p, q), torch_kl(cat(probs=p), cat(probs=q)).mean())


def test_check_kl_categorical_accepts_the_solution(capsys):
    checks.check_kl_categorical(kl_categorical)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:reduction")
@pytest.mark.parametrize("wrong, match", [
    (lambda p, q: F.kl_div(q, p, reduction="batchmean"), "log-probabilities"),
    (lambda p, q: F.kl_div(p.log(), q, reduction="batchmean"), "KL\\(q \\|\\| p\\)"),
    (lambda p, q: F.kl_div(q.log(), p, reduction="sum"), "reduction='sum'"),
    (lambda p, q: F.kl_div(q.log(), p, reduction="mean"), "number of classes"),
    (lambda p, q: F.kl_div(q.log(), p, reduction="none"), "expected shape"),
    (lambda p, q: F.kl_div(q.log(), p, reduction="batchmean") * 1.1, "expected the mean"),
])
def test_check_kl_categorical_rejects_typical_mistakes(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        checks.check_kl_categorical(wrong)


# --- exercise 3 ----------------------------------------------------------------------------

@pytest.mark.parametrize("n, d, latent", [(128, 784, 20), (16, 50, 3)])
def test_true_effective_beta_reproduces_the_snippet(n, d, latent):
    """The snippet's loss times a constant equals the summed ELBO with beta = N * D."""
    g = torch.Generator().manual_seed(9)
    logits = torch.randn(n, d, generator=g, dtype=torch.float64)
    x = torch.rand(n, d, generator=g, dtype=torch.float64)
    mu, logvar = torch.randn(2, n, latent, generator=g, dtype=torch.float64)
    snippet = (F.binary_cross_entropy_with_logits(logits, x)
               - 0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp()))
    beta = checks._true_effective_beta(d, latent, n)
    proper = bernoulli_nll(logits, x).mean() + beta * kl_divergence(mu, logvar).mean()
    assert torch.allclose(snippet * d, proper)          # same loss, up to the factor 1/D
    assert not math.isclose(beta, d / latent)


def test_check_effective_beta_accepts_the_solution(capsys):
    checks.check_effective_beta(lambda n_pixels, latent_dim, batch_size: n_pixels * batch_size)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, match", [
    (lambda d, L, n: d / L, "notebook's loss"),
    (lambda d, L, n: 1 / (d * n), "upside down"),
    (lambda d, L, n: d, "summed over the batch"),
    (lambda d, L, n: d * L, "read beta off"),
    (lambda d, L, n: "784", "return a number"),
])
def test_check_effective_beta_rejects_typical_mistakes(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        checks.check_effective_beta(wrong)
