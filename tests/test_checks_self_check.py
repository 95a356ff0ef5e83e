"""Every self-check tells an unattempted exercise apart from a wrong answer and from a bug."""
import importlib
import inspect
import pkgutil

import pytest
import torch
from torch import nn

import companion.checks
from companion.checks import ExerciseError, self_check
from companion.checks.conv_vae import check_upsample_decoder
from companion.checks.reparameterization import check_reparameterize
from companion.checks.welcome import check_to_unit_interval
from companion.models import Autoencoder

LINE = ("Not attempted yet: {} still raises NotImplementedError. Write your answer in the "
        "cell above, run it, then run this check again.\n")
# What a core check says while it hands the course's answer on (self_check(reference=...)).
HANDED_ON = ("Not attempted yet: {} still raises NotImplementedError. Until you write it, the "
             "cells below use the course's answer; run this check again once yours is "
             "written.\n")


def all_checks():
    """(module.check_name, function) for every public check_* of every module in the package."""
    found = []
    for info in pkgutil.iter_modules(companion.checks.__path__):
        module = importlib.import_module(f"companion.checks.{info.name}")
        found += [(f"{info.name}.{name}", fn) for name, fn in inspect.getmembers(module, inspect.isfunction)
                  if name.startswith("check_") and fn.__module__ == module.__name__]
    return found


def test_every_notebook_module_has_checks():
    modules = {name.split(".")[0] for name, _ in all_checks()}
    assert {"welcome", "reparameterization", "conv_vae", "latent_arithmetic"} <= modules
    assert len(modules) == sum(1 for _ in pkgutil.iter_modules(companion.checks.__path__))


def stub(name):
    """What a learner copy holds before the exercise is attempted."""
    def fn(*args, **kwargs):
        raise NotImplementedError(f"Exercise: write `{name}`")
    fn.__code__ = fn.__code__.replace(co_name=name)   # as if written `def <name>(...)`
    return fn


# Arguments of a check that are data, not the learner's function. A new check with another
# such argument needs an entry here.
DATA = {"model": lambda: Autoencoder(latent_dim=2, hidden=16).eval(),
        "x": lambda: torch.rand(4, 1, 28, 28),
        "mask": lambda: (torch.rand(1, 1, 28, 28) < 0.5).float()}


@pytest.mark.parametrize("name, check", all_checks(), ids=[name for name, _ in all_checks()])
def test_an_unattempted_exercise_gives_one_line_and_no_error(name, check, capsys):
    required = [p.name for p in inspect.signature(check).parameters.values()
                if p.default is inspect.Parameter.empty]
    stubs = [p for p in required if p not in DATA]
    assert stubs, f"{name} takes no function of the learner's"
    args = {p: DATA[p]() if p in DATA else stub(p) for p in required}
    handed_on = check(**args)
    out = capsys.readouterr().out
    if handed_on is None:
        assert out in {LINE.format(f"`{p}`") for p in stubs}, out
    else:           # a core check: the course's answer, which is no stub and passes the check
        assert out in {HANDED_ON.format(f"`{p}`") for p in stubs}, out
        assert handed_on not in args.values()
        assert check(**{**args, stubs[0]: handed_on}) is handed_on
        assert capsys.readouterr().out.startswith("Correct: ")


def test_the_line_names_the_helper_that_raises(capsys):
    helper = stub("scale")
    check_to_unit_interval(lambda raw: helper(raw.float()))
    assert capsys.readouterr().out == LINE.format("`scale`")


def test_a_raise_outside_any_function_is_called_your_code(capsys):
    check_to_unit_interval(lambda raw: exec("raise NotImplementedError"))
    assert capsys.readouterr().out == LINE.format("your code")


def test_torch_raising_not_implemented_in_compiled_code_is_not_an_unattempted_exercise(capsys):
    with pytest.raises(NotImplementedError, match="meta tensor"):
        check_to_unit_interval(lambda raw: raw.to("meta").cpu())
    assert "Not attempted" not in capsys.readouterr().out


def test_torch_raising_not_implemented_in_python_is_not_an_unattempted_exercise():
    no_forward = nn.Module()                        # torch raises: missing "forward" function
    with pytest.raises(NotImplementedError, match="forward"):
        check_upsample_decoder(lambda latent_dim: nn.Sequential(no_forward, nn.Upsample(scale_factor=2)))


def test_reparameterize_reports_a_device_error_as_a_device_error():
    with pytest.raises(ExerciseError, match="(?s)raised NotImplementedError.*meta tensor.*device"):
        check_reparameterize(lambda mu, logvar: mu.to("meta").cpu())


def test_the_decorator_keeps_results_wrong_answers_and_the_signature(capsys):
    @self_check
    def check_double(double):
        """Doubles."""
        if double(2) != 4:
            raise ExerciseError("double 2 gives 4")
        print("Correct: doubled.")

    check_double(lambda v: 2 * v)
    assert capsys.readouterr().out == "Correct: doubled.\n"
    with pytest.raises(ExerciseError, match="gives 4"):
        check_double(lambda v: v + 1)
    assert check_double.__name__ == "check_double" and check_double.__doc__ == "Doubles."
    assert list(inspect.signature(check_double).parameters) == ["double"]


def test_a_core_check_hands_on_the_answer_until_the_learner_writes_one(capsys):
    def course_double(v):
        return 2 * v

    @self_check(reference=course_double)
    def check_double(double):
        """Doubles."""
        if double(2) != 4:
            raise ExerciseError("double 2 gives 4")
        print("Correct: doubled.")

    assert check_double(stub("double")) is course_double
    assert capsys.readouterr().out == HANDED_ON.format("`double`")
    mine = lambda v: v + v                                   # noqa: E731
    assert check_double(mine) is mine
    assert capsys.readouterr().out == "Correct: doubled.\n"
    with pytest.raises(ExerciseError, match="gives 4"):     # a wrong answer is not handed on
        check_double(lambda v: v + 1)
    assert check_double.__name__ == "check_double" and check_double.__doc__ == "Doubles."
