"""The self-checks of notebook 04 (the KL divergence) accept right answers and name mistakes."""
import math

import pytest
import torch
import torch.nn.functional as F
import torch.distributions as D
from torch.distributions import kl_divergence as torch_kl

from companion.checks import ExerciseError
from companion.checks import kl_divergence as checks
from companion.losses import bernoulli_nll, kl_divergence

# --- core exercise: kl_diagonal ---------------------------------------------------------------

def kl_diagonal(mu, logvar):
    return 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(-1)


def half(mu, logvar, var=None, log_var=None, mean_sq=None, scale=0.5, one=1.0):
    """The bracket of the closed form with one piece swapped out, summed over dimensions."""
    var = logvar.exp() if var is None else var
    log_var = logvar if log_var is None else log_var
    mean_sq = mu**2 if mean_sq is None else mean_sq
    return scale * (mean_sq + var - log_var - one).sum(-1)


@pytest.mark.parametrize("answer", [
    kl_diagonal,
    kl_divergence,
    lambda mu, lv: torch_kl(D.Independent(D.Normal(mu, (0.5 * lv).exp()), 1),
                            D.Independent(D.Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)),
    lambda mu, lv: kl_diagonal(mu.float(), lv.float()),                         # float32
])
def test_check_kl_diagonal_accepts_right_answers(answer, capsys):
    assert checks.check_kl_diagonal(answer) is answer
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, match", [
    (lambda mu, lv: -kl_diagonal(mu, lv), "that is -KL"),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() + lv + 1).sum(-1), "sign slip"),
    (lambda mu, lv: half(mu, lv, var=(0.5 * lv).exp()), "sigma = exp\\(logvar / 2\\)"),
    (lambda mu, lv: half(mu, lv, var=lv.exp() ** 2), "\\(sigma\\^2\\)\\^2"),
    (lambda mu, lv: half(mu, lv, var=lv), "logvar itself as the variance"),
    (lambda mu, lv: half(mu, lv, log_var=0.5 * lv), "not log sigma"),
    (lambda mu, lv: half(mu, lv, log_var=0 * lv), "log sigma\\^2 term is missing"),
    (lambda mu, lv: half(mu, lv, scale=1.0), "factor 1/2"),
    (lambda mu, lv: half(mu, lv, mean_sq=mu), "mu\\^2, not mu"),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1).mean(-1), "averaged over the latent"),
    (lambda mu, lv: kl_diagonal(mu, lv).sum(), "one number for the whole batch"),
    (lambda mu, lv: kl_diagonal(mu, lv).mean(), "one number for the whole batch"),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1), "shape \\[N, L\\]"),
    (lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1).sum(0), "reduced over the batch"),
    (lambda mu, lv: half(mu, lv, one=0.0), "check the '- 1'"),
    (lambda mu, lv: kl_diagonal(mu, lv).tolist(), "torch.Tensor"),
    (lambda mu, lv: kl_diagonal(mu, lv) + 0.01 * mu[:, 0], "torch.distributions"),
    (lambda mu, lv: kl_diagonal(mu.view(-1), lv), "Calling your function raised"),
])
def test_check_kl_diagonal_names_the_usual_mistakes(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        checks.check_kl_diagonal(wrong)


def test_an_unwritten_kl_diagonal_gets_the_course_answer(capsys):
    def kl_diagonal(mu, logvar):
        raise NotImplementedError("Exercise: write `kl_diagonal`")
    handed_on = checks.check_kl_diagonal(kl_diagonal)
    assert "Not attempted yet: `kl_diagonal`" in capsys.readouterr().out
    assert handed_on is kl_divergence


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


# --- exercise 2 ----------------------------------------------------------------------------

def _laplace_mc(mu, logvar, b, n, generator, std=lambda lv: (0.5 * lv).exp(), log_q_std=None,
                normaliser=True, divide=True, se_power=0.5, reverse=False):
    """The solution of exercise 2, with switches for the usual mistakes."""
    eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype)
    if reverse:                                   # z ~ Laplace(0, b) by inverting its CDF
        u = torch.rand((n, *mu.shape), generator=generator, dtype=mu.dtype) - 0.5
        z = -b * u.sign() * torch.log1p(-2 * u.abs())
    else:
        z = mu + std(logvar) * eps
    scale_q = (log_q_std or std)(logvar)
    log_q = torch.distributions.Normal(mu, scale_q).log_prob(z)
    log_p = -(math.log(2 * b) if normaliser else 0.0) - z.abs() / (b if divide else 1.0)
    terms = log_q - log_p
    return terms.mean(0), terms.std(0) / n**se_power


def test_reference_of_exercise_2_is_the_definition():
    """torch.distributions' closed form equals a direct numerical integral of q log(q / p)."""
    mu, logvar = checks._gaussians_for_laplace()
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Laplace(torch.zeros_like(mu), checks.LAPLACE_SCALE)
    z = torch.linspace(-30, 30, 600_001, dtype=torch.float64)[:, None]
    integrand = q.log_prob(z).exp() * (q.log_prob(z) - p.log_prob(z))
    assert torch.allclose(torch.trapezoid(integrand, z, dim=0), torch_kl(q, p), atol=1e-8)


def test_check_kl_to_laplace_mc_accepts_the_solution(capsys):
    checks.check_kl_to_laplace_mc(_laplace_mc)
    assert "Correct" in capsys.readouterr().out


def _unseeded(mu, logvar, b, n, generator):
    return _laplace_mc(mu, logvar, b, n, torch.Generator().manual_seed(torch.seed() % 2**31))


@pytest.mark.parametrize("wrong, match", [
    (lambda *a: tuple(-v if i == 0 else v for i, v in enumerate(_laplace_mc(*a))), "minus the KL"),
    (lambda *a: _laplace_mc(*a, reverse=True), "sampled z from the Laplace"),
    (lambda *a: tuple(-v if i == 0 else v for i, v in enumerate(_laplace_mc(*a, reverse=True))),
     "sampled z from the Laplace"),
    (lambda *a: _laplace_mc(*a, normaliser=False), "normaliser"),
    (lambda *a: _laplace_mc(*a, divide=False), "divide \\|z\\| by the scale"),
    (lambda *a: _laplace_mc(*a, std=lambda lv: lv.exp()), "exp\\(logvar / 2\\)"),
    (lambda *a: _laplace_mc(*a, std=lambda lv: lv.exp(), log_q_std=lambda lv: (0.5 * lv).exp()),
     "exp\\(logvar / 2\\)"),
    (lambda *a: _laplace_mc(*a, se_power=0.0), "standard deviation of the terms"),
    (lambda *a: _laplace_mc(*a, se_power=1.0), "divided by S"),
    (lambda *a: (_laplace_mc(*a)[0], _laplace_mc(*a)[1] * 2), "sqrt\\(S\\)"),
    (lambda *a: (_laplace_mc(*a)[0] + 0.1, _laplace_mc(*a)[1]), "standard errors from"),
    (_unseeded, "generator"),
    (lambda *a: _laplace_mc(*a)[0], "two tensors"),
    (lambda *a: (_laplace_mc(*a)[0].mean(), _laplace_mc(*a)[1]), "expected shape"),
])
def test_check_kl_to_laplace_mc_rejects_typical_mistakes(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        checks.check_kl_to_laplace_mc(wrong)
