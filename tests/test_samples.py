"""The yardstick for samples: the Frechet distance against closed forms, the classifier, the score."""
import pytest
import torch
import torch.nn.functional as F

from companion.data import load
from companion.evaluation.samples import (SampleScore, Yardstick, accuracy, classify,
                                          feature_statistics, frechet_distance, frechet_gaussians,
                                          frechet_interval, kernel_distance,
                                          sqrtm_psd, train_classifier)
from companion.models import DigitClassifier


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_cov(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen(seed), dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


# --- the formula ------------------------------------------------------------------------------

def test_sqrtm_psd_squares_back_and_takes_roots_of_a_diagonal():
    cov = random_cov(6, 0)
    root = sqrtm_psd(cov)
    assert torch.allclose(root @ root, cov, atol=1e-10) and torch.allclose(root, root.T)
    assert torch.allclose(sqrtm_psd(torch.diag(torch.tensor([4.0, 9.0, 0.0]))),
                          torch.diag(torch.tensor([2.0, 3.0, 0.0])).double())


def test_sqrtm_psd_of_a_singular_matrix_with_rounding_noise_is_finite():
    v = torch.randn(5, 1, generator=gen(1), dtype=torch.float64)
    rank_one = v @ v.T - 1e-12 * torch.eye(5, dtype=torch.float64)   # one eigenvalue, four ~ -0
    assert torch.isfinite(sqrtm_psd(rank_one)).all()


def test_frechet_of_one_dimensional_gaussians_is_the_closed_form():
    # FD(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2
    fd = frechet_gaussians(torch.tensor([1.0]), torch.tensor([[4.0]]),
                           torch.tensor([-2.0]), torch.tensor([[0.25]]))
    assert fd == pytest.approx(3.0 ** 2 + (2.0 - 0.5) ** 2)


def test_frechet_of_diagonal_gaussians_is_the_closed_form():
    m1, m2 = torch.randn(4, generator=gen(2)), torch.randn(4, generator=gen(3))
    v1, v2 = torch.rand(4, generator=gen(4)) + 0.1, torch.rand(4, generator=gen(5)) + 0.1
    m1, m2, v1, v2 = (t.double() for t in (m1, m2, v1, v2))    # as frechet_gaussians computes
    want = (m1 - m2).pow(2).sum() + (v1.sqrt() - v2.sqrt()).pow(2).sum()
    assert frechet_gaussians(m1, torch.diag(v1), m2, torch.diag(v2)) == pytest.approx(want.item(),
                                                                                      rel=1e-6)


def test_frechet_of_full_covariances_is_symmetric_zero_on_the_diagonal_and_positive():
    m1, m2 = torch.zeros(5), torch.ones(5)
    c1, c2 = random_cov(5, 6), random_cov(5, 7)
    assert frechet_gaussians(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-8)
    assert frechet_gaussians(m1, c1, m2, c2) == pytest.approx(frechet_gaussians(m2, c2, m1, c1))
    # the trace term alone, via torch's matrix square root of a product of commuting roots
    r1 = sqrtm_psd(c1)
    cross = torch.linalg.eigvals(c1 @ c2).real.clamp_min(0).sqrt().sum()   # tr (C1 C2)^1/2
    want = 5.0 + (c1.trace() + c2.trace() - 2 * cross).item()
    assert frechet_gaussians(m1, c1, m2, c2) == pytest.approx(want, rel=1e-6)
    assert torch.allclose(r1 @ r1, c1)


def test_identical_feature_sets_score_zero_and_a_shifted_set_scores_its_shift():
    features = torch.randn(500, 8, generator=gen(8))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(features, features + 1.0) == pytest.approx(8.0, rel=1e-6)


def test_the_estimate_shrinks_as_the_sets_grow():
    small = frechet_distance(torch.randn(50, 16, generator=gen(9)),
                             torch.randn(50, 16, generator=gen(10)))
    large = frechet_distance(torch.randn(5000, 16, generator=gen(11)),
                             torch.randn(5000, 16, generator=gen(12)))
    assert large < 0.1 < small   # same distribution: the true distance is 0


def test_feature_statistics_need_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(torch.zeros(1, 3))


def test_a_frechet_distance_from_fewer_images_than_features_is_refused():
    with pytest.raises(ValueError, match="dominated by its bias.*at least 16 images"):
        frechet_distance(torch.randn(15, 16, generator=gen(20)), torch.randn(500, 16))
    assert frechet_distance(torch.randn(16, 16, generator=gen(21)), torch.randn(16, 16)) > 0


# --- the classifier and the yardstick ---------------------------------------------------------

def test_classifier_shapes_and_its_loss_is_the_cross_entropy():
    torch.manual_seed(0)
    model = DigitClassifier(num_classes=7, channels=(4, 8), features=12)
    x, y = torch.rand(5, 1, 28, 28, generator=gen(13)), torch.tensor([0, 1, 2, 3, 6])
    assert model.features(x).shape == (5, 12) and model(x).shape == (5, 7)
    parts = model.loss(x, y)
    assert parts.total.item() == pytest.approx(F.cross_entropy(model(x), y).item())
    assert parts.kl.item() == 0.0
    with pytest.raises(ValueError, match="learns from labels: pass each batch's labels y"):
        model.loss(x)


@pytest.fixture
def judge():
    torch.manual_seed(0)
    return DigitClassifier(channels=(4, 8), features=16).eval()


def test_yardstick_scores_its_own_reference_zero_and_other_images_higher(judge):
    real = torch.rand(300, 1, 28, 28, generator=gen(14)) * 0.5
    yardstick = Yardstick(judge, real, batch_size=128)
    same, other = yardstick.score(real), yardstick.score(1 - real)
    assert same.frechet == pytest.approx(0.0, abs=1e-6) and other.frechet > 1e-3
    assert same.n == 300 and same.fractions.sum().item() == pytest.approx(1.0)
    assert 0.1 <= same.confidence <= 1.0 and same.accuracy is None
    _, probs = classify(judge, real)
    labels = probs.argmax(1)
    assert yardstick.score(real, labels).accuracy == 1.0
    assert "FD" in str(same) and "accuracy" in str(yardstick.score(real, labels))


def test_yardstick_refuses_sets_too_small_for_an_fd_and_scores_them_without_one(judge):
    real = torch.rand(100, 1, 28, 28, generator=gen(16))
    with pytest.raises(ValueError, match="at least 16 images"):
        Yardstick(judge, real[:10])                                    # 16 features
    yardstick = Yardstick(judge, real)
    with pytest.raises(ValueError, match="frechet=False"):
        yardstick.score(real[:10])
    few = yardstick.score(real[:10], frechet=False)
    assert few.frechet is None and few.n == 10 and 0 < few.confidence <= 1
    assert "n/a" in str(few)


def test_yardstick_refuses_empty_sets_mismatched_labels_and_bad_batch_sizes(judge):
    yardstick = Yardstick(judge, torch.rand(100, 1, 28, 28, generator=gen(17)))
    with pytest.raises(ValueError, match="no images"):
        yardstick.score(torch.zeros(0, 1, 28, 28))
    with pytest.raises(ValueError, match="one asked-for label per image"):
        yardstick.score(torch.rand(20, 1, 28, 28), torch.zeros(19, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        classify(judge, torch.rand(20, 1, 28, 28), batch_size=0)


def test_yardstick_refuses_logits_with_a_hint(judge):
    with pytest.raises(ValueError, match=r"torch.sigmoid\(model.decode\(z\)\)"):
        Yardstick(judge, torch.randn(10, 1, 28, 28, generator=gen(15)) * 3)


def test_sample_score_prints_accuracy_only_when_asked():
    score = SampleScore(10, 1.5, 0.9, torch.full((10,), 0.1))
    assert "accuracy" not in str(score) and "n = 10" in str(score)


@pytest.fixture(scope="module")
def mnist():
    """Loaded before `scratch` points the data directory at an empty folder."""
    return (load("mnist", "train", device="cpu").subset(2000),
            load("mnist", "test", device="cpu").subset(500))


def test_train_classifier_learns_mnist_and_is_cached(mnist, scratch, capsys):
    settings = dict(epochs=3, lr=3e-3, channels=(8, 16), features=32)
    classifier = train_classifier(*mnist, **settings)
    assert accuracy(classifier, mnist[1]) > 0.6   # chance is 0.1
    again = train_classifier(*mnist, **settings)
    assert "Loaded from cache" in capsys.readouterr().out
    assert all(torch.equal(a, b) for a, b in zip(classifier.state_dict().values(),
                                                 again.state_dict().values()))


def test_the_kernel_distance_is_the_unbiased_mmd_with_the_cubic_kernel():
    x, y = torch.randn(5, 3, generator=gen(30)), torch.randn(4, 3, generator=gen(31)) + 1
    k = lambda a, b: (a @ b / 3 + 1) ** 3                       # noqa: E731
    within = lambda s: sum(k(s[i], s[j]) for i in range(len(s)) for j in range(len(s))  # noqa: E731
                           if i != j) / (len(s) * (len(s) - 1))
    between = sum(k(a, b) for a in x for b in y) / (len(x) * len(y))
    want = (within(x) + within(y) - 2 * between).item()
    assert kernel_distance(x, y) == pytest.approx(want, rel=1e-6)
    assert kernel_distance(y, x) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2 images"):
        kernel_distance(x[:1], y)


def test_the_kernel_distance_of_one_distribution_averages_to_zero_at_any_size():
    g = gen(32)
    draws = torch.tensor([kernel_distance(torch.randn(15, 4, generator=g),
                                          torch.randn(15, 4, generator=g)) for _ in range(300)])
    se = draws.std() / 300 ** 0.5
    assert abs(draws.mean()) < 3 * se                      # unbiased: no floor above 0
    shifted = kernel_distance(torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) + 1)
    assert shifted > 20 * se


def test_the_fd_interval_covers_the_true_distance_about_95_times_in_100():
    g, covered, zero = gen(33), 0, 0
    for seed in range(20):
        a, b = torch.randn(1000, 8, generator=g), torch.randn(1000, 8, generator=g)
        low, high = frechet_interval(a, b + 0.3, reps=100, seed=seed)   # true FD 8 * 0.3^2
        covered += low < 0.72 < high
        low, high = frechet_interval(a, b, reps=100, seed=seed)         # true FD 0
        zero += low == 0.0 <= high < 0.1                                # never below 0
    assert covered >= 16 and zero == 20


def test_the_yardstick_gives_the_kid_and_on_request_an_interval():
    judge = DigitClassifier(features=16).eval()
    real = torch.rand(200, 1, 28, 28, generator=gen(34))
    yardstick = Yardstick(judge, real)
    plain = yardstick.score(real[:100])
    assert plain.kid is not None and plain.interval is None and "KID" in str(plain)
    both = yardstick.score(real[:100], interval=True)
    assert both.interval[0] <= both.interval[1] and "[" in str(both)
    assert yardstick.score(real[:10], frechet=False).kid is None


def test_one_score_is_below_another_only_when_the_intervals_are_apart():
    def score(low, high):
        return SampleScore(10, (low + high) / 2, 0.9, torch.full((10,), 0.1), interval=(low, high))
    assert score(1, 2).below(score(3, 4)) and not score(3, 4).below(score(1, 2))
    assert not score(1, 3).below(score(2, 4))                   # overlapping: not resolved
    with pytest.raises(ValueError, match="interval=True"):
        score(1, 2).below(SampleScore(10, 5.0, 0.9, torch.full((10,), 0.1)))
