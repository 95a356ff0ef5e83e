"""Notebook 01's package code: `companion.latent` and the self-checks of its exercises."""
import copy
import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

from companion.checks import ExerciseError
from companion.checks.autoencoders import check_bce_from_logits, check_rotate_codes
from companion.data import ImageSet
from companion.latent import (ClassGaussians, encode_all, fit_class_gaussians, grid,
                              knn_classify, linear_probe, nearest_distance)
from companion.losses import bernoulli_nll
from companion.models import Autoencoder, MLPVAE


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def random_imageset(n: int) -> ImageSet:
    return ImageSet(random_images(n), torch.arange(n) % 10, tuple("0123456789"), f"random[:{n}]")


def clusters(centres: torch.Tensor, n: int, spread: float, seed: int = 0):
    """n points around each centre: (points [K*n, L], labels [K*n])."""
    g = torch.Generator().manual_seed(seed)
    points = centres.repeat_interleave(n, dim=0)
    points = points + spread * torch.randn(points.shape, generator=g)
    return points, torch.arange(len(centres)).repeat_interleave(n)


# --- encode_all -----------------------------------------------------------------------

def test_encode_all_gives_codes_of_an_autoencoder_in_order():
    torch.manual_seed(0)
    data, model = random_imageset(25), Autoencoder(latent_dim=2, hidden=16)
    model.train()
    codes = encode_all(model, data, batch_size=7)          # 4 batches, the last one partial
    assert codes.shape == (25, 2)
    assert torch.allclose(codes, model.encode(data.images), atol=1e-6)
    assert model.training                                   # the mode is put back


def test_encode_all_gives_the_posterior_mean_of_a_vae():
    torch.manual_seed(0)
    data, vae = random_imageset(12), MLPVAE(latent_dim=3, hidden=16).eval()
    mu = encode_all(vae, data, batch_size=5)
    assert torch.allclose(mu, vae.encode(data.images)[0], atol=1e-6)
    assert not vae.training


# --- grid, distances, nearest neighbours -----------------------------------------------

def test_grid_runs_row_by_row_from_the_top_left():
    points = grid((-1.0, 1.0), (0.0, 4.0), steps=3)
    assert points.shape == (9, 2)
    assert points[0].tolist() == [-1.0, 4.0]       # top left
    assert points[2].tolist() == [1.0, 4.0]        # top right
    assert points[3].tolist() == [-1.0, 2.0]       # second row starts lower
    assert points[-1].tolist() == [1.0, 0.0]       # bottom right


def test_nearest_distance_matches_brute_force():
    g = torch.Generator().manual_seed(1)
    points, codes = torch.randn(40, 3, generator=g), torch.randn(60, 3, generator=g)
    brute = np.array([[np.linalg.norm(p - c) for c in codes.numpy()] for p in points.numpy()])
    got = nearest_distance(points, codes, chunk=16)           # several chunks
    assert got.shape == (40,)
    assert np.allclose(got.numpy(), brute.min(axis=1), atol=1e-4)
    assert torch.allclose(nearest_distance(codes[:5], codes), torch.zeros(5), atol=1e-3)


def test_knn_classify_votes_for_the_cluster_a_point_sits_in():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    codes, labels = clusters(centres, 20, spread=0.5)
    assert knn_classify(centres + 0.3, codes, labels, k=5).tolist() == [0, 1, 2]


def test_knn_classify_with_k_1_returns_the_nearest_label():
    codes, labels = clusters(torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]), 30, spread=1.5)
    queries = 3 * torch.randn(50, 2, generator=torch.Generator().manual_seed(5))
    nearest = torch.cdist(queries, codes).argmin(dim=1)
    assert torch.equal(knn_classify(queries, codes, labels, k=1, chunk=7), labels[nearest])


# --- per-class Gaussians ----------------------------------------------------------------

def test_fit_class_gaussians_matches_numpy_maximum_likelihood():
    codes, labels = clusters(torch.tensor([[0.0, 1.0], [4.0, -2.0]]), 50, spread=1.0, seed=2)
    fitted = fit_class_gaussians(codes, labels)
    assert fitted.means.shape == (2, 2) and fitted.covs.shape == (2, 2, 2)
    for k in range(2):
        z = codes[labels == k].double().numpy()
        assert np.allclose(fitted.means[k].numpy(), z.mean(axis=0), atol=1e-5)
        assert np.allclose(fitted.covs[k].numpy(), np.cov(z.T, bias=True), atol=1e-5)


def test_fit_class_gaussians_refuses_a_class_with_fewer_than_two_codes():
    codes, labels = torch.randn(5, 2), torch.tensor([0, 0, 0, 1, 0])
    with pytest.raises(ValueError, match="class 1 has 1 codes"):
        fit_class_gaussians(codes, labels)


def test_class_gaussian_samples_follow_the_fitted_distributions():
    means = torch.tensor([[0.0, 0.0], [5.0, -3.0]])
    covs = torch.tensor([[[2.0, 0.8], [0.8, 1.0]], [[0.5, -0.2], [-0.2, 0.3]]])
    gaussians = ClassGaussians(means, covs)
    z, labels = gaussians.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (40_000, 2) and labels.bincount().tolist() == [20_000, 20_000]
    for k in range(2):
        zk = z[labels == k].double()
        assert torch.allclose(zk.mean(dim=0), means[k].double(), atol=0.05)
        assert torch.allclose(torch.cov(zk.T), covs[k].double(), atol=0.05)
        # Monte Carlo: the mean log-density of one's own samples is minus the entropy
        mvn = MultivariateNormal(means[k], covs[k])
        assert abs(mvn.log_prob(zk.float()).mean() + mvn.entropy()) < 0.03
    again, _ = gaussians.sample(20_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


# --- linear probe ---------------------------------------------------------------------------

def test_linear_probe_separates_separable_classes():
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    train_x, train_y = clusters(centres, 100, spread=0.5, seed=0)
    test_x, test_y = clusters(centres, 50, spread=0.5, seed=1)
    assert linear_probe(train_x, train_y, test_x, test_y) == 1.0


def test_linear_probe_is_at_chance_on_features_without_information():
    g = torch.Generator().manual_seed(0)
    train_x, test_x = torch.randn(2000, 2, generator=g), torch.randn(2000, 2, generator=g)
    train_y = torch.randint(10, (2000,), generator=g)
    test_y = torch.randint(10, (2000,), generator=g)
    assert linear_probe(train_x, train_y, test_x, test_y) < 0.15


def test_linear_probe_ignores_features_that_are_constant_in_training():
    centres = torch.tensor([[0.0, 0.0], [6.0, 0.0]])
    train_x, train_y = clusters(centres, 50, spread=0.5)
    test_x, test_y = clusters(centres, 50, spread=0.5, seed=1)
    train_x = torch.cat([train_x, torch.zeros(100, 1)], dim=1)   # like an always-blank pixel
    test_x = torch.cat([test_x, torch.rand(100, 1)], dim=1)      # ... that is not blank in test
    assert linear_probe(train_x, train_y, test_x, test_y) == 1.0


# --- exercise 1: the Bernoulli loss from logits -----------------------------------------------

def reference_bce_from_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    softplus = logits.clamp(min=0) + torch.log1p(torch.exp(-logits.abs()))   # log(1 + e^a)
    return (softplus - x * logits).flatten(1).sum(dim=1)


def test_reference_bce_from_logits_is_bernoulli_nll_even_for_huge_logits():
    x = random_images(3)
    for scale in (3.0, 300.0):
        logits = scale * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        got = reference_bce_from_logits(logits, x)
        assert torch.isfinite(got).all()
        assert torch.allclose(got, bernoulli_nll(logits, x), rtol=1e-5)


def test_check_bce_from_logits_accepts_correct_answers(capsys):
    check_bce_from_logits(reference_bce_from_logits)
    check_bce_from_logits(lambda a, x: (torch.nn.functional.softplus(a) - x * a).flatten(1).sum(1))
    check_bce_from_logits(lambda a, x: -(x * torch.nn.functional.logsigmoid(a) + (1 - x)
                                         * torch.nn.functional.logsigmoid(-a)).flatten(1).sum(1))
    assert capsys.readouterr().out.count("Correct") == 3


def naive(a, x):
    p = torch.sigmoid(a)
    return -(x * p.log() + (1 - x) * (1 - p).log()).flatten(1).sum(1)


def with_epsilon(a, x):
    p = torch.sigmoid(a)
    return -(x * (p + 1e-10).log() + (1 - x) * (1 - p + 1e-10).log()).flatten(1).sum(1)


def with_where(a, x):
    softplus = torch.where(a > 0, a + torch.log1p(torch.exp(-a)), torch.log1p(torch.exp(a)))
    return (softplus - x * a).flatten(1).sum(1)


def in_place(a, x):
    loss = reference_bce_from_logits(a, x)
    a.abs_()                                   # the caller's logits are now changed
    return loss


@pytest.mark.parametrize("wrong, hint", [
    (naive, "not finite"),
    (lambda a, x: (torch.log(1 + torch.exp(a)) - x * a).flatten(1).sum(1), "overflows"),
    (with_epsilon, "far too small"),
    (lambda a, x: reference_bce_from_logits(a.clamp(-20, 20), x), "far too small"),
    (lambda a, x: -reference_bce_from_logits(a, x), "wrong sign"),
    (lambda a, x: reference_bce_from_logits(a, x) / 784, "mean over pixels"),
    (lambda a, x: reference_bce_from_logits(-a, x), "probability of background"),
    (lambda a, x: reference_bce_from_logits(a, x).sum(), "one number per image"),
    (lambda a, x: reference_bce_from_logits(a, x).tolist(), "should return a tensor"),
    (lambda a, x: reference_bce_from_logits(a, x.round()), "differs from the expected value"),
    (lambda a, x: reference_bce_from_logits(a, x).detach(), "No gradient flows"),
    (with_where, "torch.where"),
    (in_place, "changed the logits"),
])
def test_check_bce_from_logits_rejects_typical_mistakes(wrong, hint):
    with pytest.raises(ExerciseError, match=hint):
        check_bce_from_logits(wrong)


# --- exercise 2: rotating the latent space ------------------------------------------------------

def rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]])


def reference_rotate(model, angle):
    return rotate_in_place(copy.deepcopy(model), angle)


def rotate_in_place(model, angle):
    r = rotation(angle)
    with torch.no_grad():
        model.encoder[-1].weight.copy_(r @ model.encoder[-1].weight)
        model.encoder[-1].bias.copy_(r @ model.encoder[-1].bias)
        model.decoder[0].weight.copy_(model.decoder[0].weight @ r.T)
    return model


def rotate_original_return_copy(model, angle):
    rotated = reference_rotate(model, angle)
    with torch.no_grad():
        model.encoder[-1].bias.zero_()
    return rotated


def without_bias(model, angle):
    rotated = reference_rotate(model, angle)
    with torch.no_grad():
        rotated.encoder[-1].bias.copy_(model.encoder[-1].bias)
    return rotated


def without_decoder(model, angle):
    rotated = reference_rotate(model, angle)
    with torch.no_grad():
        rotated.decoder[0].weight.copy_(model.decoder[0].weight)
    return rotated


def scaled_instead(model, angle):
    rotated = copy.deepcopy(model)
    with torch.no_grad():
        rotated.encoder[-1].weight.mul_(2)
        rotated.encoder[-1].bias.mul_(2)
        rotated.decoder[0].weight.div_(2)
    return rotated


@pytest.fixture
def model_and_images():
    torch.manual_seed(0)
    return Autoencoder(latent_dim=2, hidden=16).eval(), random_images(8)


def test_check_rotate_codes_accepts_the_reference(model_and_images, capsys):
    model, x = model_and_images
    check_rotate_codes(reference_rotate, model, x)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (rotate_in_place, "returned the very model"),
    (rotate_original_return_copy, "changed the model it was given"),
    (lambda model, angle: copy.deepcopy(model), "did not change"),
    (lambda model, angle: reference_rotate(model, -angle), "clockwise"),
    (without_bias, "rotate the encoder's bias too"),
    (without_decoder, "reconstructions changed"),
    (scaled_instead, "not the old codes rotated"),
])
def test_check_rotate_codes_rejects_typical_mistakes(model_and_images, wrong, hint):
    model, x = model_and_images
    with pytest.raises(ExerciseError, match=hint):
        check_rotate_codes(wrong, model, x)


def test_check_rotate_codes_puts_back_a_model_it_found_changed(model_and_images):
    model, x = model_and_images
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ExerciseError):
        check_rotate_codes(rotate_original_return_copy, model, x)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_check_rotate_codes_needs_a_two_dimensional_code():
    with pytest.raises(ExerciseError, match="2-D latent space"):
        check_rotate_codes(reference_rotate, Autoencoder(latent_dim=3, hidden=8), random_images(2))
