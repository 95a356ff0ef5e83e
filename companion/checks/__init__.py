"""Self-checks for the notebooks' exercises, one module per notebook.

A check prints a short confirmation when the answer is right and raises `ExerciseError`
(an AssertionError) with a hint when it is wrong, so a wrong answer stops the notebook
where the learner can see it.
"""
from __future__ import annotations


class ExerciseError(AssertionError):
    """A self-check found a wrong answer; the message says what to look at."""


def expect(condition: bool, hint: str) -> None:
    """Raise ExerciseError with `hint` unless condition holds."""
    if not condition:
        raise ExerciseError(hint)


def passed(message: str) -> None:
    print(f"Correct: {message}")
