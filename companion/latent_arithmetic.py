"""Moving through a latent space: paths between codes, attribute vectors, traversals, inpainting.

    lerp(z0, z1, t), slerp(z0, z1, t)     straight and great-circle paths between two codes
    class_means(codes, labels)            the mean code of each class
    attribute_direction(codes, scores)    mean code of the top scorers minus the bottom ones
    traverse(z, direction, amounts)       z moved along a direction
    slant(images)                         how far each digit leans (a score for the above)
    inpaint(model, x, mask)               fill hidden pixels by optimising z

References: morphing and the move toward a class mean follow the VAE slides (2022);
spherical interpolation follows Shoemake 1985 and White 2016 (arXiv:1609.04468); inpainting
by optimising z is named as an application in the Hasktorch tutorial (10 Days of Grad), day 9.
"""
from __future__ import annotations

import torch

from companion.models import eval_mode


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points (1 - t) z0 + t z1 on the straight line between two codes [L]; shape [T, L]."""
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, 1)   # [T, 1]
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Spherical interpolation between two codes [L]: a great-circle arc; shape [T, L].

    The angle is measured between the directions of z0 and z1, and the norm is interpolated
    linearly, so the path keeps clear of the origin. Nearly parallel or nearly opposite codes
    (sin of the angle below eps) fall back to the straight line, where the formula would divide
    by zero; for opposite codes that line passes through (or near) the origin, since no unique
    great circle joins them.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, 1)   # [T, 1]
    n0, n1 = z0.norm(), z1.norm()
    cos = torch.dot(z0 / n0.clamp_min(1e-12), z1 / n1.clamp_min(1e-12)).clamp(-1, 1)
    omega = torch.arccos(cos)
    if torch.sin(omega) < eps:
        return lerp(z0, z1, t)
    u0, u1 = z0 / n0, z1 / n1                                                 # unit vectors
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)
    return ((1 - t) * n0 + t * n1) * direction                                # [T, L]


def class_means(codes: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
                ) -> torch.Tensor:
    """The mean code of each class, [K, L]."""
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    counts = torch.bincount(labels, minlength=num_classes)
    if len(counts) > num_classes:
        raise ValueError(f"labels go up to {len(counts) - 1}, but num_classes is {num_classes}: "
                         f"pass num_classes={len(counts)} or more, or leave it out.")
    if (counts == 0).any():
        raise ValueError(f"classes {torch.nonzero(counts == 0).flatten().tolist()} have no codes: "
                         "pass codes of every class up to num_classes.")
    sums = torch.zeros(num_classes, codes.shape[1], dtype=codes.dtype, device=codes.device)
    sums.index_add_(0, labels, codes)
    return sums / counts[:, None].to(codes.dtype)


def attribute_direction(codes: torch.Tensor, scores: torch.Tensor, fraction: float = 0.25
                        ) -> torch.Tensor:
    """Mean code of the highest-scoring `fraction` of examples minus that of the lowest; [L]."""
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction must lie in (0, 0.5], got {fraction}")
    if len(scores) < 2 or len(codes) != len(scores):
        raise ValueError(f"pass one score per code and at least 2 of each, not {len(codes)} "
                         f"codes and {len(scores)} scores.")
    k = max(1, int(fraction * len(scores)))
    order = scores.argsort()
    return codes[order[-k:]].mean(dim=0) - codes[order[:k]].mean(dim=0)


def traverse(z: torch.Tensor, direction: torch.Tensor, amounts) -> torch.Tensor:
    """Codes z + a * direction for each amount a; z [L] -> [A, L], z [N, L] -> [N, A, L]."""
    a = torch.as_tensor(amounts, dtype=z.dtype, device=z.device).reshape(-1, 1)   # [A, 1]
    return z.unsqueeze(-2) + a * direction                                       # [..., A, L]


def slant(images: torch.Tensor) -> torch.Tensor:
    """How far each image leans right, [N]: the ink-weighted slope dx/dy of its strokes.

    With x the column and y the height (upwards) of each pixel, weighted by its intensity,
    slant = cov(x, y) / var(y). An upright "1" scores 0, a "/" scores > 0, a "\\" < 0.
    """
    w = images.flatten(1).clamp_min(0)                                  # [N, H*W]
    h, wd = images.shape[-2:]
    ys, xs = torch.meshgrid(-torch.arange(h, dtype=w.dtype, device=w.device),
                            torch.arange(wd, dtype=w.dtype, device=w.device), indexing="ij")
    xs, ys = xs.flatten(), ys.flatten()                                 # [H*W]
    mass = w.sum(1).clamp_min(1e-8)                                     # [N]
    mx, my = (w @ xs) / mass, (w @ ys) / mass                           # [N]
    cov = (w @ (xs * ys)) / mass - mx * my
    var = (w @ (ys * ys)) / mass - my * my
    return cov / var.clamp_min(1e-8)


def inpaint(model, x: torch.Tensor, mask: torch.Tensor, steps: int = 300, lr: float = 0.05,
            prior_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Fill the hidden pixels (mask == 0) of x [N, 1, 28, 28] by optimising z.

    Minimises, for each image, the Bernoulli loss on the visible pixels plus prior_weight
    times ||z||^2 / 2 (minus the log prior, up to a constant), starting from the encoding of
    the masked image. Returns (filled images, z [N, L], mean objective per step).
    """
    if not steps >= 1:
        raise ValueError(f"steps is the number of Adam steps on z, >= 1 (e.g. 300), not {steps!r}.")
    mask = mask.expand_as(x).to(x.dtype)
    with eval_mode(model):
        with torch.no_grad():
            z = model.code(x * mask).clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        losses = []
        for _ in range(steps):
            logits = model.decode(z)                                        # [N, 1, 28, 28]
            nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
            objective = (nll * mask).flatten(1).sum(1) + prior_weight * 0.5 * z.pow(2).sum(1)
            (z.grad,) = torch.autograd.grad(objective.sum(), [z])   # leaves the weights' .grad alone
            optimizer.step()
            losses.append(objective.mean().item())
        with torch.no_grad():
            guess = torch.sigmoid(model.decode(z))
    return mask * x + (1 - mask) * guess, z.detach(), losses
