"""Self-checks for the exercises of notebook 05 (training and evaluating a VAE).

Section 1 (core) has the learner write three pieces of the VAE; each check hands on the
course's answer while the piece is not written, so the rest of the notebook runs:
`check_reparameterize` (notebook 03's check, reused), `check_negative_elbo` (the loss as the
tuple (-ELBO, reconstruction, KL)) and `check_train_step` (one optimizer step).
Exercise 1 asks for the IWAE bound from a table of log importance weights; exercise 2 for
the negative ELBO of a batch built from torch.distributions objects; exercise 4 for the KL
term with free bits. Each check compares with a reference computed here and names the usual
mistake when the answer is wrong.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
from torch import nn

from companion.checks import (ExerciseError, as_double, close, expect, passed, self_check,
                              unwritten)
from companion.checks.reparameterization import check_reparameterize  # noqa: F401 (section 1)
from companion.gaussians import kl_divergence, kl_per_dimension
from companion.losses import bernoulli_nll, free_bits_kl


# --- section 1 (core): the negative ELBO and one training step ---------------------------------

def course_negative_elbo(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The course's answer: (-ELBO, reconstruction, KL), each averaged over the batch."""
    reconstruction = bernoulli_nll(logits, x.reshape(logits.shape))    # [N], summed over pixels
    kl = kl_divergence(mu, logvar)                                     # [N], summed over L
    return (reconstruction + kl).mean(), reconstruction.mean(), kl.mean()


def course_train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor
                      ) -> float:
    """The course's answer: one optimizer step on one batch; returns its loss before the step."""
    logits, mu, logvar = model(x)
    loss = course_negative_elbo(logits, x, mu, logvar)[0]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def _call(fn: Callable, *args, what: str):
    """Call the learner's function; a crash becomes a hint (an unwritten stub is no crash)."""
    try:
        return fn(*args)
    except Exception as err:
        if isinstance(err, ExerciseError) or unwritten(err):
            raise
        if "modified by an inplace operation" in str(err):
            what = ("optimizer.step() changed the weights before loss.backward() used them: "
                    "call loss.backward() before optimizer.step().")
        raise ExerciseError(f"Calling your function raised {type(err).__name__}: {err}\n{what}"
                            ) from err


@self_check(reference=course_negative_elbo)
def check_negative_elbo(negative_elbo: Callable[..., tuple]) -> None:
    """Core: negative_elbo(logits [N, 784], x [N, 1, 28, 28], mu, logvar [N, L]) -> 3 numbers."""
    logits, x, mu, logvar = _elbo_inputs(10, n=16, latent=5, logvar_range=(-2.0, 1.5))
    x = x.view(-1, 1, 28, 28)                                          # images, as the loop has them
    with torch.no_grad():
        recon = bernoulli_nll(logits, x.flatten(1))                    # [N]
        kl_dims = kl_per_dimension(mu, logvar)                         # [N, L]
        kl = kl_dims.sum(1)
    out = _call(negative_elbo, logits, x, mu, logvar, what="It gets logits [N, 784], images x "
                "[N, 1, 28, 28] (flatten them to [N, 784] to match the logits) and mu, logvar "
                "[N, L].")
    expect(isinstance(out, (tuple, list)) and len(out) == 3, "return three numbers, the tuple "
           "(loss, reconstruction, kl): the loss to minimise and its two parts")
    total, part_r, part_k = (as_double(t, (), f"{name}: one number, averaged over the batch")
                             for t, name in zip(out, ("the loss", "the reconstruction", "the KL")))
    expect(isinstance(out[0], torch.Tensor) and out[0].requires_grad, "the loss is not connected "
           "to logits, mu and logvar, so no gradient could train the model: build it from torch "
           "operations only (no .item(), no torch.no_grad)")
    bce_mean = torch.nn.functional.binary_cross_entropy_with_logits(logits.detach(), x.flatten(1))
    recon_mistakes = [
        (bce_mean, "the reconstruction is averaged over the 784 pixels (the default "
                   "reduction='mean'): sum it over the pixels (reduction='none', then .sum(dim=1)), "
                   "or the KL weighs 784 times more, a beta-VAE with beta = 784 by accident"),
        (recon.sum(), "the reconstruction is summed over the batch: take its mean over the batch"),
        (-recon.mean(), "the reconstruction has the wrong sign: it is -log p(x|z), the binary "
                        "cross-entropy itself, a positive number"),
    ]
    for value, hint in recon_mistakes:
        expect(not close(part_r, value), hint)
    expect(close(part_r, recon.mean()), "the reconstruction should be the binary cross-entropy "
           "of the logits (F.binary_cross_entropy_with_logits, which takes logits, no sigmoid "
           "first) against x.flatten(1), summed over pixels, averaged over the batch")
    half = 0.5 * (mu**2 + logvar.exp() - logvar - 1)
    kl_mistakes = [
        (-kl.mean(), "the KL has the wrong sign: KL = 0.5 * sum(mu^2 + exp(logvar) - logvar - 1) "
                     "is never negative"),
        ((2 * half).sum(1).mean(), "the KL is twice too large: the closed form carries a factor 1/2"),
        (0.5 * (mu**2 + (0.5 * logvar).exp() - logvar - 1).sum(1).mean(),
         "the KL uses sigma = exp(logvar / 2) where the variance sigma^2 = exp(logvar) belongs"),
        (0.5 * (mu**2 + logvar.exp() ** 2 - logvar - 1).sum(1).mean(),
         "the KL uses exp(logvar)^2 = sigma^4 where the variance sigma^2 = exp(logvar) belongs"),
        (0.5 * (mu**2 + logvar.exp() + logvar + 1).sum(1).mean(),
         "a sign slip in the KL: -(logvar + 1) belongs in the bracket, not +(logvar + 1)"),
        (kl_dims.mean(), "the KL is averaged over the latent dimensions: sum it over them (dim=1), "
                         "then take the mean over the batch"),
        (kl.sum(), "the KL is summed over the batch: take its mean over the batch, like the "
                   "reconstruction, or it weighs N times more"),
    ]
    for value, hint in kl_mistakes:
        expect(not close(part_k, value.detach()), hint)
    expect(close(part_k, kl.mean()), "the KL should be 0.5 * (mu^2 + exp(logvar) - logvar - 1), "
           "summed over the latent dimensions (dim=1), averaged over the batch")
    expect(not close(total, part_r - part_k), "the KL enters the loss with the wrong sign: "
           "-ELBO = reconstruction + KL")
    expect(close(total, part_r + part_k), "the loss should be reconstruction + KL (both "
           "averaged over the batch)")
    passed("-ELBO = reconstruction (summed over pixels) + KL (summed over dimensions), each "
           "averaged over the batch, connected to the model's outputs.")


class _TinyVAE(nn.Module):
    """784 -> 2 -> 784, the interface of the notebook's VAE: x -> (logits [N, 784], mu, logvar)."""

    def __init__(self):
        super().__init__()
        self.mu, self.logvar, self.decoder = nn.Linear(784, 2), nn.Linear(784, 2), nn.Linear(2, 784)

    def forward(self, x: torch.Tensor):
        h = x.flatten(1)
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decoder(z), mu, logvar


LR, STALE = 0.05, 0.3      # the check's SGD step, and the stale gradient left from a last step


def _after_step(step: Callable, model: nn.Module, x: torch.Tensor, stale: bool):
    """(what step returned, the weights after it) for a copy of model, with fixed noise."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    for p in model.parameters():                  # as after an earlier step
        p.grad = torch.full_like(p, STALE) if stale else None
    torch.manual_seed(1)
    out = _call(step, model, optimizer, x, what="It gets the model, its optimizer and one "
                "batch of images x [N, 1, 28, 28].")
    return out, torch.cat([p.detach().flatten() for p in model.parameters()])


@self_check(reference=course_train_step)
def check_train_step(train_step: Callable[..., float]) -> None:
    """Core: train_step(model, optimizer, x) takes one optimizer step and returns the loss."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = _TinyVAE()
        x = (torch.rand(8, 1, 28, 28) < 0.3).float()
        start = torch.cat([p.detach().flatten() for p in model.parameters()])
        want_loss, want = _after_step(course_train_step, model, x, stale=False)
        out, got = _after_step(train_step, model, x, stale=True)
    right = (want - start)                                           # the step SGD should take
    expect(not torch.equal(got, start), "the weights did not change: call optimizer.zero_grad() "
           "before loss.backward() (not between backward and step), then optimizer.step(), "
           "with the optimizer passed in as an argument")
    expect(not torch.allclose(got, start - LR * STALE), "the step used the gradients left over "
           "from the step before: call loss.backward() before optimizer.step()")
    expect(not torch.allclose(got, start + right - LR * STALE, atol=1e-6), "the gradients of "
           "the step before were added to this one's: call optimizer.zero_grad() before "
           "loss.backward()")
    expect(not torch.allclose(got, start - right, atol=1e-6), "the weights moved uphill: "
           "minimise the loss (-ELBO), call loss.backward() on it, not on -loss")
    expect(torch.allclose(got, want, atol=1e-6), "the weights moved, but not by one step on "
           "this batch's loss: forward pass, loss = negative_elbo(...)[0], zero_grad, backward, "
           "step, once each")
    expect(not isinstance(out, torch.Tensor), "return loss.item(), a Python float: a tensor "
           "would keep the whole graph of the step alive (and its memory) as the loop adds it up")
    expect(isinstance(out, (float, int)), f"return the loss as a float (loss.item()), not "
           f"{type(out).__name__}")
    expect(abs(out - want_loss) <= 1e-4 * abs(want_loss), f"you returned {out:.4f}; the loss of "
           f"this batch before the step is {want_loss:.4f}: return loss.item()")
    passed("one step: forward, loss, zero_grad, backward, step, and the batch's loss as a float.")


@self_check
def check_iwae(iwae_from_log_weights: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1: iwae_from_log_weights(log_w [k, N]) = log (1/k) sum_i exp(log_w[i]), [N]."""
    g = torch.Generator().manual_seed(5)
    log_w = (-95 + 4 * torch.randn(64, 7, generator=g, dtype=torch.float64))   # [k=64, N=7]
    want = torch.logsumexp(log_w, 0) - math.log(64)
    out = as_double(iwae_from_log_weights(log_w.clone()), (7,),
                  "one bound per image: reduce over the k samples (dimension 0)")
    expect(not close(out, log_w.mean(0)),
           "that is the mean of log w: the ELBO estimate, not IWAE. Average the weights "
           "themselves inside the log")
    expect(not close(out, want + math.log(64)),
           "off by log k: you summed the weights; the bound takes their mean (subtract log k)")
    expect(bool(torch.isfinite(out).all()),
           "the result is not finite: exp(-95) is fine, but exp of a log-weight near -1000 "
           "underflows to 0. Use torch.logsumexp")
    expect(close(out, want), "compare with log((1/k) * sum_i w_i), computed with torch.logsumexp")
    far = -1000 + log_w                                     # typical of real images
    out = as_double(iwae_from_log_weights(far.clone()), (7,), "one bound per image")
    expect(bool(torch.isfinite(out).all()) and close(out, want - 1000),
           "with log-weights near -1000 your answer is not finite or wrong: exp underflows "
           "to 0 there. Use torch.logsumexp, which subtracts the maximum first")
    passed("IWAE_k = logsumexp(log w) - log k, stable for log-weights of real images.")


def _elbo_inputs(seed: int, n: int, latent: int, logvar_range: tuple[float, float]):
    """logits, binary x [n, 784] and mu, logvar [n, latent], float64, with gradients."""
    g = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(n, 784, generator=g, dtype=torch.float64)
    x = (torch.rand(n, 784, generator=g, dtype=torch.float64) < 0.2).double()
    mu = torch.randn(n, latent, generator=g, dtype=torch.float64)
    low, high = logvar_range
    logvar = low + (high - low) * torch.rand(n, latent, generator=g, dtype=torch.float64)
    return logits.requires_grad_(), x, mu.requires_grad_(), logvar.requires_grad_()


def _call_loss(fn: Callable, *args) -> torch.Tensor:
    """The learner's loss on args, as a float64 number; a crash or a cut graph becomes a hint."""
    try:
        out = fn(*(t.detach().clone().requires_grad_(t.requires_grad) for t in args))
    except Exception as err:
        if isinstance(err, ExerciseError) or unwritten(err):
            raise
        hint = "It gets logits and x of shape [N, 784], and mu and logvar of shape [N, L]."
        if "scale" in str(err):
            hint = ("D.Normal(loc, scale) takes the standard deviation, exp(0.5 * logvar), "
                    "which is always positive; logvar itself is not.")
        elif "probs" in str(err):
            hint = ("The decoder's outputs are logits, any real number: D.Bernoulli(logits=...), "
                    "not probs=...")
        raise ExerciseError(f"Calling your function raised {type(err).__name__}: {err}\n{hint}"
                            ) from err
    expect(not isinstance(out, (tuple, list)), "return only the total, one number, not a "
           "tuple such as (total, reconstruction, KL)")
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the result is not connected "
           "to the inputs, so no gradient could train the model: build it from torch "
           "operations only (no .item(), no torch.tensor(...) around a result, no torch.no_grad)")
    return as_double(out, (), "one number, the negative ELBO averaged over the batch")


@self_check
def check_elbo_from_distributions(negative_elbo: Callable[..., torch.Tensor]) -> None:
    """Exercise 2: negative_elbo(logits, x [N, 784], mu, logvar [N, L]) -> batch mean of -ELBO."""
    logits, x, mu, logvar = _elbo_inputs(8, n=16, latent=5, logvar_range=(0.2, 1.5))
    with torch.no_grad():
        recon = bernoulli_nll(logits, x)                                   # [N], summed over pixels
        kl = kl_divergence(mu, logvar)                                     # [N], summed over L
        want = (recon + kl).mean()
        mistakes = [
            (-want, "that is the ELBO itself; the loss to minimise is its negative, "
                    "-log p(x|z) + KL"),
            ((recon + kl).sum(), "that is the sum over the batch; take the mean, so that the "
                                 "loss, and the learning rate that suits it, do not depend on the "
                                 "batch size"),
            (recon.mean() + kl.sum(), "the KL is summed over the batch while the reconstruction "
                                      "is averaged: the KL then weighs N times more (beta = N). "
                                      "Average both over the batch"),
            ((recon / 784 + kl).mean(), "the reconstruction is averaged over the 784 pixels "
                                        "instead of summed: the KL then weighs 784 times more, "
                                        "a beta-VAE with beta = 784 by accident. Sum log_prob "
                                        "over the pixels (dimension 1)"),
            ((recon + kl / 5).mean(), "the KL is averaged over the latent dimensions; sum it: "
                                      "the KL of independent dimensions adds up"),
            ((recon + kl_divergence(mu, 2 * logvar.log())).mean(),
             "you passed logvar as the scale of D.Normal, as if it were the standard deviation. "
             "The scale is sigma = exp(0.5 * logvar)"),
            ((recon + kl_divergence(mu, 2 * logvar)).mean(),
             "you passed exp(logvar), the variance, as the scale of D.Normal; the scale is the "
             "standard deviation, sigma = exp(0.5 * logvar)"),
            (recon.mean(), "the KL term is missing: add KL(q(z|x) || N(0, I)), summed over the "
                           "latent dimensions"),
            ((recon - kl).mean(), "the KL enters with the wrong sign: -ELBO = reconstruction + KL"),
        ]
    out = _call_loss(negative_elbo, logits, x, mu, logvar)
    for value, hint in mistakes:
        expect(not close(out, value), hint)
    expect(close(out, want), "per image: minus the sum over pixels of "
           "D.Bernoulli(logits=logits).log_prob(x), plus the sum over latent dimensions of "
           "D.kl_divergence(q, p) with q = D.Normal(mu, exp(0.5 * logvar)) and p = D.Normal(0, 1); "
           "then the mean over the batch")
    logits, x, mu, logvar = _elbo_inputs(9, n=64, latent=20, logvar_range=(-6.0, 1.0))
    with torch.no_grad():
        want = (bernoulli_nll(logits, x) + kl_divergence(mu, logvar)).mean()
    out = _call_loss(negative_elbo, logits, x, mu, logvar)
    expect(bool(torch.isfinite(out)) and close(out, want),
           "right on the first batch, wrong on one with the negative log-variances of a trained "
           "encoder (sigma < 1): check how you turn logvar into the scale, exp(0.5 * logvar)")
    passed("-ELBO = mean over the batch of [-sum_pixels log p(x|z) + sum_dims KL(q || p)], "
           "from torch.distributions.")


def _free_bits_inputs(seed: int):
    """mu, logvar [32, 6] in float64: dimensions 0-2 near the prior, 3-5 far from it."""
    g = torch.Generator().manual_seed(seed)
    spread = torch.tensor([0.05, 0.1, 0.2, 1.5, 2.0, 2.5], dtype=torch.float64)
    mu = torch.randn(32, 6, generator=g, dtype=torch.float64) * spread
    logvar = -spread + 0.1 * torch.randn(32, 6, generator=g, dtype=torch.float64)
    return mu.requires_grad_(), logvar.requires_grad_()


@self_check
def check_free_bits(free_bits_term: Callable[..., torch.Tensor]) -> None:
    """Exercise 4: free_bits_term(mu, logvar [N, L], floor) -> sum_j max(floor, batch-mean KL_j)."""
    mu, logvar = _free_bits_inputs(11)
    floor = 0.5
    with torch.no_grad():
        kl = kl_per_dimension(mu, logvar)                                 # [N, L]
        want = free_bits_kl(mu, logvar, floor)
        mistakes = [
            (kl.clamp(min=floor).mean(0).sum(), "you floored the KL of each image; free bits "
             "floor each dimension's KL averaged over the batch: average first, then the max"),
            (kl.mean(0).clamp(max=floor).sum(), "that is min(floor, KL_j): a floor is the max, "
             "so a dimension never pays less than the floor"),
            (kl.mean(0).sum(), "that is the plain KL term: the floor is missing, or applied "
             "to the total. Replace each dimension's KL by max(floor, KL_j), then sum over j"),
            (kl.sum(0).clamp(min=floor).sum(), "you summed over the batch; average the KL of "
             "each dimension over the batch"),
            (kl.mean(0).clamp(min=floor).mean(), "you averaged over the latent dimensions; sum "
             "them, as in the KL term itself"),
        ]
    try:
        out = free_bits_term(mu, logvar, floor)
    except Exception as err:
        if isinstance(err, ExerciseError) or unwritten(err):
            raise
        raise ExerciseError(f"Calling your function raised {type(err).__name__}: {err}\n"
                            "It gets mu and logvar of shape [N, L] and the floor, a number."
                            ) from err
    expect(isinstance(out, torch.Tensor) and out.requires_grad, "the result is not connected to "
           "mu and logvar, so no gradient could train the encoder: use torch operations only "
           "(torch.clamp or torch.maximum, no .item(), no max() of Python floats)")
    value = as_double(out, (), "one number, the KL term of the whole batch")
    for wrong, hint in mistakes:
        expect(not close(value, wrong), hint)
    expect(close(value, want), "per dimension j: KL_j = 0.5 * (mu^2 + exp(logvar) - logvar - 1) "
           "averaged over the batch (dimension 0); then sum over j of max(floor, KL_j)")
    got = torch.autograd.grad(out, (mu, logvar), allow_unused=True)
    got = [torch.zeros_like(t) if g is None else g.double() for g, t in zip(got, (mu, logvar))]
    want_grad = torch.autograd.grad(free_bits_kl(mu, logvar, floor), (mu, logvar))
    expect(all(float(g[:, :3].abs().max()) == 0 for g in got),
           "the value is right, but dimensions below the floor still get a gradient: the floor "
           "must cut it (torch.clamp(kl, min=floor) does)")
    expect(all(close(g[:, 3:], w[:, 3:]) for g, w in zip(got, want_grad)),
           "the value is right, but dimensions above the floor do not get the KL's usual "
           "gradient: compute the result from mu and logvar with torch operations")
    passed("free bits = sum over dimensions of max(floor, KL_j averaged over the batch); below "
           "the floor the KL term gives no gradient.")
