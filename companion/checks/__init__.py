"""Self-checks for the notebooks' exercises, one module per notebook.

A check prints a short confirmation when the answer is right and raises `ExerciseError`
(an AssertionError) with a hint when it is wrong, so a wrong answer stops the notebook
where the learner can see it.
"""
from __future__ import annotations

import torch


class ExerciseError(AssertionError):
    """A self-check found a wrong answer; the message says what to look at."""


def expect(condition: bool, hint: str) -> None:
    """Raise ExerciseError with `hint` unless condition holds."""
    if not condition:
        raise ExerciseError(hint)


def passed(message: str) -> None:
    print(f"Correct: {message}")


def as_double(out, shape: tuple[int, ...], what: str, finite: bool = False) -> torch.Tensor:
    """The learner's result as a float64 CPU tensor, after checking its type and shape.

    finite=True also refuses NaN and infinity (leave it off where an overflow has its own hint).
    """
    expect(isinstance(out, torch.Tensor), f"{what}: return a torch.Tensor, not {type(out).__name__}")
    expect(tuple(out.shape) == shape, f"{what}: expected shape {list(shape)}, got {list(out.shape)}")
    expect(out.is_floating_point(), f"{what}: the result has dtype {out.dtype}; expected floats")
    out = out.detach().double().cpu()
    if finite:
        expect(bool(torch.isfinite(out).all()), f"{what}: the result contains NaN or infinity")
    return out


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and equal up to rounding: how a check compares an answer with a reference."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)
