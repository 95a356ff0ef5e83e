"""Importance-sampled estimates of log p(x): against torch.distributions, quadrature, definitions."""
import math

import pytest
import torch
from torch import distributions as D
from torch import nn
from torch.distributions import Bernoulli, Normal

from companion.data import ImageSet
from companion.evaluation.likelihood import (bernoulli_log_likelihood, binarized,
                                             effective_sample_size, estimate, importance_weighted,
                                             log_mean_exp, log_weights, running_estimates)
from companion.models import MLPVAE

torch.manual_seed(0)
VAE_1D = MLPVAE(latent_dim=1, hidden=8).eval()   # one latent dimension: p(x) is a 1-D integral
X = torch.rand(3, 1, 28, 28)


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
    ours = log_weights(model, x, 7, generator=torch.Generator().manual_seed(5), chunk=3 * len(x))
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


def test_estimate_is_the_mean_log_weight_and_the_log_mean_weight():
    log_w = 50 * torch.randn(20, 9, generator=torch.Generator().manual_seed(0)) - 300
    est = estimate(log_w)
    assert torch.allclose(est.elbo, log_w.double().mean(0).float())
    want = log_w.double().exp().mean(0).log()                    # float64 holds e^-500
    assert torch.allclose(est.log_px.double(), want, atol=1e-4)
    one = estimate(log_w[:1])
    assert torch.equal(one.log_px, one.elbo)                     # IWAE_1 is the ELBO


def test_iwae_tightens_with_k():
    model, data = _model(), binarized(_images(20))
    means = [importance_weighted(model, data, k=k, seed=1).log_px.mean().item()
             for k in (1, 10, 200)]
    assert means[0] < means[1] < means[2]
    est = importance_weighted(model, data, k=50, seed=1)
    assert (est.log_px >= est.elbo - 1e-6 * est.elbo.abs()).all()   # a few float32 ulps


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


def _quadrature_log_px(model, x: torch.Tensor) -> torch.Tensor:
    """log ∫ p(x|z) N(z; 0, 1) dz on a fine grid over [-10, 10] (the reference answer)."""
    z = torch.linspace(-10, 10, 20_001).unsqueeze(1)                     # [G, 1]
    with torch.no_grad():
        log_joint = bernoulli_log_likelihood(model.decode(z), x) - 0.5 * (z**2 + math.log(2 * math.pi))
    return torch.logsumexp(log_joint.double(), 0) + math.log(20 / 20_000)


def test_log_mean_exp_matches_the_definition_and_survives_underflow():
    a = torch.randn(50, 4, dtype=torch.float64)
    assert torch.allclose(log_mean_exp(a, dim=0), a.exp().mean(0).log())
    tiny = torch.tensor([-1000.0, -1001.0, -1002.0])
    assert torch.exp(tiny).mean().log() == -math.inf                      # the naive way fails
    want = -1000 + math.log((1 + math.exp(-1) + math.exp(-2)) / 3)
    assert log_mean_exp(tiny).item() == pytest.approx(want, abs=1e-3)


def test_effective_sample_size_extremes_and_definition():
    assert effective_sample_size(torch.zeros(40)).item() == pytest.approx(40)
    assert effective_sample_size(torch.tensor([0.0, -50.0, -60.0])).item() == pytest.approx(1.0)
    log_w = torch.randn(30, 2, dtype=torch.float64)
    w = log_w.exp()
    assert torch.allclose(effective_sample_size(log_w), w.sum(0) ** 2 / (w**2).sum(0))


def test_bernoulli_log_likelihood_scores_every_pair():
    logits = torch.randn(5, 1, 28, 28) * 3
    out = bernoulli_log_likelihood(logits, X)                             # [5, 3]
    assert out.shape == (5, 3)
    xb = (X > 0.5).float()
    want = torch.stack([Bernoulli(logits=logits).log_prob(x.expand_as(logits)).flatten(1).sum(1)
                        for x in xb], dim=1)
    assert torch.allclose(bernoulli_log_likelihood(logits, xb), want, rtol=1e-5)


@pytest.mark.parametrize("proposal", ["prior", "encoder"])
def test_estimates_agree_with_numerical_integration(proposal):
    g = torch.Generator().manual_seed(1)
    log_px = log_mean_exp(log_weights(VAE_1D, X, 20_000, proposal, generator=g), dim=0)
    assert log_px.shape == (3,)
    assert torch.allclose(log_px.double(), _quadrature_log_px(VAE_1D, X), atol=0.02)


def _grayscale_bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """x log sigmoid(l) + (1 - x) log sigmoid(-l) summed over pixels, for x in [0, 1]: [S, N]."""
    x = x.flatten(1)
    return (x * torch.nn.functional.logsigmoid(logits)
            + (1 - x) * torch.nn.functional.logsigmoid(-logits)).sum(-1)


def test_chunks_do_not_change_the_prior_estimate():
    a = log_weights(VAE_1D, X, 50, "prior", torch.Generator().manual_seed(3), chunk=7)
    b = log_weights(VAE_1D, X, 50, "prior", torch.Generator().manual_seed(3), chunk=10_000)
    assert a.shape == (50, 3) and torch.allclose(a, b, atol=1e-4)


def test_encoder_weights_match_torch_distributions():
    log_w = log_weights(VAE_1D, X, 20, "encoder", torch.Generator().manual_seed(4))
    eps = torch.randn(20, 3, 1, generator=torch.Generator().manual_seed(4))   # the same draws
    with torch.no_grad():
        mu, logvar = VAE_1D.encode(X)
        q = Normal(mu, (0.5 * logvar).exp())
        z = mu + q.scale * eps                                              # [20, 3, 1]
        logits = VAE_1D.decode(z.flatten(0, 1)).view(20, 3, 784)
    want = (_grayscale_bernoulli_log_prob(logits, X) + Normal(0.0, 1.0).log_prob(z).sum(-1)
            - q.log_prob(z).sum(-1))
    assert torch.allclose(log_w, want, atol=1e-3)


def test_running_estimates():
    log_w = torch.randn(100, 3)
    out = running_estimates(log_w, [1, 10, 100])
    assert out.shape == (3, 3)
    assert torch.equal(out[0], log_w[0])
    assert torch.allclose(out[2], log_mean_exp(log_w, 0))


def test_unknown_proposal_is_refused():
    with pytest.raises(ValueError, match="prior.*encoder"):
        log_weights(VAE_1D, X, 10, "posterior")


class _DropoutVAE(MLPVAE):
    """An MLP VAE whose decoder drops half its hidden units in train mode."""

    def __init__(self):
        super().__init__(latent_dim=2, hidden=16)
        self.decoder.insert(2, nn.Dropout(0.5))


def test_log_weights_run_in_eval_mode_and_restore_the_mode():
    torch.manual_seed(0)
    model = _DropoutVAE().train()
    x = binarized(_images(3)).images
    a = log_weights(model, x, 5, generator=torch.Generator().manual_seed(1))
    b = log_weights(model, x, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and model.training                  # no Dropout noise, mode kept


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=0), "k takes a whole number"), (dict(k=-5), "k takes a whole number"),
    (dict(batch_size=0), "batch_size takes a whole number"),
    (dict(chunk=0), "chunk takes a whole number"),
])
def test_importance_weighted_refuses_counts_below_one(kwargs, match):
    with pytest.raises(ValueError, match=match):
        importance_weighted(_model(), binarized(_images(2)), **kwargs)


def test_empty_inputs_and_sizes_out_of_range_are_refused_with_what_to_pass():
    empty = ImageSet(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long), ("0",), "none")
    with pytest.raises(ValueError, match="holds no images"):
        importance_weighted(_model(), empty)
    with pytest.raises(ValueError, match="holds no images"):
        log_weights(_model(), X[:0], 5)
    with pytest.raises(ValueError, match="n_samples takes a whole number"):
        log_weights(_model(), X, 0)
    with pytest.raises(ValueError, match="at least one log-weight"):
        log_mean_exp(torch.zeros(0, 3))
    with pytest.raises(ValueError, match=r"sizes \[0, 11\] .* \(10\)"):
        running_estimates(torch.randn(10, 3), [0, 5, 11])
