"""The conditional VAE: shapes, the label reaching encoder and decoder, its loss, training."""
import pytest
import torch
from conftest import random_images

from companion.checkpoints import load, save
from companion.data import ImageSet
from companion.losses import Objective, elbo_loss
from companion.models import ConditionalVAE
from companion.training import evaluate, fit


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def cvae():
    torch.manual_seed(0)
    return ConditionalVAE(latent_dim=3, hidden=32).eval()


def test_shapes(cvae):
    x, y = torch.rand(5, 1, 28, 28, generator=gen(1)), torch.arange(5)
    mu, logvar = cvae.encode(x, y)
    assert mu.shape == logvar.shape == (5, 3)
    logits, mu2, _ = cvae(x, y)
    assert logits.shape == (5, 1, 28, 28) and torch.equal(mu, mu2)
    assert cvae.decode(torch.zeros(4, 3), torch.arange(4)).shape == (4, 1, 28, 28)
    assert cvae.reconstruct(x.flatten(1), y).shape == (5, 1, 28, 28)
    images = cvae.sample(3, gen(2), labels=torch.tensor([0, 9, 9]))
    assert images.shape == (3, 1, 28, 28) and 0 <= images.min() and images.max() <= 1


def test_the_label_reaches_the_decoder(cvae):
    z = torch.randn(1, 3, generator=gen(3)).expand(10, 3)          # one z, ten labels
    images = torch.sigmoid(cvae.decode(z, torch.arange(10)))
    assert all(not torch.allclose(images[0], images[k]) for k in range(1, 10))
    # each row depends on its own z and label only: label 4 alone decodes to the same image
    # (up to float32 rounding: a batch of 1 and one of 10 take other matmul kernels)
    assert torch.allclose(images[4], torch.sigmoid(cvae.decode(z[:1], torch.tensor([4])))[0],
                          atol=1e-5)


def test_the_label_reaches_the_encoder(cvae):
    x = torch.rand(1, 1, 28, 28, generator=gen(4)).expand(2, 1, 28, 28)
    mu, _ = cvae.encode(x, torch.tensor([1, 7]))
    assert not torch.allclose(mu[0], mu[1])


def test_sample_repeats_with_a_seed(cvae):
    labels = torch.tensor([3, 1, 4])
    assert torch.equal(cvae.sample(3, gen(5), labels=labels), cvae.sample(3, gen(5), labels=labels))


def test_sample_without_labels_takes_the_classes_in_turn(cvae):
    drawn = cvae.sample(12, gen(6))
    assert torch.equal(drawn, cvae.sample(12, gen(6), labels=torch.arange(12) % 10))
    z = torch.randn(12, 3, generator=gen(6))                       # the same draws, decoded
    assert torch.allclose(drawn, torch.sigmoid(cvae.decode(z, torch.arange(12) % 10)))
    with pytest.raises(ValueError, match=r"sample\(n=4, labels=\.\.\.\) needs n labels, got 3"):
        cvae.sample(4, gen(6), labels=torch.tensor([1, 2, 3]))


def test_decode_without_a_label_says_what_it_needs(cvae):
    with pytest.raises(ValueError, match=r"decodes z given a label: decode\(z, y\)"):
        cvae.decode(torch.zeros(2, 3))


@pytest.mark.parametrize("bad", [torch.tensor([0, 10]), torch.tensor([-1, 2]),
                                 torch.tensor([0.0, 1.0]), torch.tensor([[0], [1]]),
                                 torch.tensor([0, 1, 2])])
def test_bad_labels_get_a_message_that_says_what_is_expected(cvae, bad):
    with pytest.raises(ValueError, match=r"an int64 tensor \[2\] of class indices 0..9"):
        cvae.decode(torch.zeros(2, 3), bad)


def test_its_loss_takes_the_labels_and_is_the_elbo(cvae):
    x, y = torch.rand(6, 1, 28, 28, generator=gen(6)), torch.arange(6)
    torch.manual_seed(7)
    parts = cvae.loss(x, y)
    torch.manual_seed(7)                      # the same eps for the sampled z
    logits, mu, logvar = cvae(x, y)
    assert torch.allclose(torch.stack(parts), torch.stack(elbo_loss(logits, x, mu, logvar)))
    torch.manual_seed(7)
    beta = cvae.loss(x, y, Objective(beta=3.0))
    assert torch.allclose(beta.total, parts.reconstruction + 3.0 * parts.kl)
    with pytest.raises(ValueError, match="learns from labels: pass each batch's labels y"):
        cvae.loss(x)


def test_fit_and_evaluate_train_a_cvae_on_labelled_batches_and_it_round_trips(tmp_path):
    data = random_images(256)
    data = ImageSet(data.images, torch.arange(256) % 10, data.classes, "random-labelled")
    torch.manual_seed(0)
    model = ConditionalVAE(latent_dim=2, hidden=32)
    before = evaluate(model, data).total
    history = fit(model, data, epochs=3, lr=3e-3, progress=False)
    assert history.loss[-1] < history.loss[0] and evaluate(model, data).total < before
    loaded, _ = load(save(model, tmp_path / "cvae.pt"), device="cpu")
    assert isinstance(loaded, ConditionalVAE)
    z, y = torch.zeros(2, 2), torch.tensor([0, 5])
    assert torch.equal(loaded.decode(z, y), model.decode(z, y))
