"""MIG and its parts: entropy and mutual information of discrete labels, discretisation."""
import math

import pytest
import torch

from companion.evaluation.disentanglement import (discretize, entropy, gap, mi_matrix, mig,
                                                  mutual_information)

N = 20_000


def _factors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, n, (N,), generator=g) for n in (3, 6, 16)], dim=1)


def test_entropy_of_uniform_and_constant_labels():
    assert entropy(torch.arange(8).repeat(10)) == pytest.approx(math.log(8))
    assert entropy(torch.zeros(50, dtype=torch.long)) == pytest.approx(0.0)
    assert entropy(torch.tensor([5, 5, 9, 9, 9, 9])) == pytest.approx(
        -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3)))


def test_mutual_information_against_a_direct_sum():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 4, (3000,), generator=g)
    b = (a + torch.randint(0, 2, (3000,), generator=g)) % 5
    want = 0.0
    for i in range(4):
        for j in range(5):
            p = ((a == i) & (b == j)).double().mean().item()
            if p > 0:
                want += p * math.log(p / ((a == i).double().mean().item() * (b == j).double().mean().item()))
    assert mutual_information(a, b) == pytest.approx(want, rel=1e-9)
    assert mutual_information(a, b) == pytest.approx(mutual_information(b, a))
    assert mutual_information(a, a * 7 + 3) == pytest.approx(entropy(a))      # relabelling
    assert mutual_information(a, torch.zeros_like(a)) == pytest.approx(0.0, abs=1e-12)


def test_discretize_bins_each_column_between_its_min_and_max():
    z = torch.tensor([[0.0, -10.0], [0.5, 0.0], [1.0, 10.0], [0.26, -4.9]])
    codes = discretize(z, bins=4)
    assert codes.tolist() == [[0, 0], [2, 2], [3, 3], [1, 1]]
    assert discretize(torch.ones(5, 2), bins=3).eq(0).all()           # a constant column
    assert mi_matrix(codes, codes).shape == (2, 2)


def test_mig_is_one_when_latents_are_the_factors():
    f = _factors()
    assert mig(f.float(), f).score > 0.99
    z = torch.cat([torch.randn(N, 4, generator=torch.Generator().manual_seed(2)), f.float()], 1)
    result = mig(z, f)
    assert result.score > 0.99 and result.mi.shape == (7, 3)
    assert result.mi[4:].argmax(0).tolist() == [0, 1, 2]               # each factor found


def test_mig_is_zero_for_noise_and_for_duplicated_factors():
    f = _factors()
    noise = torch.randn(N, 10, generator=torch.Generator().manual_seed(3))
    assert mig(noise, f).score < 0.01
    twice = torch.cat([f.float(), f.float()], 1)                        # each factor in two places
    assert mig(twice, f).score < 0.01


def test_mig_of_a_rotation_is_in_between():
    g = torch.Generator().manual_seed(4)
    v = torch.randint(0, 10, (N, 2), generator=g)
    c, s = math.cos(math.pi / 8), math.sin(math.pi / 8)
    z = v.float() @ torch.tensor([[c, -s], [s, c]])                     # mixed: partly entangled
    assert 0.05 < mig(z, v, bins=10).score < 0.9


def test_gap_skips_constant_factors_and_mig_checks_lengths():
    out = gap(torch.tensor([[1.0, 0.0], [0.25, 0.0]]), torch.tensor([1.5, 0.0]))
    assert out[0] == pytest.approx(0.5) and out[1].isnan()
    f = _factors()
    f[:, 1] = 0
    assert mig(f.float(), f).per_factor[1].isnan() and mig(f.float(), f).score > 0.99
    with pytest.raises(ValueError, match="same examples"):
        mig(torch.zeros(5, 2), torch.zeros(6, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="constant"):
        mig(torch.randn(400, 2), torch.zeros(400, 1, dtype=torch.long))


@pytest.mark.parametrize("n, bins, match", [
    (199, 20, "at least 200 examples, or fewer bins"),
    (100, 1, "bins must be >= 2"),
    (100, 0, "bins must be >= 2"),
])
def test_mig_refuses_too_few_examples_per_bin_and_too_few_bins(n, bins, match):
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(5))
    with pytest.raises(ValueError, match=match):
        mig(z, torch.randint(0, 3, (n, 1), generator=torch.Generator().manual_seed(6)), bins)


def test_mig_refuses_a_factor_vector_without_its_column():
    with pytest.raises(ValueError, match=r"v\[:, None\]"):
        mig(torch.randn(400, 2), torch.randint(0, 3, (400,)))
