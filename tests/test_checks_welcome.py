"""The self-checks of notebook 00 accept the reference answers and name the usual mistakes."""
import math

import pytest
import torch

from companion.checks import ExerciseError
from companion.checks import welcome
from companion.losses import bernoulli_nll


# --- exercise 1: uint8 -> [0, 1] ------------------------------------------------------

def test_raw_pixels_cover_every_byte():
    raw = welcome._raw_pixels()
    assert raw.dtype == torch.uint8 and raw.shape == (3, 28, 28)
    assert torch.equal(raw.unique(), torch.arange(256, dtype=torch.uint8))


@pytest.mark.parametrize("answer", [lambda r: r.float() / 255, lambda r: r / 255,
                                    lambda r: r.to(torch.float64).div(255)])
def test_to_unit_interval_accepts_right_answers(answer, capsys):
    welcome.check_to_unit_interval(answer)
    assert capsys.readouterr().out.startswith("Correct:")


@pytest.mark.parametrize("answer, hint", [
    (lambda r: r, "convert to float"),
    (lambda r: r // 255, "convert to float"),
    (lambda r: r.float(), "divide by 255"),
    (lambda r: r.float() / 256, "256"),
    (lambda r: r.float() / 255 / 255, "twice"),
    (lambda r: r.div(255, rounding_mode="floor").float(), "pixel / 255"),
    (lambda r: r.float().flatten(1) / 255, "keep the shape"),
    (lambda r: (r.float() / 255).tolist(), "torch.Tensor"),
    (lambda r: r.float() / 0, "NaN or infinity"),
])
def test_to_unit_interval_names_the_mistake(answer, hint):
    with pytest.raises(ExerciseError, match=hint):
        welcome.check_to_unit_interval(answer)


# --- exercise 2: per-class mean images ------------------------------------------------

def reference_class_means(images, labels, n_classes=10):
    return torch.stack([images[labels == c].mean(0) for c in range(n_classes)])


def test_toy_set_is_a_fair_test():
    images, labels = welcome._toy_labelled_set()
    counts = torch.bincount(labels)
    assert len(set(counts.tolist())) == 4              # unequal class sizes
    assert list(dict.fromkeys(labels.tolist())) != [0, 1, 2, 3]   # not in label order
    assert 0 <= images.min() and images.max() <= 1


def test_class_means_accepts_reference(capsys):
    welcome.check_class_means(reference_class_means)
    assert "Correct:" in capsys.readouterr().out


def test_class_means_accepts_a_one_hot_matmul():
    def by_matmul(images, labels, n_classes=10):
        onehot = torch.nn.functional.one_hot(labels, n_classes).double()   # [N, C]
        sums = onehot.T @ images.flatten(1).double()                         # [C, 784]
        return (sums / onehot.sum(0)[:, None]).view(n_classes, 1, 28, 28)
    welcome.check_class_means(by_matmul)


def _by_appearance(images, labels, n_classes=10):
    order = list(dict.fromkeys(labels.tolist()))
    return torch.stack([images[labels == c].mean(0) for c in order])


@pytest.mark.parametrize("answer, hint", [
    (lambda x, y, n: x.mean(0, keepdim=True).expand(n, -1, -1, -1), "same image"),
    (lambda x, y, n: torch.stack([x[y == c].sum(0) for c in range(n)]), "sum instead"),
    (_by_appearance, "first appearance"),
    (lambda x, y, n: reference_class_means(x, y, n).flatten(1), "wrong shape"),
    (lambda x, y, n: reference_class_means(x, y, n)[:3], "one 1x28x28 mean image"),
    (lambda x, y, n: reference_class_means(x, y, n).numpy(), "torch.Tensor"),
    (lambda x, y, n: torch.stack([x[y == c].median(0).values for c in range(n)]), "average"),
])
def test_class_means_names_the_mistake(answer, hint):
    with pytest.raises(ExerciseError, match=hint):
        welcome.check_class_means(answer)


# --- exercise 3: the floor of the Bernoulli NLL ---------------------------------------

def reference_floor(x):
    return -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x)).flatten(1).sum(1)


def test_binary_entropy_matches_torch_distributions():
    x = torch.rand(1000, dtype=torch.float64) * 0.998 + 0.001
    want = torch.distributions.Bernoulli(probs=x).entropy()
    assert torch.allclose(welcome._binary_entropy(x), want)
    assert welcome._binary_entropy(torch.tensor([0.0, 1.0])).eq(0).all()


def test_floor_is_the_minimum_of_the_bernoulli_nll():
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64) * 0.98 + 0.01
    floor = welcome._binary_entropy(x).flatten(1).sum(1)
    at_p_equals_x = bernoulli_nll(torch.logit(x), x)
    assert torch.allclose(at_p_equals_x, floor)
    for shift in (-0.5, -0.01, 0.01, 0.5):                # any other prediction does worse
        assert (bernoulli_nll(torch.logit(x) + shift, x) > floor).all()


def test_floor_of_grey_image_is_784_log_2(capsys):
    welcome.check_bce_floor(reference_floor)
    out = capsys.readouterr().out
    assert out.startswith("Correct:") and f"{784 * math.log(2):.2f}" in out


def _naive(x):
    return -(x * x.log() + (1 - x) * (1 - x).log()).flatten(1).sum(1)


@pytest.mark.parametrize("answer, hint", [
    (_naive, "NaN"),
    (lambda x: reference_floor(x) / 784, "averaged over pixels"),
    (lambda x: reference_floor(x) / math.log(2), "bits"),
    (lambda x: -reference_floor(x), "sign"),
    (lambda x: -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x)).flatten(1), "one number per image"),
    (lambda x: -torch.xlogy(x, x).flatten(1).sum(1), "natural log"),
    (lambda x: reference_floor(x).tolist(), "torch.Tensor"),
])
def test_bce_floor_names_the_mistake(answer, hint):
    with pytest.raises(ExerciseError, match=hint):
        welcome.check_bce_floor(answer)


def test_to_unit_interval_stub_is_not_attempted_yet(capsys):
    def to_unit_interval(raw):
        raise NotImplementedError("Exercise: write `to_unit_interval`")
    assert welcome.check_to_unit_interval(to_unit_interval) is None
    assert capsys.readouterr().out.startswith("Not attempted yet: `to_unit_interval`")
