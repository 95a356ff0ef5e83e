"""Mini-batches by indexing tensors that already live on the device.

A torchvision DataLoader turns every image into a PIL object and back into a tensor, one at
a time. For 28 x 28 images that per-sample work costs more than the model itself, so here a
batch is one indexing operation: ``images[perm[i:i + 128]]``.
"""
from __future__ import annotations

from typing import Iterator

import torch

from companion.data.imageset import ImageSet


def _generator(seed: int, device: torch.device) -> torch.Generator:
    try:
        return torch.Generator(device=device).manual_seed(seed)
    except RuntimeError:  # a backend without its own generators
        return torch.Generator().manual_seed(seed)


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization: each pixel becomes 1 with probability equal to its intensity."""
    noise = torch.rand(x.shape, generator=generator, device=generator.device if generator else x.device)
    return (noise.to(x.device) < x).to(x.dtype)


class Batches:
    """Seeded shuffling iterator of (images, labels) batches over an ImageSet.

    Each pass (epoch) draws a new permutation from one generator, so a run with the same
    seed sees the same batches in the same order.
    """

    def __init__(self, data, batch_size: int = 128, shuffle: bool = True, seed: int = 0,
                 dynamic_binarization: bool = False, drop_last: bool = False):
        if not batch_size >= 1:
            raise ValueError("batch_size is the number of images per batch, >= 1 "
                             f"(e.g. 128), not {batch_size!r}.")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.dynamic_binarization = dynamic_binarization
        self.drop_last = drop_last
        self.generator = _generator(seed, data.images.device)

    def __len__(self) -> int:
        n, b = len(self.data), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.data)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator, device=self.generator.device)
            order = order.to(self.data.images.device)
        else:
            order = torch.arange(n, device=self.data.images.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            x = self.data.images[idx]
            if self.dynamic_binarization:
                x = binarize(x, self.generator)
            yield x, self.data.labels[idx]


def train_val_split(data, n_val: int, seed: int = 0):
    """Split an ImageSet into (train, validation) with a seeded random choice of n_val examples."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    order = order.to(data.images.device)
    val, train = order[:n_val], order[n_val:]
    tag = f"{data.tag}~split({n_val},seed={seed})"
    return (ImageSet(data.images[train], data.labels[train], data.classes, tag + ".train"),
            ImageSet(data.images[val], data.labels[val], data.classes, tag + ".val"))
