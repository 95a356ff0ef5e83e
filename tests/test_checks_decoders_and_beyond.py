"""The self-checks of notebook 10 accept right answers and name the usual mistakes."""
import math

import pytest
import torch

from companion.checks import ExerciseError
from companion.checks import decoders_and_beyond as checks
from companion.models.vq import codebook_usage, nearest_code

# --- exercise 1 ----------------------------------------------------------------------------


def gaussian_nll(mean, x, log_sigma):
    r2 = (x - mean).pow(2)
    return (r2 / (2 * (2 * log_sigma).exp()) + log_sigma + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def test_check_gaussian_nll_accepts_the_solution(capsys):
    checks.check_gaussian_nll(gaussian_nll)
    assert "Correct" in capsys.readouterr().out


HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@pytest.mark.parametrize("wrong, match", [
    (lambda m, x, ls: gaussian_nll(m, x, ls) / 784, "mean over the pixels"),
    (lambda m, x, ls: -gaussian_nll(m, x, ls), "sign is flipped"),
    (lambda m, x, ls: ((x - m) ** 2 / (2 * ls.exp()) + ls + HALF_LOG_2PI).flatten(1).sum(1),
     "not 2 sigma"),
    (lambda m, x, ls: ((x - m) ** 2 / (2 * (2 * ls).exp()) + HALF_LOG_2PI).flatten(1).sum(1),
     "log sigma term is missing"),
    (lambda m, x, ls: ((x - m) ** 2 / (2 * (2 * ls).exp()) + 2 * ls + HALF_LOG_2PI).flatten(1).sum(1),
     "log sigma once"),
    (lambda m, x, ls: ((x - m) ** 2 / (2 * (2 * ls).exp()) + ls).flatten(1).sum(1), "log\\(2 pi\\)"),
    (lambda m, x, ls: ((x - m) ** 2 / (2 * ls).exp() + ls + HALF_LOG_2PI).flatten(1).sum(1),
     "factor 1/2"),
    (lambda m, x, ls: gaussian_nll(m, x, ls).sum(), "expected shape"),
    (lambda m, x, ls: gaussian_nll(m, x, ls) + 1.0, "expected the sum over pixels"),
])
def test_check_gaussian_nll_rejects_typical_mistakes(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        checks.check_gaussian_nll(wrong)


# --- exercise 2 ----------------------------------------------------------------------------


def test_check_nearest_code_accepts_the_solution_and_the_package(capsys):
    checks.check_nearest_code(lambda z, e: torch.cdist(z, e).argmin(1))
    checks.check_nearest_code(nearest_code)
    assert capsys.readouterr().out.count("Correct") == 2


@pytest.mark.parametrize("wrong, match", [
    (lambda z, e: torch.cdist(z, e).argmax(1), "farthest code"),
    (lambda z, e: (z @ e.T).argmax(1), "dot product"),
    (lambda z, e: torch.cdist(z, e).min(1).values, "indices"),
    (lambda z, e: torch.cdist(z, e).argmin(0), "shape \\[300\\]"),
    (lambda z, e: torch.cdist(z, e[1:]).argmin(1), "some indices differ"),
    (lambda z, e: torch.cdist(z, e).argmin(1).tolist(), "torch.Tensor"),
])
def test_check_nearest_code_rejects_typical_mistakes(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        checks.check_nearest_code(wrong)


# --- exercise 3 ----------------------------------------------------------------------------


def perplexity(indices, codes):
    p = torch.bincount(indices.flatten(), minlength=codes).double() / indices.numel()
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum().item())


def test_check_perplexity_accepts_the_solution_and_the_package(capsys):
    checks.check_perplexity(perplexity)
    checks.check_perplexity(lambda i, k: codebook_usage(i, k).perplexity)
    checks.check_perplexity(lambda i, k: torch.tensor(perplexity(i, k)))
    assert capsys.readouterr().out.count("Correct") == 3


def entropy(indices, codes):
    return math.log(perplexity(indices, codes))


def with_nan(indices, codes):
    p = torch.bincount(indices.flatten(), minlength=codes).double() / indices.numel()
    return math.exp(-(p * p.log()).sum().item())


@pytest.mark.parametrize("wrong, match", [
    (entropy, "that is the entropy"),
    (lambda i, k: 2 ** entropy(i, k), "mixes bases"),
    (with_nan, "NaN"),
    (lambda i, k: float(len(i.unique())), "perplexity is"),
    (lambda i, k: [perplexity(i, k)], "return a number"),
])
def test_check_perplexity_rejects_typical_mistakes(wrong, match):
    with pytest.raises(ExerciseError, match=match):
        checks.check_perplexity(wrong)


def test_unwritten_exercises_say_not_attempted(capsys):
    def stub(*args):
        raise NotImplementedError("Exercise: write it")
    for check in (checks.check_gaussian_nll, checks.check_nearest_code, checks.check_perplexity):
        assert check(stub) is None
    assert capsys.readouterr().out.count("Not attempted yet") == 3
