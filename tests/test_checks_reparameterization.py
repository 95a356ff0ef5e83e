"""The self-checks of notebook 03 accept right answers and reject the usual wrong ones."""
from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from companion.checks import ExerciseError
from companion.checks.reparameterization import (SMOOTH, STEP, check_reparameterize,
                                                 check_score_logvar)
from companion.models import VAE

# ------------------------------------------------------ core exercise (section 4): reparameterize


def reference(mu, logvar):
    std = torch.exp(0.5 * logvar)
    return mu + std * torch.randn_like(std)


def one_eps_per_batch(mu, logvar):              # the VAE slides: torch.randn(latent_dim)
    return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape[-1])


def one_eps_per_example(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape[0], 1)


def no_exp(mu, logvar):                          # the R torch book: std = 0.5 * logvar
    std = 0.5 * logvar
    return mu + std * torch.randn_like(std)


def variance_as_std(mu, logvar):
    return mu + torch.exp(logvar) * torch.randn_like(mu)


def hard_coded_cuda(mu, logvar):                 # the R torch book: device = "cuda"
    std = torch.exp(torch.tensor(0.5, device="cuda") * logvar)
    return mu + std * torch.randn_like(std)


def meta_device(mu, logvar):                     # a device that differs from the inputs'
    eps = torch.randn(mu.shape, device="meta")
    return mu.to("meta") + torch.exp(0.5 * logvar).to("meta") * eps


def detached_sample(mu, logvar):
    return Normal(mu, torch.exp(0.5 * logvar)).sample()


def torch_normal(mu, logvar):
    return torch.normal(mu, torch.exp(0.5 * logvar))


def uniform_noise(mu, logvar):
    std = torch.exp(0.5 * logvar)
    return mu + std * (torch.rand_like(std) * math.sqrt(12) + 1.0)   # variance right, mean off


def no_noise(mu, logvar):
    return mu + 0 * logvar


def std_detached(mu, logvar):
    std = torch.exp(0.5 * logvar).detach()
    return mu + std * torch.randn_like(std)


def fixed_eps():
    eps = {}

    def fn(mu, logvar):
        if mu.shape not in eps:
            eps[mu.shape] = torch.randn(mu.shape)
        return mu + torch.exp(0.5 * logvar) * eps[mu.shape]
    return fn


def test_reference_and_companion_pass(capsys):
    check_reparameterize(reference)
    check_reparameterize(VAE.reparameterize)
    check_reparameterize(lambda mu, logvar: Normal(mu, torch.exp(0.5 * logvar)).rsample())
    assert capsys.readouterr().out.count("Correct:") == 3


@pytest.mark.parametrize("wrong, hint", [
    (one_eps_per_batch, "one eps was drawn for the whole batch"),
    (one_eps_per_example, "All latent dimensions"),
    (no_exp, "the exp is missing"),
    (variance_as_std, "the variance, as the standard deviation"),
    (hard_coded_cuda, "hard-coded device"),
    (meta_device, "lives on meta"),
    (detached_sample, "not connected"),
    (torch_normal, "torch.normal"),
    (uniform_noise, "standard normal"),
    (no_noise, "no noise"),
    (std_detached, "No gradient reached"),
    (fixed_eps(), "Two calls returned the same z"),
])
def test_wrong_reparameterize_rejected_with_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_reparameterize(wrong)


def test_an_unwritten_reparameterize_gets_the_course_answer(capsys):
    def reparameterize(mu, logvar):
        raise NotImplementedError("Exercise: write `reparameterize`")
    assert check_reparameterize(reparameterize) is VAE.reparameterize
    assert "Not attempted yet: `reparameterize`" in capsys.readouterr().out


def test_a_right_reparameterize_is_handed_back(capsys):
    assert check_reparameterize(reference) is reference
    assert capsys.readouterr().out.startswith("Correct:")


def test_checks_leave_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.randn(3)
    torch.manual_seed(7)
    check_reparameterize(reference)
    assert torch.equal(torch.randn(3), expected)

# ----------------------------------------------------- exercise 1: score function for logvar


def score_logvar(f, mu, logvar, n):
    sigma = math.exp(0.5 * logvar)
    z = mu + sigma * torch.randn(n)
    return (f(z) * 0.5 * ((z - mu) ** 2 / sigma**2 - 1)).mean()


def autograd_surrogate(f, mu, logvar, n):       # REINFORCE through torch.distributions: right
    v = torch.tensor(logvar, requires_grad=True)
    q = Normal(torch.tensor(mu), (0.5 * v).exp())
    z = q.sample((n,))
    (f(z) * q.log_prob(z)).mean().backward()
    return v.grad


def missing_half(f, mu, logvar, n):
    sigma = math.exp(0.5 * logvar)
    z = mu + sigma * torch.randn(n)
    return (f(z) * ((z - mu) ** 2 / sigma**2 - 1)).mean()


def missing_minus_one(f, mu, logvar, n):
    sigma = math.exp(0.5 * logvar)
    z = mu + sigma * torch.randn(n)
    return (f(z) * 0.5 * (z - mu) ** 2 / sigma**2).mean()


def mu_score(f, mu, logvar, n):
    sigma = math.exp(0.5 * logvar)
    z = mu + sigma * torch.randn(n)
    return (f(z) * (z - mu) / sigma**2).mean()


def sigma_score(f, mu, logvar, n):
    sigma = math.exp(0.5 * logvar)
    z = mu + sigma * torch.randn(n)
    return (f(z) * ((z - mu) ** 2 / sigma**2 - 1) / sigma).mean()


def wrong_sign(f, mu, logvar, n):
    return -score_logvar(f, mu, logvar, n)


def no_f(f, mu, logvar, n):
    sigma = math.exp(0.5 * logvar)
    z = mu + sigma * torch.randn(n)
    return (0.5 * ((z - mu) ** 2 / sigma**2 - 1)).mean()


def pathwise(f, mu, logvar, n):                  # right for smooth f, zero for a step
    v = torch.tensor(logvar, requires_grad=True)
    out = f(mu + torch.exp(0.5 * v) * torch.randn(n)).mean()
    return torch.autograd.grad(out, v)[0] if out.requires_grad else torch.tensor(0.0)


def pathwise_crashes(f, mu, logvar, n):
    v = torch.tensor(logvar, requires_grad=True)
    f(mu + torch.exp(0.5 * v) * torch.randn(n)).mean().backward()
    return v.grad


def no_mean(f, mu, logvar, n):
    sigma = math.exp(0.5 * logvar)
    z = mu + sigma * torch.randn(n)
    return f(z) * 0.5 * ((z - mu) ** 2 / sigma**2 - 1)


def test_case_gradients_match_finite_differences():
    """The exact gradients the check compares with, against central differences of E[f]."""
    def expectation(f, mu, v):                    # E[f] in closed form for the two f's
        sigma = math.exp(0.5 * v)
        if f is SMOOTH[0][1]:
            return mu**2 + sigma**2
        return 1 - Normal(0.0, 1.0).cdf(torch.tensor(-mu / sigma)).item()
    for _, f, mu, v, truth in SMOOTH + [STEP]:
        h = 1e-4
        numeric = (expectation(f, mu, v + h) - expectation(f, mu, v - h)) / (2 * h)
        assert numeric == pytest.approx(truth, rel=1e-3)


def test_score_reference_passes(capsys):
    check_score_logvar(score_logvar)
    check_score_logvar(autograd_surrogate)
    assert capsys.readouterr().out.count("Correct:") == 2


@pytest.mark.parametrize("wrong, hint", [
    (missing_half, "twice the gradient"),
    (missing_minus_one, "normalising constant"),
    (mu_score, "with respect to mu"),
    (sigma_score, "with respect to sigma"),
    (wrong_sign, "wrong sign"),
    (no_f, "Multiply it by f"),
    (pathwise, "zero derivative almost everywhere"),
    (pathwise_crashes, "needs no backward"),
    (no_mean, "Return one number"),
])
def test_wrong_score_rejected_with_hint(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_score_logvar(wrong, n=20_000, repeats=10)
