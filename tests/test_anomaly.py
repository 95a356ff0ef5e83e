"""AUROC against a pairwise count, the threshold's false-positive rate on held-out data, the
likelihood ratio and the perturbation."""
import pytest
import torch

from companion.evaluation.anomaly import auroc, likelihood_ratio, perturb, rates, threshold_at


def pairwise(normal: torch.Tensor, anomalous: torch.Tensor) -> float:
    """P(anomalous > normal) + P(equal) / 2 by comparing every pair."""
    a, n = anomalous[:, None], normal[None, :]
    return ((a > n).double() + 0.5 * (a == n).double()).mean().item()


def test_a_perfect_a_reversed_and_a_tied_score():
    low, high = torch.arange(5.0), torch.arange(10.0, 15.0)
    assert auroc(low, high) == 1.0 and auroc(high, low) == 0.0
    assert auroc(torch.ones(4), torch.ones(6)) == 0.5


def test_random_scores_give_about_one_half_and_ties_count_half():
    g = torch.Generator().manual_seed(0)
    normal = torch.randint(0, 20, (700,), generator=g).double()          # many ties
    anomalous = torch.randint(3, 25, (500,), generator=g).double()
    assert auroc(normal, anomalous) == pytest.approx(pairwise(normal, anomalous), abs=1e-12)
    same = torch.randn(4000, generator=g), torch.randn(4000, generator=g)
    assert abs(auroc(*same) - 0.5) < 0.03                                # sd about 0.0065


def test_the_threshold_hits_its_false_positive_rate_on_held_out_data():
    g = torch.Generator().manual_seed(1)
    held_out, test = torch.randn(5000, generator=g), torch.randn(20000, generator=g)
    anomalous = torch.randn(20000, generator=g) + 2
    for rate in (0.01, 0.05, 0.2):
        t = threshold_at(held_out, rate)
        assert (held_out > t).double().mean() <= rate                    # never above, there
        false_positive, detected = rates(test, anomalous, t)
        assert abs(false_positive - rate) < 4 * (rate * (1 - rate) / 5000) ** 0.5 + 0.002
        assert detected > false_positive


def test_bad_input_gets_a_clear_message():
    with pytest.raises(ValueError, match="between 0 and 1"):
        threshold_at(torch.randn(10), 1.5)
    with pytest.raises(ValueError, match="only finite ones"):
        auroc(torch.tensor([1.0, float("nan")]), torch.ones(3))
    with pytest.raises(ValueError, match="at least one score"):
        auroc(torch.tensor([]), torch.ones(3))
    with pytest.raises(ValueError, match="shapes"):
        likelihood_ratio(torch.zeros(3), torch.zeros(4))


def test_the_ratio_and_the_perturbation():
    assert torch.equal(likelihood_ratio(torch.tensor([-80.0, -90.0]), torch.tensor([-70.0, -95.0])),
                       torch.tensor([-10.0, 5.0]))
    g = torch.Generator().manual_seed(2)
    binary = (torch.rand(200, 1, 28, 28, generator=g) < 0.2).float()
    noisy = perturb(binary, 0.1, torch.Generator().manual_seed(3))
    assert set(noisy.unique().tolist()) <= {0.0, 1.0}
    assert abs((noisy != binary).double().mean().item() - 0.1 / 2) < 0.005   # half the coins agree
    grey = torch.rand(200, 1, 28, 28, generator=g)
    assert torch.equal(perturb(grey, 0.0), grey) and not torch.equal(perturb(grey, 0.5), grey)
