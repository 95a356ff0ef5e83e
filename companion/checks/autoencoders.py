"""Self-checks for the exercises of notebook 01 (autoencoders)."""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import expect, passed


def _entropy_floor(x: torch.Tensor) -> torch.Tensor:
    """Sum over pixels of the binary entropy of each pixel value, in nats. Shape [N]."""
    return -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x)).flatten(1).sum(1)


def check_bce_floor(bce_floor: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 1: the smallest Bernoulli NLL (BCE) any decoder can reach, per image."""
    g = torch.Generator().manual_seed(0)
    grey = torch.rand(4, 1, 28, 28, generator=g)
    binary = (grey > 0.5).float()
    mixed = torch.where(torch.rand(grey.shape, generator=g) < 0.5, binary, grey)
    for name, x in [("grey", grey), ("half black-and-white", mixed), ("black-and-white", binary)]:
        out = bce_floor(x.clone())
        expect(isinstance(out, torch.Tensor), f"bce_floor should return a tensor, got {type(out)}.")
        expect(out.shape == (len(x),),
               f"bce_floor should return one number per image, shape [{len(x)}], got "
               f"{list(out.shape)}. Sum over the pixels of each image: .flatten(1).sum(dim=1).")
        expect(bool(torch.isfinite(out).all()),
               f"On {name} images your floor is not finite. At a pixel that is exactly 0 or 1 "
               "the formula has 0 * log 0, which torch computes as nan; it should count as 0. "
               "torch.xlogy(x, x) does exactly that.")
        want = _entropy_floor(x)
        if want.abs().sum() > 0:
            expect(not torch.allclose(out, -want, rtol=1e-4),
                   "Your floor is negative: it has the wrong sign. A loss is -log p, and the "
                   "entropy -sum(x log x + (1-x) log(1-x)) is >= 0.")
            expect(not torch.allclose(out, want / math.log(2), rtol=1e-4),
                   "Your floor is in bits (log base 2). The course measures losses in nats: "
                   "use the natural logarithm, torch.log or torch.xlogy.")
            expect(not torch.allclose(out, want / 784, rtol=1e-4),
                   "Your floor is a mean over pixels; the loss sums over the 784 pixels.")
        expect(torch.allclose(out, want, rtol=1e-4, atol=1e-3),
               f"On {name} images your floor differs from the expected value (first image: "
               f"{out[0].item():.3f} instead of {want[0].item():.3f}). The floor is the BCE at "
               "sigma(a) = x: -sum over pixels of [x log x + (1 - x) log(1 - x)].")
    passed("the floor is the entropy of the pixels: zero for black-and-white images, "
           "positive as soon as a pixel is grey.")


def _rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]])


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
