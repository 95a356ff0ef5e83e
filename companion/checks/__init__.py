"""Self-checks for the notebooks' exercises, one module per notebook.

A check prints a short confirmation when the answer is right and raises `ExerciseError`
(an AssertionError) with a hint when it is wrong, so a wrong answer stops the notebook
where the learner can see it. Every public check is decorated with `self_check`: an exercise
not attempted yet (its function still raises the NotImplementedError of the learner copy)
gets one line saying so instead of a traceback, so "Run All" on a learner copy goes on.
A cell after an exercise that uses its function runs its code under `skip_if_unwritten`,
which skips the rest of the cell, with one line, while that function is not written; or,
for an exercise on the core path whose answer the rest of the notebook needs, its check is
decorated `self_check(reference=...)` and hands the course's answer on until the learner's
is written.
"""
from __future__ import annotations

import contextlib
import dis
import functools
import inspect
import sysconfig
from pathlib import Path
from types import TracebackType
from typing import Callable, Iterator, TypeVar

import torch

Check = TypeVar("Check", bound=Callable[..., None])

# Code that is not the learner's: this package, the standard library, installed packages.
_NOT_LEARNER = [Path(__file__).resolve().parent.parent] + [
    Path(sysconfig.get_paths()[key]).resolve() for key in ("stdlib", "platstdlib", "purelib", "platlib")]


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
    out = out.detach().cpu().double()
    if finite:
        expect(bool(torch.isfinite(out).all()), f"{what}: the result contains NaN or infinity")
    return out


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Same shape and equal up to rounding: how a check compares an answer with a reference."""
    return a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol)


def unwritten(err: BaseException) -> str | None:
    """The learner's function whose own `raise NotImplementedError` threw err, else None.

    None for every other error, including torch's NotImplementedError for an operation that
    a device or tensor type lacks: that is a bug to report, not an exercise left open.
    """
    if not isinstance(err, NotImplementedError) or err.__traceback__ is None:
        return None
    tb: TracebackType = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if any(Path(code.co_filename).resolve().is_relative_to(d) for d in _NOT_LEARNER):
        return None
    if not any(i.offset == tb.tb_lasti and i.opname == "RAISE_VARARGS"
               for i in dis.get_instructions(code)):
        return None                      # raised inside a call into compiled code
    return "your code" if code.co_name.startswith("<") else f"`{code.co_name}`"


def self_check(check: Check | None = None, *, reference: Callable | None = None):
    """Decorate a check: an unattempted exercise prints one line and returns None.

    With `reference`, for a core exercise whose function the cells below need, the check
    returns the function to go on with: the learner's once it passes, and `reference`, the
    course's answer, while the exercise is not written yet (one line says so). Use it as
    `fn = checks.topic.check_fn(fn)`; a wrong answer still stops with its hint.
    """
    if check is None:
        return functools.partial(self_check, reference=reference)
    learners = next(iter(inspect.signature(check).parameters))   # the learner's function

    @functools.wraps(check)
    def run(*args, **kwargs):
        try:
            check(*args, **kwargs)
        except NotImplementedError as err:
            what = unwritten(err)
            if what is None:
                raise
            if reference is None:
                print(f"Not attempted yet: {what} still raises NotImplementedError. Write your "
                      "answer in the cell above, run it, then run this check again.")
                return None
            print(f"Not attempted yet: {what} still raises NotImplementedError. Until you "
                  "write it, the cells below use the course's answer; run this check again "
                  "once yours is written.")
            return reference
        if reference is None:
            return None
        return args[0] if args else kwargs[learners]
    return run


@contextlib.contextmanager
def skip_if_unwritten() -> Iterator[None]:
    """Run the block; stop it with one line if it calls an exercise function not written yet.

    For the cells after an exercise that use its function: in a learner copy they wait for
    the learner's answer instead of stopping "Run All". Any other error, a wrong answer's
    included, is raised as usual.
    """
    try:
        yield
    except NotImplementedError as err:
        what = unwritten(err)
        if what is None:
            raise
        print(f"Not attempted yet: {what} still raises NotImplementedError, so the rest "
              "of this cell is skipped. Write your answer in the exercise's cell, run it, then "
              "run this cell again.")
