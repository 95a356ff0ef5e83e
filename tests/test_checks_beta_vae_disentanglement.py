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


# --- the core exercise: the KL of each coordinate ----------------------------------------------

from companion.checks.beta_vae_disentanglement import (  # noqa: E402
    _reference_kl_per_coordinate, check_kl_per_coordinate)
from companion.models import MLPVAE  # noqa: E402


def _kl_terms(model, images):
    mu, logvar = model.encode(images)
    return mu, logvar


def test_kl_per_coordinate_check_accepts_the_reference_and_hands_the_learners_on(capsys):
    def mine(model, images):
        mu, logvar = _kl_terms(model, images)
        return (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).mean(0)

    assert check_kl_per_coordinate(_reference_kl_per_coordinate) is _reference_kl_per_coordinate
    assert check_kl_per_coordinate(mine) is mine
    assert capsys.readouterr().out.count("Correct") == 2


def test_kl_per_coordinate_reference_is_the_mean_kl_of_a_real_vae():
    torch.manual_seed(0)
    model = MLPVAE(latent_dim=3, hidden=8).eval()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    kls = _reference_kl_per_coordinate(model, x)
    mu, logvar = model.encode(x)
    want = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, (0.5 * logvar).exp()), torch.distributions.Normal(0.0, 1.0))
    assert kls.shape == (3,) and torch.allclose(kls, want.mean(0), atol=1e-5)


def _kl(mu, logvar):
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, x: _kl(*_kl_terms(m, x)).sum(1), "one number per image"),
    (lambda m, x: _kl(*_kl_terms(m, x)), "every image and coordinate"),
    (lambda m, x: _kl(*_kl_terms(m, x)).sum(1).mean(), "the rate"),
    (lambda m, x: _kl(*_kl_terms(m, x)).sum(0), "summed over the images"),
    (lambda m, x: 2 * _kl(*_kl_terms(m, x)).mean(0), "factor 1/2"),
    (lambda m, x: _kl(_kl_terms(m, x)[0], 2 * _kl_terms(m, x)[1]).mean(0), "log sigma\\."),
    (lambda m, x: (_kl(*_kl_terms(m, x)) + 0.5).mean(0), "-1 is missing"),
    (lambda m, x: (_kl(*_kl_terms(m, x)) + _kl_terms(m, x)[1]).mean(0), "sign"),
    (lambda m, x: 0.5 * (_kl_terms(m, x)[0] ** 2 + _kl_terms(m, x)[1] - 1
                         - _kl_terms(m, x)[1].log()).mean(0), "NaN"),
    (lambda m, x: _kl(*_kl_terms(m, x)).mean(0) + 0.01, "the prior itself"),
    (lambda m, x: 1.1 * _kl(*_kl_terms(m, x)).mean(0), "expected"),
    (lambda m, x: _kl(*_kl_terms(m, x)).mean(0).tolist(), "torch.Tensor"),
])
def test_kl_per_coordinate_check_names_the_usual_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_kl_per_coordinate(wrong)


def test_kl_per_coordinate_check_hands_on_the_reference_while_unwritten(capsys):
    def kl_per_coordinate(model, images):
        raise NotImplementedError

    assert check_kl_per_coordinate(kl_per_coordinate) is _reference_kl_per_coordinate
    assert "Not attempted yet: `kl_per_coordinate`" in capsys.readouterr().out
