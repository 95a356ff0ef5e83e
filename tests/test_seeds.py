"""Spread: mean ± sd over training seeds and Student's t interval."""
import math

import pytest
import torch
from torch.distributions import StudentT

from companion.evaluation.seeds import T_975, Spread, compare


def test_mean_sd_and_format():
    s = Spread([1.0, 2.0, 4.0])
    assert s.n == 3 and s.mean == pytest.approx(7 / 3)
    assert s.sd == pytest.approx(torch.tensor([1.0, 2.0, 4.0]).std().item())
    assert f"{s:.2f}" == "2.33 ± 1.53 (3 seeds)"
    assert f"{s:>24.1f}" == "     2.3 ± 1.5 (3 seeds)" and f"{s}" == "2.33 ± 1.53 (3 seeds)"
    one = Spread([5.0])
    assert math.isnan(one.sd) and one.interval == (-math.inf, math.inf)
    assert f"{one:.1f}" == "5.0 ± n/a (1 seed)"


@pytest.mark.parametrize("df", range(1, 11))
def test_the_t_quantiles_leave_2_5_percent_in_each_tail(df):
    t = T_975[df - 1]
    grid = torch.linspace(0, t, 200_001, dtype=torch.float64)
    density = StudentT(torch.tensor(float(df), dtype=torch.float64)).log_prob(grid).exp()
    assert 0.5 + torch.trapezoid(density, grid).item() == pytest.approx(0.975, abs=2e-4)


def test_the_interval_covers_the_mean_95_percent_of_the_time():
    g = torch.Generator().manual_seed(0)
    for n in (3, 5):
        covered = sum(lo <= 0 <= hi for lo, hi in
                      (Spread(torch.randn(n, generator=g).tolist()).interval for _ in range(4000)))
        assert 0.94 < covered / 4000 < 0.96      # 3.4 standard errors either side of 0.95


def test_compare_resolves_only_a_clear_gap():
    low, high = Spread([1.0, 1.1, 0.9]), Spread([2.0, 2.1, 1.9])
    assert low.below(high) and not high.below(low)
    assert compare(low, high) == "<" and compare(high, low) == ">"
    assert compare(low, Spread([1.2, 1.0, 1.4])) == "not resolved at 3 seeds"
    assert compare(Spread([1.0]), Spread([9.0])) == "not resolved at 1 seed"


@pytest.mark.parametrize("values, message", [([], "at least one"), ([1.0, math.nan], "finite"),
                                             ([0.0] * 12, "Up to 11 seeds")])
def test_bad_values_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        Spread(values).interval
