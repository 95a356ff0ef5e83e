"""The self-checks of notebook 05 accept the reference answers and reject typical wrong ones."""
import math

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F

from companion.checks import ExerciseError
from companion.checks.training_a_vae import (check_elbo_from_distributions, check_free_bits,
                                             check_iwae)
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
