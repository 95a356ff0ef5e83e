"""ImageSet: the images and labels of one dataset split, held as tensors on the device."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """Images and labels of one split, already on the device."""
    images: torch.Tensor   # float32 [N, 1, 28, 28], pixels in [0, 1]
    labels: torch.Tensor   # int64 [N]
    classes: tuple[str, ...]
    tag: str               # provenance, e.g. "mnist/train[:2000]"; part of the cache key

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dataset(self) -> str:
        """The dataset's name, e.g. "mnist" for the tag "mnist/train[:2000]"."""
        return self.tag.split("/")[0]

    def subset(self, n: int) -> "ImageSet":
        """The first n examples (the files' order, so the same n gives the same subset)."""
        n = min(n, len(self))
        return ImageSet(self.images[:n], self.labels[:n], self.classes, f"{self.tag}[:{n}]")

    def to(self, device) -> "ImageSet":
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes, self.tag)
