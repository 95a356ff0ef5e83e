"""Free bits: a floor on each latent dimension's KL in the training objective, and only there."""
import pytest
import torch

from companion import checkpoints
from companion.gaussians import kl_divergence
from companion.losses import Objective, bernoulli_nll, elbo, elbo_loss, free_bits_kl
from companion.models import MLPVAE
from companion.training import evaluate, fit
from conftest import random_images


def codes():
    """mu, logvar [64, 3]: dimension 0 near the prior (KL ~0.01), 1 and 2 far from it (KL > 1)."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 3, generator=g) * torch.tensor([0.1, 2.0, 1.5])
    shift = torch.tensor([0.0, 2.0, 1.0])
    logvar = torch.randn(64, 3, generator=g) * torch.tensor([0.05, 0.5, 0.5]) - shift
    return mu.requires_grad_(True), logvar.requires_grad_(True)


def per_dimension_kl(mu, logvar):
    return torch.stack([kl_divergence(mu[:, j:j + 1], logvar[:, j:j + 1]).mean() for j in range(3)])


def test_free_bits_is_the_sum_of_each_dimensions_kl_floored():
    mu, logvar = codes()
    kl = per_dimension_kl(mu, logvar)
    assert kl[0] < 0.5 < kl[1:].min()
    assert torch.isclose(free_bits_kl(mu, logvar, 0.5), 0.5 + kl[1:].sum())
    assert torch.isclose(free_bits_kl(mu, logvar, 1e-9), kl_divergence(mu, logvar).mean())


def test_below_the_floor_no_gradient_from_the_kl_term_above_it_the_usual_one():
    mu, logvar = codes()
    free_bits_kl(mu, logvar, 0.5).backward()
    got = (mu.grad.clone(), logvar.grad.clone())
    mu.grad, logvar.grad = None, None
    kl_divergence(mu, logvar).mean().backward()                 # the plain KL term
    for floored, plain in zip(got, (mu.grad, logvar.grad)):
        assert floored[:, 0].abs().max() == 0                   # below the floor: nothing
        assert plain[:, 0].abs().max() > 0                      # (the plain term would pull)
        assert torch.allclose(floored[:, 1:], plain[:, 1:])     # above: the usual gradient


def test_the_elbo_keeps_the_true_kl_and_floors_only_the_total():
    torch.manual_seed(0)
    logits, x = torch.randn(64, 1, 28, 28), torch.rand(64, 1, 28, 28).round()
    mu, logvar = codes()
    nll, z = bernoulli_nll(logits, x), mu.detach()      # z matters for the TC weight only
    plain = elbo_loss(logits, x, mu, logvar)
    floored = elbo(nll, z, mu, logvar, Objective(beta=2.0, free_bits=0.5))
    assert torch.equal(floored.kl, plain.kl)                    # the true KL, reported
    assert torch.equal(floored.reconstruction, plain.reconstruction)
    assert torch.isclose(floored.total, bernoulli_nll(logits, x).mean()
                         + 2.0 * free_bits_kl(mu, logvar, 0.5))
    assert torch.equal(elbo(nll, z, mu, logvar, Objective(free_bits=0.0)).total, plain.total)
    with pytest.raises(ValueError,
                       match=r"Objective\(free_bits=\.\.\.\) takes a finite number >= 0"):
        Objective(free_bits=-1.0)


def test_fit_with_free_bits_reports_the_true_negative_elbo():
    data = random_images(256)
    torch.manual_seed(0)
    model = MLPVAE(latent_dim=4, hidden=32)
    history = fit(model, data, epochs=2, test_data=data, objective=Objective(free_bits=2.0),
                  progress=False)
    for total, reconstruction, kl in zip(history.test_loss, history.test_reconstruction,
                                         history.test_kl):
        assert total == pytest.approx(reconstruction + kl, rel=1e-6)   # no floor in it
        assert kl < 4 * 2.0 - 1                                 # below the floors' sum
    test = evaluate(model, data)
    assert test.total == pytest.approx(history.test_loss[-1], abs=1.0)   # z's noise only
    for objective, negative_elbo in zip(history.loss, history.full_beta_loss):
        assert objective > negative_elbo          # the floor only adds, here 8 nats


def test_free_bits_is_in_the_cache_key_only_when_set():
    model, data = MLPVAE(latent_dim=2, hidden=8), random_images(8)
    key = checkpoints.cache_key(model, data, {"epochs": 1})
    assert checkpoints.cache_key(model, data, {"epochs": 1,
                                               "objective": Objective(free_bits=0.0)}) == key
    assert checkpoints.cache_key(model, data, {"epochs": 1,
                                               "objective": Objective(free_bits=0.5)}) != key
