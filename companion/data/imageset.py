"""ImageSet: the images and labels of one dataset split, held as tensors on the device."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

SAMPLED = 1 << 20   # how many pixels `fingerprint` hashes byte by byte (all, if fewer)


@dataclass
class ImageSet:
    """Images and labels of one split, already on the device."""
    images: torch.Tensor   # float32 [N, 1, 28, 28], pixels in [0, 1]
    labels: torch.Tensor   # int64 [N]
    classes: tuple[str, ...]
    tag: str               # provenance, e.g. "mnist/train[:2000]", for people to read

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dataset(self) -> str:
        """The dataset's name, e.g. "mnist" for the tag "mnist/train[:2000]"."""
        return self.tag.split("/")[0]

    def fingerprint(self) -> str:
        """A short hash of the tensors themselves: shapes, dtypes, every label, an evenly
        strided sample of the pixels and an exact checksum of all of them (their bits summed
        as integers, so every machine and summation order gives the same number). Any change
        a learner makes to the data (another subset, preprocessing, a shuffle) changes it;
        the tag does not."""
        h = hashlib.sha256()
        for t in (self.images, self.labels):
            h.update(f"{t.dtype}{list(t.shape)}".encode())
        images, labels = self.images.detach().flatten(), self.labels.detach()
        step = max(1, images.numel() // SAMPLED)
        h.update(images[::step].cpu().contiguous().numpy().tobytes())
        bits = images.contiguous().view(torch.int32) if images.dtype == torch.float32 else images
        h.update(repr(bits.sum(dtype=torch.int64).item()).encode())
        h.update(labels.cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def subset(self, n: int) -> "ImageSet":
        """The first n examples (the files' order, so the same n gives the same subset)."""
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"subset(n) takes a whole number of examples >= 1, not {n!r}.")
        n = min(n, len(self))
        return ImageSet(self.images[:n], self.labels[:n], self.classes, f"{self.tag}[:{n}]")

    def to(self, device) -> "ImageSet":
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes, self.tag)
