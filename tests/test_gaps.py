"""Per-image refinement of q(z|x): never worse than the encoder on its own draws, better on
fresh ones after training, the model untouched, and a clear refusal where q is not Gaussian."""
import pytest
import torch

from companion.data import ImageSet
from companion.evaluation.gaps import elbo_per_image, refine
from companion.evaluation.likelihood import estimate, log_weights
from companion.models import MLPVAE, FlowVAE, PriorVAE
from companion.training import fit

IMAGES = (torch.rand(96, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()


def trained(kind=MLPVAE, **kwargs):
    torch.manual_seed(0)
    model = kind(latent_dim=4, hidden=32, **kwargs)
    data = ImageSet(IMAGES, torch.zeros(96, dtype=torch.long), tuple("0123456789"), "bin")
    fit(model, data, epochs=2, batch_size=32, progress=False)
    return model


def test_the_elbo_per_image_is_the_mean_log_weight_under_the_same_draws():
    model, x = trained(), IMAGES[:5]
    mu, logvar = model.encode(x)
    log_w = log_weights(model, x, 8, generator=torch.Generator().manual_seed(1), q=(mu, logvar))
    eps = torch.randn(8, 5, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(elbo_per_image(model, x, mu, logvar, eps), log_w.mean(0), atol=1e-4)


@pytest.mark.parametrize("kind, kwargs", [(MLPVAE, {}), (PriorVAE, dict(prior="mixture",
                                                                         components=3))])
def test_refining_never_lowers_the_elbo_on_its_draws_and_raises_it_on_fresh_ones(kind, kwargs):
    model, x = trained(kind, **kwargs), IMAGES[:8]
    before = [p.detach().clone() for p in model.parameters()]
    grads = [p.grad.clone() for p in model.parameters()]          # left by the last fit step
    mu, logvar = refine(model, x, steps=60, lr=0.05, samples=16,
                        generator=torch.Generator().manual_seed(2))
    start = model.encode(x)
    eps = torch.randn(16, 8, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        own = elbo_per_image(model, x, mu, logvar, eps)
        assert (own >= elbo_per_image(model, x, *start, eps) - 1e-4).all()
        fresh = torch.randn(400, 8, 4, generator=torch.Generator().manual_seed(3))
        gain = elbo_per_image(model, x, mu, logvar, fresh) - elbo_per_image(model, x, *start,
                                                                             fresh)
    assert gain.mean() > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.requires_grad and torch.equal(p.grad, g)
               for p, g in zip(model.parameters(), grads))


def test_the_refined_q_is_scored_like_the_encoders():
    model, x = trained(), IMAGES[:4]
    q = refine(model, x, steps=5)
    log_px = estimate(log_weights(model, x, 16, q=q)).log_px
    assert log_px.shape == (4,) and torch.isfinite(log_px).all()


def test_a_posterior_that_is_not_a_diagonal_gaussian_is_refused():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="FlowVAE's posterior is not one"):
        refine(FlowVAE(latent_dim=3, hidden=16, flows=2), IMAGES[:2])
