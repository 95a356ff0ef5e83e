"""The prior objects against torch.distributions and a hand computation; their samples."""
import math

import pytest
import torch
from torch import distributions as D

from companion.models import MLPVAE
from companion.priors import MixturePrior, StandardNormalPrior, VampPrior


def _mixture_prior(seed: int = 0) -> MixturePrior:
    """A 3-component mixture in 2 dimensions with distinct weights, means and variances."""
    torch.manual_seed(seed)
    prior = MixturePrior(latent_dim=2, components=3)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[-2.0, 0.0], [1.0, 1.5], [2.0, -1.0]]))
        prior.logvars.copy_(torch.tensor([[0.0, -1.0], [-0.5, 0.3], [-2.0, 0.0]]))
        prior.logits.copy_(torch.tensor([0.5, -0.3, 0.1]))
    return prior


def _vamp_prior(components: int = 4):
    torch.manual_seed(0)
    vae = MLPVAE(latent_dim=3, hidden=16)
    return VampPrior(3, components, vae.encode), vae


def test_standard_normal_log_prob_matches_torch_distributions():
    prior, z = StandardNormalPrior(4), torch.randn(10, 4)
    want = D.Normal(0.0, 1.0).log_prob(z).sum(-1)
    assert torch.allclose(prior.log_prob(z), want)
    assert torch.allclose(prior.mixture().log_prob(z), want)
    assert list(prior.state_dict()) == []              # nothing to save, nothing to learn


def test_mixture_log_prob_matches_torch_distributions():
    prior, z = _mixture_prior(), 2 * torch.randn(50, 2)
    components = D.Independent(D.Normal(prior.means, (0.5 * prior.logvars).exp()), 1)
    want = D.MixtureSameFamily(D.Categorical(logits=prior.logits), components).log_prob(z)
    assert prior.log_prob(z).shape == (50,)
    assert torch.allclose(prior.log_prob(z), want, atol=1e-5)


def test_vamp_log_prob_is_the_mean_of_the_encoders_posteriors_at_the_pseudo_inputs():
    prior, vae = _vamp_prior(components=4)
    z = torch.randn(7, 3)
    mu, logvar = vae.encode(prior.pseudo_inputs)                               # [4, 3] each
    per_input = D.Normal(mu, (0.5 * logvar).exp()).log_prob(z[:, None]).sum(-1)   # [7, 4]
    want = per_input.logsumexp(1) - math.log(4)
    assert torch.allclose(prior.log_prob(z), want, atol=1e-5)


def test_vamp_prior_learns_through_its_pseudo_inputs_and_the_shared_encoder():
    prior, vae = _vamp_prior()
    assert prior.pseudo_inputs.shape == (4, 1, 28, 28)
    assert 0 < prior.pseudo_inputs.min() and prior.pseudo_inputs.max() < 1
    prior.log_prob(torch.randn(5, 3)).sum().backward()
    assert prior.logits.grad.abs().sum() > 0 and vae.mu.weight.grad.abs().sum() > 0
    assert [name for name, _ in prior.named_parameters()] == ["logits"]   # encoder not copied


def test_vamp_prior_starts_from_given_images_and_refuses_the_wrong_number():
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    prior = VampPrior(3, 4, MLPVAE(3, 16).encode, start=images)
    assert torch.allclose(prior.pseudo_inputs, images, atol=1e-5)
    with pytest.raises(ValueError, match="start holds 4 pseudo-inputs, but components=5"):
        VampPrior(3, 5, MLPVAE(3, 16).encode, start=images)


@pytest.mark.parametrize("make", [lambda: StandardNormalPrior(3), lambda: MixturePrior(3, 5),
                                  lambda: _vamp_prior()[0]])
def test_samples_have_the_shape_dtype_and_device_of_the_prior_and_repeat_with_a_generator(make):
    prior = make()
    z = prior.sample(6)
    assert z.shape == (6, 3) and z.dtype == torch.float32 and z.device.type == "cpu"
    a = prior.sample(6, torch.Generator().manual_seed(1))
    b = prior.sample(6, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match=r"sample\(n=0\)"):
        prior.sample(0)


@pytest.mark.parametrize("prior", [StandardNormalPrior(3), MixturePrior(3, 5)])
def test_samples_follow_the_priors_own_tensors(prior):
    assert prior.double().sample(2).dtype == torch.float64


def test_mixture_samples_have_the_mixtures_mean_and_variance():
    prior, n = _mixture_prior(), 40_000
    with torch.no_grad():
        z = prior.sample(n, torch.Generator().manual_seed(0))
        weights, means, variances = prior.logits.softmax(0), prior.means, prior.logvars.exp()
        mean = weights @ means                                                  # [2]
        variance = weights @ (variances + means.pow(2)) - mean.pow(2)           # [2]
    assert torch.allclose(z.mean(0), mean, atol=5 * (variance / n).sqrt().max())
    fourth = (z - z.mean(0)).pow(4).mean(0)                                     # [2]
    assert torch.allclose(z.var(0), variance, atol=5 * (fourth / n).sqrt().max())


@pytest.mark.parametrize("bad", [dict(latent_dim=0), dict(components=2.5)])
def test_sizes_are_whole_numbers(bad):
    with pytest.raises(ValueError, match="takes a whole number >= 1"):
        MixturePrior(**{"latent_dim": 2, "components": 3, **bad})
