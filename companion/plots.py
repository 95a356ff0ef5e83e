"""The figures the notebooks draw again and again: image grids, latent scatters, loss curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def image_grid(images: torch.Tensor, nrow: int = 8, pad: int = 1) -> torch.Tensor:
    """Tile images [N, 1, H, W] (values in [0, 1]) into one [rows*H, nrow*W] tensor."""
    images = images.detach().float().cpu().clamp(0, 1)
    n, _, h, w = images.shape
    rows = -(-n // nrow)
    grid = torch.ones(rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        grid[top:top + h, left:left + w] = images[i, 0]
    return grid


def show_images(images: torch.Tensor, nrow: int = 8, title: str = "", ax=None, labels=None):
    """Show a grid of images; labels (one string per row) go down the left side."""
    ax = ax or plt.subplots(figsize=(nrow * 0.6 + 0.6, (-(-len(images) // nrow)) * 0.6 + 0.6))[1]
    ax.imshow(image_grid(images, nrow), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_xticks([])
    if labels is None:
        ax.set_yticks([])
    else:
        h = images.shape[-2] + 1
        ax.set_yticks([1 + h * (i + 0.5) for i in range(len(labels))], labels)
    return ax


def show_pairs(originals: torch.Tensor, reconstructions: torch.Tensor, title: str = "", ax=None):
    """Originals in the top row, their reconstructions underneath."""
    n = len(originals)
    both = torch.cat([originals[:n].cpu(), reconstructions[:n].cpu()])
    return show_images(both, nrow=n, title=title, ax=ax, labels=["original", "reconstructed"])


def scatter_latent(z: torch.Tensor, labels: torch.Tensor, title: str = "", classes=None, ax=None):
    """The first two latent coordinates of each example, coloured by class."""
    z, labels = z.detach().cpu(), labels.cpu()
    ax = ax or plt.subplots(figsize=(5.5, 4.5))[1]
    points = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6,
                        vmin=-0.5, vmax=9.5)
    bar = ax.figure.colorbar(points, ax=ax, ticks=range(10))
    if classes is not None:
        bar.ax.set_yticklabels(classes)
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
    return ax


def plot_history(history, title: str = "", ax=None):
    """Training loss, its reconstruction and KL parts, and the test loss, per epoch."""
    ax = ax or plt.subplots(figsize=(6, 4))[1]
    epochs = range(1, history.epochs + 1)
    ax.plot(epochs, history.loss, "o-", label="train loss")
    ax.plot(epochs, history.reconstruction, "s--", label="train reconstruction")
    ax.plot(epochs, history.kl, "^--", label="train KL")
    if history.test_loss:
        ax.plot(epochs, history.test_loss, "o-", label="test loss")
    ax.set(title=title, xlabel="epoch", ylabel="nats per image")
    ax.legend()
    return ax
