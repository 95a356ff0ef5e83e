"""Checks of the values a learner types, answered with what to pass instead."""
from __future__ import annotations


def check_counts(where: str, **counts) -> None:
    """Raise a ValueError for a count that is not a whole number >= 1 (in a list: each one).

    where names the call, e.g. "fit" or "MLPVAE", so the message points at the line to fix.
    """
    for name, value in counts.items():
        listed = isinstance(value, (list, tuple))
        values = value if listed else [value]
        if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                 for v in values):
            what = "a list of whole numbers >= 1" if listed else "a whole number >= 1"
            raise ValueError(f"{where}({name}={value!r}): {name} takes {what}.")
