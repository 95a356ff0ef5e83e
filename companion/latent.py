"""The latent space of a trained model: encode a dataset, then measure, probe and sample it.

A plain autoencoder gives each image one code z; a VAE gives the mean mu of q(z|x). Both
are `model.code(x)`, so everything here works for either kind of model. Moving through the
latent space (paths, attribute vectors, inpainting) is in `companion.latent_arithmetic`.

    codes = encode_all(model, test)                      # [N, L]
    gaussians = fit_class_gaussians(codes, test.labels)  # a GaussianMixture, one per class
    z, y = gaussians.sample_each(8, generator)           # [K*8, L] codes to decode
    nearest_distance(z, codes)                           # how far each z is from real data
    linear_probe(train_codes, ..., test_codes, ...)      # how much class information survives

References: the per-class Gaussian sampling of a plain autoencoder's codes follows the 2018
journal-club notebook on VAEs; linear probes as a measure of what a representation keeps
follow Alain & Bengio 2016 (arXiv:1610.01644).
"""
from __future__ import annotations

import torch

from companion.data import Batches, ImageSet
from companion.mixture import GaussianMixture, m_step
from companion.models import eval_mode


@torch.no_grad()
def encode_all(model, data: ImageSet, batch_size: int = 1000) -> torch.Tensor:
    """The code of every image in data, [N, L]: z for an autoencoder, mu for a VAE."""
    with eval_mode(model):
        return torch.cat([model.code(x) for x, _ in Batches(data, batch_size, shuffle=False)])


def grid(xlim: tuple[float, float], ylim: tuple[float, float], steps: int) -> torch.Tensor:
    """steps x steps points covering a rectangle of a 2-D latent space, [steps*steps, 2].

    Rows run from the top (largest z2) down and columns from left to right, so the decoded
    images tile into a picture whose layout matches a scatter plot of the codes.
    """
    if not steps >= 1:
        raise ValueError(f"steps is the number of points per side, >= 1 (e.g. 15), not {steps!r}.")
    xs = torch.linspace(xlim[0], xlim[1], steps)
    ys = torch.linspace(ylim[1], ylim[0], steps)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")             # [steps, steps] each
    return torch.stack([gx.flatten(), gy.flatten()], dim=1)


def nearest_distance(points: torch.Tensor, codes: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance from each point [M, L] to its nearest code in codes [N, L]; shape [M]."""
    _check_codes(codes)
    codes = codes.to(points.device)
    return torch.cat([torch.cdist(p, codes).min(dim=1).values for p in points.split(chunk)])


def knn_classify(points: torch.Tensor, codes: torch.Tensor, labels: torch.Tensor,
                 k: int = 10, chunk: int = 4096) -> torch.Tensor:
    """The most common label among the k nearest codes of each point; shape [M]."""
    _check_codes(codes)
    if not 1 <= k <= len(codes):
        raise ValueError("k is the number of neighbours that vote, between 1 and the number "
                         f"of codes ({len(codes)}), not {k!r}.")
    codes, labels = codes.to(points.device), labels.to(points.device)
    votes = []
    for p in points.split(chunk):
        idx = torch.cdist(p, codes).topk(k, dim=1, largest=False).indices   # [m, k]
        votes.append(labels[idx].mode(dim=1).values)
    return torch.cat(votes)


def _check_codes(codes: torch.Tensor) -> None:
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"codes must be [N, L] with N >= 1, not of shape {list(codes.shape)}: "
                         "pass the codes of a dataset, e.g. encode_all(model, data).")


def fit_class_gaussians(codes: torch.Tensor, labels: torch.Tensor,
                        num_classes: int | None = None) -> GaussianMixture:
    """One Gaussian per class, fitted to the class's codes [N, L] (on their device and dtype).

    It is the M-step of EM with each code wholly responsible to its own class: each
    component's mean and covariance are those of its class (plus m_step's small ridge), its
    weight the class's share of the codes. `sample_each(n)` draws n codes of every class.
    """
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    counts = torch.bincount(labels.cpu(), minlength=num_classes)
    if len(counts) > num_classes:
        raise ValueError(f"labels go up to {len(counts) - 1}, but num_classes is {num_classes}: "
                         f"pass num_classes={len(counts)} or more, or leave it out.")
    if len(codes) != len(labels):
        raise ValueError(f"{len(codes)} codes but {len(labels)} labels: pass one label per code.")
    if counts.min() < 2:
        k = int(counts.argmin())
        raise ValueError(f"class {k} has {int(counts[k])} codes; a Gaussian needs at least 2: "
                         "pass more codes of that class.")
    resp = torch.nn.functional.one_hot(labels.to(codes.device), num_classes).to(codes.dtype)
    return m_step(codes.detach(), resp)


def linear_probe(train_codes: torch.Tensor, train_labels: torch.Tensor,
                 test_codes: torch.Tensor, test_labels: torch.Tensor,
                 weight_decay: float = 1e-4, steps: int = 100) -> float:
    """Test accuracy of a logistic-regression classifier trained on (standardised) codes."""
    _check_codes(train_codes)
    _check_codes(test_codes)
    if not steps >= 1:
        raise ValueError("steps is the number of L-BFGS iterations, >= 1 (e.g. 100), "
                         f"not {steps!r}.")
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
