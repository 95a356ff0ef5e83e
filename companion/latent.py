"""The latent space of a trained model: encode a dataset, then measure, probe and sample it.

A plain autoencoder gives each image one code z = encode(x); a VAE gives the mean mu of
q(z|x). `encode_all` treats both alike, so everything here works for either kind of model.

    codes = encode_all(model, test)                      # [N, L]
    gaussians = fit_class_gaussians(codes, test.labels)  # one N(mean_k, cov_k) per class
    z, y = gaussians.sample(8, generator)                # [K*8, L] codes to decode
    nearest_distance(z, codes)                           # how far each z is from real data
    linear_probe(train_codes, ..., test_codes, ...)      # how much class information survives

References: the per-class Gaussian sampling of a plain autoencoder's codes follows the 2018
ML journal-club notebook on VAEs; linear probes as a measure of what a representation keeps
follow Alain & Bengio 2016 (arXiv:1610.01644).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from companion.data import Batches, ImageSet


@torch.no_grad()
def encode_all(model, data: ImageSet, batch_size: int = 1000) -> torch.Tensor:
    """The code of every image in data, [N, L]: z for an autoencoder, mu for a VAE."""
    was_training = model.training
    model.eval()
    codes = []
    for x, _ in Batches(data, batch_size, shuffle=False):
        z = model.encode(x)
        codes.append(z[0] if isinstance(z, tuple) else z)   # a VAE returns (mu, logvar)
    model.train(was_training)
    return torch.cat(codes)


def grid(xlim: tuple[float, float], ylim: tuple[float, float], steps: int) -> torch.Tensor:
    """steps x steps points covering a rectangle of a 2-D latent space, [steps*steps, 2].

    Rows run from the top (largest z2) down and columns from left to right, so the decoded
    images tile into a picture whose layout matches a scatter plot of the codes.
    """
    xs = torch.linspace(xlim[0], xlim[1], steps)
    ys = torch.linspace(ylim[1], ylim[0], steps)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")             # [steps, steps] each
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def nearest_distance(points: torch.Tensor, codes: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance from each point [M, L] to its nearest code in codes [N, L]; shape [M]."""
    codes = codes.to(points.device)
    return torch.cat([torch.cdist(p, codes).min(dim=1).values for p in points.split(chunk)])


def knn_classify(points: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor,
                 k: int = 10, chunk: int = 4096) -> torch.Tensor:
    """The most common label among the k nearest codes of each point; shape [M]."""
    codes, labels = codes.to(points.device), labels.to(points.device)
    votes = []
    for p in points.split(chunk):
        idx = torch.cdist(p, codes).topk(k, dim=1, largest=False).indices   # [m, k]
        votes.append(labels[idx].mode(dim=1).values)
    return torch.cat(votes)


@dataclass
class ClassGaussians:
    """One full-covariance Gaussian N(means[k], covs[k]) per class of a latent space."""
    means: torch.Tensor   # [K, L]
    covs: torch.Tensor    # [K, L, L]

    def sample(self, n_per_class: int, generator: torch.Generator | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """n_per_class codes from each class's Gaussian: (z [K*n, L], labels [K*n])."""
        k, dim = self.means.shape
        chol = torch.linalg.cholesky(self.covs.cpu())                       # [K, L, L]
        eps = torch.randn(k, n_per_class, dim, generator=generator)         # [K, n, L]
        z = self.means.cpu()[:, None, :] + eps @ chol.transpose(1, 2)        # [K, n, L]
        labels = torch.arange(k).repeat_interleave(n_per_class)
        return z.reshape(-1, dim).to(self.means.device), labels.to(self.means.device)


def fit_class_gaussians(codes: torch.Tensor, labels: torch.Tensor,
                        num_classes: int | None = None) -> ClassGaussians:
    """Maximum-likelihood mean and covariance of the codes of each class."""
    num_classes = num_classes or int(labels.max()) + 1
    means, covs = [], []
    for k in range(num_classes):
        z = codes[labels == k]
        if len(z) < 2:
            raise ValueError(f"class {k} has {len(z)} codes; a Gaussian needs at least 2")
        centred = z - z.mean(dim=0)
        means.append(z.mean(dim=0))
        covs.append(centred.T @ centred / len(z))                        # [L, L]
    return ClassGaussians(torch.stack(means), torch.stack(covs))


def linear_probe(train_codes: torch.Tensor, train_labels: torch.Tensor,
                 test_codes: torch.Tensor, test_labels: torch.Tensor,
                 weight_decay: float = 1e-4, steps: int = 100) -> float:
    """Test accuracy of a logistic-regression classifier trained on (standardised) codes."""
    mean, std = train_codes.mean(dim=0), train_codes.std(dim=0).clamp_min(1e-6)
    x, x_test = (train_codes - mean) / std, (test_codes - mean) / std
    classes = int(max(train_labels.max(), test_labels.max())) + 1
    weight = torch.zeros(x.shape[1], classes, device=x.device, requires_grad=True)
    bias = torch.zeros(classes, device=x.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, train_labels)
        loss = loss + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        predicted = (x_test @ weight + bias).argmax(dim=1)
    return (predicted == test_labels).float().mean().item()


# --- Latent arithmetic: paths, attribute vectors, traversals, inpainting ----------------------
# Morphing and the move toward a class mean follow the 2022 slides "Variational Autoencoder";
# spherical interpolation follows Shoemake 1985 and White 2016 (arXiv:1609.04468); inpainting
# by optimising z is named as an application in "10 Days of Grad", day 9.

def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points (1 - t) z0 + t z1 on the straight line between two codes [L]; shape [T, L]."""
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device).reshape(-1, 1)   # [T, 1]
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Spherical interpolation between two codes [L]: a great-circle arc; shape [T, L].

    The angle is measured between the directions of z0 and z1, and the norm is interpolated
    linearly, so the path keeps clear of the origin. Nearly parallel codes (sin of the angle
    below eps) fall back to the straight line, where the formula would divide by zero.
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
    num_classes = num_classes or int(labels.max()) + 1
    counts = torch.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        raise ValueError(f"classes {torch.nonzero(counts == 0).flatten().tolist()} have no codes")
    sums = torch.zeros(num_classes, codes.shape[1], dtype=codes.dtype, device=codes.device)
    sums.index_add_(0, labels, codes)
    return sums / counts[:, None].to(codes.dtype)


def attribute_direction(codes: torch.Tensor, scores: torch.Tensor, fraction: float = 0.25
                        ) -> torch.Tensor:
    """Mean code of the highest-scoring `fraction` of examples minus that of the lowest; [L]."""
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction must lie in (0, 0.5], got {fraction}")
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
    mask = mask.expand_as(x).to(x.dtype)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        code = model.encode(x * mask)
        z0 = code[0] if isinstance(code, tuple) else code
    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    losses = []
    for _ in range(steps):
        logits = model.decode(z)                                            # [N, 1, 28, 28]
        nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
        objective = (nll * mask).flatten(1).sum(1) + prior_weight * 0.5 * z.pow(2).sum(1)
        (z.grad,) = torch.autograd.grad(objective.sum(), [z])   # leaves the weights' .grad alone
        optimizer.step()
        losses.append(objective.mean().item())
    model.train(was_training)
    with torch.no_grad():
        guess = torch.sigmoid(model.decode(z))
    return mask * x + (1 - mask) * guess, z.detach(), losses
