"""M2, the semi-supervised VAE: its loss written out by hand, label by label."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from companion.data import ImageSet
from companion.gaussians import kl_divergence
from companion.losses import Objective, bernoulli_nll
from companion.models import UNLABELLED, ConditionalVAE, SemiSupervisedVAE, paper_alpha
from companion.training import fit

SIZE = dict(latent_dim=3, hidden=16)
ALPHA, BETA = 2.5, 1.5


def _model() -> SemiSupervisedVAE:
    torch.manual_seed(0)
    return SemiSupervisedVAE(**SIZE, alpha=ALPHA)


def _images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).round()


def _neg_elbo(model, x, label: int, eps):
    """-log p(x|z, y) + BETA * KL of each image under one label, z = mu + sigma * eps, [N]."""
    y = torch.full((len(x),), label)
    mu, logvar = model.encode(x, y)
    z = mu + torch.exp(0.5 * logvar) * eps
    return bernoulli_nll(model.decode(z, y), x) + BETA * kl_divergence(mu, logvar)


def test_a_labelled_batch_costs_the_conditional_elbo_plus_alpha_times_the_cross_entropy():
    model, x, y = _model(), _images(6), torch.tensor([0, 3, 9, 3, 1, 7])
    twin = ConditionalVAE(**SIZE)
    twin.load_state_dict({k: v for k, v in model.state_dict().items()
                          if not k.startswith("classifier.")})
    objective = Objective(beta=BETA)
    torch.manual_seed(5)
    parts = model.loss(x, y, objective)
    torch.manual_seed(5)                                    # the same eps for z
    elbo = twin.loss(x, y, objective)
    ce = F.cross_entropy(model.classify(x), y)
    torch.testing.assert_close(parts.total, elbo.total + ALPHA * ce)
    torch.testing.assert_close(parts.reconstruction, elbo.reconstruction)
    torch.testing.assert_close(parts.kl, elbo.kl)


def test_an_unlabelled_batch_sums_the_elbo_over_every_label_minus_the_entropy():
    model, x = _model(), _images(5)
    torch.manual_seed(5)
    parts = model.loss(x, torch.full((5,), UNLABELLED), Objective(beta=BETA))
    torch.manual_seed(5)
    eps = torch.randn(5, 3)                                 # one eps per image, every label
    q = F.softmax(model.classify(x), dim=1)
    expected = torch.zeros(5)
    for label in range(10):
        expected += q[:, label] * _neg_elbo(model, x, label, eps)
    expected -= -(q * q.log()).sum(1)                       # minus the entropy H(q(y|x))
    torch.testing.assert_close(parts.total, expected.mean())


def test_a_mixed_batch_weighs_its_labelled_and_unlabelled_parts_by_their_counts():
    model, x = _model(), _images(7)
    y = torch.tensor([4, UNLABELLED, 0, UNLABELLED, UNLABELLED, 9, UNLABELLED])
    labelled = y != UNLABELLED
    torch.manual_seed(5)
    parts = model.loss(x, y)
    torch.manual_seed(5)
    eps = torch.randn(7, 3)                                 # what loss draws
    known = model.per_image_loss(x[labelled], y[labelled], eps[labelled])
    unknown = model.per_image_loss(x[~labelled], y[~labelled], eps[~labelled])
    for whole, a, b in zip(parts, known, unknown):
        torch.testing.assert_close(whole, (a.sum() + b.sum()) / 7)


@pytest.mark.parametrize("labels", [[0, 10], [-2, 3], [1.0, 2.0]])
def test_a_label_outside_minus_one_to_nine_is_refused_clearly(labels):
    with pytest.raises(ValueError, match=r"one label per image.*0\.\.9, or -1 for an unlabelled"):
        _model().loss(_images(2), torch.tensor(labels))


def test_settings_without_a_term_are_refused_and_alpha_is_checked():
    with pytest.raises(ValueError, match="cannot honour free_bits=0.5"):
        _model().loss(_images(2), torch.tensor([1, UNLABELLED]), Objective(free_bits=0.5))
    with pytest.raises(ValueError, match=r"alpha=-1\.0\): alpha takes a finite number >= 0"):
        SemiSupervisedVAE(alpha=-1.0)
    assert paper_alpha(50_000, 100) == 50.0 == SemiSupervisedVAE().alpha


def test_fit_on_a_few_labels_lowers_the_loss():
    x = _images(64, seed=2)
    y = torch.full((64,), UNLABELLED)
    y[:8] = torch.arange(8)
    data = ImageSet(x, y, tuple(str(c) for c in range(10)), "random/ssl")
    model = _model()
    history = fit(model, data, epochs=4, batch_size=16, progress=False)
    assert history.loss[-1] < history.loss[0]
    assert model.classify(x).shape == (64, 10)
