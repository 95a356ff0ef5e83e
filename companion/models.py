"""The models of the course: MLP autoencoders and the VAE interface every VAE follows.

Every decoder returns *logits*: ``torch.sigmoid(logits)`` is the mean pixel intensity, and
the Bernoulli likelihood is computed from logits directly (numerically safer than taking the
log of a sigmoid, which is why seed 000 needed its +1e-10).

References: Kingma & Welling 2013 (arXiv:1312.6114) for the VAE; the MLP sizes follow
"10 Days of Grad", day 9 (784-400-L) and the 2018 ML journal-club notebook (784-100-2).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

IMAGE_SHAPE = (1, 28, 28)  # channels, height, width


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with ReLU between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def check_images(model: nn.Module, x: torch.Tensor) -> None:
    """Raise a ValueError that says what is expected when x is not a batch of 28x28 images."""
    if x.ndim == 2 and x.shape[1] == 784 or x.ndim == 4 and tuple(x.shape[1:]) == IMAGE_SHAPE:
        return
    raise ValueError(
        f"{type(model).__name__} expects a batch of images shaped [N, 1, 28, 28] or [N, 784], "
        f"got {list(x.shape)}. A single image needs a batch dimension: x.unsqueeze(0).")


MODELS: dict[str, type] = {}  # every model class of the course, by name (for checkpoints)


class ConfigMixin:
    """Models remember the keyword arguments they were built with (for checkpoints).

    Subclasses register themselves in MODELS, so `build` can rebuild any of them by name.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MODELS[cls.__name__] = cls

    def describe(self) -> dict:
        return {"model": type(self).__name__, **self.config}


class Autoencoder(ConfigMixin, nn.Module):
    """Plain autoencoder 784-hidden-L-hidden-784 (deterministic code z, no prior)."""

    def __init__(self, latent_dim: int = 2, hidden: int = 400):
        super().__init__()
        self.config = {"latent_dim": latent_dim, "hidden": hidden}
        self.latent_dim = latent_dim
        self.encoder = _mlp([784, hidden, latent_dim])   # 784 -> hidden -> L
        self.decoder = _mlp([latent_dim, hidden, 784])   # L -> hidden -> 784 logits

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        check_images(self, x)
        return self.encoder(x.flatten(1))                # [N, L]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *IMAGE_SHAPE)    # [N, 1, 28, 28] logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(x))


class VAE(ConfigMixin, nn.Module):
    """What every VAE of the course provides. Subclasses define `encode` and `decode`.

    encode(x) -> (mu, logvar)   parameters of q(z|x) = N(mu, diag(exp(logvar)))
    decode(z) -> logits         parameters of p(x|z), one Bernoulli logit per pixel
    """
    latent_dim: int

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with a fresh eps for every example and every dimension."""
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images (pixel means) decoded from z ~ N(0, I)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return torch.sigmoid(self.decode(z))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel means decoded from the posterior mean: the model's best reconstruction."""
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode(mu))


class MLPVAE(VAE):
    """VAE with one hidden layer each way: 784-hidden-(mu, logvar) and L-hidden-784."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400):
        super().__init__()
        self.config = {"latent_dim": latent_dim, "hidden": hidden}
        self.latent_dim = latent_dim
        self.body = nn.Sequential(nn.Linear(784, hidden), nn.ReLU())   # 784 -> hidden
        self.mu = nn.Linear(hidden, latent_dim)                        # hidden -> L
        self.logvar = nn.Linear(hidden, latent_dim)                    # hidden -> L
        self.decoder = _mlp([latent_dim, hidden, 784])                 # L -> hidden -> 784

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(self, x)
        h = self.body(x.flatten(1))
        return self.mu(h), self.logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).view(-1, *IMAGE_SHAPE)


def build(description: dict) -> nn.Module:
    """Rebuild a model from its `describe()` dictionary (used by checkpoints)."""
    kwargs = dict(description)
    name = kwargs.pop("model")
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable numbers in model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_outputs(model: nn.Module, run: Callable[[], object]) -> list[tuple[str, nn.Module, tuple]]:
    """(name, layer, output shape) of every leaf layer, in the order run() calls them."""
    rows, hooks = [], []
    for name, module in model.named_modules():
        if not list(module.children()):
            def hook(mod, inputs, out, name=name):
                out = out[0] if isinstance(out, tuple) else out
                rows.append((name or type(mod).__name__, mod, tuple(out.shape)))
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return rows


def summary(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Print and return the output shape of every leaf layer when model runs on x."""
    rows = [(name, shape) for name, _, shape in layer_outputs(model, lambda: model(x))]
    width = max(len(n) for n, _ in rows)
    for name, shape in rows:
        print(f"{name:<{width}}  {list(shape)}")
    print(f"{'parameters':<{width}}  {parameter_count(model):,}")
    return rows
