"""Model shapes, the shared interface, the registry, eval_mode, clear errors for wrong shapes."""
import json
import re
import subprocess
import sys

import pytest
import torch
from torch import nn

from companion import checkpoints
from companion.losses import LossParts, Objective
from companion.models import (MLPVAE, MODELS, VAE, Autoencoder, BADConvVAE, ConvVAE, LatentModel,
                              Model, build, eval_mode)


class _Noisy(LatentModel):
    """A model with Dropout and BatchNorm, whose outputs depend on the train/eval mode."""

    def __init__(self):
        super().__init__()
        self.latent_dim = 4
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, 4), nn.BatchNorm1d(4),
                                     nn.Dropout(0.5))
        self.decoder = nn.Linear(4, 784)

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z).view(-1, 1, 28, 28)


def test_eval_mode_switches_off_dropout_and_batch_statistics_then_restores_the_mode():
    model, x = _Noisy(), torch.rand(8, 1, 28, 28)
    model.train()
    model.encoder[2].eval()            # a caller's mixed modes come back layer by layer
    stats = model.encoder[2].running_mean.clone()
    with eval_mode(model) as same:
        assert same is model and not any(m.training for m in model.modules())
        a, b = model.code(x), model.code(x)
    assert torch.equal(a, b)           # Dropout off: the same code twice
    assert torch.equal(model.encoder[2].running_mean, stats)
    assert model.training and model.encoder[1].training and not model.encoder[2].training
    with pytest.raises(RuntimeError, match="inside"):
        with eval_mode(model):
            raise RuntimeError("inside")
    assert model.training and not model.encoder[2].training


@pytest.mark.parametrize("model, latent", [(Autoencoder(2, 400), 2), (Autoencoder(2, 100), 2),
                                           (MLPVAE(20), 20), (MLPVAE(2), 2)])
def test_shapes_through_encoder_and_decoder(model, latent):
    x = torch.rand(5, 1, 28, 28)
    code = model.encode(x)
    if model.is_vae:
        mu, logvar = code
        assert mu.shape == logvar.shape == (5, latent)
        assert torch.equal(model.code(x), mu)
        logits, mu, logvar = model(x)
        assert model.sample(3).shape == (3, 1, 28, 28)
    else:
        assert code.shape == (5, latent) and torch.equal(model.code(x), code)
        logits = model(x)
    assert logits.shape == (5, 1, 28, 28)
    assert torch.equal(model.code(x.flatten(1)), model.code(x))   # flat [N, 784] input works too
    rec = model.reconstruct(x)
    assert torch.equal(rec, torch.sigmoid(model.decode(model.code(x))))


def test_layer_sizes_match_the_sources():
    ae = Autoencoder(latent_dim=2, hidden=100)
    sizes = [(m.in_features, m.out_features) for m in ae.modules() if isinstance(m, nn.Linear)]
    assert sizes == [(784, 100), (100, 2), (2, 100), (100, 784)]
    vae = MLPVAE(latent_dim=20)
    sizes = [(m.in_features, m.out_features) for m in vae.modules() if isinstance(m, nn.Linear)]
    assert sizes == [(784, 400), (400, 20), (400, 20), (20, 400), (400, 784)]


@pytest.mark.parametrize("shape", [(1, 28, 28), (4, 3, 28, 28), (4, 1, 32, 32), (4, 783)])
def test_wrong_input_shape_says_what_is_expected(shape):
    with pytest.raises(ValueError, match=r"expects a batch of images shaped \[N, 1, 28, 28\]"):
        MLPVAE(2).encode(torch.rand(*shape))
    with pytest.raises(ValueError, match="Autoencoder expects"):
        Autoencoder(2)(torch.rand(*shape))


def test_reparameterize_draws_fresh_noise_per_example():
    torch.manual_seed(0)
    mu = torch.full((20_000, 2), 3.0, requires_grad=True)
    logvar = torch.full((20_000, 2), 2 * torch.log(torch.tensor(0.5)).item(), requires_grad=True)
    z = VAE.reparameterize(mu, logvar)
    assert abs(z.mean().item() - 3.0) < 0.02 and abs(z.std().item() - 0.5) < 0.02
    assert z[:, 0].std() > 0.4  # not one eps shared by the whole batch
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None


def test_build_rebuilds_from_description():
    model = MLPVAE(latent_dim=7, hidden=64)
    again = build(model.describe())
    assert isinstance(again, MLPVAE) and again.describe() == model.describe()
    with pytest.raises(ValueError, match="Unknown model 'Transformer'"):
        build({"model": "Transformer"})


def test_is_vae_tells_the_two_kinds_apart():
    assert MLPVAE.is_vae and VAE.is_vae and not Autoencoder.is_vae and not Model.is_vae
    assert all(cls.is_vae == issubclass(cls, VAE) for cls in MODELS.values())


def test_importing_the_package_registers_every_architecture():
    code = ("import companion.models as m; "
            "print(' '.join(sorted(m.MODELS)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == sorted(["Autoencoder", "MLPVAE", "DeepMLPVAE", "SimpleConvVAE",
                                         "BatchNormConvVAE", "BADConvVAE", "ConvVAE",
                                         "AutoregressiveVAE", "ConditionalVAE",
                                         "DigitClassifier", "GaussianConvVAE", "VQVAE",
                                         "TCVAE", "PriorVAE", "IWAE", "FlowVAE",
                                         "HierarchicalVAE", "SemiSupervisedVAE"])


def test_config_records_the_arguments_given_and_the_defaults():
    assert MLPVAE(7).config == {"latent_dim": 7, "hidden": 400, "likelihood": "bernoulli"}
    assert ConvVAE(3, channels=(8, 16)).config == {"latent_dim": 3, "channels": [8, 16],
                                                   "likelihood": "bernoulli"}
    assert Autoencoder(2, likelihood="squared_error").describe() == {
        "model": "Autoencoder", "latent_dim": 2, "hidden": 400, "likelihood": "squared_error"}
    assert BADConvVAE(dropout=0.0).describe() == {"model": "BADConvVAE", "latent_dim": 2,
                                                  "dropout": 0.0, "upsample": False}


class Wider(MLPVAE):
    """A subclass without an __init__ of its own still records its arguments."""


def test_a_subclass_records_its_own_description():
    assert Wider(3, 32).describe() == {"model": "Wider", "latent_dim": 3, "hidden": 32,
                                       "likelihood": "bernoulli"}
    assert isinstance(build(Wider(3, 32).describe()), Wider)


EXAMPLES = {"Autoencoder": dict(latent_dim=3, hidden=16), "MLPVAE": dict(latent_dim=3, hidden=16),
            "DeepMLPVAE": dict(latent_dim=3, hidden=(16, 8), image_size=20),
            "TCVAE": dict(latent_dim=3, hidden=(16, 8), image_size=20, dataset_size=50),
            "PriorVAE": dict(latent_dim=3, hidden=16, prior="vamp", components=4),
            "IWAE": dict(latent_dim=3, hidden=16, samples=3),
            "FlowVAE": dict(latent_dim=3, hidden=16, flows=2),
            "HierarchicalVAE": dict(latent_dims=(3, 2), hidden=(16, 8)),
            "SimpleConvVAE": dict(latent_dim=3), "BatchNormConvVAE": dict(latent_dim=3, width=4),
            "BADConvVAE": dict(latent_dim=3, dropout=0.25, upsample=True),
            "ConvVAE": dict(latent_dim=3, channels=(4, 8)),
            "AutoregressiveVAE": dict(latent_dim=3, hidden=16),
            "ConditionalVAE": dict(latent_dim=3, hidden=16),
            "SemiSupervisedVAE": dict(latent_dim=3, hidden=16, alpha=2.0),
            "DigitClassifier": dict(channels=(4, 8), features=8),
            "GaussianConvVAE": dict(latent_dim=3, channels=(4, 8)),
            "VQVAE": dict(codes=8, code_dim=4, channels=(4, 8))}


def _inputs(name: str) -> tuple[torch.Tensor, ...]:
    """A batch of two images for model `name` (and their labels, for a conditional model)."""
    size = EXAMPLES[name].get("image_size", 28)
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(1)).round()
    conditional = issubclass(MODELS[name], MODELS["ConditionalVAE"])
    return (x, torch.tensor([3, 7])) if conditional else (x,)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_registered_model_round_trips_through_save_and_load(name, tmp_path):
    torch.manual_seed(0)
    model = MODELS[name](**EXAMPLES[name]).eval()
    path = checkpoints.save(model, tmp_path / f"{name}.pt")
    loaded, _ = checkpoints.load(path, device="cpu")
    assert type(loaded) is type(model) and loaded.describe() == model.describe()
    outputs = []
    for m in (model, loaded):
        torch.manual_seed(2)   # the same noise for a VAE's z
        out = m(*_inputs(name))
        outputs.append(out if isinstance(out, tuple) else (out,))
    assert all(torch.equal(a, b) for a, b in zip(*outputs))
    checkpoints.load(path, build(json.loads(json.dumps(model.describe()))), device="cpu")


def test_the_examples_cover_every_course_model():
    course = {name for name, cls in MODELS.items() if cls.__module__.startswith("companion.")}
    assert course == set(EXAMPLES)


def test_deep_mlp_vae_takes_any_square_size_and_names_the_one_it_needs():
    from companion.models.mlp import DeepMLPVAE
    model = DeepMLPVAE(latent_dim=6, hidden=(64, 32, 16), image_size=32)
    logits, mu, logvar = model(torch.rand(5, 1, 32, 32))
    assert logits.shape == (5, 1, 32, 32) and mu.shape == logvar.shape == (5, 6)
    assert [m.out_features for m in model.body.modules() if isinstance(m, nn.Linear)] == [64, 32, 16]
    assert model.code(torch.rand(5, 1024)).shape == (5, 6)
    twin = build(json.loads(json.dumps(model.describe())))
    assert twin.describe() == model.describe() == {"model": "DeepMLPVAE", "latent_dim": 6,
                                                   "hidden": [64, 32, 16], "image_size": 32}
    with pytest.raises(ValueError, match=r"image_size=28"):
        model.encode(torch.rand(5, 1, 28, 28))


# -- the loss contract: every model owns its loss and refuses what it cannot honour ----------

SETTINGS = {"beta": 2.0, "free_bits": 0.5, "tc_weight": 1.0, "warmup_epochs": 1.0}
REFUSES_EVERY_SETTING = {"Autoencoder", "VQVAE", "DigitClassifier"}   # no KL term to weigh
NEEDS_LABELS = {"ConditionalVAE", "SemiSupervisedVAE", "DigitClassifier"}
BEYOND_THE_ELBO = {"SemiSupervisedVAE"}   # total adds a term that beta does not weigh


def _batch(name: str, n: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    size = EXAMPLES[name].get("image_size", 28)
    x = torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1)).round()
    return x, torch.arange(n) % 10


def test_the_refusal_lists_cover_only_course_models():
    assert REFUSES_EVERY_SETTING | NEEDS_LABELS | BEYOND_THE_ELBO <= set(EXAMPLES)
    honours = {name for name in EXAMPLES if issubclass(MODELS[name], VAE)}
    assert honours == set(EXAMPLES) - REFUSES_EVERY_SETTING


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_models_loss_is_finite_loss_parts_of_scalars(name):
    torch.manual_seed(0)
    model = MODELS[name](**EXAMPLES[name]).train()
    x, y = _batch(name)
    parts = model.loss(x, y)
    assert isinstance(parts, LossParts)
    assert all(p.shape == () and p.dtype == torch.float32 and torch.isfinite(p) for p in parts)
    assert parts.total.requires_grad
    parts.total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    if name not in NEEDS_LABELS:                        # labels are optional, and ignored
        torch.manual_seed(3)
        without = model.loss(x)
        torch.manual_seed(3)
        assert torch.equal(torch.stack(without).detach(), torch.stack(model.loss(x, y)).detach())


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_model_honours_each_setting_or_refuses_it_by_name(name, setting):
    torch.manual_seed(0)
    model = MODELS[name](**EXAMPLES[name]).train()
    x, y = _batch(name)
    objective = Objective(**{setting: SETTINGS[setting]})
    if name in REFUSES_EVERY_SETTING or setting in MODELS[name].refuses:
        with pytest.raises(ValueError, match=rf"^{name} cannot honour (.*, )?{setting}=[0-9.]+\b"
                                             r".*plain Objective\(\)"):
            model.loss(x, y, objective)
        return
    torch.manual_seed(4)
    parts = model.loss(x, y, objective)
    assert all(torch.isfinite(p) for p in parts)
    if setting == "beta":                               # the weight reaches the total
        beyond = torch.zeros(())
        if name in BEYOND_THE_ELBO:                     # the same noise, with beta = 1
            torch.manual_seed(4)
            plain = model.loss(x, y)
            beyond = plain.total - plain.reconstruction - plain.kl
        assert torch.isclose(parts.total, parts.reconstruction + 2.0 * parts.kl + beyond)


@pytest.mark.parametrize("name", sorted(NEEDS_LABELS))
def test_models_that_learn_from_labels_refuse_a_batch_without_them(name):
    model = MODELS[name](**EXAMPLES[name])
    x, _ = _batch(name)
    with pytest.raises(ValueError,
                       match=rf"^{name} learns from labels: pass each batch's labels y"):
        model.loss(x)


SIZES = {"Autoencoder": "latent_dim", "MLPVAE": "hidden", "DeepMLPVAE": "image_size",
         "SimpleConvVAE": "latent_dim", "BatchNormConvVAE": "width", "BADConvVAE": "latent_dim",
         "ConvVAE": "channels", "AutoregressiveVAE": "hidden", "ConditionalVAE": "num_classes",
         "SemiSupervisedVAE": "hidden",
         "DigitClassifier": "features", "GaussianConvVAE": "latent_dim", "VQVAE": "codes",
         "TCVAE": "dataset_size", "PriorVAE": "components", "IWAE": "samples",
         "FlowVAE": "hidden", "HierarchicalVAE": "hidden"}   # FlowVAE's flows may be 0


@pytest.mark.parametrize("name", sorted(EXAMPLES))
@pytest.mark.parametrize("bad", [0, -2, 2.5, "4"])
def test_every_model_refuses_a_size_that_is_not_a_whole_number(name, bad):
    size = SIZES[name]
    value = [4, bad] if size == "channels" else bad
    with pytest.raises(ValueError, match=re.escape(f"{name}({size}={value!r}): {size} takes a ") +
                       r"(list of )?whole numbers? >= 1"):
        MODELS[name](**{**EXAMPLES[name], size: value})
    if "latent_dim" in EXAMPLES[name]:
        with pytest.raises(ValueError, match=r"\(latent_dim=0\).*whole number >= 1"):
            MODELS[name](**{**EXAMPLES[name], "latent_dim": 0})


@pytest.mark.parametrize("name", ["Autoencoder", "MLPVAE", "ConvVAE", "VQVAE"])
def test_the_likelihood_is_part_of_the_models_config(name):
    model = MODELS[name](**EXAMPLES[name], likelihood="squared_error")
    assert model.likelihood == "squared_error" == model.describe()["likelihood"]
    assert build(model.describe()).likelihood == "squared_error"
    with pytest.raises(ValueError, match=r"likelihood must be one of \['bernoulli', "
                                         r"'squared_error', 'gaussian'\], not 'mse'"):
        MODELS[name](**EXAMPLES[name], likelihood="mse")


def test_each_model_states_its_likelihood():
    special = {"GaussianConvVAE": "gaussian", "DigitClassifier": "categorical"}
    for name in EXAMPLES:
        assert MODELS[name](**EXAMPLES[name]).likelihood == special.get(name, "bernoulli"), name
