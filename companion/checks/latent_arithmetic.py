"""Self-checks for the exercises of notebook 08 (latent arithmetic)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import expect, passed, self_check
from companion.gaussians import gaussian_log_density


def _reference_log_prior(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) of each row of z, [T, L] -> [T]."""
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    return gaussian_log_density(z, zero, zero).sum(-1)


@self_check(reference=_reference_log_prior)
def check_log_prior(log_prior: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Core exercise: log N(z; 0, I) of each row of z [T, L], summed over the L dimensions."""
    z = torch.randn(7, 5, generator=torch.Generator().manual_seed(0)) * 1.7
    out = log_prior(z.clone())
    expect(isinstance(out, torch.Tensor), f"log_prior should return a tensor, got {type(out)}.")
    expect(out.shape == (7,),
           f"log_prior should return one number per code, shape [7] for z of shape [7, 5]; "
           f"got {list(out.shape)}. Sum over the last dimension.")
    want = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
    constant = 0.5 * z.shape[1] * math.log(2 * math.pi)
    expect(not torch.allclose(out, want / z.shape[1], atol=1e-4),
           "You averaged over the dimensions: the log density of independent coordinates is "
           "the *sum* of their log densities.")
    expect(not torch.allclose(out, want + constant, atol=1e-4),
           "You are missing the normalising constant -L/2 * log(2 pi).")
    expect(not torch.allclose(out, -want, atol=1e-4),
           "Your values have the wrong sign: a log density of a wide Gaussian is negative here.")
    expect(not torch.allclose(out, want - 0.5 * z.pow(2).sum(-1), atol=1e-4),
           "The quadratic term is -||z||^2 / 2: you dropped the factor 1/2.")
    expect(torch.allclose(out, want, atol=1e-4),
           f"First code: you give {out[0].item():.4f}, torch.distributions gives "
           f"{want[0].item():.4f}. log N(z; 0, I) = -||z||^2 / 2 - L/2 * log(2 pi).")
    passed("your log prior agrees with torch.distributions.Normal(0, 1).log_prob(z).sum(-1).")


@torch.no_grad()
def reference_inpaint_by_iteration(model, x: torch.Tensor, mask: torch.Tensor,
                                   steps: int) -> torch.Tensor:
    """Start with the hidden pixels at 0; repeat: reconstruct, then put the visible pixels back."""
    filled = x * mask
    for _ in range(steps):
        filled = mask * x + (1 - mask) * model.reconstruct(filled)
    return filled


@self_check
@torch.no_grad()
def check_inpaint_by_iteration(inpaint_by_iteration: Callable, model, x: torch.Tensor,
                               mask: torch.Tensor, steps: int = 5) -> None:
    """Exercise 1: fill hidden pixels (mask == 0) by alternating reconstruction and clamping."""
    mask = mask.expand_as(x).to(x.dtype)
    out = inpaint_by_iteration(model, x.clone(), mask.clone(), steps)
    expect(isinstance(out, torch.Tensor) and out.shape == x.shape,
           f"Return images shaped like x, {list(x.shape)}; got "
           f"{list(out.shape) if isinstance(out, torch.Tensor) else type(out)}.")
    expect(bool(((out >= 0) & (out <= 1)).all()),
           "Some pixels lie outside [0, 1]: decode returns logits. Use model.reconstruct, or "
           "torch.sigmoid(model.decode(z)).")
    visible = mask.bool()
    expect(torch.equal(out[visible], x[visible]),
           "The visible pixels (mask == 1) must come back exactly as they were. After each "
           "reconstruction, put them back: mask * x + (1 - mask) * reconstruction. (If you did, "
           "check that you did not swap mask and 1 - mask.)")
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)).to(x.device)
    one_round = [inpaint_by_iteration(model, torch.where(visible, x, hidden), mask.clone(), 1)
                 for hidden in (x, noise)]                     # the same x, other hidden pixels
    expect(torch.allclose(*one_round, atol=1e-6),
           "Your result depends on the hidden pixels of x, which an inpainting method must not "
           "see. Start from x * mask (hidden pixels set to 0).")
    want = reference_inpaint_by_iteration(model, x, mask, steps)
    if steps > 1:
        once = reference_inpaint_by_iteration(model, x, mask, 1)
        expect(not torch.allclose(out, once, atol=1e-5) or torch.allclose(once, want, atol=1e-5),
               f"Your result equals a single round. Repeat the round `steps` ({steps}) times, "
               "each time starting from the previous result.")
    expect(torch.allclose(out, want, atol=1e-4),
           "The result differs from the expected one. Each round: reconstruct the current "
           "image with the posterior mean, model.reconstruct(filled), then restore the "
           f"visible pixels; largest difference {(out - want).abs().max().item():.3g}.")
    passed(f"{steps} rounds of reconstruct-and-restore; the visible pixels never change.")
