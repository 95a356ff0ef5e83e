"""The VQ-VAE: nearest-code assignment, the straight-through gradient, its loss, the usage
statistics, and training it with fit."""
import math

import pytest
import torch

from companion import checkpoints
from companion.data import ImageSet
from companion.losses import Objective, bernoulli_nll, vq_loss
from companion.models import VQVAE
from companion.models.vq import codebook_usage, nearest_code
from companion.training import fit

torch.manual_seed(0)
X = torch.rand(5, 1, 28, 28)


def test_nearest_code_picks_the_closest_codebook_row():
    z, codebook = torch.randn(500, 8), torch.randn(40, 8)
    assert torch.equal(nearest_code(z, codebook), torch.cdist(z, codebook).argmin(1))
    assert torch.equal(nearest_code(codebook[[3, 7, 7]], codebook), torch.tensor([3, 7, 7]))


def test_nearest_code_under_bfloat16_autocast_picks_the_float64_nearest_code():
    # codes 0.05 apart around a point of norm ~30: bfloat16 rounds |a|^2 ~ 900 to steps of 4
    g = torch.Generator().manual_seed(1)
    centre = 8 * torch.randn(1, 16, generator=g)
    codebook = centre + 0.05 * torch.randn(64, 16, generator=g)
    z = centre + 0.05 * torch.randn(500, 16, generator=g)
    want = torch.cdist(z.double(), codebook.double()).argmin(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(nearest_code(z, codebook), want)


def test_quantize_returns_the_chosen_rows_in_the_encoders_layout():
    model = VQVAE(codes=32, code_dim=4)
    z_e = model.encode(X)
    z_q, indices = model.quantize(z_e)
    assert z_e.shape == z_q.shape == (5, 4, 7, 7) and indices.shape == (5, 7, 7)
    assert torch.equal(z_q[2, :, 3, 5], model.codebook.weight[indices[2, 3, 5]])
    assert torch.equal(indices, model.code(X))
    assert torch.equal(indices[1].flatten(), nearest_code(z_e[1].flatten(1).T, model.codebook.weight))


def test_straight_through_uses_z_q_forward_and_copies_the_gradient_to_z_e():
    torch.manual_seed(0)
    model = VQVAE(codes=16, code_dim=4)
    logits, z_e, z_q = model(X)
    assert torch.allclose(logits, model.decode(model.code(X)), atol=1e-6)
    z_e.retain_grad()
    bernoulli_nll(logits, X).sum().backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0           # reaches the encoder
    decoder_input = (z_e + (z_q - z_e).detach()).detach().requires_grad_()
    bernoulli_nll(model.decoder(decoder_input), X).sum().backward()
    assert torch.allclose(z_e.grad, decoder_input.grad, atol=1e-6)   # copied unchanged


def test_without_straight_through_the_encoder_gets_nothing_from_the_reconstruction():
    model = VQVAE(codes=16, code_dim=4)
    z_q, _ = model.quantize(model.encode(X))
    bernoulli_nll(model.decoder(z_q), X).sum().backward()
    assert model.encoder[0].weight.grad is None


def test_vq_loss_terms_train_the_codebook_and_the_encoder_separately():
    z_e = torch.randn(5, 4, 7, 7, requires_grad=True)
    z_q = torch.randn(5, 4, 7, 7, requires_grad=True)
    logits = torch.randn(5, 1, 28, 28)
    parts = vq_loss(logits, X, z_e, z_q, commitment=0.25, codes=16)
    distance = (z_e - z_q).pow(2).flatten(1).sum(1).mean()
    assert torch.isclose(parts.reconstruction, bernoulli_nll(logits, X).mean())
    assert torch.isclose(parts.total, parts.reconstruction + 1.25 * distance)
    parts.total.backward()
    diff = (z_e - z_q).detach() * 2 / 5                       # d distance / d z_e
    assert torch.allclose(z_q.grad, -diff, atol=1e-6)             # codebook term only
    assert torch.allclose(z_e.grad, 0.25 * diff, atol=1e-6)       # commitment term only


def test_the_kl_part_of_the_vq_loss_is_log_k_per_position_and_has_no_gradient():
    z_e = torch.randn(5, 4, 7, 7, requires_grad=True)
    z_q = torch.randn(5, 4, 7, 7, requires_grad=True)
    logits = torch.randn(5, 1, 28, 28)
    parts = vq_loss(logits, X, z_e, z_q, codes=16)
    assert parts.kl.item() == pytest.approx(49 * math.log(16)) and not parts.kl.requires_grad
    assert parts.kl.shape == () and parts.kl.dtype == torch.float32
    assert vq_loss(logits, X, z_e, z_q).kl.item() == 0.0        # no codebook size given
    assert torch.equal(vq_loss(logits, X, z_e, z_q, codes=512).total, parts.total)  # not in total
    assert vq_loss(logits, X, z_e[:, :, :2, :3], z_q[:, :, :2, :3], codes=16).kl.item() == (
        pytest.approx(6 * math.log(16)))                        # one log K per code position
    squared = vq_loss(logits, X, z_e, z_q, likelihood="squared_error")
    assert torch.isclose(squared.reconstruction,
                         ((torch.sigmoid(logits) - X) ** 2).sum((1, 2, 3)).mean())


def test_codebook_usage_counts_perplexity_and_fraction_used():
    uniform = codebook_usage(torch.arange(64).repeat(3), 64)
    assert uniform.perplexity == pytest.approx(64) and uniform.used == 1.0
    single = codebook_usage(torch.full((7, 7), 5), 64)
    assert single.perplexity == pytest.approx(1.0) and single.used == 1 / 64
    half = codebook_usage(torch.tensor([0, 0, 1, 1]), 8)
    assert half.perplexity == pytest.approx(2.0) and half.counts.tolist() == [2, 2] + [0] * 6
    assert codebook_usage(torch.tensor([0, 0, 0, 1]), 2).perplexity == pytest.approx(
        math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25))))


def test_uniform_samples_and_reconstructions_are_images():
    model = VQVAE(codes=16, code_dim=4).train()
    images = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    assert model.reconstruct(X).shape == X.shape and model.training


def test_fit_trains_a_vq_vae_and_the_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    data = ImageSet((torch.rand(128, 1, 28, 28) > 0.7).float(), torch.zeros(128, dtype=torch.long),
                    ("x",), "noise/train")
    model = VQVAE(codes=16, code_dim=4, channels=(4, 8), commitment=0.5)
    history = fit(model, data, epochs=2, lr=3e-3, batch_size=32, progress=False)
    assert history.loss[-1] < history.loss[0]
    assert history.kl == pytest.approx([49 * math.log(16)] * 2)     # log K per position
    x = data.images[:8]
    logits, z_e, z_q = model(x)
    expected = vq_loss(logits, x, z_e, z_q, commitment=0.5, codes=16)
    assert torch.allclose(torch.stack(model.loss(x)), torch.stack(expected))
    for setting in ("beta=2", "free_bits=0.5", "tc_weight=1", "warmup_epochs=1"):
        name, value = setting.split("=")
        with pytest.raises(ValueError, match=rf"VQVAE cannot honour {name}="):
            model.loss(x, objective=Objective(**{name: float(value)}))
        with pytest.raises(ValueError, match=rf"VQVAE cannot honour (.*, )?{name}="):
            fit(model, data, epochs=1, objective=Objective(**{name: float(value)}),
                progress=False)
    path = checkpoints.save(model, tmp_path / "vq.pt", history)
    loaded, _ = checkpoints.load(path, device="cpu")
    assert isinstance(loaded, VQVAE) and torch.equal(loaded.code(x), model.code(x))


def test_data_init_takes_the_codes_from_the_first_training_batch_once():
    torch.manual_seed(0)
    model = VQVAE(codes=16, code_dim=4, init="data")
    model.eval()(X)                                               # eval: codes stay as built
    assert model.waiting_for_data and model.codebook.weight.abs().max() <= 1 / 16
    logits, z_e, z_q = model.train()(X)
    rows = z_e.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    assert not model.waiting_for_data
    assert all((rows == code).all(1).any() for code in model.codebook.weight)  # encoder outputs
    assert ((z_q - z_e).pow(2).sum(1) == 0).sum() >= 16           # those vectors are exact codes
    before = model.codebook.weight.clone()
    model(X)
    assert torch.equal(model.codebook.weight, before)              # only the first batch
    rebuilt = VQVAE(codes=16, code_dim=4, init="data")
    assert rebuilt._codes_pending
    rebuilt.load_state_dict(model.state_dict())
    assert not rebuilt.waiting_for_data and not rebuilt._codes_pending   # it keeps its codes
    waiting = VQVAE(codes=16, code_dim=4)
    waiting.load_state_dict(VQVAE(codes=16, code_dim=4, init="data").state_dict())
    assert waiting._codes_pending                                 # the flag follows the buffer


def test_once_its_codes_are_set_forward_never_reads_the_buffer():
    torch.manual_seed(0)
    model = VQVAE(codes=16, code_dim=4, init="data").train()
    model(X)                                                      # the codes come from X
    codes = model.codebook.weight.clone()
    # a meta tensor has no value: reading it (bool, item) would raise, so forward must not
    model._buffers["waiting_for_data"] = torch.tensor(True, device="meta")
    with pytest.raises(Exception):
        bool(model.waiting_for_data)
    model(X)
    model.loss(X).total.backward()
    assert torch.equal(model.codebook.weight, codes)              # and its True changed nothing


def test_a_trained_data_init_model_loads_from_a_checkpoint_with_its_codes(tmp_path):
    torch.manual_seed(0)
    data = ImageSet((torch.rand(64, 1, 28, 28) > 0.7).float(), torch.zeros(64, dtype=torch.long),
                    ("x",), "noise/train")
    model = VQVAE(codes=16, code_dim=4, channels=(4, 8), init="data")
    fit(model, data, epochs=1, batch_size=32, progress=False)
    assert not model._codes_pending and not model.waiting_for_data
    loaded, _ = checkpoints.load(checkpoints.save(model, tmp_path / "vq.pt"), device="cpu")
    assert not loaded._codes_pending
    loaded.train()(data.images[:32])
    assert torch.equal(loaded.codebook.weight, model.codebook.weight)   # not re-initialised


@pytest.mark.parametrize("kwargs, message", [({"init": "kmeans"}, "init must be one of")])
def test_vq_vae_refuses_an_unknown_init(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VQVAE(**kwargs)


def test_data_init_needs_enough_vectors_in_the_first_batch():
    model = VQVAE(codes=512, code_dim=4, init="data").train()
    with pytest.raises(ValueError, match="at least 11 images"):
        model(X)                                                   # 5 images: 245 vectors
