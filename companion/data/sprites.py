"""Sprites: a procedurally drawn dSprites-like dataset whose generative factors are known.

Every image shows one white shape on black, fixed by five factors:

    shape        square, ellipse, heart
    scale        `scales` values in [0.5, 1]
    orientation  `orientations` angles in [0, 2 pi)
    pos_x, pos_y `positions` values each, across the canvas

The defaults (6 scales, 40 angles, 32 x 32 positions, 64 x 64 pixels) follow the layout of
dSprites (Matthey et al. 2017), but the shapes are drawn here from implicit equations, so
the images are *not* those of dSprites. A coarser grid and smaller images are one argument
away: notebook 06 trains on all 46 080 sprites of a 6-scale, 10-angle, 16 x 16-position grid
at 32 x 32 pixels (`companion.models.mlp.DeepMLPVAE(image_size=32)`), 190 MB as float32.
The same seed gives the same images, bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from companion import settings
from companion.data.imageset import ImageSet

SHAPES = ("square", "ellipse", "heart")
FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
HALF_EXTENT = 0.4   # half-width of a scale-1 shape, in canvas units (the canvas is [-1, 1]^2)
MAX_CENTRE = 0.38   # centres lie in [-0.38, 0.38], so a rotated scale-1 square stays inside


@dataclass(frozen=True)
class SpriteGrid:
    """How many values each factor takes (shape always has three)."""
    scales: int = 6
    orientations: int = 40
    positions: int = 32   # per axis

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of values of each factor, in the order of FACTORS."""
        return (len(SHAPES), self.scales, self.orientations, self.positions, self.positions)

    def values(self, factor: str) -> torch.Tensor:
        """The actual values of one factor (shape: its index), one per grid index."""
        if factor == "shape":
            return torch.arange(len(SHAPES), dtype=torch.float32)
        if factor == "scale":
            return torch.linspace(0.5, 1.0, self.scales)
        if factor == "orientation":
            return torch.arange(self.orientations) * (2 * math.pi / self.orientations)
        if factor in ("pos_x", "pos_y"):
            return torch.linspace(-MAX_CENTRE, MAX_CENTRE, self.positions)
        raise ValueError(f"unknown factor {factor!r}; the factors are {FACTORS}")

    def __len__(self) -> int:
        return math.prod(self.sizes)


def all_factors(grid: SpriteGrid) -> torch.Tensor:
    """Every combination of factor indices, [len(grid), 5], the last factor varying fastest."""
    axes = [torch.arange(n) for n in grid.sizes]
    return torch.cartesian_prod(*axes)


def _square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 1


def _ellipse(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return u ** 2 + (v / 0.55) ** 2 <= 1              # a 2:1 ellipse, so rotation shows


def _heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    x, y = 1.15 * u, 1.15 * v + 0.15                  # the heart curve, fitted into [-1, 1]^2
    return (x ** 2 + y ** 2 - 1) ** 3 - x ** 2 * y ** 3 <= 0


def _inside(shape: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Whether sprite-frame points (u, v) lie inside each shape; shape [N], u and v [N, P]."""
    out = torch.empty(u.shape, dtype=torch.bool)
    for k, inside in enumerate((_square, _ellipse, _heart)):   # the order of SHAPES
        rows = shape == k
        out[rows] = inside(u[rows], v[rows])
    return out


def render(factors: torch.Tensor, grid: SpriteGrid = SpriteGrid(), size: int = 64) -> torch.Tensor:
    """Draw the sprites given by factor indices [N, 5]; returns float images [N, 1, size, size]."""
    factors = factors.long().cpu()
    scale = grid.values("scale")[factors[:, 1]][:, None]           # [N, 1]
    angle = grid.values("orientation")[factors[:, 2]][:, None]
    cx = grid.values("pos_x")[factors[:, 3]][:, None]
    cy = grid.values("pos_y")[factors[:, 4]][:, None]
    ticks = (torch.arange(size) + 0.5) * (2 / size) - 1             # pixel centres in [-1, 1]
    py, px = torch.meshgrid(-ticks, ticks, indexing="ij")           # y points up the image
    px, py = px.flatten()[None], py.flatten()[None]                 # [1, size*size]
    dx, dy = px - cx, py - cy                                       # [N, size*size]
    cos, sin = torch.cos(angle), torch.sin(angle)
    u = (cos * dx + sin * dy) / (HALF_EXTENT * scale)               # rotate by -angle, unscale
    v = (-sin * dx + cos * dy) / (HALF_EXTENT * scale)
    return _inside(factors[:, 0], u, v).float().view(-1, 1, size, size)


@dataclass
class SpriteSet(ImageSet):
    """An ImageSet of sprites (labels = shape) that also carries every factor index."""
    factors: torch.Tensor = field(default=None)    # int64 [N, 5], indices into grid.values
    grid: SpriteGrid = field(default_factory=SpriteGrid)

    def subset(self, n: int) -> "SpriteSet":
        n = min(n, len(self))
        return SpriteSet(self.images[:n], self.labels[:n], self.classes, f"{self.tag}[:{n}]",
                         self.factors[:n], self.grid)

    def to(self, device) -> "SpriteSet":
        return SpriteSet(self.images.to(device), self.labels.to(device), self.classes, self.tag,
                         self.factors.to(device), self.grid)


def make(n: int | None = None, size: int = 64, grid: SpriteGrid = SpriteGrid(), seed: int = 0,
         device=None, chunk: int = 8192) -> SpriteSet:
    """n sprites with factors drawn uniformly from the grid without replacement (all if None)."""
    everything = all_factors(grid)
    if n is None:
        factors = everything
    else:
        if not 0 < n <= len(everything):
            raise ValueError(f"n must be between 1 and the grid's {len(everything)} combinations, "
                             f"got {n}. Choose a smaller n or a finer SpriteGrid.")
        order = torch.randperm(len(everything), generator=torch.Generator().manual_seed(seed))
        factors = everything[order[:n]]
    images = torch.cat([render(f, grid, size) for f in factors.split(chunk)])
    device = device or settings.device()
    tag = (f"sprites(size={size},scales={grid.scales},orientations={grid.orientations},"
           f"positions={grid.positions},n={len(factors)},seed={seed},"
           f"extent={HALF_EXTENT},centre={MAX_CENTRE})")   # the cache key of models trained on it
    return SpriteSet(images.to(device), factors[:, 0].to(device), SHAPES, tag,
                     factors.to(device), grid)
