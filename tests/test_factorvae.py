"""The FactorVAE score on codes whose answer is known."""
import pytest
import torch

from companion.evaluation.disentanglement import factorvae_score, least_varying

SIZES = (3, 6, 10, 16, 16)


def test_the_factors_themselves_score_one_in_any_order_and_scale():
    assert factorvae_score(lambda f: f.float(), SIZES, votes=200).score == 1.0
    order = torch.tensor([3, 0, 4, 1, 2])
    result = factorvae_score(lambda f: 5 * f[:, order].float() + 2, SIZES, votes=200)
    assert result.score == 1.0 and result.active.all()
    assert (result.votes.argmax(1)[order.argsort()] == torch.arange(5)).all()


def test_noise_scores_near_chance_and_a_missing_factor_loses_its_votes():
    g = torch.Generator().manual_seed(1)
    noise = factorvae_score(lambda f: torch.randn(len(f), 5, generator=g), SIZES, votes=400)
    assert noise.score < 0.4                                     # chance is 1/5
    no_shape = factorvae_score(lambda f: f[:, 1:].float(), SIZES, votes=400)
    assert 0.7 < no_shape.score < 0.9                            # shape's fifth of the votes lost


def test_turning_two_coordinates_costs_score():
    turned = lambda f: torch.cat([f[:, :3].float(), (f[:, 3:4] + f[:, 4:5]).float(),
                                  (f[:, 3:4] - f[:, 4:5]).float()], 1)
    assert factorvae_score(turned, SIZES, votes=400).score < 0.9   # x and y share one vote


def test_flat_coordinates_take_no_part_and_an_empty_code_is_refused():
    with_flat = lambda f: torch.cat([f.float(), torch.zeros(len(f), 2)], 1)
    result = factorvae_score(with_flat, SIZES, votes=100)
    assert result.score == 1.0 and result.active.tolist() == [True] * 5 + [False] * 2
    with pytest.raises(ValueError, match="carries nothing"):
        factorvae_score(lambda f: torch.zeros(len(f), 3), SIZES, votes=10)
    with pytest.raises(ValueError, match="at least 2"):
        factorvae_score(lambda f: f.float(), SIZES, votes=1)


def test_least_varying_divides_by_the_spread_over_the_data():
    codes = torch.tensor([[0.0, 10.0], [1.0, 12.0], [2.0, 14.0]])   # raw variance 1 and 4
    assert least_varying(codes, torch.tensor([1.0, 1.0]), torch.tensor([True, True])) == 0
    assert least_varying(codes, torch.tensor([1.0, 100.0]), torch.tensor([True, True])) == 1
    assert least_varying(codes, torch.tensor([1.0, 100.0]), torch.tensor([True, False])) == 0
