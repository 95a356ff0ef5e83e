"""The sprites generator: its factor grid, the images it draws, and its determinism."""
import math

import pytest
import torch

from companion.data import Batches
from companion.data.sprites import FACTORS, SHAPES, SpriteGrid, all_factors, make, render


def test_default_grid_is_the_dsprites_layout():
    grid = SpriteGrid()
    assert grid.sizes == (3, 6, 40, 32, 32)
    assert len(grid) == 3 * 6 * 40 * 32 * 32 == len(all_factors(grid))
    scale = grid.values("scale")
    assert scale[0] == pytest.approx(0.5) and scale[-1] == pytest.approx(1.0) and len(scale) == 6
    angle = grid.values("orientation")
    assert angle[0] == 0 and angle[-1] < 2 * math.pi and len(angle) == 40
    assert torch.allclose(angle.diff(), torch.full((39,), 2 * math.pi / 40))
    assert len(grid.values("pos_x")) == len(grid.values("pos_y")) == 32
    with pytest.raises(ValueError, match="unknown factor"):
        grid.values("colour")


def test_all_factors_enumerates_every_combination_once():
    grid = SpriteGrid(scales=2, orientations=3, positions=2)
    combos = all_factors(grid)
    assert combos.shape == (3 * 2 * 3 * 2 * 2, len(FACTORS))
    assert len({tuple(c) for c in combos.tolist()}) == len(combos)
    for k, n in enumerate(grid.sizes):
        assert combos[:, k].min() == 0 and combos[:, k].max() == n - 1


def test_make_shapes_labels_and_factors():
    grid = SpriteGrid(scales=3, orientations=8, positions=8)
    data = make(200, size=28, grid=grid, seed=0, device="cpu")
    assert data.images.shape == (200, 1, 28, 28) and data.images.dtype == torch.float32
    assert data.factors.shape == (200, 5) and data.factors.dtype == torch.int64
    assert torch.equal(data.labels, data.factors[:, 0]) and data.classes == SHAPES
    assert set(data.images.unique().tolist()) <= {0.0, 1.0}
    assert (data.images.flatten(1).sum(1) > 0).all()                 # every sprite is visible
    assert len({tuple(f) for f in data.factors.tolist()}) == 200     # drawn without replacement
    assert torch.equal(data.images, render(data.factors, grid, 28))
    sub = data.subset(50)
    assert len(sub) == 50 and torch.equal(sub.factors, data.factors[:50]) and sub.tag != data.tag
    x, y = next(iter(Batches(data, 64, shuffle=True, seed=0)))          # works with the batcher
    assert x.shape == (64, 1, 28, 28) and y.shape == (64,)


def test_whole_grid_when_n_is_none_and_bad_n_rejected():
    grid = SpriteGrid(scales=2, orientations=2, positions=2)
    data = make(None, size=16, grid=grid, device="cpu")
    assert len(data) == len(grid) and torch.equal(data.factors, all_factors(grid))
    with pytest.raises(ValueError, match="between 1 and"):
        make(len(grid) + 1, size=16, grid=grid, device="cpu")


def test_same_seed_same_images_other_seed_other_images():
    grid = SpriteGrid(scales=3, orientations=10, positions=10)
    a = make(100, size=32, grid=grid, seed=3, device="cpu")
    b = make(100, size=32, grid=grid, seed=3, device="cpu")
    c = make(100, size=32, grid=grid, seed=4, device="cpu")
    assert torch.equal(a.images, b.images) and torch.equal(a.factors, b.factors)
    assert a.tag == b.tag and a.tag != c.tag
    assert not torch.equal(a.factors, c.factors)


def _one(shape=0, scale=5, angle=0, x=16, y=16, size=64):
    return render(torch.tensor([[shape, scale, angle, x, y]]), SpriteGrid(), size)[0, 0]


def test_factors_change_the_image_as_named():
    area = [_one(scale=s).sum().item() for s in range(6)]
    assert all(b > a for a, b in zip(area, area[1:]))                  # scale grows the shape
    assert area[-1] / area[0] == pytest.approx(4.0, rel=0.15)          # area ~ scale^2
    cols = torch.arange(64.0)
    left, right = _one(x=0), _one(x=31)
    assert (left.sum(0) @ cols) / left.sum() < (right.sum(0) @ cols) / right.sum()   # pos_x
    low, high = _one(y=0), _one(y=31)
    assert (high.sum(1) @ cols) / high.sum() < (low.sum(1) @ cols) / low.sum()       # y is up
    shapes = [_one(shape=s) for s in range(3)]
    assert not torch.equal(shapes[0], shapes[1]) and not torch.equal(shapes[1], shapes[2])
    square = _one(shape=0)
    assert torch.equal(square, _one(shape=0, angle=10))                 # a quarter turn: same
    assert not torch.equal(square, _one(shape=0, angle=5))              # an eighth: a diamond
    assert not torch.equal(_one(shape=2), _one(shape=2, angle=20))      # a heart has no symmetry


@pytest.mark.parametrize("size", [28, 64])
def test_sprites_stay_inside_the_canvas(size):
    grid = SpriteGrid()
    corners = torch.tensor([[s, 5, a, x, y] for s in range(3) for a in range(40)
                            for x in (0, 31) for y in (0, 31)])
    images = render(corners, grid, size)[:, 0]
    border = images[:, 0].sum() + images[:, -1].sum() + images[:, :, 0].sum() + images[:, :, -1].sum()
    assert border == 0


def test_at_32_pixels_the_smallest_shapes_and_their_turns_stay_apart():
    grid = SpriteGrid(scales=6, orientations=10, positions=16)
    small = render(torch.tensor([[s, 0, a, 8, 8] for s in range(3) for a in (0, 1)]), grid, 32)
    square, diamond, ellipse, turned, heart, tilted = small[:, 0]
    for a, b in [(square, ellipse), (ellipse, heart), (square, heart),
                 (square, diamond), (ellipse, turned), (heart, tilted)]:
        assert (a != b).sum() >= 6                  # several pixels apart even at scale 0.5


def test_mig_of_the_factors_themselves_is_one_on_the_32_pixel_grid():
    from companion.evaluation.disentanglement import mig
    data = make(5000, size=32, grid=SpriteGrid(scales=6, orientations=10, positions=16), seed=1,
                device="cpu")
    assert mig(data.factors.float(), data.factors).score > 0.99   # 20 bins hold every value
