"""Self-checks for notebook 03, the reparameterization trick.

    check_reparameterize(fn)   section 4 (core), and notebook 05 section 1: z = mu + sigma * eps,
                               sigma = exp(logvar / 2); hands on `VAE.reparameterize` while
                               the learner's is not written
    check_score_logvar(fn)     Exercise 1: the score-function estimate of d E[f(z)] / d logvar,
                               fn(f, mu, logvar, n) with mu, logvar floats -> one number

Both run under `torch.random.fork_rng`, so they repeat exactly and leave the notebook's
random numbers untouched.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import ExerciseError, expect, passed, self_check, unwritten
from companion.models import VAE

N = 20_000                                   # samples per latent dimension in check 1
MU = (1.0, -2.0, 0.5)
LOGVAR = (0.0, math.log(4.0), math.log(0.25))  # variances 1, 4, 1/4


DEVICE_HINT = ("Common causes: a hard-coded device such as 'cuda' (create eps with "
               "torch.randn_like(std) so it follows the inputs), or an in-place operation on mu "
               "or logvar (write z = mu + std * eps instead).")


def _call(fn: Callable, *args, hint: str = DEVICE_HINT):
    """Call the learner's function; turn a crash into a hint (an unwritten stub is no crash)."""
    try:
        return fn(*args)
    except Exception as err:
        if isinstance(err, ExerciseError) or unwritten(err):
            raise
        message = f"Calling your function raised {type(err).__name__}: {err}"
        raise ExerciseError(f"{message}\n{hint}".strip()) from err


def _inputs(rows: int = N) -> tuple[torch.Tensor, torch.Tensor]:
    mu = torch.tensor(MU).repeat(rows, 1).requires_grad_()          # [N, 3], identical rows
    logvar = torch.tensor(LOGVAR).repeat(rows, 1).requires_grad_()  # [N, 3]
    return mu, logvar


def _variance_hint(var: torch.Tensor, logvar: torch.Tensor) -> str:
    """Name the usual mistake whose variances match the measured ones, if any."""
    def close(expected: torch.Tensor) -> bool:
        return bool(torch.allclose(var, expected, rtol=0.06, atol=1e-3))

    if close((0.5 * logvar) ** 2):
        return ("Your std is 0.5 * logvar: the exp is missing. With logvar = 0 (variance 1) "
                "that adds no noise at all, and for logvar < 0 the 'std' is negative. "
                "Use std = torch.exp(0.5 * logvar).")
    if close(logvar.exp() ** 2):
        return ("You used exp(logvar), the variance, as the standard deviation. "
                "sigma = sqrt(sigma^2) = exp(0.5 * logvar).")
    if close(logvar.exp().sqrt()):
        return "Your samples have variance sigma, not sigma^2: take std = exp(0.5 * logvar)."
    return "Check how you turn logvar into the standard deviation: sigma = exp(0.5 * logvar)."


@self_check(reference=VAE.reparameterize)
def check_reparameterize(reparameterize: Callable) -> None:
    """Core exercise: shape, device, fresh noise, moments of z, gradients to mu and logvar."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        mu, logvar = _inputs()
        z = _call(reparameterize, mu, logvar)
        expect(isinstance(z, torch.Tensor), f"Return a tensor z, not {type(z).__name__}.")
        expect(z.shape == mu.shape, f"z should have the shape of mu, {list(mu.shape)}, but has "
               f"{list(z.shape)}. Draw one eps per example and dimension: torch.randn_like(std).")
        expect(z.device == mu.device, f"z lives on {z.device} but mu on {mu.device}: create eps "
               "on the inputs' device (torch.randn_like(std) does), never a fixed device.")
        expect(z.grad_fn is not None, "z is not connected to mu and logvar, so no gradient can "
               "reach the encoder. Sampling with Normal(...).sample(), torch.normal or under "
               "torch.no_grad() cuts the graph: compute z = mu + std * eps yourself.")
        zd = z.detach()
        expect(not torch.equal(zd, mu.detach()), "z equals mu: no noise was added.")
        expect(not torch.equal(zd, zd[:1].expand_as(zd)),
               "Every row of z is the same: one eps was drawn for the whole batch (for example "
               "torch.randn(latent_dim)). Each example needs its own noise: torch.randn_like(std).")
        _check_moments(zd, mu.detach(), logvar.detach())
        _check_columns(reparameterize)
        z.sum().backward()
        expect(mu.grad is not None and logvar.grad is not None,
               "No gradient reached mu or logvar: z must be computed from them with tensor "
               "operations (no .detach(), .item() or .numpy() on the way).")
        expect(torch.allclose(mu.grad, torch.ones_like(mu)),
               "dz/dmu should be exactly 1 for every element: z = mu + std * eps. (torch.normal "
               "has a backward, but it returns zero gradients for mu and std.)")
        expect(torch.allclose(logvar.grad, 0.5 * (zd - mu.detach()), atol=1e-4),
               "dz/dlogvar should be 0.5 * std * eps = 0.5 * (z - mu). Compute std from "
               "logvar as exp(0.5 * logvar), inside the graph.")
        again = _call(reparameterize, mu.detach(), logvar.detach())
        expect(not torch.equal(again, zd), "Two calls returned the same z: draw new "
               "noise on every call (no fixed eps stored outside the function).")
    passed("z = mu + exp(logvar / 2) * eps with fresh noise for every example and dimension, "
           "the right mean and variance, and gradients that reach mu and logvar.")


def _check_columns(reparameterize: Callable) -> None:
    """With identical parameters in every dimension, the dimensions must still differ."""
    z = _call(reparameterize, torch.zeros(1000, 4), torch.full((1000, 4), 0.3)).detach()
    expect(not torch.equal(z, z[:, :1].expand_as(z)), "All latent dimensions of an example "
           "got the same noise (for example torch.randn(batch, 1)). Draw eps with the full "
           "shape of std: torch.randn_like(std).")


def _check_moments(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> None:
    """Sample mean within 5 standard errors of mu; sample variance within 6% of exp(logvar)."""
    var = logvar.exp()[0]                                   # [3] target variances
    mean_err = (z.mean(0) - mu[0]).abs()
    sample_var = z.var(0)
    if not torch.allclose(sample_var, var, rtol=0.06):
        raise ExerciseError(f"Sample variances {_fmt(sample_var)} should be exp(logvar) = "
                            f"{_fmt(var)}. " + _variance_hint(sample_var, logvar[0]))
    expect(bool((mean_err < 5 * (var / len(z)).sqrt()).all()),
           f"Sample means {_fmt(z.mean(0))} should be mu = {_fmt(mu[0])}: add mu, and draw eps "
           "from a standard normal (torch.randn_like, not torch.rand_like).")


def _fmt(t: torch.Tensor) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in t.tolist()) + "]"


# ----------------------------------------------------------------------------- exercise 1

def _normal_pdf(a: float) -> float:
    return math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)


def _square(z: torch.Tensor) -> torch.Tensor:
    return z ** 2


def _step(z: torch.Tensor) -> torch.Tensor:
    return (z > 0).float()


# (name, f, mu, logvar, d/dlogvar E[f(z)]). E[z^2] = mu^2 + sigma^2, so the gradient is
# sigma^2; E[1{z>0}] = Phi(mu/sigma), so it is -phi(a) * a / 2 with a = mu / sigma.
SMOOTH = [("f(z) = z^2, mu = 0.5, logvar = log 2", _square, 0.5, math.log(2.0), 2.0),
          ("f(z) = z^2, mu = 1.5, logvar = log 0.25", _square, 1.5, math.log(0.25), 0.25)]
STEP = ("f(z) = 1{z > 0}, mu = -1, logvar = 0", _step, -1.0, 0.0, 0.5 * _normal_pdf(-1.0))
# What the usual mistakes converge to on the two SMOOTH cases, and the hint for each.
MISTAKES = [
    ((4.0, 0.5), "Your estimate is twice the gradient: the score of logvar carries a factor "
                 "1/2 (from -v/2 and from -(z - mu)^2 / (2 exp(v)))."),
    ((3.125, 1.5), "Your estimate is biased upwards by E[f]/2: the score misses the -1/2 that "
                   "comes from the normalising constant, -v/2 in log N(z; mu, exp(v))."),
    ((1.0, 3.0), "That is the gradient with respect to mu: (z - mu) / sigma^2 is the score of "
                 "mu. Differentiate log N(z; mu, exp(v)) with respect to v instead."),
    ((2 * math.sqrt(2.0), 1.0), "That is the gradient with respect to sigma. Differentiate "
                                "with respect to v = log sigma^2: d/dv = (sigma / 2) d/dsigma."),
    ((-2.0, -0.25), "Right size, wrong sign: check the signs in d/dv log N(z; mu, exp(v))."),
    ((0.0, 0.0), "Your estimate is about 0: the score alone averages to zero. Multiply it by "
                 "f(z) before averaging."),
]


def _estimate(fn: Callable, case: tuple, n: int, repeats: int) -> tuple[float, float]:
    """Mean and standard error of `repeats` calls of the learner's estimator on one case."""
    name, f, mu, logvar, _ = case
    values = []
    for _ in range(repeats):
        out = torch.as_tensor(_call(fn, f, mu, logvar, n, hint="")).detach()
        expect(out.numel() == 1, f"Return one number (the average over the {n} samples), not "
               f"a tensor of shape {list(out.shape)}.")
        values.append(float(out))
    v = torch.tensor(values, dtype=torch.float64)
    return v.mean().item(), (v.std() / math.sqrt(repeats)).item()


def _agrees(got: float, truth: float, se: float) -> bool:
    return abs(got - truth) <= max(4 * se, 0.02 * abs(truth) + 2e-3)


@self_check
def check_score_logvar(score_logvar: Callable, n: int = 50_000, repeats: int = 20) -> None:
    """Exercise 1: unbiased for a smooth and for a step-shaped f; hints for the usual mistakes."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        got = [_estimate(score_logvar, case, n, repeats) for case in SMOOTH]
        if not all(_agrees(g, case[-1], se) for (g, se), case in zip(got, SMOOTH)):
            for expected, hint in MISTAKES:
                if all(abs(g - e) < 0.06 * abs(e) + 0.02 for (g, _), e in zip(got, expected)):
                    raise ExerciseError(hint)
            (g, _), (name, *_, truth) = got[0], SMOOTH[0]
            raise ExerciseError(f"For {name} the gradient is {truth:.4f}, your estimate "
                                f"{g:.4f}. Average f(z) * d/dv log N(z; mu, exp(v)) over "
                                "samples z drawn from N(mu, exp(logvar)).")
        name, *_, truth = STEP
        try:
            g, se = _estimate(score_logvar, STEP, n, repeats)
        except ExerciseError as err:
            raise ExerciseError(f"On {name} your estimator failed ({err}). A step has no useful "
                                "derivative; the score function only evaluates f(z), so it "
                                "needs no backward().") from err
        expect(_agrees(g, truth, se), f"For {name} the gradient is {truth:.4f}, your estimate "
               f"{g:.4f}. A step has zero derivative almost everywhere, so an estimator that "
               "differentiates f fails here; the score function only evaluates f(z).")
    passed("your score-function estimator matches the exact log-variance gradient, for a "
           "smooth f and for a step function that has no useful derivative.")
