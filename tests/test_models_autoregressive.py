"""The autoregressive VAE: its decoder never sees pixel i or later when it predicts pixel i,
its sampler draws from the distribution its scorer computes, and it survives save/load."""
import pytest
import torch

from companion import checkpoints
from companion.data import ImageSet
from companion.models import AutoregressiveVAE, build
from companion.models.autoregressive import made_masks
from companion.evaluation.likelihood import log_weights
from companion.losses import bernoulli_nll
from companion.training import evaluate, fit


def images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 28, 28, generator=g) < 0.3).float()


def test_masks_connect_each_output_to_earlier_pixels_only():
    earlier = torch.ones(784, 784).tril(-1).bool()          # logit i may see pixel d when d < i
    into_hidden, into_output, direct = made_masks(hidden=783)   # one unit per degree 1..783
    assert torch.equal(into_output @ into_hidden > 0, earlier) and torch.equal(direct > 0, earlier)
    into_hidden, into_output, _ = made_masks(hidden=64)
    paths = into_output @ into_hidden                       # [784 outputs, 784 pixels]
    assert not (paths.triu() > 0).any() and (paths > 0).sum() > 784 * 783 // 4


@pytest.mark.parametrize("layers", [1, 2])
def test_logit_i_does_not_depend_on_pixel_i_or_later(layers):
    torch.manual_seed(0)
    model = AutoregressiveVAE(latent_dim=4, hidden=64, layers=layers)
    x = images(1).flatten(1).requires_grad_(True)           # [1, 784]
    z = torch.randn(1, 4, requires_grad=True)
    logits = model.decode(z, x).flatten(1)[0]               # [784]
    jacobian = torch.stack([torch.autograd.grad(logits[i], (x, z), retain_graph=True)[0][0]
                            for i in range(784)])           # [784 outputs, 784 pixels]
    assert jacobian.triu().abs().max() == 0                 # nothing from pixel i or later
    assert (jacobian.tril(-1) != 0).sum() > 1000            # but it does use earlier pixels
    assert torch.autograd.grad(logits.sum(), z)[0].abs().sum() > 0   # and z


def test_decode_without_the_image_says_what_to_do():
    with pytest.raises(ValueError, match=r"decode\(z, x\) needs the image x.*model.sample"):
        AutoregressiveVAE(latent_dim=3, hidden=16).decode(torch.randn(2, 3))


def test_each_drawn_pixel_is_a_coin_flip_with_the_probability_the_scorer_gives_it():
    torch.manual_seed(0)
    model = AutoregressiveVAE(latent_dim=3, hidden=32)
    z = torch.randn(5, 3)
    x = model.generate(z, torch.Generator().manual_seed(7))
    coins = torch.rand(5, 784, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        p = torch.sigmoid(model.decode(z, x)).flatten(1)    # one teacher-forced pass
    assert x.shape == (5, 1, 28, 28) and torch.equal(x.flatten(1), (coins < p).float())
    assert model.sample(2).shape == (2, 1, 28, 28)


def test_reconstruct_draws_from_the_posterior_mean_and_repeats_with_a_seed():
    torch.manual_seed(0)
    model = AutoregressiveVAE(latent_dim=3, hidden=32)
    x = images(4)
    a = model.reconstruct(x, torch.Generator().manual_seed(1))
    b = model.generate(model.code(x), torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}


def test_round_trip_through_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = AutoregressiveVAE(latent_dim=3, hidden=32).eval()
    path = checkpoints.save(model, tmp_path / "ar.pt")
    loaded, meta = checkpoints.load(path, device="cpu")
    assert meta["model"] == {"model": "AutoregressiveVAE", "latent_dim": 3, "hidden": 32,
                             "layers": 1}
    assert not any(k.endswith("mask") for k in torch.load(path, weights_only=True)["state_dict"])
    z, x = torch.randn(2, 3), images(2)
    assert torch.equal(loaded.decode(z, x), model.decode(z, x))
    assert torch.equal(build(model.describe()).pixels_in.mask, model.pixels_in.mask)


def test_fit_trains_it_and_evaluate_reports_its_negative_elbo():
    data = ImageSet(images(256), torch.zeros(256, dtype=torch.long), tuple("0123456789"), "bin")
    torch.manual_seed(0)
    model = AutoregressiveVAE(latent_dim=3, hidden=64)
    history = fit(model, data, epochs=4, batch_size=32, test_data=data, progress=False)
    assert history.test_loss[-1] < history.test_loss[0] - 20   # 543 nats untrained, 479 ideal
    test = evaluate(model, data)
    assert test.total == pytest.approx(test.reconstruction + test.kl, rel=1e-6)


def test_importance_weighting_scores_each_image_with_its_own_pixels():
    torch.manual_seed(0)
    model = AutoregressiveVAE(latent_dim=3, hidden=32).eval()
    x = images(6)
    log_w = log_weights(model, x, 2, generator=torch.Generator().manual_seed(1))   # [2, 6]
    mu, logvar = model.encode(x)
    eps = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(1))
    for k in range(2):   # the same draws, scored by hand: log p(x|z) + log p(z) - log q(z|x)
        z = mu + (0.5 * logvar).exp() * eps[k]
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        want = (-bernoulli_nll(model.decode(z, x), x)
                + torch.distributions.Normal(0, 1).log_prob(z).sum(1) - q.log_prob(z).sum(1))
        assert torch.allclose(log_w[k], want.detach(), atol=1e-3)
    with pytest.raises(ValueError, match="proposal='encoder'"):
        log_weights(model, x, 5, proposal="prior")


@pytest.mark.parametrize("hidden, largest", [(500, 782), (783, 783), (1000, 783)])
def test_hidden_degrees_start_at_1_and_never_pass_783(hidden, largest):
    """A hidden unit of degree 784 would feed no logit: degrees stay in 1..783."""
    into_hidden, into_output, _ = made_masks(hidden)
    degrees = into_hidden.sum(1)                           # unit k sees pixels 1..m_k
    assert degrees.min() == 1 and degrees.max() == largest
    assert (into_output.sum(0) == 784 - degrees).all()     # and feeds logits m_k + 1 .. 784
