"""Importance weights for models that supply their own prior or posterior."""
import pytest
import torch
from torch import distributions as D

from companion.evaluation.likelihood import log_weights
from companion.models import MLPVAE, FlowVAE, HierarchicalVAE, PriorVAE

X = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1)).round()


def _prior_vae(prior: str) -> PriorVAE:
    torch.manual_seed(0)
    return PriorVAE(latent_dim=3, hidden=16, prior=prior, components=4)


def test_a_standard_prior_gives_the_mlp_vaes_weights():
    model, plain = _prior_vae("standard"), MLPVAE(latent_dim=3, hidden=16)
    plain.load_state_dict(model.state_dict())
    ours = log_weights(model, X, 7, generator=torch.Generator().manual_seed(2), chunk=6)
    theirs = log_weights(plain, X, 7, generator=torch.Generator().manual_seed(2), chunk=6)
    assert torch.allclose(ours, theirs)


@pytest.mark.parametrize("prior", ["mixture", "vamp"])
def test_a_learned_prior_scores_the_codes(prior):
    model = _prior_vae(prior)
    log_w = log_weights(model, X, 5, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        mu, logvar = model.encode(X)
        q = D.Normal(mu, (0.5 * logvar).exp())
        z = mu + q.scale * torch.randn(5, 3, 3, generator=torch.Generator().manual_seed(3))
        log_prior = model.log_prior(z.flatten(0, 1)).view(5, 3)
        log_lik = -model.nll(X.repeat(5, 1, 1, 1), z.flatten(0, 1)).view(5, 3)
    assert torch.allclose(log_w, log_lik + log_prior - q.log_prob(z).sum(-1), atol=1e-4)


def test_a_learned_prior_is_not_scored_with_codes_from_n01():
    with pytest.raises(ValueError, match="PriorVAE has a prior of its own: use proposal='encoder'"):
        log_weights(_prior_vae("mixture"), X, 5, proposal="prior")


@pytest.mark.parametrize("make", [lambda: FlowVAE(latent_dim=3, hidden=16, flows=3),
                                  lambda: HierarchicalVAE(latent_dims=(4, 2), hidden=(16, 8))])
def test_a_weight_from_the_models_own_posterior_is_minus_its_single_sample_loss(make):
    torch.manual_seed(0)
    model = make()
    log_w = log_weights(model, X, 1, generator=torch.Generator().manual_seed(4))   # [1, N]
    torch.manual_seed(4)
    with torch.no_grad():
        parts = model.loss(X)
    assert torch.allclose(-log_w.mean(), parts.reconstruction + parts.kl, atol=1e-4)


def test_a_flow_draws_from_its_own_posterior_only():
    torch.manual_seed(0)
    model = FlowVAE(latent_dim=3, hidden=16, flows=2)
    with pytest.raises(ValueError, match="not a diagonal Gaussian: leave q=None"):
        log_weights(model, X, 2, q=model.encode(X))
