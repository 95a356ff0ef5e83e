"""Moving through a latent space: interpolation, attribute vectors, slant, inpainting."""
import math

import pytest
import torch

from companion.latent_arithmetic import (attribute_direction, class_means, inpaint, lerp, slant,
                                         slerp, traverse)
from companion.models import MLPVAE


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- lerp and slerp ---------------------------------------------------------------------

def test_lerp_hits_the_endpoints_and_the_midpoint():
    z0, z1 = torch.randn(6, generator=gen(0)), torch.randn(6, generator=gen(1))
    path = lerp(z0, z1, torch.tensor([0.0, 0.5, 1.0]))
    assert path.shape == (3, 6)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[1], (z0 + z1) / 2)
    torch.testing.assert_close(path[2], z1)


def test_slerp_matches_the_textbook_formula_for_unit_vectors():
    z0, z1 = torch.randn(5, generator=gen(2)), torch.randn(5, generator=gen(3))
    u0, u1 = z0 / z0.norm(), z1 / z1.norm()
    t = torch.linspace(0, 1, 9)
    omega = torch.arccos(torch.dot(u0, u1))
    t_ = t[:, None]
    want = (torch.sin((1 - t_) * omega) * u0 + torch.sin(t_ * omega) * u1) / torch.sin(omega)
    torch.testing.assert_close(slerp(u0, u1, t), want)
    assert torch.allclose(slerp(u0, u1, t).norm(dim=1), torch.ones(9), atol=1e-5)


def test_slerp_interpolates_the_norm_and_the_angle_linearly():
    z0, z1 = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 4.0])
    path = slerp(z0, z1, torch.tensor([0.0, 0.25, 0.5, 1.0]))
    torch.testing.assert_close(path.norm(dim=1), torch.tensor([2.0, 2.5, 3.0, 4.0]))
    angles = torch.atan2(path[:, 1], path[:, 0])
    torch.testing.assert_close(angles, torch.tensor([0.0, 0.25, 0.5, 1.0]) * math.pi / 2)


def test_slerp_of_parallel_codes_falls_back_to_a_straight_line_without_nan():
    z0 = torch.tensor([1.0, 2.0, 3.0])
    path = slerp(z0, 2 * z0, torch.linspace(0, 1, 5))
    assert torch.isfinite(path).all()
    torch.testing.assert_close(path, lerp(z0, 2 * z0, torch.linspace(0, 1, 5)))


def test_linear_path_between_prior_samples_dips_inside_the_shell_and_slerp_does_not():
    z = torch.randn(200, 2, 64, generator=gen(4))
    mid_lin = torch.stack([lerp(a, b, torch.tensor([0.5]))[0] for a, b in z]).norm(dim=1)
    mid_sph = torch.stack([slerp(a, b, torch.tensor([0.5]))[0] for a, b in z]).norm(dim=1)
    assert abs(mid_lin.mean().item() / 8 - 1 / math.sqrt(2)) < 0.05   # sqrt(64 / 2) / sqrt(64)
    assert abs(mid_sph.mean().item() / 8 - 1) < 0.05


# --- class means, attribute directions, traversals ------------------------------------------

def test_class_means_equal_a_loop_over_classes():
    codes, labels = torch.randn(50, 3, generator=gen(5)), torch.arange(50) % 4
    want = torch.stack([codes[labels == k].mean(0) for k in range(4)])
    torch.testing.assert_close(class_means(codes, labels), want)


def test_class_means_refuse_an_empty_class_and_labels_beyond_num_classes():
    with pytest.raises(ValueError, match="no codes"):
        class_means(torch.randn(4, 2), torch.tensor([0, 0, 2, 2]))
    with pytest.raises(ValueError, match="pass num_classes=3"):
        class_means(torch.randn(4, 2), torch.tensor([0, 1, 2, 2]), num_classes=2)


def test_attribute_direction_recovers_the_direction_a_score_depends_on():
    codes = torch.randn(4000, 5, generator=gen(6))
    true = torch.tensor([0.0, 3.0, 0.0, -4.0, 0.0]) / 5
    scores = codes @ true + 0.1 * torch.randn(4000, generator=gen(7))
    found = attribute_direction(codes, scores)
    assert torch.nn.functional.cosine_similarity(found, true, dim=0) > 0.98
    assert (found @ true) > 0                       # points toward higher scores


def test_attribute_direction_checks_the_fraction_and_the_counts():
    with pytest.raises(ValueError, match="fraction"):
        attribute_direction(torch.randn(10, 2), torch.randn(10), fraction=0.7)
    with pytest.raises(ValueError, match="one score per code"):
        attribute_direction(torch.randn(10, 2), torch.randn(9))
    with pytest.raises(ValueError, match="at least 2"):
        attribute_direction(torch.randn(1, 2), torch.randn(1))


def test_inpaint_refuses_zero_steps():
    x = torch.rand(1, 1, 28, 28, generator=gen(10))
    with pytest.raises(ValueError, match="Adam steps"):
        inpaint(MLPVAE(latent_dim=2, hidden=8), x, torch.ones_like(x), steps=0)


def test_traverse_shapes_and_values():
    z, d = torch.randn(3, 4, generator=gen(8)), torch.randn(4, generator=gen(9))
    out = traverse(z, d, [-1.0, 0.0, 2.0])
    assert out.shape == (3, 3, 4)
    torch.testing.assert_close(out[:, 1], z)
    torch.testing.assert_close(out[:, 2], z + 2 * d)
    assert traverse(z[0], d, [0.5]).shape == (1, 4)


# --- slant ------------------------------------------------------------------------------

def line_image(shift_per_row: float) -> torch.Tensor:
    """A one-pixel stroke whose column moves right by shift_per_row per row upwards."""
    img = torch.zeros(1, 1, 28, 28)
    for row in range(4, 24):
        col = round(14 + shift_per_row * (14 - row))
        img[0, 0, row, col] = 1.0
    return img


def test_slant_of_upright_forward_and_backward_strokes():
    upright, forward, backward = (line_image(s) for s in (0.0, 0.5, -0.5))
    assert abs(slant(upright).item()) < 1e-6
    assert slant(forward).item() == pytest.approx(0.5, abs=0.05)
    assert slant(backward).item() == pytest.approx(-0.5, abs=0.05)


def test_slant_ignores_brightness_and_position():
    img = line_image(0.5)
    shifted = torch.roll(img, shifts=(2, -3), dims=(2, 3))
    torch.testing.assert_close(slant(0.3 * img), slant(img))
    torch.testing.assert_close(slant(shifted), slant(img))


# --- inpainting by optimising z -----------------------------------------------------------

def test_inpaint_keeps_visible_pixels_lowers_its_objective_and_leaves_weights_alone():
    torch.manual_seed(0)
    model = MLPVAE(latent_dim=4, hidden=32)
    x = torch.rand(3, 1, 28, 28, generator=gen(10)).round()
    mask = torch.ones(1, 1, 28, 28)
    mask[..., 14:, :] = 0                                           # hide the bottom half
    before = {k: v.clone() for k, v in model.state_dict().items()}
    filled, z, losses = inpaint(model, x, mask, steps=60, lr=0.1)
    assert filled.shape == x.shape and z.shape == (3, 4)
    assert torch.equal(filled[..., :14, :], x[..., :14, :])
    assert ((filled >= 0) & (filled <= 1)).all()
    assert losses[-1] < losses[0]
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_inpaint_objective_matches_masked_bernoulli_nll_plus_prior():
    torch.manual_seed(1)
    model = MLPVAE(latent_dim=3, hidden=16)
    x = torch.rand(2, 1, 28, 28, generator=gen(11))
    mask = (torch.rand(1, 1, 28, 28, generator=gen(12)) > 0.5).float()
    _, _, losses = inpaint(model, x, mask, steps=1, lr=1e-9)
    with torch.no_grad():
        z0 = model.encode(x * mask)[0]
        bern = torch.distributions.Bernoulli(logits=model.decode(z0), validate_args=False)
        nll = -(bern.log_prob(x) * mask).flatten(1).sum(1)
        want = (nll + 0.5 * z0.pow(2).sum(1)).mean().item()
    assert losses[0] == pytest.approx(want, rel=1e-5)


def test_inpaint_fills_a_hidden_half_that_the_model_can_explain():
    """A decoder that draws one fixed image: optimising z recovers the hidden half of it."""
    torch.manual_seed(2)
    model = MLPVAE(latent_dim=2, hidden=8)
    target = torch.zeros(1, 1, 28, 28)
    target[..., 6:22, 12:16] = 1.0
    with torch.no_grad():                                  # decode(z) = target's logits for any z
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.copy_((target.flatten() * 12 - 6))
    mask = torch.ones(1, 1, 28, 28)
    mask[..., 14:, :] = 0
    filled, _, _ = inpaint(model, target, mask, steps=5)
    assert (filled - target).abs().max() < 0.01
