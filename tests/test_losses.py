"""Losses against torch.distributions, and the properties the notebooks rely on."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from companion.gaussians import kl_divergence
from companion.losses import (RECONSTRUCTION, Objective, bernoulli_nll, check_likelihood, elbo,
                              elbo_loss, free_bits_kl, gaussian_nll, rmse, squared_error,
                              total_correlation)

torch.manual_seed(0)
LOGITS = torch.randn(6, 1, 28, 28) * 3
X = torch.rand(6, 1, 28, 28)
MU, LOGVAR = torch.randn(6, 5), torch.randn(6, 5)


def test_bernoulli_nll_matches_torch_distributions():
    xb = (X > 0.5).float()
    expected = -Bernoulli(logits=LOGITS).log_prob(xb).flatten(1).sum(1)
    assert torch.allclose(bernoulli_nll(LOGITS, xb), expected, rtol=1e-5)
    assert bernoulli_nll(LOGITS, X).shape == (6,)


def test_bernoulli_nll_is_stable_for_saturated_logits():
    logits = torch.full((1, 784), 200.0)
    assert torch.isfinite(bernoulli_nll(logits, torch.zeros(1, 784))).all()


def test_gaussian_nll_matches_torch_distributions():
    for sigma in (1.0, 0.1):
        expected = -Normal(torch.sigmoid(LOGITS), sigma).log_prob(X).flatten(1).sum(1)
        assert torch.allclose(gaussian_nll(LOGITS, X, sigma), expected, rtol=1e-5)


def test_squared_error_and_rmse():
    err = (torch.sigmoid(LOGITS) - X) ** 2
    assert torch.allclose(squared_error(LOGITS, X), err.flatten(1).sum(1))
    assert torch.allclose(rmse(LOGITS, X), err.flatten(1).mean(1).sqrt())


def test_elbo_loss_parts_and_beta():
    parts = elbo_loss(LOGITS, X, MU, LOGVAR, beta=4.0)
    assert torch.isclose(parts.reconstruction, bernoulli_nll(LOGITS, X).mean())
    assert torch.isclose(parts.kl, kl_divergence(MU, LOGVAR).mean())
    assert torch.isclose(parts.total, parts.reconstruction + 4.0 * parts.kl)
    mse = elbo_loss(LOGITS, X, MU, LOGVAR, likelihood="squared_error")
    assert torch.isclose(mse.reconstruction, squared_error(LOGITS, X).mean())
    for unknown in ("poisson", "mse"):                     # "mse" is now "squared_error"
        with pytest.raises(ValueError, match=r"likelihood must be one of \['bernoulli', "
                                             r"'squared_error', 'gaussian'\], not '" + unknown):
            elbo_loss(LOGITS, X, MU, LOGVAR, likelihood=unknown)


def test_check_likelihood_accepts_the_known_ones_only():
    for name in RECONSTRUCTION:
        check_likelihood(name)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        check_likelihood("mse")


def test_elbo_from_an_nll_is_elbo_loss_and_adds_each_objective_term():
    nll = bernoulli_nll(LOGITS, X)
    z = MU + (0.5 * LOGVAR).exp() * torch.randn(6, 5, generator=torch.Generator().manual_seed(0))
    plain = elbo(nll, z, MU, LOGVAR)
    assert all(torch.isclose(a, b) for a, b in zip(plain, elbo_loss(LOGITS, X, MU, LOGVAR)))
    assert all(p.shape == () for p in plain)
    weighted = elbo(nll, z, MU, LOGVAR, Objective(beta=3.0, free_bits=0.5, tc_weight=2.0))
    assert torch.equal(weighted.reconstruction, plain.reconstruction)
    assert torch.equal(weighted.kl, plain.kl)              # the true KL, whatever the weights
    assert torch.isclose(weighted.total, plain.reconstruction
                         + 3.0 * free_bits_kl(MU, LOGVAR, 0.5)
                         + 2.0 * total_correlation(z, MU, LOGVAR).mean())
    warming = elbo(nll, z, MU, LOGVAR, Objective(beta=3.0, warmup_epochs=2))
    assert torch.isclose(warming.total, plain.reconstruction + 3.0 * plain.kl)   # fit applies .at


# -- Objective: the weights of the loss's terms ------------------------------------------------

@pytest.mark.parametrize("field", ["beta", "free_bits", "tc_weight", "warmup_epochs"])
@pytest.mark.parametrize("value", [-1.0, -1e-9, math.nan, math.inf, "4", None, [1.0], True])
def test_objective_refuses_anything_but_a_finite_number_at_least_zero(field, value):
    with pytest.raises(ValueError, match=rf"Objective\({field}=\.\.\.\) takes a finite number "
                                         r">= 0, not "):
        Objective(**{field: value})


def test_objective_is_frozen_and_lists_what_it_changes():
    assert Objective() == Objective(beta=1, free_bits=0, tc_weight=0, warmup_epochs=0)
    assert Objective().changed() == {}
    assert Objective(beta=1.0, free_bits=0.0).changed() == {}     # explicit defaults
    assert Objective(beta=4, tc_weight=0.5).changed() == {"beta": 4, "tc_weight": 0.5}
    assert Objective(beta=0).changed() == {"beta": 0}
    with pytest.raises(AttributeError):
        Objective().beta = 2.0
    assert hash(Objective(beta=2)) == hash(Objective(beta=2.0))


def test_objective_at_ramps_beta_during_warm_up_only():
    warm = Objective(beta=4.0, free_bits=0.5, warmup_epochs=2)
    assert warm.at(0).beta == 0.0
    assert warm.at(0.5).beta == pytest.approx(1.0)
    assert warm.at(1).beta == pytest.approx(2.0)
    assert warm.at(2).beta == warm.at(7.5).beta == 4.0           # full beta from then on
    assert warm.at(1).free_bits == 0.5 and warm.at(1).warmup_epochs == 2   # the rest kept
    plain = Objective(beta=4.0)
    assert plain.at(0) is plain and plain.at(3) is plain          # no warm-up: unchanged


def test_objective_refuse_names_each_setting_asked_for():
    Objective().refuse("Autoencoder", ("beta", "free_bits"))
    Objective(tc_weight=1.0).refuse("Autoencoder", ("beta",))     # only the names given count
    with pytest.raises(ValueError, match=r"^Autoencoder cannot honour beta=4(\.0)?, "
                                         r"free_bits=0\.5: its loss has no such term\. Train it "
                                         r"with the plain Objective\(\)"):
        Objective(beta=4, free_bits=0.5).refuse("Autoencoder", ("beta", "free_bits", "tc_weight"))


def _codes(copy: bool, n: int = 4000, sigma: float = 0.3):
    """Posteriors N(mu, sigma^2) with mu ~ N(0, I) in 3-D; with copy, mu_2 repeats mu_1."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(n, 3, generator=g)
    if copy:
        mu[:, 1] = mu[:, 0]
    logvar = torch.full_like(mu, 2 * math.log(sigma))
    return mu + sigma * torch.randn(n, 3, generator=g), mu, logvar


def test_total_correlation_is_zero_for_independent_codes_and_the_mi_for_a_copy():
    z, mu, logvar = _codes(copy=False)
    tc = total_correlation(z, mu, logvar)
    assert tc.shape == (4000,) and abs(tc.mean().item()) < 0.05
    z, mu, logvar = _codes(copy=True)
    # q(z_1, z_2) is Gaussian with correlation 1 / (1 + sigma^2): TC = I(z_1; z_2) in closed form
    rho = 1 / (1 + 0.3 ** 2)
    assert total_correlation(z, mu, logvar).mean().item() == pytest.approx(
        -0.5 * math.log(1 - rho ** 2), abs=0.05)


def test_total_correlation_ignores_scale_and_order_of_the_coordinates():
    z, mu, logvar = _codes(copy=True, n=500)
    tc = total_correlation(z, mu, logvar)
    swapped = [2, 0, 1]
    assert torch.allclose(total_correlation(z[:, swapped], mu[:, swapped], logvar[:, swapped]), tc,
                          atol=1e-4)
    assert torch.allclose(total_correlation(5 * z, 5 * mu, logvar + 2 * math.log(5)), tc, atol=1e-4)


def test_a_loss_averaged_over_the_pixels_is_the_elbo_with_beta_784():
    """Pixel-mean BCE + batch-mean KL = (reconstruction + 784 KL) / 784: a hidden beta."""
    g = torch.Generator().manual_seed(0)
    logits, x = torch.randn(16, 1, 28, 28, generator=g), torch.rand(16, 1, 28, 28, generator=g)
    mu, logvar = torch.randn(16, 5, generator=g), torch.randn(16, 5, generator=g)
    averaged = (torch.nn.functional.binary_cross_entropy_with_logits(logits, x)
                + kl_divergence(mu, logvar).mean())
    beta_784 = elbo(bernoulli_nll(logits, x), None, mu, logvar, Objective(beta=784.0)).total
    assert torch.isclose(784 * averaged, beta_784, rtol=1e-5)
    # a KL summed over the batch next to a batch-mean reconstruction: beta = batch size
    summed = bernoulli_nll(logits, x).mean() + kl_divergence(mu, logvar).sum()
    assert torch.isclose(summed, elbo(bernoulli_nll(logits, x), None, mu, logvar,
                                      Objective(beta=16.0)).total, rtol=1e-5)
