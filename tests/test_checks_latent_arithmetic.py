"""The self-checks of notebook 08 accept right answers and name the usual mistakes."""
import math

import pytest
import torch

from companion.checks import ExerciseError
from companion.checks.latent_arithmetic import (check_inpaint_by_iteration, check_log_prior,
                                                reference_inpaint_by_iteration)
from companion.models import MLPVAE


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- self-checks ----------------------------------------------------------------------------

def test_check_log_prior_accepts_the_right_answer():
    check_log_prior(lambda z: -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi))


@pytest.mark.parametrize("wrong, hint", [
    (lambda z: (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).mean(-1), "sum"),
    (lambda z: -0.5 * z.pow(2).sum(-1), "constant"),
    (lambda z: 0.5 * z.pow(2).sum(-1) + 0.5 * z.shape[-1] * math.log(2 * math.pi), "sign"),
    (lambda z: -z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi), "1/2"),
    (lambda z: -0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi), "shape"),
])
def test_check_log_prior_rejects_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_log_prior(wrong)


@pytest.fixture
def setting():
    torch.manual_seed(3)
    model = MLPVAE(latent_dim=2, hidden=16).eval()
    x = torch.rand(4, 1, 28, 28, generator=gen(13))
    mask = torch.ones(1, 1, 28, 28)
    mask[..., :, 14:] = 0                                           # hide the right half
    return model, x, mask


def test_check_inpaint_by_iteration_accepts_the_reference(setting):
    check_inpaint_by_iteration(reference_inpaint_by_iteration, *setting)


def _no_restore(model, x, mask, steps):
    filled = x * mask
    for _ in range(steps):
        filled = model.reconstruct(filled)
    return filled


def _logits(model, x, mask, steps):
    filled = x * mask
    for _ in range(steps):
        filled = mask * x + (1 - mask) * model.decode(model.encode(filled)[0])
    return filled


def _peeks(model, x, mask, steps):
    filled = x.clone()
    for _ in range(steps):
        filled = mask * x + (1 - mask) * model.reconstruct(filled)
    return filled


def _once(model, x, mask, steps):
    return reference_inpaint_by_iteration(model, x, mask, 1)


@pytest.mark.parametrize("wrong, hint", [(_no_restore, "visible pixels"), (_logits, "logits"),
                                         (_peeks, "hidden pixels of x"), (_once, "single round")])
def test_check_inpaint_by_iteration_rejects_typical_mistakes(setting, wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_inpaint_by_iteration(wrong, *setting)


# --- the core exercise hands the course's log prior on --------------------------------------

from companion.checks.latent_arithmetic import _reference_log_prior  # noqa: E402


def test_reference_log_prior_matches_torch_distributions():
    z = torch.randn(6, 4, generator=gen(5)) * 2
    want = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(_reference_log_prior(z), want, atol=1e-5)
    check_log_prior(_reference_log_prior)


def test_check_log_prior_returns_the_learners_function_when_right(capsys):
    def mine(z):
        return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)

    assert check_log_prior(mine) is mine
    assert "Correct" in capsys.readouterr().out


def test_check_log_prior_hands_on_the_reference_while_unwritten(capsys):
    def log_prior(z):
        raise NotImplementedError

    assert check_log_prior(log_prior) is _reference_log_prior
    assert "Not attempted yet: `log_prior`" in capsys.readouterr().out
