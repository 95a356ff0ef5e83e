"""What every model of the course shares: the registry, the recorded config, one contract.

Every model (`Model`):
    loss(x, y, objective)  its training loss on a batch: `LossParts` (total, reconstruction, kl)
    check_objective(obj)   refuses the `Objective` settings its loss has no term for
    likelihood             the distribution of what it predicts ("bernoulli" pixels, ...)
    describe()             {"model": class name, **the arguments it was built with}; build()
                           inverts it

Every model with a code (`LatentModel`: autoencoders, VAEs, the VQ-VAE) also has
    encode(x)       the code: z for an autoencoder, (mu, logvar) of q(z|x) for a VAE
    code(x)         the deterministic code of either kind: z, or the posterior mean mu
    decode(z)       logits [N, 1, 28, 28]; torch.sigmoid(logits) is the mean image
    nll(x, z)       -log p(x|z) of each image given its code, [N]
    reconstruct(x)  pixel means decoded from code(x)
    is_vae          True for a VAE, False for a plain autoencoder
and the generative ones `sample(n, generator)`: n images drawn from the model.

The trainer (`companion.training.fit`) only calls `check_objective` and `loss`: each model
owns its objective and refuses the settings it cannot honour, so nothing is silently dropped.

Decoders return logits because the Bernoulli log-likelihood is computed from logits directly,
which is numerically safer than the log of a sigmoid (no +1e-10 needed).

Every subclass with an ``__init__`` registers itself in MODELS under its class name, and the
arguments of its ``__init__`` are recorded as it is built (tuples as lists, so a JSON round
trip gives back the same description).

Reference: Kingma & Welling 2013 (arXiv:1312.6114) for the VAE.
"""
from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from companion.gaussians import draw_eps
from companion.losses import RECONSTRUCTION, LossParts, Objective, elbo

IMAGE_SHAPE = (1, 28, 28)  # channels, height, width

MODELS: dict[str, type] = {}  # every model class of the course, by name (for checkpoints)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with model in eval mode, then give every layer back the mode it had.

    Dropout is off and BatchNorm uses its running statistics inside the block. The modes are
    restored layer by layer, also when the block raises.
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


def check_images(model: nn.Module, x: torch.Tensor) -> None:
    """Raise a ValueError that says what is expected when x is not a batch of 28x28 images."""
    if x.ndim == 2 and x.shape[1] == 784 or x.ndim == 4 and tuple(x.shape[1:]) == IMAGE_SHAPE:
        return
    raise ValueError(
        f"{type(model).__name__} expects a batch of images shaped [N, 1, 28, 28] or [N, 784], "
        f"got {list(x.shape)}. A single image needs a batch dimension: x.unsqueeze(0).")


def _plain(value):
    """Tuples as lists, all the way down: what a JSON round trip gives back."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _recording(init):
    """init, wrapped so that building a model records the arguments it got in .config."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if type(self).__init__ is __init__:   # the outermost __init__ records, not super()'s
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            self.config = {name: _plain(value)
                           for name, value in list(bound.arguments.items())[1:]}
    __init__.records_config = True
    return __init__


NO_PRIOR = ("beta", "free_bits", "tc_weight", "warmup_epochs")   # settings of a KL term


class Model(nn.Module):
    """Base of every course model: registry, recorded config and the loss contract."""
    is_vae = False
    likelihood: str = "bernoulli"
    refuses: tuple[str, ...] = NO_PRIOR   # the Objective settings its loss has no term for
    config: dict

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _recording(cls.__dict__["__init__"])
        if getattr(cls.__init__, "records_config", False) and not cls.__name__.startswith("_"):
            MODELS[cls.__name__] = cls   # buildable classes only, not the interfaces

    def describe(self) -> dict:
        """The class name and the arguments this model was built with (see `build`)."""
        return {"model": type(self).__name__, **self.config}

    def check_objective(self, objective: Objective) -> None:
        """A clear ValueError when the objective asks for a term this model's loss lacks."""
        objective.refuse(type(self).__name__, self.refuses)

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None,
             objective: Objective = Objective()) -> LossParts:
        """The training loss on images x (with labels y), in float32, batch means."""
        raise NotImplementedError


class LatentModel(Model):
    """A model that codes images and decodes codes. Used directly, a plain autoencoder:
    encode(x) is the code z, the loss is -log p(x|z) alone (no prior, so no beta)."""
    latent_dim: int

    def encode(self, x: torch.Tensor):
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic code of each image, [N, L]."""
        return self.encode(x)

    def nll(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """-log p(x|z) of each image x given its code z under the model's likelihood, [N]."""
        logits = self.decode(z).float()
        return RECONSTRUCTION[self.likelihood](logits, x.view_as(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def loss(self, x, y=None, objective=Objective()):
        self.check_objective(objective)
        recon = self.nll(x, self.encode(x)).mean()
        return LossParts(recon, recon, torch.zeros((), device=x.device))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel means decoded from the code of x, computed in eval mode."""
        with eval_mode(self):
            return torch.sigmoid(self.decode(self.code(x)))


class GaussianHead(nn.Module):
    """Two linear heads on the same features: (mu, logvar) of q(z|x) = N(mu, diag(exp(logvar)))."""

    def __init__(self, features: int, latent_dim: int):
        super().__init__()
        self.mu = nn.Linear(features, latent_dim)
        self.logvar = nn.Linear(features, latent_dim)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(h), self.logvar(h)


class VAE(LatentModel):
    """What every VAE of the course provides. Subclasses define `encode` and `decode`.

    encode(x) -> (mu, logvar)   parameters of q(z|x) = N(mu, diag(exp(logvar)))
    decode(z) -> logits         parameters of p(x|z), e.g. one Bernoulli logit per pixel
    loss                        the negative beta-ELBO of `losses.elbo`: every Objective setting
    """
    is_vae = True
    refuses = ()   # its loss has a KL term: every Objective setting applies

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior mean mu of each image, [N, L]."""
        return self.encode(x)[0]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with a fresh eps for every example and every dimension."""
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def loss(self, x, y=None, objective=Objective()):
        mu, logvar = (t.float() for t in self.encode(x))
        z = self.reparameterize(mu, logvar)
        return elbo(self.nll(x, z), z, mu, logvar, objective)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (pixel means) decoded from z ~ N(0, I), computed in eval mode."""
        z = draw_eps((n, self.latent_dim), next(self.parameters()), generator)
        with eval_mode(self):
            return torch.sigmoid(self.decode(z))


def build(description: dict) -> Model:
    """Rebuild a model from its `describe()` dictionary (used by checkpoints)."""
    kwargs = dict(description)
    name = kwargs.pop("model")
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
