"""The importance-weighted likelihood estimator against torch.distributions and quadrature."""
import math

import pytest
import torch
from torch import distributions as D

from companion.data import ImageSet
from companion.evaluation.likelihood import binarized, combine, importance_weighted, log_weights
from companion.models import MLPVAE


def _images(n: int = 6, seed: int = 100) -> ImageSet:
    # a seed unlike binarized's: the same seed would make the coin flips equal the pixels
    g = torch.Generator().manual_seed(seed)
    gray = torch.rand(n, 1, 28, 28, generator=g) ** 3          # mostly dark, like digits
    return ImageSet(gray, torch.arange(n) % 10, tuple(map(str, range(10))), "random")


def _model(latent_dim: int = 3, seed: int = 0) -> MLPVAE:
    torch.manual_seed(seed)
    return MLPVAE(latent_dim=latent_dim, hidden=16).eval()


def test_log_weights_match_torch_distributions():
    model, x = _model(), binarized(_images()).images
    ours = log_weights(model, x, k=7, chunk=3, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    mu, logvar = model.encode(x)
    std = (0.5 * logvar).exp()
    eps = torch.cat([torch.randn(c, *mu.shape, generator=g) for c in (3, 3, 1)])   # same chunks
    z = mu + std * eps                                                             # [7, N, L]
    with torch.no_grad():
        logits = model.decode(z.flatten(0, 1)).view(7, len(x), -1)
    want = (D.Bernoulli(logits=logits).log_prob(x.flatten(1)).sum(-1)
            + D.Normal(0.0, 1.0).log_prob(z).sum(-1) - D.Normal(mu, std).log_prob(z).sum(-1))
    assert ours.shape == (7, len(x))
    assert torch.allclose(ours, want, atol=1e-3)


def test_iwae_is_at_least_the_elbo_and_equals_it_for_k_1():
    log_w = 50 * torch.randn(20, 9, generator=torch.Generator().manual_seed(0)) - 300
    est = combine(log_w)
    assert (est.log_px >= est.elbo - 1e-4).all()                 # Jensen, sample by sample
    one = combine(log_w[:1])
    assert torch.equal(one.log_px, one.elbo)
    assert torch.isfinite(est.log_px).all()                      # no overflow with large |log w|


def test_iwae_tightens_with_k():
    model, data = _model(), binarized(_images(20))
    means = [importance_weighted(model, data, k=k, seed=1).log_px.mean().item()
             for k in (1, 10, 200)]
    assert means[0] < means[1] < means[2]
    est = importance_weighted(model, data, k=50, seed=1)
    assert (est.log_px >= est.elbo - 1e-4).all()


def test_iwae_converges_to_log_px_by_quadrature():
    model, data = _model(latent_dim=1, seed=3), binarized(_images(4, seed=102))
    x = data.images.flatten(1)                                                 # [4, 784]
    z = torch.linspace(-12, 12, 24001)[:, None]                                # [Z, 1]
    with torch.no_grad():
        logits = model.decode(z).flatten(1)                                    # [Z, 784]
    log_lik = -torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, None, :].expand(-1, 4, -1), x.expand(len(z), -1, -1), reduction="none").sum(-1)
    log_joint = log_lik + D.Normal(0.0, 1.0).log_prob(z)                       # [Z, 4]
    exact = torch.logsumexp(log_joint, 0) + math.log(24 / 24000)               # [4]
    est = importance_weighted(model, data, k=5000, seed=0)
    assert (est.elbo < exact).all()                                            # a lower bound
    assert torch.allclose(est.log_px, exact, atol=0.05)


def test_refuses_grayscale_pixels():
    with pytest.raises(ValueError, match="binar"):
        importance_weighted(_model(), _images(), k=2)


def test_binarized_is_binary_deterministic_and_unbiased():
    data = _images(200)
    a, b, c = binarized(data, seed=0), binarized(data, seed=0), binarized(data, seed=1)
    assert set(a.images.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert a.tag != data.tag and a.tag != c.tag
    assert abs(a.images.mean() - data.images.mean()) < 0.005
