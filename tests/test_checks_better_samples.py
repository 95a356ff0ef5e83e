"""The self-checks of notebook 09 accept right answers and name the usual mistakes."""
import pytest
import torch

from companion.checks import ExerciseError
from companion.checks.better_samples import check_frechet_diagonal, check_responsibilities
from companion.gaussians import gaussian_log_density


def frechet_diagonal(m1, v1, m2, v2):
    return (m1 - m2).pow(2).sum() + (v1.sqrt() - v2.sqrt()).pow(2).sum()


def test_check_frechet_diagonal_accepts_right_answers(capsys):
    check_frechet_diagonal(frechet_diagonal)
    check_frechet_diagonal(lambda m1, v1, m2, v2: float(
        ((m1 - m2) ** 2).sum() + (v1 + v2 - 2 * (v1 * v2).sqrt()).sum()))
    assert capsys.readouterr().out.count("Correct") == 2


@pytest.mark.parametrize("wrong, hint", [
    (lambda m1, v1, m2, v2: (m1 - m2).pow(2).sum() + (v1 - v2).pow(2).sum(), "standard deviations"),
    (lambda m1, v1, m2, v2: (m1 - m2).abs().sum() + (v1.sqrt() - v2.sqrt()).pow(2).sum(),
     "square the differences"),
    (lambda m1, v1, m2, v2: (v1.sqrt() - v2.sqrt()).pow(2).sum(), "left out the mean term"),
    (lambda m1, v1, m2, v2: (m1 - m2).pow(2).sum(), "left out the covariance term"),
    (lambda m1, v1, m2, v2: (m1 - m2).pow(2).sum() + (v1 + v2 - 2 * v1 * v2).sum(), "square root"),
    (lambda m1, v1, m2, v2: (m1 - m2).pow(2) + (v1.sqrt() - v2.sqrt()).pow(2), "one number"),
    (lambda m1, v1, m2, v2: (m1 - m2).pow(2).sum() + (v1.sqrt() - v2.sqrt()).pow(2).sum() / 2,
     "general formula|sqrt\\(v1\\)"),
])
def test_check_frechet_diagonal_names_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_frechet_diagonal(wrong)


def responsibilities(z, weights, means, variances):
    log_joint = gaussian_log_density(z[:, None], means, variances.log()).sum(-1) + weights.log()
    return (log_joint - log_joint.logsumexp(dim=1, keepdim=True)).exp()


def test_check_responsibilities_accepts_the_log_space_answer(capsys):
    check_responsibilities(responsibilities)
    assert "Correct" in capsys.readouterr().out


def _underflows(z, weights, means, variances):
    joint = gaussian_log_density(z[:, None], means, variances.log()).sum(-1).exp() * weights
    return joint / joint.sum(1, keepdim=True)


def _unnormalised(z, weights, means, variances):
    return (gaussian_log_density(z[:, None], means, variances.log()).sum(-1) + weights.log()).exp()


def _columns(z, weights, means, variances):
    log_joint = gaussian_log_density(z[:, None], means, variances.log()).sum(-1) + weights.log()
    return (log_joint - log_joint.logsumexp(dim=0, keepdim=True)).exp()


def _no_weights(z, weights, means, variances):
    log_joint = gaussian_log_density(z[:, None], means, variances.log()).sum(-1)
    return (log_joint - log_joint.logsumexp(dim=1, keepdim=True)).exp()


def _std(z, weights, means, variances):
    return responsibilities(z, weights, means, variances.pow(2))


@pytest.mark.parametrize("wrong, hint", [
    (_underflows, "underflow"), (_unnormalised, "sum to 1"), (_columns, "columns sum to 1"),
    (_no_weights, "left out the weights"), (_std, "differ from the expected"),
    (lambda *args: responsibilities(*args).T, "transposed"),
])
def test_check_responsibilities_names_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_responsibilities(wrong)


def test_unwritten_exercises_say_not_attempted(capsys):
    def stub(*args):
        raise NotImplementedError

    check_frechet_diagonal(stub)
    check_responsibilities(stub)
    assert capsys.readouterr().out.count("Not attempted yet") == 2


def test_a_right_answer_uses_tensors_of_the_given_dtype():
    check_responsibilities(lambda z, w, m, v: responsibilities(z.double(), w.double(),
                                                               m.double(), v.double()))
    assert torch.get_default_dtype() == torch.float32
