"""The latent space of a trained model: encode_all, grid, distances, kNN, class Gaussians, probes."""
import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

from companion.data import ImageSet
from companion.latent import (encode_all, fit_class_gaussians, grid, knn_classify, linear_probe,
                              nearest_distance)
from companion.mixture import GaussianMixture, m_step
from companion.models import MLPVAE, Autoencoder


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
    # batches of 7 against one batch of 25: other matmul blocking, float32 tolerance
    assert torch.allclose(codes, model.encode(data.images), atol=1e-5)
    assert model.training                                   # the mode is put back


def test_encode_all_gives_the_posterior_mean_of_a_vae():
    torch.manual_seed(0)
    data, vae = random_imageset(12), MLPVAE(latent_dim=3, hidden=16).eval()
    mu = encode_all(vae, data, batch_size=5)
    assert torch.allclose(mu, vae.encode(data.images)[0], atol=1e-5)
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
    # cdist's matmul path (beyond 25 codes) forms |a|^2 - 2ab + |b|^2: a distance of 0 comes out
    # as the root of its rounding, ~sqrt(eps) |c| ~ 1e-3; the nearest other code is 0.25 away
    assert torch.allclose(nearest_distance(codes[:5], codes), torch.zeros(5), atol=1e-2)


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
    assert torch.allclose(fitted.weights, torch.tensor([0.5, 0.5]))
    for k in range(2):
        z = codes[labels == k].double().numpy()
        assert np.allclose(fitted.means[k].numpy(), z.mean(axis=0), atol=1e-5)
        assert np.allclose(fitted.covs[k].numpy(), np.cov(z.T, bias=True), atol=1e-3)  # + ridge


def test_fit_class_gaussians_is_the_m_step_with_one_hot_responsibilities():
    codes, labels = clusters(torch.tensor([[0.0, 1.0], [4.0, -2.0], [1.0, 1.0]]), 30, 1.0, seed=3)
    fitted = fit_class_gaussians(codes, labels)
    want = m_step(codes, torch.nn.functional.one_hot(labels).float())
    assert all(torch.equal(a, b) for a, b in zip((fitted.weights, fitted.means, fitted.covs),
                                                 (want.weights, want.means, want.covs)))


def test_fit_class_gaussians_survives_a_class_with_fewer_codes_than_dimensions():
    codes = torch.randn(40, 6, generator=torch.Generator().manual_seed(4))
    labels = torch.zeros(40, dtype=torch.long)
    labels[:3] = 1                                   # 3 codes of class 1 in 6 dimensions
    codes[:, 5] = 2.0                                # and a coordinate that never varies
    fitted = fit_class_gaussians(codes, labels)
    assert torch.linalg.cholesky_ex(fitted.covs).info.eq(0).all()
    z, wanted = fitted.sample_each(10, generator=torch.Generator().manual_seed(5))
    assert torch.isfinite(z).all() and wanted.tolist() == [0] * 10 + [1] * 10


@pytest.mark.parametrize("labels, num_classes, match", [
    (torch.tensor([0, 0, 0, 1, 0]), None, "class 1 has 1 codes"),
    (torch.tensor([0, 0, 2, 2, 0]), None, "class 1 has 0 codes"),
    (torch.tensor([0, 0, 1, 1, 1]), 1, "pass num_classes=2"),
    (torch.tensor([0, 0, 1, 1]), None, "one label per code"),
])
def test_fit_class_gaussians_refuses_bad_classes_with_what_to_pass(labels, num_classes, match):
    with pytest.raises(ValueError, match=match):
        fit_class_gaussians(torch.randn(5, 2), labels, num_classes)


def test_class_gaussian_samples_follow_the_fitted_distributions():
    means = torch.tensor([[0.0, 0.0], [5.0, -3.0]])
    covs = torch.tensor([[[2.0, 0.8], [0.8, 1.0]], [[0.5, -0.2], [-0.2, 0.3]]])
    gaussians = GaussianMixture(torch.tensor([0.5, 0.5]), means, covs)
    z, labels = gaussians.sample_each(20_000, generator=torch.Generator().manual_seed(0))
    assert z.shape == (40_000, 2) and labels.bincount().tolist() == [20_000, 20_000]
    for k in range(2):
        zk = z[labels == k].double()
        assert torch.allclose(zk.mean(dim=0), means[k].double(), atol=0.05)
        assert torch.allclose(torch.cov(zk.T), covs[k].double(), atol=0.05)
        # Monte Carlo: the mean log-density of one's own samples is minus the entropy
        mvn = MultivariateNormal(means[k], covs[k])
        assert abs(mvn.log_prob(zk.float()).mean() + mvn.entropy()) < 0.03
    again, _ = gaussians.sample_each(20_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


# --- bad counts and sizes -------------------------------------------------------------------

def test_latent_helpers_refuse_counts_below_one_with_what_to_pass():
    codes, labels = torch.randn(20, 2), torch.arange(20) % 2
    with pytest.raises(ValueError, match="points per side"):
        grid((-1.0, 1.0), (-1.0, 1.0), steps=0)
    with pytest.raises(ValueError, match=r"between 1 and the number of codes \(20\)"):
        knn_classify(codes, codes, labels, k=0)
    with pytest.raises(ValueError, match=r"between 1 and the number of codes \(20\)"):
        knn_classify(codes, codes, labels, k=21)
    with pytest.raises(ValueError, match="encode_all"):
        nearest_distance(codes, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="L-BFGS"):
        linear_probe(codes, labels, codes, labels, steps=0)
    with pytest.raises(ValueError, match="batch_size"):
        encode_all(Autoencoder(latent_dim=2, hidden=8), random_imageset(4), batch_size=0)


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
