"""The self-checks of notebook 02 accept right answers and name the usual mistakes."""
import math

import pytest
import torch
from torch.distributions import MultivariateNormal

from companion.checks import ExerciseError
from companion.checks import vae_theory as checks
from companion.gaussians import full_gaussian_log_density, sample_gaussian


# --- exercise 1: the ELBO by Monte Carlo -------------------------------------------------

def _terms(model, x, mean, cov, n, generator):
    """log p(x|z), log p(z), log q(z|x) for n draws z ~ q: three [n, N] tensors."""
    z = sample_gaussian(mean, cov, n, generator)
    return model.log_likelihood(x, z), model.log_prior(z), full_gaussian_log_density(z, mean, cov)


def right_mc_elbo(model, x, mean, cov, n, generator):
    lik, prior, q = _terms(model, x, mean, cov, n, generator)
    return (lik + prior - q).mean(0)


def right_mc_elbo_with_torch_distributions(model, x, mean, cov, n, generator):
    q = MultivariateNormal(mean.float(), cov.float())
    z = q.sample((n,))                                                    # float32, no generator
    return (model.log_likelihood(x, z.double()) + model.log_prior(z.double())).float().mean(0) \
        - q.log_prob(z).mean(0)


@pytest.mark.parametrize("answer", [right_mc_elbo, right_mc_elbo_with_torch_distributions])
def test_mc_elbo_accepts_right_answers(answer, capsys):
    torch.manual_seed(0)
    checks.check_mc_elbo(answer)
    assert capsys.readouterr().out.startswith("Correct:")


def _log_mean_exp(model, x, mean, cov, n, g):
    lik, prior, q = _terms(model, x, mean, cov, n, g)
    return torch.logsumexp(lik + prior - q, 0) - math.log(n)


def _covariance_instead_of_its_square_root(model, x, mean, cov, n, g):
    z = mean + torch.randn(n, *mean.shape, generator=g, dtype=mean.dtype) @ cov   # should be L eps
    return (model.log_likelihood(x, z) + model.log_prior(z) - full_gaussian_log_density(z, mean, cov)).mean(0)


@pytest.mark.parametrize("answer, hint", [
    (_log_mean_exp, "Average the logs"),
    (lambda m, x, mean, cov, n, g: (lambda t: (t[0] + t[1]).mean(0))(_terms(m, x, mean, cov, n, g)),
     "left out -log q"),
    (lambda m, x, mean, cov, n, g: (lambda t: (t[0] + t[1] + t[2]).mean(0))(_terms(m, x, mean, cov, n, g)),
     "sign of log q"),
    (lambda m, x, mean, cov, n, g: (lambda t: (t[0] - t[2]).mean(0))(_terms(m, x, mean, cov, n, g)),
     "left out log p\\(z\\)"),
    (lambda m, x, mean, cov, n, g: (lambda t: t[0].mean(0))(_terms(m, x, mean, cov, n, g)),
     "only the reconstruction term"),
    (lambda m, x, mean, cov, n, g: right_mc_elbo(m, x, mean, cov, 1, g), "all n_samples draws"),
    (_covariance_instead_of_its_square_root, "expected about"),
    (lambda m, x, mean, cov, n, g: right_mc_elbo(m, x, mean, cov, n, g).mean(), "expected shape"),
    (lambda m, x, mean, cov, n, g: right_mc_elbo(m, x, mean, cov, n, g).tolist(), "torch.Tensor"),
    (lambda m, x, mean, cov, n, g: right_mc_elbo(m, x, mean, cov, n, g) / 0, "NaN or infinity"),
])
def test_mc_elbo_names_the_mistake(answer, hint):
    with pytest.raises(ExerciseError, match=hint):
        checks.check_mc_elbo(answer)


# --- exercise 2: the q that maximizes the beta-ELBO --------------------------------------

def right_beta_optimal_q(model, x, beta):
    eye = torch.eye(model.latent_dim, dtype=x.dtype)
    a = beta * eye + model.W.T @ model.W / model.sigma**2
    mean = torch.linalg.solve(a, (model.W.T @ (x - model.b).T) / model.sigma**2).T
    return mean, beta * torch.linalg.inv(a)


def right_beta_optimal_q_via_precision(model, x, beta):
    eye = torch.eye(model.latent_dim, dtype=x.dtype)
    cov = torch.linalg.inv(eye + model.W.T @ model.W / (beta * model.sigma**2))
    return (x - model.b) @ model.W @ cov / (beta * model.sigma**2), cov


@pytest.mark.parametrize("answer", [right_beta_optimal_q, right_beta_optimal_q_via_precision])
def test_beta_optimal_q_accepts_right_answers(answer, capsys):
    checks.check_beta_optimal_q(answer)
    assert capsys.readouterr().out.startswith("Correct:")


def test_the_reference_optimum_beats_nearby_q():
    model, x = checks._problem()
    mean, cov = checks._beta_optimum(model, x, 3.0)
    best = model.elbo(x, mean, cov, beta=3.0)
    for shift in (0.01, -0.01):
        assert (model.elbo(x, mean + shift, cov, beta=3.0) < best).all()
        assert (model.elbo(x, mean, cov * (1 + shift), beta=3.0) < best).all()


def _posterior_always(model, x, beta):
    return model.posterior(x)


def _cov_without_beta(model, x, beta):
    mean, cov = right_beta_optimal_q(model, x, beta)
    return mean, cov / beta


def _beta_only_in_cov(model, x, beta):
    return model.posterior(x)[0], right_beta_optimal_q(model, x, beta)[1]


def _beta_on_the_likelihood(model, x, beta):
    eye = torch.eye(model.latent_dim, dtype=x.dtype)
    cov = torch.linalg.inv(eye + beta * model.W.T @ model.W / model.sigma**2)
    return right_beta_optimal_q(model, x, beta)[0], cov


@pytest.mark.parametrize("answer, hint", [
    (_posterior_always, "you return the posterior"),
    (_cov_without_beta, "misses a factor beta"),
    (_beta_only_in_cov, "the mean is wrong"),
    (_beta_on_the_likelihood, "the covariance is wrong"),
    (lambda m, x, b: list(right_beta_optimal_q(m, x, b)), "a pair"),
    (lambda m, x, b: (right_beta_optimal_q(m, x, b)[0], right_beta_optimal_q(m, x, b)[1].expand(3, 2, 2)),
     "expected shape"),
    (lambda m, x, b: (right_beta_optimal_q(m, x, b)[0] * 2, right_beta_optimal_q(m, x, b)[1]),
     "beta = 1"),
])
def test_beta_optimal_q_names_the_mistake(answer, hint):
    with pytest.raises(ExerciseError, match=hint):
        checks.check_beta_optimal_q(answer)


# --- the core exercise hands on an answer and leaves the notebook's random numbers alone ---

def test_mc_elbo_check_returns_a_right_answer_itself():
    assert checks.check_mc_elbo(right_mc_elbo) is right_mc_elbo


def test_mc_elbo_check_hands_on_the_course_answer_for_a_stub(capsys):
    def mc_elbo(model, x, mean, cov, n_samples, generator=None):
        raise NotImplementedError("Exercise: write `mc_elbo`")
    fn = checks.check_mc_elbo(mc_elbo)
    assert capsys.readouterr().out.startswith("Not attempted yet: `mc_elbo`")
    model, x = checks._problem()
    mean, cov = checks._some_q(model, x)
    estimate = fn(model, x, mean, cov, 20_000, torch.Generator().manual_seed(0))
    assert fn is checks._reference_mc_elbo
    assert torch.allclose(estimate, model.elbo(x, mean, cov), atol=0.3)   # Monte Carlo error


def test_mc_elbo_check_leaves_the_global_random_state_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    checks.check_mc_elbo(right_mc_elbo_with_torch_distributions)   # draws from the global RNG
    assert torch.equal(before, torch.get_rng_state())
