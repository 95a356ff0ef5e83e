"""The stratified total-correlation estimate: exact on the whole data, unbiased for q(z) on
random batches, and the TCVAE that trains with it."""
import math

import pytest
import torch

from companion.data import ImageSet
from companion.gaussians import gaussian_log_density
from companion.losses import Objective, elbo
from companion.models import TCVAE, build
from companion.models.tcvae import stratified_log_q, stratified_total_correlation
from companion.training import fit


def posteriors(n: int, dims: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, dims, generator=g, dtype=torch.float64)
    logvar = torch.randn(n, dims, generator=g, dtype=torch.float64) * 0.3 - 1
    z = mu + (0.5 * logvar).exp() * torch.randn(n, dims, generator=g, dtype=torch.float64)
    return z, mu, logvar


def exact_log_q(z, mu, logvar):
    """log q(z_i) and each log q(z_id), averaging over every posterior of the data."""
    log_q = gaussian_log_density(z[:, None], mu[None], logvar[None])   # [N, N, L]
    n = len(mu)
    return log_q.sum(2).logsumexp(1) - math.log(n), log_q.logsumexp(1) - math.log(n)


def test_a_batch_of_the_whole_data_gives_the_exact_densities():
    z, mu, logvar = posteriors(20)
    joint, marginals = stratified_log_q(z, mu, logvar, dataset_size=20)
    want_joint, want_marginals = exact_log_q(z, mu, logvar)
    assert torch.allclose(joint, want_joint, atol=1e-10)
    assert torch.allclose(marginals, want_marginals, atol=1e-10)
    assert torch.allclose(stratified_total_correlation(z, mu, logvar, 20),
                          want_joint - want_marginals.sum(1), atol=1e-10)


def test_on_random_batches_the_estimate_of_q_is_unbiased():
    """The own image first, M - 1 others drawn from the rest: the mean of exp(estimate) is q."""
    n, m, draws = 30, 5, 20_000
    z, mu, logvar = posteriors(n, seed=1)
    want_joint, want_marginals = exact_log_q(z, mu, logvar)
    g = torch.Generator().manual_seed(2)
    q_joint, q_marginal = [], []
    for _ in range(draws):
        others = 1 + torch.randperm(n - 1, generator=g)[:m - 1]        # images 1..n-1
        batch = torch.cat([torch.tensor([0]), others])                 # z_0 comes from image 0
        joint, marginals = stratified_log_q(z[batch], mu[batch], logvar[batch], n)
        q_joint.append(joint[0].exp())
        q_marginal.append(marginals[0].exp())
    q_joint, q_marginal = torch.stack(q_joint), torch.stack(q_marginal)
    se = q_joint.std() / draws ** 0.5
    assert abs(q_joint.mean() - want_joint[0].exp()) < 4 * se
    se = q_marginal.std(0) / draws ** 0.5
    assert (abs(q_marginal.mean(0) - want_marginals[0].exp()) < 4 * se).all()


def test_a_batch_larger_than_the_data_or_of_one_image_is_refused():
    z, mu, logvar = posteriors(8)
    with pytest.raises(ValueError, match="batch of 2 to dataset_size=4"):
        stratified_log_q(z, mu, logvar, dataset_size=4)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        stratified_log_q(z[:1], mu[:1], logvar[:1], dataset_size=4)


def test_tcvae_loss_is_the_elbo_plus_the_weighted_stratified_tc():
    torch.manual_seed(0)
    model = TCVAE(latent_dim=3, hidden=(16,), image_size=8, dataset_size=100)
    x = (torch.rand(12, 1, 8, 8) < 0.4).float()
    objective = Objective(beta=2.0, tc_weight=3.0)
    torch.manual_seed(1)
    parts = model.loss(x, objective=objective)
    torch.manual_seed(1)
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    plain = elbo(model.nll(x, z), z, mu, logvar, Objective(beta=2.0))
    tc = stratified_total_correlation(z, mu, logvar, 100).mean()
    assert torch.allclose(parts.total, plain.total + 3.0 * tc, atol=1e-5)
    assert torch.allclose(parts.kl, plain.kl) and torch.allclose(parts.reconstruction,
                                                                plain.reconstruction)


def test_tcvae_trains_and_rebuilds_from_its_description():
    images = (torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    data = ImageSet(images, torch.zeros(64, dtype=torch.long), tuple("0123456789"), "bin")
    torch.manual_seed(0)
    model = TCVAE(latent_dim=2, hidden=(32,), image_size=8, dataset_size=len(data))
    history = fit(model, data, epochs=3, batch_size=32, objective=Objective(tc_weight=4.0),
                  progress=False)
    assert all(math.isfinite(v) for v in history.loss) and history.loss[-1] < history.loss[0]
    again = build(model.describe())
    assert isinstance(again, TCVAE) and again.dataset_size == 64
