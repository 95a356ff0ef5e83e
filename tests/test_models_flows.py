"""Planar flows against autograd's Jacobian, and the FlowVAE's loss by hand."""
import math

import pytest
import torch
from torch import distributions as D

from companion.data import ImageSet
from companion.gaussians import kl_divergence
from companion.losses import Objective
from companion.models import MLPVAE, FlowVAE, PlanarFlow
from companion.training import fit

X = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)).round()


def _flow(seed: int, scale: float = 3.0) -> PlanarFlow:
    """A planar step with large random parameters, in float64."""
    torch.manual_seed(seed)
    flow = PlanarFlow(3).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(scale * torch.randn_like(p))
    return flow


@pytest.mark.parametrize("seed", range(3))
def test_log_det_matches_autograds_jacobian(seed):
    flow = _flow(seed)
    z = torch.randn(5, 3, dtype=torch.float64)
    f, log_det = flow(z)
    assert f.shape == (5, 3) and log_det.shape == (5,)
    for point, want in zip(z, log_det):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], point)
        assert torch.allclose(torch.linalg.det(jacobian).abs().log(), want, atol=1e-10)


def test_every_step_is_invertible_whatever_its_parameters():
    for seed in range(200):
        flow = _flow(seed)
        assert flow.w @ flow.u_hat() >= -1 - 1e-12                # up to rounding
    flow = _flow(0)
    with torch.no_grad():
        flow.u.copy_(-3 * flow.w / flow.w.pow(2).sum())   # w . u = -3: not invertible as it is
    assert torch.isclose(flow.w @ flow.u_hat(), torch.nn.functional.softplus(
        torch.tensor(-3.0, dtype=torch.float64)) - 1)


def test_the_log_det_stays_finite_where_the_step_is_nearly_singular():
    flow = PlanarFlow(3)
    with torch.no_grad():
        flow.w.copy_(torch.tensor([1.0, 0.0, 0.0]))
        flow.u.copy_(torch.tensor([-60.0, 0.0, 0.0]))              # w . u_hat = -1 + e^-60
        flow.b.zero_()
    _, log_det = flow(torch.tensor([[0.0, 1.0, 2.0]]))            # on the plane w . z + b = 0
    assert torch.isclose(log_det, torch.tensor([-60.0]))


def _model(flows: int, seed: int = 0) -> FlowVAE:
    torch.manual_seed(seed)
    return FlowVAE(latent_dim=3, hidden=16, flows=flows)


def test_without_flows_the_reconstruction_is_the_mlp_vaes_and_kl_its_estimate():
    model, plain = _model(flows=0), MLPVAE(latent_dim=3, hidden=16)
    plain.load_state_dict(model.state_dict())
    torch.manual_seed(2)
    ours = model.loss(X)
    torch.manual_seed(2)
    theirs = plain.loss(X)
    assert torch.equal(ours.reconstruction, theirs.reconstruction)
    torch.manual_seed(2)
    mu, logvar = plain.encode(X)
    z = plain.reparameterize(mu, logvar)
    log_q = D.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(ours.kl, (log_q - D.Normal(0.0, 1.0).log_prob(z).sum(-1)).mean(),
                          atol=1e-5)


def test_without_flows_the_kl_estimate_averages_to_the_closed_form():
    model, draws = _model(flows=0), 5000
    with torch.no_grad():
        z, log_q = model.sample_posterior(X.repeat(draws, 1, 1, 1))
        terms = (log_q - D.Normal(0.0, 1.0).log_prob(z).sum(-1)).view(draws, 4)
        want = kl_divergence(*model.encode(X))
    assert (abs(terms.mean(0) - want) < 4 * terms.std(0) / math.sqrt(draws)).all()


def test_the_loss_follows_the_change_of_variables():
    model = _model(flows=3)
    torch.manual_seed(5)
    parts = model.loss(X, objective=Objective(beta=2.0))
    torch.manual_seed(5)
    mu, logvar = model.encode(X)
    z = model.reparameterize(mu, logvar)
    log_q = D.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    for step in model.flows:
        z, log_det = step(z)
        log_q = log_q - log_det
    kl = (log_q - D.Normal(0.0, 1.0).log_prob(z).sum(-1)).mean()
    assert torch.allclose(parts.reconstruction, model.nll(X, z).mean())
    assert torch.allclose(parts.kl, kl, atol=1e-5)
    assert torch.allclose(parts.total, parts.reconstruction + 2.0 * parts.kl)


def test_code_and_forward_go_through_the_flow():
    model = _model(flows=2)
    mu, logvar = model.encode(X)
    assert torch.allclose(model.code(X), model.flows[1](model.flows[0](mu)[0])[0])
    torch.manual_seed(6)
    logits, mu2, _ = model(X)
    torch.manual_seed(6)
    z, _ = model.sample_posterior(X)
    assert torch.equal(mu2, mu) and torch.allclose(logits, model.decode(z))


@pytest.mark.parametrize("bad", [-1, 2.5, True, "4"])
def test_the_number_of_steps_is_a_whole_number_from_zero(bad):
    with pytest.raises(ValueError, match=rf"FlowVAE\(flows={bad!r}\): .* whole number >= 0"):
        FlowVAE(3, 16, flows=bad)
    assert len(FlowVAE(3, 16, flows=0).flows) == 0


def test_fit_lowers_the_loss():
    images = (torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    data = ImageSet(images, torch.zeros(64, dtype=torch.long), tuple("0123456789"), "bin")
    history = fit(_model(flows=2), data, epochs=3, batch_size=32, progress=False)
    assert all(math.isfinite(v) for v in history.loss) and history.loss[-1] < history.loss[0]
