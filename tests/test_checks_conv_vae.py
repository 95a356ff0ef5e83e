"""The self-checks of notebook 07 accept right answers and name the usual mistakes."""
import pytest
from torch import nn

from companion.checks import ExerciseError
from companion.checks import conv_vae as checks
from companion.models import ConvVAE


def conv_size(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def tconv_size(size, k, s, p, op):
    return (size - 1) * s - 2 * p + k + op


def test_output_size_check_accepts_the_solution(capsys):
    checks.check_output_sizes(conv_size, tconv_size)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("conv, tconv, hint", [
    (lambda n, k, s, p: (n + 2 * p - k) / s + 1, tconv_size, "integer division"),
    (lambda n, k, s, p: (n + 2 * p - k) // s, tconv_size, "add 1"),
    (lambda n, k, s, p: (n + p - k) // s + 1, tconv_size, "Conv2d gives"),
    (conv_size, lambda n, k, s, p, op: (n - 1) * s - 2 * p + k, "forgets output_padding"),
    (conv_size, lambda n, k, s, p, op: n * s - 2 * p + k + op, "ConvTranspose2d gives"),
])
def test_output_size_check_rejects_typical_mistakes(conv, tconv, hint):
    with pytest.raises(ExerciseError, match=hint):
        checks.check_output_sizes(conv, tconv)


def upsample_decoder(latent_dim):
    return nn.Sequential(
        nn.Linear(latent_dim, 16 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (16, 7, 7)),
        nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, padding=1), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.Conv2d(8, 1, 3, padding=1))


def test_upsample_decoder_check_accepts_the_solution(capsys):
    checks.check_upsample_decoder(upsample_decoder)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("make, hint", [
    (lambda L: ConvVAE(L).decoder, "still uses ConvTranspose2d"),
    (lambda L: nn.Sequential(nn.Linear(L, 784), nn.Unflatten(1, (1, 28, 28))), "nn.Upsample"),
    (lambda L: nn.Sequential(upsample_decoder(L), nn.Sigmoid()), "ends in Sigmoid"),
    (lambda L: nn.Sequential(*list(upsample_decoder(L))[:-2], nn.Conv2d(8, 1, 3, padding=1)),
     r"\[5, 1, 28, 28\], got \[5, 1, 14, 14\]"),
    (lambda L: "not a module", "nn.Module"),
])
def test_upsample_decoder_check_rejects_typical_mistakes(make, hint):
    with pytest.raises(ExerciseError, match=hint):
        checks.check_upsample_decoder(make)
