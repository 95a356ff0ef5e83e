"""The self-checks of notebook 06 accept the reference answers and reject typical mistakes."""
import math

import pytest
import torch

from companion.checks import ExerciseError
from companion.checks.beta_vae_disentanglement import (check_coordinate_for,
                                                       check_gaussian_total_correlation,
                                                       check_mutual_information)
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


def _coordinate_for(mi, kl, factor, active=0.05):
    usable = kl > active
    if not usable.any():
        return None
    return int(mi[:, factor].masked_fill(~usable, -float("inf")).argmax())


def test_coordinate_for_check_accepts_the_reference(capsys):
    check_coordinate_for(_coordinate_for)
    assert "Correct" in capsys.readouterr().out


def _in_place(mi, kl, factor, active=0.05):
    mi[kl <= active] = -1.0
    return None if (kl <= active).all() else int(mi[:, factor].argmax())


@pytest.mark.parametrize("wrong, hint", [
    (lambda mi, kl, k, active=0.05: int(mi[:, k].argmax()), "largest MI, but its KL"),
    (lambda mi, kl, k, active=0.05: _coordinate_for(mi, kl, k, active) + 1, "0-based"),
    (lambda mi, kl, k, active=0.05: int((mi[:, k] * kl).argmax()), "do not weight"),
    (lambda mi, kl, k, active=0.05: int(mi[k].argmax()), "is a row"),
    (lambda mi, kl, k, active=0.05: _coordinate_for(mi, kl, k), "`active` argument"),
    (lambda mi, kl, k, active=0.05: int(mi[:, k].masked_fill(kl <= active, -1).argmax()),
     "return None"),
    (lambda mi, kl, k, active=0.05: mi[:, k].masked_fill(kl <= active, -1).argmax(), "plain int"),
    (_in_place, "in place"),
    (lambda mi, kl, k, active=0.05: int(mi[:, k].masked_fill(kl <= active, 9).argmin()),
     "expected coordinate 4"),
    (lambda mi, kl, k, active=0.05: int(mi[:, k].sort(descending=True).indices[1]), "factor 0"),
])
def test_coordinate_for_check_rejects_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_coordinate_for(wrong)


def _gaussian_tc(cov):
    return 0.5 * float(cov.diagonal().log().sum() - torch.logdet(cov))


def test_gaussian_total_correlation_check_accepts_the_reference(capsys):
    check_gaussian_total_correlation(_gaussian_tc)
    assert "Correct" in capsys.readouterr().out


def _in_place_tc(cov):
    cov.diagonal().log_()
    return 0.0


@pytest.mark.parametrize("wrong, hint", [
    (lambda cov: -_gaussian_tc(cov), "negative"),
    (lambda cov: 2 * _gaussian_tc(cov), "factor 1/2"),
    (lambda cov: _gaussian_tc(cov) / math.log(2), "bits"),
    (lambda cov: -0.5 * float(torch.logdet(cov)), "diagonal covariance|left out the marginals"),
    (lambda cov: 0.5 * float(cov.diagonal().log().sum() - cov.det()), "diagonal covariance"),
    (lambda cov: _gaussian_tc(cov[:2, :2]), "3 x 3"),
    (lambda cov: float("nan"), "went wrong"),
    (_in_place_tc, "in place"),
])
def test_gaussian_total_correlation_check_rejects_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_gaussian_total_correlation(wrong)


def test_gaussian_total_correlation_check_reports_an_unwritten_stub(capsys):
    def gaussian_total_correlation(cov):
        raise NotImplementedError("Exercise: write `gaussian_total_correlation`")
    assert check_gaussian_total_correlation(gaussian_total_correlation) is None
    assert "Not attempted yet" in capsys.readouterr().out
