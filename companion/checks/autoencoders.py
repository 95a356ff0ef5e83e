"""Self-checks for the exercises of notebook 01 (autoencoders).

    check_squared_error_loss(fn)   core exercise: ||x - sigmoid(logits)||^2 per image; hands on
                                   the course's `squared_error` while unwritten
    check_bce_from_logits(fn)      Exercise 1: the Bernoulli NLL from logits, exact at +-200
    check_rotate_codes(fn, ...)    Exercise 2: rotate a 2-D latent space, keep the outputs
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from companion.checks import as_double, expect, passed, self_check
from companion.losses import squared_error


# --- core exercise: the autoencoder's squared error -----------------------------------------

def _se_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and grey images [3, 1, 28, 28], float32, from a local generator (not the global one)."""
    g = torch.Generator().manual_seed(5)
    return 2 * torch.randn(3, 1, 28, 28, generator=g), torch.rand(3, 1, 28, 28, generator=g)


@self_check(reference=squared_error)
def check_squared_error_loss(squared_error_loss: Callable[[torch.Tensor, torch.Tensor],
                                                          torch.Tensor]) -> None:
    """Core exercise: squared_error_loss(logits, x) -> [N], ||x - sigmoid(logits)||^2 per image."""
    logits, x = _se_case()
    given = logits.clone().requires_grad_()
    out = squared_error_loss(given, x.clone())
    expect(isinstance(out, torch.Tensor), f"return a torch.Tensor, not {type(out).__name__}")
    expect(out.numel() != 1 or len(x) == 1,
           "you returned one number for the whole batch: return one number per image, shape "
           "[N]. Sum over the pixels only: .flatten(1).sum(dim=1) (F.mse_loss averages "
           "everything unless reduction='none')")
    got = as_double(out, (len(x),), "one loss per image", finite=True)
    lo, xd = logits.double(), x.double()
    want = (torch.sigmoid(lo) - xd).pow(2).flatten(1).sum(1)

    def near(value: torch.Tensor) -> bool:
        return torch.allclose(got, value, rtol=1e-4, atol=1e-4)

    expect(not near((lo - xd).pow(2).flatten(1).sum(1)),
           "you compared the logits with the pixels: the decoder's pixels are "
           "torch.sigmoid(logits), numbers in [0, 1]")
    expect(not near(want / 784),
           "you averaged over the pixels: the squared error of an image sums over its 784 "
           "pixels (.sum, not .mean)")
    expect(not near(want.sqrt()),
           "that is the distance ||x - x_hat||, not its square: drop the square root")
    expect(not near((torch.sigmoid(lo) - xd).abs().flatten(1).sum(1)),
           "that is the absolute error: square the differences (.pow(2))")
    expect(near(want),
           f"expected the sum over pixels of (sigmoid(logits) - x)^2 (first image: "
           f"{want[0].item():.3f}), got {got[0].item():.3f}")
    expect(out.requires_grad,
           "no gradient flows back to the logits: compute the loss with torch operations, "
           "without .detach(), .item() or numpy, or the network cannot train on it")
    passed("one squared error per image, summed over its pixels, on the sigmoid of the logits.")



def _bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The reference: BCE from logits, summed over the pixels of each image, in float64. [N]"""
    logits, x = logits.double(), x.double()
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def _cases() -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, logits, images) in float32: ordinary logits, then confident ones."""
    g = torch.Generator().manual_seed(0)
    grey = torch.rand(4, 1, 28, 28, generator=g)
    x = torch.where(torch.rand(grey.shape, generator=g) < 0.5, (grey > 0.5).float(), grey)
    ordinary = 3 * torch.randn(x.shape, generator=g)
    sure = 200 * torch.sign(torch.randn(x.shape, generator=g))           # +-200, half of them wrong
    return [("ordinary logits", ordinary, x), ("logits of +-200", sure, x)]


@self_check
def check_bce_from_logits(bce_from_logits: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                          ) -> None:
    """Exercise 1: the Bernoulli NLL of each image from logits, exact even for huge logits."""
    for name, logits, x in _cases():
        given = logits.clone()
        out = bce_from_logits(given, x.clone())
        expect(torch.equal(given, logits),
               "bce_from_logits changed the logits it was given. Do not modify its inputs in "
               "place (no clamp_, abs_ or mul_ on them); work on new tensors.")
        expect(isinstance(out, torch.Tensor),
               f"bce_from_logits should return a tensor, got {type(out).__name__}.")
        expect(out.shape == (len(x),),
               f"bce_from_logits should return one number per image, shape [{len(x)}], got "
               f"{list(out.shape)}. Sum over the pixels of each image: .flatten(1).sum(dim=1).")
        expect(bool(torch.isfinite(out).all()),
               f"With {name} your loss is not finite. In float32, sigmoid(a) is exactly 1 for "
               "a above about 17 and exactly 0 for a below about -104, so log(sigmoid(a)) or "
               "log(1 - sigmoid(a)) is -inf; exp(a) itself overflows above about 88. Write one "
               "pixel's loss as log(1 + e^a) - x * a and compute log(1 + e^a) as "
               "max(a, 0) + log1p(exp(-|a|)).")
        want, got = _bce(logits, x), out.cpu().double()
        expect(not torch.allclose(got, -want, rtol=1e-4),
               "Your loss has the wrong sign. It is a negative log-likelihood: "
               "-[x log sigma(a) + (1 - x) log(1 - sigma(a))], which is >= 0.")
        expect(not torch.allclose(got, want / 784, rtol=1e-4),
               "Your loss is a mean over pixels; the BCE of an image sums over its 784 pixels.")
        expect(not torch.allclose(got, _bce(-logits, x), rtol=1e-4),
               "Your loss treats sigmoid(a) as the probability of background. The logit a "
               "gives the probability of ink: p = sigmoid(a), and a pixel x = 1 costs -log p.")
        if name == "logits of +-200":
            expect(bool((got > want - 100).all()),
                   "With logits of +-200 your loss is far too small (first image: "
                   f"{got[0].item():.0f} nats instead of {want[0].item():.0f}). A pixel that is "
                   "ink but gets logit -200 must cost 200 nats. A small constant added inside "
                   "the log, or logits clamped to a range, caps what a wrong pixel can cost.")
        expect(torch.allclose(got, want, rtol=1e-4, atol=1e-2),
               f"With {name} your loss differs from the expected value (first image: "
               f"{got[0].item():.3f} instead of {want[0].item():.3f} nats). One pixel costs "
               "log(1 + e^a) - x * a.")
    for name, logits, x in _cases():
        a = logits.clone().requires_grad_()
        out = bce_from_logits(a, x.clone())
        expect(out.requires_grad,
               "No gradient flows back to the logits. Compute the loss with torch operations "
               "on the logits, without .detach(), .item() or numpy.")
        grad, = torch.autograd.grad(out.sum(), a)
        expect(bool(torch.isfinite(grad).all()),
               f"With {name} your values are right but the gradient is NaN or infinite. "
               "torch.where computes both branches, and the gradient of the branch it drops "
               "(exp(a) overflowing to inf) still turns into NaN. Use "
               "max(a, 0) + log1p(exp(-|a|)), where no exponent is positive.")
        expect(torch.allclose(grad, torch.sigmoid(logits) - x, atol=1e-4),
               f"With {name} your gradient with respect to the logits is not sigmoid(a) - x. "
               "Check that no step cuts the gradient, such as a clamp on the logits.")
    passed("the BCE from logits, log(1 + e^a) - x a, is exact and has the gradient "
           "sigmoid(a) - x even where the sigmoid itself rounds to 0 or 1.")


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]])


@self_check
@torch.no_grad()
def check_rotate_codes(rotate_codes: Callable, model, x: torch.Tensor, angle: float = 0.7) -> None:
    """Exercise 2: rotate_codes(model, angle) rotates the 2-D codes and keeps the outputs."""
    expect(model.latent_dim == 2, "This check needs an autoencoder with a 2-D latent space.")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rotated = rotate_codes(model, angle)
    changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    if changed:
        model.load_state_dict(before)  # put the learner's model back the way it was
    expect(rotated is not model,
           "rotate_codes returned the very model it was given. Return a new one: "
           "rotated = copy.deepcopy(model), then change only the copy.")
    expect(not changed,
           "rotate_codes changed the model it was given (it has been put back). Make a copy "
           "first (rotated = copy.deepcopy(model)) and change only the copy.")
    r = _rotation(angle).to(x.device)
    z, z_new = model.encode(x), rotated.encode(x)                    # [N, 2] each
    expect(not torch.allclose(z_new, z, atol=1e-4),
           "The codes did not change. Rotate the weight and the bias of the encoder's last "
           "layer: W -> R W, b -> R b.")
    expect(not torch.allclose(z_new, z @ r, rtol=1e-4, atol=1e-4),
           "Your codes turn clockwise, by -angle. With codes as rows, z' = R z is z @ R.T; "
           "for the layer, the new weight is R @ W.")
    bias = model.encoder[-1].bias
    expect(not torch.allclose(z_new, (z - bias) @ r.T + bias, rtol=1e-4, atol=1e-4),
           "The codes are rotated except for a constant shift: rotate the encoder's bias too.")
    expect(torch.allclose(z_new, z @ r.T, rtol=1e-4, atol=1e-4),
           "The new codes are not the old codes rotated by angle (z' = R z). "
           "Change only the encoder's last layer: weight R @ W and bias R @ b.")
    expect(torch.allclose(rotated(x), model(x), rtol=1e-4, atol=1e-4),
           "The codes are rotated correctly, but the reconstructions changed. The decoder "
           "must undo the rotation: its first layer's weight W becomes W @ R.T (R^-1 = R^T).")
    passed("the codes turned, the reconstructions did not: the loss cannot tell the two "
           "networks apart.")
