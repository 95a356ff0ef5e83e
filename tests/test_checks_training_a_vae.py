"""The self-checks of notebook 05 accept the reference answers and reject typical wrong ones."""
import math

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F

from companion.checks import ExerciseError
from companion.checks import training_a_vae as course
from companion.checks.training_a_vae import (check_elbo_from_distributions, check_free_bits,
                                             check_iwae, check_negative_elbo, check_train_step)
from companion.losses import free_bits_kl


def test_iwae_check_accepts_logsumexp(capsys):
    check_iwae(lambda log_w: torch.logsumexp(log_w, 0) - math.log(log_w.shape[0]))
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda w: w.mean(0), "ELBO"),
    (lambda w: torch.logsumexp(w, 0), "log k"),
    (lambda w: w.exp().mean(0).log(), "logsumexp"),
    (lambda w: torch.logsumexp(w, 1) - math.log(w.shape[1]), "shape"),
    (lambda w: w.max(0).values, "logsumexp"),
    (lambda w: [0.0], "Tensor"),
])
def test_iwae_check_rejects(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_iwae(wrong)


def right(logits, x, mu, logvar):
    """The reference answer of exercise 2, written with torch.distributions."""
    prior = D.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    kl = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), prior).sum(1)
    return (-D.Bernoulli(logits=logits).log_prob(x).sum(1) + kl).mean()


def parts(logits, x, mu, logvar, scale=lambda lv: torch.exp(0.5 * lv)):
    """Per-image reconstruction and KL, [N] each, with a choice of how logvar becomes a scale."""
    prior = D.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    kl = D.kl_divergence(D.Normal(mu, scale(logvar)), prior)
    return -D.Bernoulli(logits=logits).log_prob(x).sum(1), kl


@pytest.mark.parametrize("answer", [
    right,
    lambda lg, x, mu, lv: (F.binary_cross_entropy_with_logits(lg, x, reduction="none").sum(1)
                           + 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1)).mean(),
    lambda lg, x, mu, lv: right(lg.float(), x.float(), mu.float(), lv.float()),   # float32
])
def test_elbo_check_accepts_right_answers(answer, capsys):
    check_elbo_from_distributions(answer)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda *a: -right(*a), "ELBO itself"),
    (lambda *a: (parts(*a)[0] + parts(*a)[1].sum(1)).sum(), "sum over the batch"),
    (lambda *a: parts(*a)[0].mean() + parts(*a)[1].sum(), "beta = N"),
    (lambda *a: (parts(*a)[0] / 784 + parts(*a)[1].sum(1)).mean(), "beta = 784"),
    (lambda lg, x, mu, lv: (parts(lg, x, mu, lv)[0] + parts(lg, x, mu, lv)[1].mean(1)).mean(),
     "averaged over the latent dimensions"),
    (lambda lg, x, mu, lv: (lambda r, k: (r + k.sum(1)).mean())(
        *parts(lg, x, mu, lv, scale=lambda s: s)), "passed logvar as the scale"),
    (lambda lg, x, mu, lv: (lambda r, k: (r + k.sum(1)).mean())(
        *parts(lg, x, mu, lv, scale=torch.exp)), "the variance, as the scale"),
    (lambda *a: parts(*a)[0].mean(), "KL term is missing"),
    (lambda *a: (parts(*a)[0] - parts(*a)[1].sum(1)).mean(), "wrong sign"),
    (lambda lg, x, mu, lv: right(torch.sigmoid(lg), x, mu, lv), "logits"),   # probs as logits
    (lambda lg, x, mu, lv: D.Bernoulli(probs=lg).log_prob(x).sum(), "logits=..."),
    (lambda lg, x, mu, lv: (lambda r, k: (r + k.sum(1)).mean())(   # a negative scale
        *parts(lg, x, mu, lv, scale=lambda s: s - 1)), "standard deviation"),
    (lambda lg, x, mu, lv: right(lg, x.view(-1, 1, 28, 28), mu, lv), "shape \\[N, 784\\]"),
    (lambda *a: (parts(*a)[0] + parts(*a)[1].sum(1)), "expected shape \\[\\]"),
    (lambda *a: (right(*a), 0.0, 0.0), "not a tuple"),
    (lambda *a: torch.tensor(right(*a).item()), "not connected"),
    (lambda lg, x, mu, lv: right(lg, x, mu, lv) + 1.0, "per image"),
])
def test_elbo_check_rejects(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_elbo_from_distributions(wrong)


def test_elbo_check_names_a_mistake_that_shows_only_for_negative_logvar():
    def shifted_scale(lg, x, mu, lv):   # right for logvar > 0 only
        r, k = parts(lg, x, mu, lv, scale=lambda s: torch.exp(0.5 * s.clamp(min=0)))
        return (r + k.sum(1)).mean()
    with pytest.raises(ExerciseError, match="negative log-variances"):
        check_elbo_from_distributions(shifted_scale)


def test_elbo_check_reports_an_unwritten_stub(capsys):
    def negative_elbo_from_distributions(logits, x, mu, logvar):
        raise NotImplementedError("Exercise: write `negative_elbo_from_distributions`")
    check_elbo_from_distributions(negative_elbo_from_distributions)
    assert "Not attempted yet" in capsys.readouterr().out


def free_bits_right(mu, logvar, floor):
    """The reference answer of exercise 4."""
    kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1)
    return kl.mean(0).clamp(min=floor).sum()


def kl_of(mu, logvar):
    return 0.5 * (mu**2 + logvar.exp() - logvar - 1)


@pytest.mark.parametrize("answer", [
    free_bits_right, free_bits_kl,
    lambda mu, lv, f: torch.maximum(kl_of(mu, lv).mean(0), torch.tensor(f, dtype=mu.dtype)).sum(),
    lambda mu, lv, f: free_bits_right(mu.float(), lv.float(), f),                   # float32
])
def test_free_bits_check_accepts_right_answers(answer, capsys):
    check_free_bits(answer)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda mu, lv, f: kl_of(mu, lv).clamp(min=f).mean(0).sum(), "KL of each image"),
    (lambda mu, lv, f: kl_of(mu, lv).sum(1).mean().clamp(min=f), "applied to the total"),
    (lambda mu, lv, f: kl_of(mu, lv).mean(0).clamp(max=f).sum(), "min\\(floor"),
    (lambda mu, lv, f: kl_of(mu, lv).mean(0).sum(), "floor is missing"),
    (lambda mu, lv, f: kl_of(mu, lv).sum(0).clamp(min=f).sum(), "summed over the batch"),
    (lambda mu, lv, f: kl_of(mu, lv).mean(0).clamp(min=f).mean(), "averaged over the latent"),
    (lambda mu, lv, f: torch.tensor(free_bits_right(mu, lv, f).item()), "not connected"),
    (lambda mu, lv, f: kl_of(mu, lv).mean(0).clamp(min=f), "expected shape \\[\\]"),
    (lambda mu, lv, f: free_bits_right(mu, lv, f) + 1.0, "per dimension j"),
    (lambda mu, lv, f: (kl_of(mu, lv).mean(0) + (f - kl_of(mu, lv).mean(0)).clamp(min=0).detach()
                        ).sum(), "cut it"),               # the floor's value, not its gradient
    (lambda mu, lv, f: mu.sum() * 0 + sum(max(f, k) for k in kl_of(mu, lv).mean(0).tolist()),
     "usual gradient"),
])
def test_free_bits_check_rejects(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_free_bits(wrong)


def test_free_bits_check_reports_an_unwritten_stub(capsys):
    def free_bits_term(mu, logvar, floor):
        raise NotImplementedError("Exercise: write `free_bits_term`")
    check_free_bits(free_bits_term)
    assert "Not attempted yet" in capsys.readouterr().out


# --- section 1 (core): negative_elbo and train_step -------------------------------------------

def negative_elbo(logits, x, mu, logvar):
    """The notebook's answer, formulas spelled out."""
    reconstruction = F.binary_cross_entropy_with_logits(
        logits, x.flatten(1), reduction="none").sum(dim=1)
    kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(dim=1)
    return (reconstruction + kl).mean(), reconstruction.mean(), kl.mean()


def elbo_parts(recon=None, kl=None, total=lambda r, k: r + k):
    """negative_elbo with the reconstruction or the KL (per image, [N]) swapped for another."""
    def fn(logits, x, mu, logvar):
        r = (F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1)
             if recon is None else recon(logits, x.flatten(1)))
        k = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(1) if kl is None else kl(mu, logvar)
        return total(r.mean(), k.mean()), r.mean(), k.mean()
    return fn


@pytest.mark.parametrize("answer", [
    negative_elbo, course.course_negative_elbo,
    lambda lg, x, mu, lv: (lambda r, k: ((r + k).mean(), r.mean(), k.mean()))(
        *parts(lg, x.flatten(1), mu, lv)[:1], parts(lg, x.flatten(1), mu, lv)[1].sum(1)),
])
def test_negative_elbo_check_accepts_right_answers(answer, capsys):
    assert check_negative_elbo(answer) is answer
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (elbo_parts(recon=lambda lg, x: F.binary_cross_entropy_with_logits(lg, x).expand(len(x))),
     "beta = 784"),
    (elbo_parts(recon=lambda lg, x: -F.binary_cross_entropy_with_logits(
        lg, x, reduction="none").sum(1)), "reconstruction has the wrong sign"),
    (elbo_parts(recon=lambda lg, x: F.binary_cross_entropy(
        torch.sigmoid(torch.sigmoid(lg)), x, reduction="none").sum(1)), "takes logits"),
    (elbo_parts(kl=lambda mu, lv: -0.5 * (mu**2 + lv.exp() - lv - 1).sum(1)), "KL has the wrong sign"),
    (elbo_parts(kl=lambda mu, lv: (mu**2 + lv.exp() - lv - 1).sum(1)), "factor 1/2"),
    (elbo_parts(kl=lambda mu, lv: 0.5 * (mu**2 + (0.5 * lv).exp() - lv - 1).sum(1)),
     "sigma = exp\\(logvar / 2\\)"),
    (elbo_parts(kl=lambda mu, lv: 0.5 * (mu**2 + lv.exp() ** 2 - lv - 1).sum(1)), "sigma\\^4"),
    (elbo_parts(kl=lambda mu, lv: 0.5 * (mu**2 + lv.exp() + lv + 1).sum(1)), "sign slip"),
    (elbo_parts(kl=lambda mu, lv: 0.5 * (mu**2 + lv.exp() - lv - 1).mean(1)),
     "averaged over the latent dimensions"),
    (elbo_parts(total=lambda r, k: r - k), "KL enters the loss with the wrong sign"),
    (elbo_parts(total=lambda r, k: r), "reconstruction \\+ KL"),
    (lambda lg, x, mu, lv: negative_elbo(lg, x, mu, lv)[0], "return three numbers"),
    (lambda lg, x, mu, lv: tuple(t.detach() for t in negative_elbo(lg, x, mu, lv)),
     "not connected"),
    (lambda lg, x, mu, lv: (lambda r: ((r + 1).mean(), r.mean(), torch.ones(()) * 1.0))(
        F.binary_cross_entropy_with_logits(lg, x, reduction="none")), "flatten"),
])
def test_negative_elbo_check_names_the_usual_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_negative_elbo(wrong)


def test_negative_elbo_check_names_a_batch_sum():
    def summed(lg, x, mu, lv):
        r = F.binary_cross_entropy_with_logits(lg, x.flatten(1), reduction="none").sum(1)
        k = 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1)
        return (r + k).mean(), r.mean(), k.sum()
    with pytest.raises(ExerciseError, match="summed over the batch"):
        check_negative_elbo(summed)


def step_with(order=("zero", "backward", "step"), sign=1.0, returns=lambda loss: loss.item(),
              use=None):
    """A train_step doing the moves in `order`; the optimizer `use` instead of the argument."""
    def train_step(model, optimizer, x):
        opt = optimizer if use is None else use
        logits, mu, logvar = model(x)
        loss = negative_elbo(logits, x, mu, logvar)[0]
        for move in order:
            {"zero": opt.zero_grad, "backward": lambda: (sign * loss).backward(),
             "step": opt.step}[move]()
        return returns(loss)
    return train_step


def test_train_step_check_accepts_the_answer(capsys):
    right = step_with()
    assert check_train_step(right) is right
    assert check_train_step(course.course_train_step) is course.course_train_step
    assert capsys.readouterr().out.count("Correct") == 2


@pytest.mark.parametrize("wrong, hint", [
    (step_with(order=("backward", "step")), "zero_grad\\(\\) before loss.backward"),
    (step_with(order=("backward", "step", "zero")), "zero_grad\\(\\) before loss.backward"),
    (step_with(order=("zero", "step", "backward")), "did not change"),
    (step_with(order=("step", "zero", "backward")), "backward\\(\\) before optimizer.step"),
    (step_with(order=("step",)), "backward\\(\\) before optimizer.step"),
    (step_with(order=("zero", "backward")), "did not change"),
    (step_with(order=("backward", "zero", "step")), "did not change"),
    (step_with(sign=-1.0), "uphill"),
    (step_with(order=("zero", "backward", "step", "step")), "not by one step"),
    (step_with(returns=lambda loss: loss), "loss.item\\(\\)"),
    (step_with(returns=lambda loss: None), "not NoneType"),
    (step_with(returns=lambda loss: 2 * loss.item()), "return loss.item"),
    (step_with(use=torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)),
     "optimizer passed in"),
    (lambda model, optimizer, x: step_with()(model, optimizer, x.flatten(1)[:, :10]),
     "Calling your function raised"),
])
def test_train_step_check_names_the_usual_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_train_step(wrong)


def test_core_checks_hand_on_the_course_answer_while_unwritten(capsys):
    def negative_elbo(logits, x, mu, logvar):
        raise NotImplementedError("Exercise: write `negative_elbo`")

    def train_step(model, optimizer, x):
        raise NotImplementedError("Exercise: write `train_step`")
    assert check_negative_elbo(negative_elbo) is course.course_negative_elbo
    assert check_train_step(train_step) is course.course_train_step
    out = capsys.readouterr().out
    assert "Not attempted yet: `negative_elbo`" in out and "Not attempted yet: `train_step`" in out


def test_core_checks_leave_the_global_rng_alone():
    torch.manual_seed(7)
    expected = torch.randn(3)
    torch.manual_seed(7)
    check_train_step(step_with())
    check_negative_elbo(negative_elbo)
    assert torch.equal(torch.randn(3), expected)
