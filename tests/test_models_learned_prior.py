"""PriorVAE: the single-sample KL estimate, its refusals, training with each prior."""
import math

import pytest
import torch
from torch import distributions as D

from companion.data import ImageSet
from companion.gaussians import kl_divergence
from companion.losses import Objective
from companion.models import MLPVAE, PriorVAE, build
from companion.priors import MixturePrior, StandardNormalPrior, VampPrior
from companion.training import fit

X = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)).round()


def _model(prior: str = "standard", **kwargs) -> PriorVAE:
    torch.manual_seed(0)
    return PriorVAE(latent_dim=3, hidden=16, prior=prior, components=5, **kwargs)


def test_each_prior_is_the_object_asked_for():
    kinds = {"standard": StandardNormalPrior, "mixture": MixturePrior, "vamp": VampPrior}
    for name, kind in kinds.items():
        model = _model(name)
        assert isinstance(model.prior, kind)
        z = torch.randn(6, 3)
        assert torch.equal(model.log_prior(z), model.prior.log_prob(z))
    with pytest.raises(ValueError, match=r"prior must be one of .*'vamp'.*not 'gmm'"):
        PriorVAE(3, 16, prior="gmm")


def test_the_kl_estimate_averages_to_the_closed_form_under_the_standard_prior():
    model, draws = _model("standard"), 5000
    with torch.no_grad():
        mu, logvar = model.encode(X.repeat(draws, 1, 1, 1))                 # [draws * 4, 3]
        terms = model.kl_estimate(model.reparameterize(mu, logvar), mu, logvar).view(draws, 4)
        want = kl_divergence(mu[:4], logvar[:4])                            # [4]
    stderr = terms.std(0) / math.sqrt(draws)
    assert (abs(terms.mean(0) - want) < 4 * stderr).all()


def test_the_loss_is_reconstruction_plus_beta_times_the_estimate_at_the_decoded_z():
    model = _model("mixture")
    torch.manual_seed(1)
    parts = model.loss(X, objective=Objective(beta=3.0))
    torch.manual_seed(1)
    mu, logvar = model.encode(X)
    z = model.reparameterize(mu, logvar)
    log_q = D.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(parts.reconstruction, model.nll(X, z).mean())
    assert torch.allclose(parts.kl, (log_q - model.prior.log_prob(z)).mean(), atol=1e-5)
    assert torch.allclose(parts.total, parts.reconstruction + 3.0 * parts.kl)


def test_the_standard_prior_gives_the_mlp_vaes_reconstruction_with_its_weights():
    model, plain = _model("standard"), MLPVAE(latent_dim=3, hidden=16)
    plain.load_state_dict(model.state_dict())          # the same parameters, by the same names
    torch.manual_seed(2)
    ours = model.loss(X)
    torch.manual_seed(2)
    theirs = plain.loss(X)
    assert torch.equal(ours.reconstruction, theirs.reconstruction)


@pytest.mark.parametrize("setting", [dict(free_bits=0.5), dict(tc_weight=1.0)])
def test_settings_of_a_closed_form_kl_are_refused_by_name(setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=rf"^PriorVAE cannot honour {name}=.*plain Objective"):
        _model("vamp").loss(X, objective=Objective(**setting))


def test_samples_are_decoded_from_the_prior():
    model = _model("mixture")
    images = model.sample(5, torch.Generator().manual_seed(3))
    z = model.prior.sample(5, torch.Generator().manual_seed(3))
    assert images.shape == (5, 1, 28, 28)
    assert torch.allclose(images, torch.sigmoid(model.decode(z)))


@pytest.mark.parametrize("prior", ["mixture", "vamp"])
def test_fit_lowers_the_loss_and_the_prior_is_saved_with_the_weights(prior):
    images = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    data = ImageSet(images, torch.zeros(64, dtype=torch.long), tuple("0123456789"), "bin")
    model = _model(prior)
    history = fit(model, data, epochs=3, batch_size=32, objective=Objective(warmup_epochs=1),
                  progress=False)
    assert all(math.isfinite(v) for v in history.loss) and history.loss[-1] < history.loss[0]
    again = build(model.describe())
    again.load_state_dict(model.state_dict())
    z = torch.randn(4, 3)
    assert torch.allclose(again.log_prior(z), model.log_prior(z))
