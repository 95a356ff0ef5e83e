"""Self-checks for the exercises of notebook 00 (welcome and data).

Each check runs the learner's function on small inputs whose right answer is known, and
names the usual mistake when the answer is wrong: integer pixels, dividing by 256,
averaging over the wrong axis, bits instead of nats, 0 * log 0 turning into NaN.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from companion.checks import expect, passed, self_check


def _raw_pixels() -> torch.Tensor:
    """A uint8 batch [3, 28, 28] that holds every byte value 0..255 at least once."""
    return (torch.arange(3 * 28 * 28) % 256).to(torch.uint8).view(3, 28, 28)


@self_check
def check_to_unit_interval(to_unit_interval: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Core exercise (From bytes to [0, 1]): uint8 pixels 0..255 must become floats with 0 -> 0.0 and 255 -> 1.0."""
    raw = _raw_pixels()
    out = to_unit_interval(raw.clone())
    expect(isinstance(out, torch.Tensor), f"return a torch.Tensor, not {type(out).__name__}")
    expect(tuple(out.shape) == tuple(raw.shape),
           f"keep the shape: got {list(out.shape)} for an input of shape {list(raw.shape)}")
    expect(out.is_floating_point(),
           f"the result has dtype {out.dtype}: convert to float first (raw.float()), "
           "then divide, or integer arithmetic rounds every pixel to 0 or 1")
    out = out.cpu().double()
    expect(bool(torch.isfinite(out).all()), "the result contains NaN or infinity")
    top = out.max().item()
    expect(top < 2, f"the brightest pixel is {top:g}: divide by 255 to map 0..255 onto [0, 1]")
    expect(not torch.allclose(out, raw.double() / 256),
           "you divided by 256: then 255 maps to 0.996, not 1. Divide by 255")
    expect(not torch.allclose(out, raw.double() / 255**2),
           "the brightest pixel is 1/255: you divided by 255 twice")
    expect(torch.allclose(out, raw.double() / 255, atol=1e-6),
           "expected pixel / 255 for every pixel (0 -> 0.0, 255 -> 1.0, 51 -> 0.2)")
    passed("0 maps to 0.0, 255 to 1.0, and every byte in between to byte / 255.")


def _toy_labelled_set(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images [40, 1, 28, 28] with shuffled labels and unequal class sizes."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([c for c in range(4) for _ in range(c + 7)])   # 7, 8, 9, 10 each
    labels = labels[torch.randperm(len(labels), generator=g)]
    images = torch.rand(len(labels), 1, 28, 28, generator=g) * 0.5 + labels.view(-1, 1, 1, 1) / 8
    return images, labels


@self_check
def check_class_means(class_means: Callable[..., torch.Tensor]) -> None:
    """Exercise 1: class_means(images, labels, n_classes) -> [n_classes, 1, 28, 28]."""
    images, labels = _toy_labelled_set()
    out = class_means(images, labels, 4)
    want = torch.stack([images[labels == c].mean(0) for c in range(4)])   # [4, 1, 28, 28]
    expect(isinstance(out, torch.Tensor), f"return a torch.Tensor, not {type(out).__name__}")
    expect(out.numel() == want.numel(),
           f"expected one 1x28x28 mean image per class, shape {list(want.shape)}; "
           f"got {list(out.shape)}")
    expect(tuple(out.shape) == tuple(want.shape),
           f"right numbers, wrong shape {list(out.shape)}: reshape to {list(want.shape)}")
    out = out.cpu().double()
    want = want.double()
    expect(not torch.allclose(out[0], out[1]),
           "every class got the same image: select the images of class c with images[labels == c]")
    expect(bool(out.max() <= 1 + 1e-6),
           "values above 1: a mean of pixels in [0, 1] stays in [0, 1]. "
           "Did you sum instead of average?")
    order = list(dict.fromkeys(labels.tolist()))                          # first appearance
    if order != sorted(order):
        by_appearance = torch.stack([images[labels == c].mean(0) for c in order]).double()
        expect(not torch.allclose(out, by_appearance, atol=1e-5),
               "row c must be the mean of class c: you ordered the classes by first appearance")
    expect(torch.allclose(out, want, atol=1e-5),
           "row c should be the average of all images with label c (images[labels == c].mean(0))")
    passed("one mean image per class, in label order.")


def _binary_entropy(x: torch.Tensor) -> torch.Tensor:
    """H(x) = -x log x - (1 - x) log(1 - x) in nats, with 0 log 0 = 0. Same shape as x."""
    x = x.double()
    return -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x))


@self_check
def check_bce_floor(bce_floor: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Exercise 2: bce_floor(x) -> [N], the least Bernoulli NLL any decoder can reach (nats)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 1, 28, 28, generator=g)
    x[:, :, :10] = 0.0                 # black background, as in MNIST
    x[:, :, 10:12] = 1.0               # a saturated stroke
    x[0] = 0.5                         # one image of pure grey: 784 * log 2 nats
    want = _binary_entropy(x).flatten(1).sum(1)                          # [N]
    out = bce_floor(x.clone())
    expect(isinstance(out, torch.Tensor), f"return a torch.Tensor, not {type(out).__name__}")
    expect(tuple(out.shape) == (5,),
           f"return one number per image, shape [N] = [5]; got {list(out.shape)}. "
           "Sum over the pixels of each image: .flatten(1).sum(1)")
    out = out.cpu().double()
    expect(not bool(torch.isnan(out).any()),
           "NaN: pixels that are exactly 0 or 1 give 0 * log 0. That term is 0: "
           "use torch.xlogy(x, x)")
    expect(not torch.allclose(out, want / 784, rtol=1e-4),
           "you averaged over pixels: the likelihood of an image is a sum over its pixels")
    expect(not torch.allclose(out, want / math.log(2), rtol=1e-4),
           "that is in bits: use the natural log (torch.log), the unit of every loss in the course")
    expect(not torch.allclose(out, -want, rtol=1e-4),
           "wrong sign: an entropy, like a loss, is >= 0")
    expect(torch.allclose(out, want, rtol=1e-4, atol=1e-4),
           "expected the sum over pixels of -x log x - (1 - x) log(1 - x) (natural log)")
    passed(f"the floor of the grey image is {out[0].item():.2f} nats = 784 log 2.")
