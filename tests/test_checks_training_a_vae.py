"""The self-checks of notebook 05 accept the reference answers and reject typical wrong ones."""
import math

import pytest
import torch

from companion.checks import ExerciseError
from companion.checks.training_a_vae import check_iwae, check_kl_per_dimension


def test_iwae_check_accepts_logsumexp(capsys):
    check_iwae(lambda log_w: torch.logsumexp(log_w, 0) - math.log(log_w.shape[0]))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda w: w.mean(0), "ELBO"),
    (lambda w: torch.logsumexp(w, 0), "log k"),
    (lambda w: w.exp().mean(0).log(), "logsumexp"),
    (lambda w: torch.logsumexp(w, 1) - math.log(w.shape[1]), "shape"),
    (lambda w: w.max(0).values, "logsumexp"),
    (lambda w: [0.0], "Tensor"),
])
def test_iwae_check_rejects(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_iwae(wrong)


def test_kl_check_accepts_reference(capsys):
    check_kl_per_dimension(lambda mu, lv: (0.5 * (mu**2 + lv.exp() - lv - 1)).mean(0))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda mu, lv: (0.5 * (mu**2 + lv.exp() - lv - 1)).sum(0), "sum over the examples"),
    (lambda mu, lv: (mu**2 + lv.exp() - lv - 1).mean(0), "twice"),
    (lambda mu, lv: (0.5 * (mu**2 + lv.exp() - lv - 1)).mean(1), "shape"),
    (lambda mu, lv: (-0.5 * (mu**2 + lv.exp() - lv - 1)).mean(0), "negative"),
    (lambda mu, lv: (0.5 * (mu**2 + lv.exp() + lv - 1)).mean(0), "per dimension"),
])
def test_kl_check_rejects(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_kl_per_dimension(wrong)
