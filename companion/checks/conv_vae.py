"""Self-checks for the exercises of notebook 07 (convolutional VAEs)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from companion.checks import expect, passed, self_check

# (size, kernel, stride, padding) cases that tell the usual wrong formulas apart
_CONV_CASES = [(28, 3, 1, 1), (28, 4, 2, 1), (28, 3, 2, 1), (7, 3, 2, 1), (28, 4, 2, 0),
               (13, 4, 2, 0), (5, 3, 2, 0), (4, 3, 2, 1), (28, 5, 3, 2)]
_TCONV_CASES = [(7, 3, 2, 1, 1), (14, 3, 2, 1, 1), (7, 3, 1, 1, 0), (1, 4, 2, 0, 0),
                (4, 6, 2, 0, 0), (12, 6, 2, 0, 0), (1, 4, 1, 0, 0), (4, 4, 2, 1, 0),
                (8, 4, 2, 2, 0), (14, 4, 2, 1, 0)]


def _true_conv(size: int, k: int, s: int, p: int) -> int:
    return nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, size, size)).shape[-1]


def _true_tconv(size: int, k: int, s: int, p: int, op: int) -> int:
    layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)
    return layer(torch.zeros(1, 1, size, size)).shape[-1]


@self_check
def check_output_sizes(conv_size: Callable[..., int], tconv_size: Callable[..., int]) -> None:
    """Section 5: output sizes of Conv2d and ConvTranspose2d layers from their settings."""
    for size, k, s, p in _CONV_CASES:
        got, want = conv_size(size, k, s, p), _true_conv(size, k, s, p)
        expect(isinstance(got, int), f"conv_size should return an int, got {type(got).__name__}. "
               "Use integer division // for the stride.")
        expect(got == want, f"conv_size({size}, kernel={k}, stride={s}, padding={p}) returned "
               f"{got}, but Conv2d gives {want}. The kernel fits (size + 2*padding - kernel) "
               "// stride times after its first position: add 1.")
    for size, k, s, p, op in _TCONV_CASES:
        got, want = tconv_size(size, k, s, p, op), _true_tconv(size, k, s, p, op)
        expect(isinstance(got, int), f"tconv_size should return an int, got {type(got).__name__}.")
        expect(not (op and got == want - op),
               "tconv_size forgets output_padding: it adds that many rows and columns at the end.")
        expect(got == want, f"tconv_size({size}, kernel={k}, stride={s}, padding={p}, "
               f"output_padding={op}) returned {got}, but ConvTranspose2d gives {want}. Run the "
               "conv formula backwards: (size - 1) * stride - 2 * padding + kernel + output_padding.")
    passed("both formulas agree with PyTorch on every case, including the sources' layers.")


@self_check
def check_upsample_decoder(make_decoder: Callable[[int], nn.Module], latent_dim: int = 8) -> None:
    """Exercise 1: a decoder z [N, L] -> logits [N, 1, 28, 28] without transposed convs."""
    torch.manual_seed(0)
    decoder = make_decoder(latent_dim)
    expect(isinstance(decoder, nn.Module), "make_decoder should return an nn.Module.")
    kinds = [type(m) for m in decoder.modules()]
    expect(not any(issubclass(k, nn.ConvTranspose2d) for k in kinds),
           "The decoder still uses ConvTranspose2d. Double the size with nn.Upsample("
           "scale_factor=2) followed by nn.Conv2d(..., kernel_size=3, padding=1).")
    expect(nn.Upsample in kinds, "Use nn.Upsample(scale_factor=2) to grow the feature maps.")
    z = torch.randn(5, latent_dim, requires_grad=True)
    out = decoder(z)
    expect(tuple(out.shape) == (5, 1, 28, 28),
           f"The decoder should return logits shaped [5, 1, 28, 28], got {list(out.shape)}. "
           "Start from 7x7 (nn.Unflatten after a Linear) and upsample twice: 7 -> 14 -> 28.")
    last = [m for m in decoder.modules() if not list(m.children())][-1]
    expect(not isinstance(last, (nn.Sigmoid, nn.ReLU, nn.LeakyReLU, nn.BatchNorm2d, nn.Dropout)),
           f"The decoder ends in {type(last).__name__}. It must return logits: end with the "
           "last convolution (the loss applies the sigmoid).")
    out.sum().backward()
    expect(z.grad is not None and z.grad.abs().sum() > 0,
           "No gradient reaches z: every layer must depend on the input.")
    passed("28x28 logits from z through upsampling and ordinary convolutions.")
