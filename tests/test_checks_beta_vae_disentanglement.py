"""The self-checks of notebook 06 accept the reference answers and reject typical mistakes."""
import math

import pytest

from companion.checks import ExerciseError
from companion.checks.beta_vae_disentanglement import check_active_units, check_mutual_information
from companion.evaluation.disentanglement import entropy, mutual_information


def test_mutual_information_check_accepts_the_reference(capsys):
    check_mutual_information(mutual_information)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda a, b: -mutual_information(a, b), "sign"),
    (lambda a, b: mutual_information(a, b) / math.log(2), "bits"),
    (lambda a, b: entropy(a), "H\\(a\\)"),
    (lambda a, b: entropy(a) + entropy(b), "expected"),
    (lambda a, b: float("nan"), "log 0"),
])
def test_mutual_information_check_rejects_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_mutual_information(wrong)


def _active(mu, threshold):
    return int((mu.var(dim=0) > threshold).sum())


def test_active_units_check_accepts_the_reference(capsys):
    check_active_units(_active)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda mu, t: int((mu.var(dim=0) <= t).sum()), "inactive"),
    (lambda mu, t: int((mu.pow(2).mean(dim=0) > t).sum()), "offset"),
    (lambda mu, t: int((mu.var(dim=1) > t).sum()), "dim=0"),
    (lambda mu, t: (mu.var(dim=0) > t).sum(), "plain int"),
    (lambda mu, t: int((mu.std(dim=0) > t).sum()), "Expected"),
])
def test_active_units_check_rejects_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_active_units(wrong)
