"""IWAE: its loss is the negative IWAE bound, the ELBO at k = 1, tighter as k grows."""
import math

import pytest
import torch
from torch import distributions as D

from companion.data import ImageSet
from companion.evaluation.likelihood import estimate, log_weights
from companion.losses import Objective
from companion.models import IWAE, MLPVAE
from companion.training import fit

X = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)).round()


def _model(samples: int, seed: int = 0) -> IWAE:
    torch.manual_seed(seed)
    return IWAE(latent_dim=3, hidden=16, samples=samples)


def test_one_sample_gives_the_single_sample_negative_elbo():
    model = _model(samples=1)
    torch.manual_seed(1)
    parts = model.loss(X)
    torch.manual_seed(1)
    mu, logvar = model.encode(X)
    z = model.reparameterize(mu, logvar)
    log_q = D.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    log_p = D.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(parts.total, (model.nll(X, z) + log_q - log_p).mean(), atol=1e-4)


def test_reconstruction_and_kl_are_the_mlp_vaes_loss_under_the_same_noise():
    model, plain = _model(samples=1), MLPVAE(latent_dim=3, hidden=16)
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(2)
    ours = model.loss(X)
    torch.manual_seed(2)
    theirs = plain.loss(X)
    assert torch.allclose(ours.reconstruction, theirs.reconstruction)
    assert torch.allclose(ours.kl, theirs.kl)


def test_the_loss_is_the_evaluations_iwae_estimate_under_the_same_noise():
    model = _model(samples=6)
    torch.manual_seed(3)
    total = model.loss(X).total
    want = estimate(log_weights(model, X, 6, generator=torch.Generator().manual_seed(3))).log_px
    assert torch.allclose(total, -want.mean(), atol=1e-4)


def test_the_bound_rises_with_k_on_a_fixed_model():
    """Each repeat of the image is an independent estimate: the batch mean averages them."""
    repeats, bounds = 2000, []
    for k in (1, 4, 16):
        model = _model(samples=k)                          # the same weights for every k
        torch.manual_seed(4)
        with torch.no_grad():
            bounds.append(-model.loss(X[:1].repeat(repeats, 1, 1, 1)).total.item())
    assert bounds[0] < bounds[1] < bounds[2]


@pytest.mark.parametrize("setting", [dict(beta=2.0), dict(free_bits=0.5), dict(tc_weight=1.0),
                                     dict(warmup_epochs=2.0)])
def test_settings_the_bound_has_no_term_for_are_refused_by_name(setting):
    name = next(iter(setting))
    with pytest.raises(ValueError, match=rf"^IWAE cannot honour {name}=.*plain Objective"):
        _model(samples=2).loss(X, objective=Objective(**setting))


def test_fit_lowers_the_loss():
    images = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    data = ImageSet(images, torch.zeros(64, dtype=torch.long), tuple("0123456789"), "bin")
    history = fit(_model(samples=3), data, epochs=3, batch_size=32, progress=False)
    assert all(math.isfinite(v) for v in history.loss) and history.loss[-1] < history.loss[0]
