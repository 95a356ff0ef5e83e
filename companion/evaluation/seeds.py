"""A number measured over several training runs: its mean, its spread, and when two differ.

    kl = Spread([run.history.test_kl[-1] for run in runs])    # one value per training seed
    print(f"{kl:.1f}")                                        # "23.4 ± 0.6 (3 seeds)"
    kl.below(other)                                           # the 95 % intervals are apart
    compare(kl, other)                                        # "<", ">" or "not resolved ..."

The interval is Student's t interval for the mean, mean ± t sd / sqrt(n), with sd the sample
standard deviation: with 3 seeds it is mean ± 2.48 sd, so only a clear gap resolves. A
comparison is asserted only when it resolves; otherwise say that it is not resolved at n seeds.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""The 0.975 quantile of Student's t with 1, 2, ... 10 degrees of freedom."""


@dataclass(frozen=True)
class Spread:
    """Values of one measurement, one per training seed."""
    values: tuple[float, ...]

    def __post_init__(self):
        values = tuple(float(v) for v in self.values)       # any iterable, stored as a tuple
        if not values:
            raise ValueError("A Spread needs at least one value: one per training run.")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"A Spread takes finite numbers, not {values}: did a run diverge?")
        object.__setattr__(self, "values", values)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n

    @property
    def sd(self) -> float:
        """The sample standard deviation (n - 1 in the denominator); NaN for one value."""
        if self.n < 2:
            return math.nan
        return math.sqrt(sum((v - self.mean) ** 2 for v in self.values) / (self.n - 1))

    @property
    def interval(self) -> tuple[float, float]:
        """The 95 % t interval for the mean; unbounded for one value."""
        if self.n < 2:
            return -math.inf, math.inf
        if self.n - 1 > len(T_975):
            raise ValueError(f"Up to {len(T_975) + 1} seeds are supported, not {self.n}.")
        half = T_975[self.n - 2] * self.sd / math.sqrt(self.n)
        return self.mean - half, self.mean + half

    def below(self, other: "Spread") -> bool:
        """This interval lies wholly below other's: lower beyond the spread of the runs."""
        return self.interval[1] < other.interval[0]

    def __format__(self, spec: str) -> str:
        """'.2f' formats the mean and the sd; a width before it pads the whole: '>30.2f'."""
        width, dot, number = spec.partition(".")
        number = dot + number if dot else ".3g"
        sd = "n/a" if self.n < 2 else format(self.sd, number)
        seeds = "1 seed" if self.n == 1 else f"{self.n} seeds"
        return format(f"{format(self.mean, number)} ± {sd} ({seeds})", width)

    def __str__(self) -> str:
        return format(self)


def compare(a: Spread, b: Spread) -> str:
    """'<' or '>' when the intervals are apart; else 'not resolved at n seeds'."""
    if a.below(b):
        return "<"
    if b.below(a):
        return ">"
    n = min(a.n, b.n)
    return f"not resolved at {n} seed{'' if n == 1 else 's'}"
