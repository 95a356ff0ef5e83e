"""The self-checks of notebook 01 accept right answers and name the usual mistakes."""
import copy
import math

import pytest
import torch

import torch.nn.functional as F

from companion.checks import ExerciseError
from companion.checks.autoencoders import (check_bce_from_logits, check_rotate_codes,
                                           check_squared_error_loss)
from companion.losses import bernoulli_nll, squared_error
from companion.models import Autoencoder


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


# --- core exercise: the squared error of each image -------------------------------------------

def reference_squared_error_loss(logits, x):
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(dim=1)


@pytest.mark.parametrize("answer", [
    reference_squared_error_loss,
    lambda a, x: F.mse_loss(torch.sigmoid(a), x, reduction="none").sum(dim=(1, 2, 3)),
    lambda a, x: ((x - torch.sigmoid(a)) ** 2).view(len(x), -1).sum(-1).double(),
])
def test_squared_error_check_returns_a_right_answer_itself(answer, capsys):
    assert check_squared_error_loss(answer) is answer
    assert capsys.readouterr().out.startswith("Correct:")


def test_squared_error_check_hands_on_the_course_answer_for_a_stub(capsys):
    def squared_error_loss(logits, x):
        raise NotImplementedError("Exercise: write `squared_error_loss`")
    assert check_squared_error_loss(squared_error_loss) is squared_error
    assert capsys.readouterr().out.startswith("Not attempted yet: `squared_error_loss`")


def test_squared_error_check_leaves_the_global_random_state_alone():
    before = torch.get_rng_state()
    check_squared_error_loss(reference_squared_error_loss)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("wrong, hint", [
    (lambda a, x: (a - x).pow(2).flatten(1).sum(1), "compared the logits"),
    (lambda a, x: reference_squared_error_loss(a, x) / 784, "averaged over the pixels"),
    (lambda a, x: reference_squared_error_loss(a, x).sqrt(), "square root"),
    (lambda a, x: (torch.sigmoid(a) - x).abs().flatten(1).sum(1), "absolute error"),
    (lambda a, x: F.mse_loss(torch.sigmoid(a), x), "one number for the whole batch"),
    (lambda a, x: reference_squared_error_loss(a, x).sum(), "one number for the whole batch"),
    (lambda a, x: reference_squared_error_loss(a, x).flatten()[:2], "expected shape"),
    (lambda a, x: reference_squared_error_loss(a, x).tolist(), "torch.Tensor"),
    (lambda a, x: reference_squared_error_loss(a, x) / 0, "NaN or infinity"),
    (lambda a, x: (torch.sigmoid(a) - x.round()).pow(2).flatten(1).sum(1), "expected the sum"),
    (lambda a, x: reference_squared_error_loss(a, x).detach(), "no gradient"),
])
def test_squared_error_check_names_the_mistake(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_squared_error_loss(wrong)


# --- exercise 1: the Bernoulli loss from logits -----------------------------------------------

def reference_bce_from_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    softplus = logits.clamp(min=0) + torch.log1p(torch.exp(-logits.abs()))   # log(1 + e^a)
    return (softplus - x * logits).flatten(1).sum(dim=1)


def test_reference_bce_from_logits_is_bernoulli_nll_even_for_huge_logits():
    x = random_images(3)
    for scale in (3.0, 300.0):
        logits = scale * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        got = reference_bce_from_logits(logits, x)
        assert torch.isfinite(got).all()
        assert torch.allclose(got, bernoulli_nll(logits, x), rtol=1e-5)


def test_check_bce_from_logits_accepts_correct_answers(capsys):
    check_bce_from_logits(reference_bce_from_logits)
    check_bce_from_logits(lambda a, x: (torch.nn.functional.softplus(a) - x * a).flatten(1).sum(1))
    check_bce_from_logits(lambda a, x: -(x * torch.nn.functional.logsigmoid(a) + (1 - x)
                                         * torch.nn.functional.logsigmoid(-a)).flatten(1).sum(1))
    assert capsys.readouterr().out.count("Correct") == 3


def naive(a, x):
    p = torch.sigmoid(a)
    return -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)


def with_epsilon(a, x):
    p = torch.sigmoid(a)
    return -(x * (p + 1e-10).log() + (1 - x) * (1 - p + 1e-10).log()).flatten(1).sum(1)


def with_where(a, x):
    softplus = torch.where(a > 0, a + torch.log1p(torch.exp(-a)), torch.log1p(torch.exp(a)))
    return (softplus - x * a).flatten(1).sum(1)


def in_place(a, x):
    loss = reference_bce_from_logits(a, x)
    a.abs_()                                   # the caller's logits are now changed
    return loss


@pytest.mark.parametrize("wrong, hint", [
    (naive, "not finite"),
    (lambda a, x: (torch.log(1 + torch.exp(a)) - x * a).flatten(1).sum(1), "overflows"),
    (with_epsilon, "far too small"),
    (lambda a, x: reference_bce_from_logits(a.clamp(-20, 20), x), "far too small"),
    (lambda a, x: -reference_bce_from_logits(a, x), "wrong sign"),
    (lambda a, x: reference_bce_from_logits(a, x) / 784, "mean over pixels"),
    (lambda a, x: reference_bce_from_logits(-a, x), "probability of background"),
    (lambda a, x: reference_bce_from_logits(a, x).sum(), "one number per image"),
    (lambda a, x: reference_bce_from_logits(a, x).tolist(), "should return a tensor"),
    (lambda a, x: reference_bce_from_logits(a, x.round()), "differs from the expected value"),
    (lambda a, x: reference_bce_from_logits(a, x).detach(), "No gradient flows"),
    (with_where, "torch.where"),
    (in_place, "changed the logits"),
])
def test_check_bce_from_logits_rejects_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_bce_from_logits(wrong)


# --- exercise 2: rotating the latent space ------------------------------------------------------

def rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]])


def reference_rotate(model, angle):
    return rotate_in_place(copy.deepcopy(model), angle)


def rotate_in_place(model, angle):
    r = rotation(angle)
    with torch.no_grad():
        model.encoder[-1].weight.copy_(r @ model.encoder[-1].weight)
        model.encoder[-1].bias.copy_(r @ model.encoder[-1].bias)
        model.decoder[0].weight.copy_(model.decoder[0].weight @ r.T)
    return model


def rotate_original_return_copy(model, angle):
    rotated = reference_rotate(model, angle)
    with torch.no_grad():
        model.encoder[-1].bias.zero_()
    return rotated


def without_bias(model, angle):
    rotated = reference_rotate(model, angle)
    with torch.no_grad():
        rotated.encoder[-1].bias.copy_(model.encoder[-1].bias)
    return rotated


def without_decoder(model, angle):
    rotated = reference_rotate(model, angle)
    with torch.no_grad():
        rotated.decoder[0].weight.copy_(model.decoder[0].weight)
    return rotated


def scaled_instead(model, angle):
    rotated = copy.deepcopy(model)
    with torch.no_grad():
        rotated.encoder[-1].weight.mul_(2)
        rotated.encoder[-1].bias.mul_(2)
        rotated.decoder[0].weight.div_(2)
    return rotated


@pytest.fixture
def model_and_images():
    torch.manual_seed(0)
    return Autoencoder(latent_dim=2, hidden=16).eval(), random_images(8)


def test_check_rotate_codes_accepts_the_reference(model_and_images, capsys):
    model, x = model_and_images
    check_rotate_codes(reference_rotate, model, x)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (rotate_in_place, "returned the very model"),
    (rotate_original_return_copy, "changed the model it was given"),
    (lambda model, angle: copy.deepcopy(model), "did not change"),
    (lambda model, angle: reference_rotate(model, -angle), "clockwise"),
    (without_bias, "rotate the encoder's bias too"),
    (without_decoder, "reconstructions changed"),
    (scaled_instead, "not the old codes rotated"),
])
def test_check_rotate_codes_rejects_typical_mistakes(model_and_images, wrong, hint):
    model, x = model_and_images
    with pytest.raises(ExerciseError, match=hint):
        check_rotate_codes(wrong, model, x)


def test_check_rotate_codes_puts_back_a_model_it_found_changed(model_and_images):
    model, x = model_and_images
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ExerciseError):
        check_rotate_codes(rotate_original_return_copy, model, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_check_rotate_codes_needs_a_two_dimensional_code():
    with pytest.raises(ExerciseError, match="2-D latent space"):
        check_rotate_codes(reference_rotate, Autoencoder(latent_dim=3, hidden=8), random_images(2))
