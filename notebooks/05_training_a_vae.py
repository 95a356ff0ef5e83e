# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Training and evaluating a VAE
#
# **By the end of this notebook you can train a VAE on MNIST, read its training curves, look
# inside its latent space, save and reload it, and measure how good it is as a density model,
# in nats, against a number from the literature.**
#
# ### Learning objectives
#
# 1. Write the sampling step, the loss and the training step of the MLP VAE 784-400-$L$
#    yourself, check them against `companion`, then train with the package and read the two
#    parts of the ELBO epoch by epoch.
# 2. Explore a 2-D latent space: the test set's codes, a walk over $[-3, 3]^2$, why a grid
#    over $[-8, 8]^2$ decodes nonsense at its edges, and why a straight walk must start and end
#    where the codes are.
# 3. Compare latent sizes 2, 20 and 128 by test ELBO, KL per dimension (active units) and
#    samples.
# 4. Save, reload and cache a trained model without losing its architecture.
# 5. Estimate $\log p(x)$ with importance weighting (IWAE), see that it is tighter than the
#    ELBO; then make an autoregressive decoder ignore $z$ (posterior collapse), see it in the
#    KL of each dimension and in the reconstructions, and measure two cures.
#
# **Prerequisites:** 01 (autoencoders, `fit`), 02 (the ELBO), 03 (the reparameterization
# trick), 04 (the KL term).
#
# **Time to run:** about 15 s in fast mode. In full mode about 9 minutes on a quiet 2-core CPU
# the first time, when twelve models train (the 50-epoch model of section 6 takes the largest
# share), and about 70 s afterwards, when they load from the
# cache (most of it the likelihood estimates of section 6, about 15 s your own training loop of
# section 1, which is not cached, and a few seconds the pixel-by-pixel drawing of section 7).

# %% [markdown]
# ## Setup · core

# %% tags=["nbval-ignore-output"]
import functools
import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import companion
from companion import checkpoints, settings
from companion.checks import training_a_vae as checks
from companion.data import binarize, load, source_of, train_val_split
from companion.evaluation.likelihood import binarized, importance_weighted
from companion.evaluation.seeds import Spread, compare
from companion.gaussians import kl_per_dimension
from companion.latent import encode_all, grid, nearest_distance
from companion.latent_arithmetic import class_means, lerp
from companion.losses import bernoulli_nll, kl_divergence
from companion.models import MLPVAE, AutoregressiveVAE
from companion.plots import plot_history, scatter_latent, show_images, show_pairs
from companion.losses import Objective
from companion.training import TrainingDiverged, evaluate, fit

companion.setup(seed=0, datasets=["mnist"])
device = settings.device()          # where load() puts the data; every model goes there too
assert source_of("mnist") != "not staged"

# %% [markdown]
# ## 1. Training on binarized MNIST · core
#
# The decoder models each pixel as a coin flip,
# $p(x_i \mid z) = \mathrm{Bernoulli}(\sigma(\text{logit}_i))$.
# MNIST pixels are grey levels, though, and a Bernoulli log-likelihood of a grey value is not a
# log-probability of anything. The standard fix (used by Burda et al. 2015 and most likelihood
# papers since) is **dynamic binarization**: every time an image enters a batch, each pixel
# becomes 1 with probability equal to its intensity. The model sees fresh coin flips each
# epoch, which also acts as data augmentation. The test set is binarized **once**, with a fixed
# seed, so every evaluation sees the same binary images.
#
# With binary data the loss is an honest number: the negative ELBO in nats per image, an upper
# bound on $-\log p(x)$. `fit(..., dynamic_binarization=True)` does the coin flips;
# `binarized(test, seed)` from `companion.evaluation.likelihood` makes the fixed test set.

# %% tags=["nbval-ignore-output"]
train = load("mnist", "train")
train = train.subset(settings.pick(len(train), 2_000))
test_gray = load("mnist", "test").subset(settings.pick(10_000, 1_000))
test = binarized(test_gray, seed=0)
print(f"pixel values in the binarized test set: {sorted(test.images.unique().tolist())}")
print(f"mean intensity: grey {test_gray.images.mean():.4f}, binarized {test.images.mean():.4f}")
assert abs(test.images.mean() - test_gray.images.mean()) < 0.01


# %% [markdown]
# The average intensity survives the coin flips, as it should: binarization keeps each
# pixel's mean and throws away nothing but the grey levels.
#
# ### Write the VAE yourself
#
# Before the package trains anything for you, build the whole VAE once in plain PyTorch, about
# fifty lines. The encoder and the decoder are given; you write the three pieces that make it
# a VAE: the sampling step `reparameterize`, the loss `negative_elbo` and one training step
# `train_step`. Afterwards you check that the package computes the same numbers, so every
# model below is one you could have written. (Each piece has a self-check; until you have
# written it, the cells after it use the course's answer, so the notebook always runs.)
#
# **The encoder** maps an image to the two parameters of
# $q(z\mid x) = \mathcal N\big(\mu, \mathrm{diag}(\sigma^2)\big)$: one hidden layer of 400 ReLU
# units, then two linear *heads* side by side, one for $\mu$ and one for $\log\sigma^2$. A head
# can output any real number; predicting the log-variance keeps $\sigma^2 = e^{\log\sigma^2}$
# positive without any constraint on the network.

# %%
class Encoder(nn.Module):
    """x [N, 1, 28, 28] -> (mu, logvar), each [N, L]: the parameters of q(z|x)."""

    def __init__(self, latent_dim: int, hidden: int = 400):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(784, hidden), nn.ReLU())   # 784 -> 400
        self.mu = nn.Linear(hidden, latent_dim)                        # 400 -> L
        self.logvar = nn.Linear(hidden, latent_dim)                    # 400 -> L

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x.flatten(1))                                    # [N, 784] -> [N, 400]
        return self.mu(h), self.logvar(h)


# %%
x = binarize(train.images[:128])                  # one batch, freshly coin-flipped
mu, logvar = Encoder(latent_dim=20).to(device)(x)
print(f"x {list(x.shape)} -> mu {list(mu.shape)}, logvar {list(logvar.shape)}")
assert mu.shape == logvar.shape == (128, 20)


# %% [markdown]
# **Sampling $z$** is the reparameterization trick of notebook 03:
# $z = \mu + \sigma \odot \varepsilon$ with $\sigma = e^{\frac12 \log\sigma^2}$ and a fresh
# $\varepsilon \sim \mathcal N(0, I)$ for every image and every dimension. The randomness sits
# in $\varepsilon$, so gradients flow through $\mu$ and $\sigma$ to the encoder.
#
# **Your turn (2 min).** Write `reparameterize(mu, logvar)` for `mu` and `logvar` of shape
# `[N, L]`, returning $z$ of the same shape, as in notebook 03 (from memory, if you can).

# %% tags=["solution"]
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2), one eps per example and dimension."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


# %%
reparameterize = checks.check_reparameterize(reparameterize)

# %% [markdown]
# Try it on a Gaussian you know: $\mu = 1$, $\sigma^2 = 4$.

# %% tags=["nbval-ignore-output"]
z = reparameterize(torch.ones(10_000, 1), torch.full((10_000, 1), math.log(4.0)))
print(f"mu = 1, sigma^2 = 4: sample mean {z.mean():.3f}, sample variance {z.var():.3f}")
assert abs(z.mean() - 1) < 0.1 and abs(z.var() - 4) < 0.3


# %% [markdown]
# **The decoder** maps $z$ back to 784 numbers, one per pixel. It returns **logits**, with no
# sigmoid at the end: the loss below takes logits directly, and $\sigma(\text{logit})$, the
# probability that the pixel is 1, is what you draw when you want a picture.

# %% tags=["nbval-ignore-output"]
def make_decoder(latent_dim: int, hidden: int = 400) -> nn.Sequential:
    """z [N, L] -> logits [N, 784], one Bernoulli logit per pixel (no sigmoid)."""
    return nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),     # L -> 400
                         nn.Linear(hidden, 784))                        # 400 -> 784


logits = make_decoder(latent_dim=20).to(device)(reparameterize(mu, logvar))
print(f"z [128, 20] -> logits {list(logits.shape)}, from {logits.min():.2f} to "
      f"{logits.max():.2f}")
assert logits.shape == (128, 784)


# %% [markdown]
# **The model** puts the three pieces together. Its `forward` returns everything the loss
# needs: the logits for the reconstruction term, $\mu$ and $\log\sigma^2$ for the KL term.

# %%
class VAE(nn.Module):
    """The MLP VAE 784-400-L, written out: encoder, reparameterize, decoder."""

    def __init__(self, latent_dim: int = 20, hidden: int = 400):
        super().__init__()
        self.encoder = Encoder(latent_dim, hidden)
        self.decoder = make_decoder(latent_dim, hidden)

    def forward(self, x: torch.Tensor):
        mu, logvar = self.encoder(x)                                   # [N, L] each
        return self.decoder(reparameterize(mu, logvar)), mu, logvar    # logits [N, 784]


# %% [markdown]
# **The loss** is the negative ELBO. For one image it is the reconstruction term
# $-\log p(x\mid z) = \sum_{i=1}^{784} \mathrm{BCE}(\text{logit}_i, x_i)$, **summed** over the
# pixels, plus the KL term in the closed form of notebook 04,
# $\tfrac12\sum_{j=1}^{L}\big(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\big)$, summed over the
# latent dimensions. Both terms are then **averaged** over the batch, so the loss does not grow
# with the batch size. `F.binary_cross_entropy_with_logits` computes the log of the sigmoid in
# a numerically stable way, so no `+ 1e-10` inside a log is needed. A mean over the pixels
# instead of a sum would divide the reconstruction term by 784 and so weigh the KL term 784
# times more: a β-VAE with β = 784, by accident.
#
# **Your turn (5 min).** Write `negative_elbo(logits, x, mu, logvar)` for logits of shape
# `[N, 784]`, a batch of images `x` of shape `[N, 1, 28, 28]` (flatten it to match the logits)
# and `mu`, `logvar` of shape `[N, L]`. Return the tuple `(loss, reconstruction, kl)`: the
# two terms, each averaged over the batch, and their sum, the loss to minimise. The check
# names the usual slips: a mean over pixels, a KL with a wrong sign, a wrong variance or a
# missing $\tfrac12$, and sums or means over the wrong dimension.

# %% tags=["solution"]
def negative_elbo(logits, x, mu, logvar):
    """(-ELBO, reconstruction, KL), each averaged over the batch, in nats per image."""
    reconstruction = F.binary_cross_entropy_with_logits(
        logits, x.flatten(1), reduction="none").sum(dim=1)            # [N], summed over pixels
    kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(dim=1)          # [N], summed over L
    return (reconstruction + kl).mean(), reconstruction.mean(), kl.mean()


# %%
negative_elbo = checks.check_negative_elbo(negative_elbo)

# %% [markdown]
# Before any training, every logit is close to 0, every pixel gets probability about
# $\tfrac12$, and the reconstruction term should be close to $784 \ln 2 \approx 543$ nats.

# %% tags=["nbval-ignore-output"]
loss, reconstruction, kl = negative_elbo(logits, x, mu, logvar)
print(f"untrained: -ELBO {loss:.1f} = reconstruction {reconstruction:.1f} + KL {kl:.2f} nats "
      f"(784 ln 2 = {784 * math.log(2):.1f})")
assert abs(reconstruction - 784 * math.log(2)) < 30 and kl >= 0
assert negative_elbo(logits, x, 0 * mu, 0 * logvar)[2] == 0       # no KL at the prior

# %% [markdown]
# **The training loop**: Adam with learning rate $10^{-3}$ and batches of 128. Each epoch visits
# the training images in a new random order, and every batch gets fresh coin flips from
# `binarize` (dynamic binarization). One step is always the same five moves: forward pass,
# loss, `zero_grad`, `backward`, `step`. The loop prints the average loss of each epoch, which
# must fall.

# %%
torch.manual_seed(0)
mine = VAE(latent_dim=20).to(device)
optimizer = torch.optim.Adam(mine.parameters(), lr=1e-3)
for name, weight in mine.state_dict().items():
    print(f"{name:<22} {list(weight.shape)}")
print(f"{sum(w.numel() for w in mine.parameters()):,} parameters")


# %% [markdown]
# **Your turn (3 min).** Write `train_step(model, optimizer, x)`: the five moves on one batch
# `x` of shape `[N, 1, 28, 28]`, with the loss from your `negative_elbo`. Return the batch's
# loss as a Python float (`loss.item()`), so the loop can add it up without keeping the graph.

# %% tags=["solution"]
def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> float:
    """One optimizer step on the batch x; returns its -ELBO (before the step) as a float."""
    logits, mu, logvar = model(x)                                     # forward pass
    loss = negative_elbo(logits, x, mu, logvar)[0]
    optimizer.zero_grad()                                             # forget the last step
    loss.backward()
    optimizer.step()
    return loss.item()


# %%
train_step = checks.check_train_step(train_step)

# %% [markdown]
# The loop itself is two lines around your step.

# %% tags=["nbval-ignore-output"]
epoch_losses = []
for epoch in range(settings.pick(3, 2)):
    total = 0.0
    for batch in torch.randperm(len(train), device=device).split(128):
        x = binarize(train.images[batch])                             # fresh coin flips
        total += train_step(mine, optimizer, x) * len(batch)
    epoch_losses.append(total / len(train))
    print(f"epoch {epoch + 1}: -ELBO {epoch_losses[-1]:.2f} nats per training image")
assert all(a > b for a, b in zip(epoch_losses, epoch_losses[1:]))

# %% [markdown]
# The loss falls fast in the first epoch, from the 543 nats of an untrained model to the
# first epoch's average printed above, then more slowly. (In fast mode, with 2 000 training
# images, it gets only part of the way.)
#
# **Same numbers as the package.** `companion.models.MLPVAE` is this network, and its
# `loss(x)` computes the loss of a batch exactly as `fit` does (every model of the package
# owns its loss; `fit` only asks for it). Copy your
# weights into an `MLPVAE` and compare the two losses on one batch. A `state_dict` maps
# parameter names to tensors: yours are called `encoder.body.0.weight`, `encoder.mu.weight`,
# ..., `decoder.0.weight`, the package's `body.0.weight`, `mu.weight`, ..., `decoder.0.weight`,
# so dropping the prefix `encoder.` makes the names match. Both models draw $\varepsilon$ with
# `randn_like`, so seeding the generator before each forward pass gives both the same
# $\varepsilon$.

# %% tags=["nbval-ignore-output"]
weights = {name.removeprefix("encoder."): w for name, w in mine.state_dict().items()}
package = MLPVAE(latent_dim=20, hidden=400).to(device)
package.load_state_dict(weights)          # strict: every name must match, none may be left over
x = test.images[:256]                     # one batch of the fixed binarized test set
torch.manual_seed(1)
logits, mu, logvar = mine(x)
ours = negative_elbo(logits, x, mu, logvar)
torch.manual_seed(1)                      # the same eps again, now for the package's model
theirs = package.loss(x)
for name, a, b in zip(("-ELBO", "reconstruction", "KL"), ours, theirs):
    print(f"{name:>14}: yours {a:10.5f}, package {b:10.5f}, difference {abs(a - b):.1e} nats")
    assert abs(a - b) <= 1e-5 * abs(b) + 1e-5

# %% [markdown]
# The two agree to rounding: same weights, same batch, same $\varepsilon$, same loss. So
# `fit` trains the model you just wrote.
#
# ### Longer runs with the package
#
# From here on the package trains the models. Its `fit` does the same steps as your loop, and
# adds what you would otherwise write next:
#
# * **speed:** Adam's fused kernel (`fused=True`), which does each update in a few large
#   operations instead of many small ones, and batches cut by indexing tensors that already sit
#   on the device (your loop borrowed that idea from `companion.data.Batches`); `train_or_load`
#   goes further and trains each configuration only once, then loads it from a cache (section 5
#   shows how);
# * **guards:** a NaN or infinite loss stops training before that step touches the weights,
#   and pixels outside $[0, 1]$, which a Bernoulli loss cannot model, are refused before the
#   first step, with a message that says what to do;
# * **bookkeeping:** the test ELBO after every epoch, a seed that makes a run repeat exactly,
#   and callbacks such as `SampleStrip`, which decodes the same points $z$ as training goes
#   so you can watch the model learn.
#
# Now train two VAEs that differ only in their latent size: $L = 2$, small enough to draw,
# as in all four source documents, and $L = 20$. Adam with learning rate $10^{-3}$, as in the
# Hasktorch tutorial, the R torch book and the journal-club notebook, and batches of 128, as in
# the first two (the journal-club notebook uses batches of 120, the slides 32).

# %% tags=["nbval-ignore-output"]
FIT = dict(epochs=settings.pick(10, 2), batch_size=128, dynamic_binarization=True, seed=0,
           progress=False)
models, histories = {}, {}
for latent in (2, 20):
    torch.manual_seed(latent)
    models[latent] = MLPVAE(latent_dim=latent, hidden=400).to(device)
    histories[latent] = checkpoints.train_or_load(models[latent], train, test, **FIT)
    h = histories[latent]
    print(f"L = {latent:>2}: test -ELBO {h.test_loss[0]:.1f} -> {h.test_loss[-1]:.1f} nats "
          f"(reconstruction {h.test_reconstruction[-1]:.1f} + KL {h.test_kl[-1]:.1f})")
    assert h.test_loss[-1] < h.test_loss[0] and min(h.test_kl) >= 0

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for ax, latent in zip(axes, (2, 20)):
    plot_history(histories[latent], title=f"MLP VAE, L = {latent}: the ELBO's parts", ax=ax)
plt.show()

# %% [markdown]
# Both losses are dominated by the reconstruction term. For $L = 20$ the KL term *rises* in
# the first epochs while the reconstruction falls. That is the trade the ELBO makes: the
# encoder spends information (KL, nats per image) to buy better reconstructions. With $L = 2$
# the KL stays small, since two numbers cannot carry much; the larger latent space buys more
# of both.

# %% tags=["nbval-ignore-output"]
for latent in (2, 20):
    print(f"L = {latent:>2}: final test KL {histories[latent].test_kl[-1]:5.1f} nats, "
          f"reconstruction {histories[latent].test_reconstruction[-1]:6.1f} nats")
SLACK = settings.pick(0.0, 10.0)   # fast mode trains too briefly to separate the two models
assert histories[20].test_kl[-1] > histories[2].test_kl[-1]
assert histories[20].kl[-1] > histories[20].kl[0] - SLACK
assert histories[20].test_reconstruction[-1] < histories[2].test_reconstruction[-1] + SLACK

# %% [markdown]
# ### Pitfall: a log-variance without bounds · deeper
#
# > **Pitfall.** The encoder's second head outputs $\log\sigma^2$, and nothing bounds it. The
# > loss uses $e^{\log\sigma^2}$ (in the KL) and $e^{\log\sigma^2/2}$ (in
# > $z = \mu + \sigma\varepsilon$); in 32-bit floats $e^{t}$ is infinite once $t > 88.7$. A
# > bad step (a learning rate too large, an image on the wrong scale) that pushes the head's
# > output that high turns the loss and its gradient into inf, and the next update would
# > spread inf and NaN to the weights.
#
# Break a model on purpose: set the bias of the log-variance head to 100.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
broken = MLPVAE(latent_dim=20, hidden=400).to(device)
with torch.no_grad():
    broken.logvar.bias.fill_(100.0)          # what one bad step can do to the head
parts = broken.loss(test.images[:128])
parts.total.backward()
finite = torch.isfinite(broken.logvar.bias.grad).all().item()
print(f"loss {parts.total.item()}, KL {parts.kl.item()}; the bias's gradient is finite: {finite}")
assert not torch.isfinite(parts.total) and not finite

# %% [markdown]
# `fit` guards against this: it checks every loss, leaves the weights alone from the first
# one that is not finite, and stops at the end of the epoch with `TrainingDiverged`, whose
# message says what to try. The model keeps its last good weights.

# %% tags=["nbval-ignore-output"]
before = {name: w.clone() for name, w in broken.state_dict().items()}
try:
    fit(broken, train.subset(512), epochs=1, progress=False)
except TrainingDiverged as err:
    print(f"TrainingDiverged: {err}")
kept = all(torch.equal(before[name], w) for name, w in broken.state_dict().items())
print(f"every weight as it was before the bad batch: {kept}")
assert kept


# %% [markdown]
# The guard keeps the NaN out of the weights, but the model is still broken. Two common fixes
# bound the variance where the encoder computes it. A **clamp**, `logvar.clamp(-30, 20)`, keeps
# $e^{\log\sigma^2}$ finite, but its gradient is 0 wherever it clamps. A **softplus**
# computes σ itself as $\mathrm{softplus}(r) = \log(1 + e^r)$ from the head's output $r$, so σ
# grows only linearly with $r$, never exponentially, and the gradient does not vanish at a
# large $r$, where the clamp's does. Apply
# each to the broken model, and train both for one epoch on 2 000 images:

# %% tags=["nbval-ignore-output"]
class Clamped(MLPVAE):
    """The MLP VAE with its log-variance clamped to [-30, 20]."""

    def encode(self, x):
        mu, logvar = super().encode(x)
        return mu, logvar.clamp(-30, 20)


class Softplus(MLPVAE):
    """The MLP VAE whose second head gives sigma through a softplus: log sigma^2 = 2 log softplus(r)."""

    def encode(self, x):
        mu, r = super().encode(x)
        return mu, 2 * torch.log(F.softplus(r) + 1e-4)


bounded = {}
for kind in (Clamped, Softplus):
    model = kind(latent_dim=20, hidden=400).to(device)
    model.load_state_dict(before)                                  # the broken weights
    parts = model.loss(test.images[:128])
    parts.total.backward()
    gradient = model.logvar.bias.grad.mean().item()
    start = evaluate(model, test.subset(1_000)).kl
    history = fit(model, train.subset(2_000), epochs=1, test_data=test.subset(1_000), progress=False)
    bounded[kind.__name__] = (parts.total.item(), gradient, start, history.test_kl[-1])
    print(f"{kind.__name__:<9} loss at the broken weights {parts.total.item():9.3g}; gradient of the "
          f"bias {gradient:+.2g}; test KL {start:9.4g} nats, after one epoch {history.test_kl[-1]:9.4g}")
(clamp_loss, clamp_grad, *clamp_kl), (soft_loss, soft_grad, *soft_kl) = bounded.values()
assert math.isfinite(clamp_loss) and math.isfinite(soft_loss)
assert clamp_grad == 0 and soft_grad > 0                 # stuck; pulled back down
assert clamp_kl[1] == clamp_kl[0] and soft_kl[1] < 0.95 * soft_kl[0]

# %% [markdown]
# Both bounds make the loss finite. The clamped model is stuck: the clamp passes no gradient,
# the head stays at its bound, and after a whole epoch the KL has not moved at all, every code
# drowned in noise. The softplus model gets a gradient that pulls σ back down (positive:
# gradient descent lowers the bias), and its KL falls. Slowly: Adam moves each weight by at
# most about the learning rate per step, and the head's output, at about 100, has far to go. So a bound is a fix to build in
# *before* training, not a way to rescue a broken run. The
# package's models keep the plain $\log\sigma^2$ head of the source documents and rely on the
# guard and a sensible learning rate; if you see `TrainingDiverged` with a KL that is inf, a
# softplus (or a clamp at a bound the model never needs) is the fix to try.

# %% [markdown]
# ## 2. Reconstructions and samples · core
#
# `model.reconstruct(x)` decodes the posterior mean $\mu(x)$; `model.sample(n)` decodes
# $z \sim \mathcal N(0, I)$. Both show pixel *means* $\sigma(\text{logit})$, the usual way to
# display a Bernoulli decoder.

# %%
fig, axes = plt.subplots(2, 2, figsize=(12, 4.5))
g = torch.Generator().manual_seed(0)
for row, latent in enumerate((2, 20)):
    model = models[latent]
    show_pairs(test_gray.images[:10], model.reconstruct(test.images[:10]), ax=axes[row, 0],
               title=f"L = {latent}: test digits and reconstructions")
    show_images(model.sample(20, generator=g), nrow=10, ax=axes[row, 1],
                title=f"L = {latent}: samples from the prior")
plt.show()

# %% [markdown]
# With $L = 2$ every image has to be squeezed into two numbers, so reconstructions are blurry
# "average" digits and a 4 can come back as a 9. With $L = 20$ reconstructions keep the
# writer's style. The $L = 2$ samples are smooth, blurry digits; the $L = 20$ samples are
# sharper, but some of them are no digit at all: the prior has regions that the codes of real
# images leave empty, and the decoder improvises there.
#
# ## 3. The latent space, drawn · core
#
# The Hasktorch tutorial and the R torch book plot the test set's codes coloured by class; the
# journal-club notebook plots one training batch that way. For a VAE the code of an image is
# the mean $\mu(x)$ of $q(z\mid x)$. With $L = 20$ you can only draw two of the twenty
# coordinates; take the two whose means vary most across the test set.

# %%
codes = {latent: encode_all(models[latent], test) for latent in (2, 20)}
top2 = codes[20].var(0).argsort(descending=True)[:2]
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
scatter_latent(codes[2], test.labels, "L = 2: test-set means $\\mu(x)$", ax=axes[0])
scatter_latent(codes[20][:, top2], test.labels,
               f"L = 20: coordinates {top2.tolist()} (most varied)", ax=axes[1])
plt.show()

# %% [markdown]
# In two dimensions the classes form regions around the origin, and the cloud as a whole is
# roughly the size of the prior, a few units across: the KL term keeps it there. The $L = 20$
# slice overlaps more, because two coordinates out of twenty carry only part of the
# information.

# %% tags=["nbval-ignore-output"]
radius = codes[2].norm(dim=1)
print(f"L = 2: mean of the codes {[round(v, 2) for v in codes[2].mean(0).tolist()]}, "
      f"share inside |z| < 3: {(radius < 3).float().mean():.3f} (the prior's: "
      f"{1 - math.exp(-9 / 2):.3f})")
assert (radius < 3).float().mean() > settings.pick(0.8, 0.3)   # fast mode: barely trained

# %% [markdown]
# ### Walking the 2-D latent space
#
# The Hasktorch tutorial decodes a grid over $[-3, 3]^2$ in steps of 0.3 (21 × 21 points);
# `latent.grid` builds it with $z_2$ decreasing down the rows, so the picture has the
# orientation of the scatter plot above.

# %%
walk = grid((-3, 3), (-3, 3), steps=21).to(device)           # [441, 2], step 0.3
with torch.no_grad():
    images = torch.sigmoid(models[2].decode(walk))
ax = show_images(images, nrow=21, title="L = 2: decoded grid over [-3, 3]², step 0.3")
ax.set(xlabel="$z_1$ from -3 to 3", ylabel="$z_2$ from 3 (top) to -3")
plt.show()

# %% [markdown]
# Each digit class occupies a region, and neighbouring images morph smoothly into each other:
# the decoder is a continuous function and the KL term packed the classes next to each other.
#
# ### Pitfall: a grid that is too wide · deeper
#
# > **Pitfall: decoding far outside the prior.** The R torch book decodes an 8 × 8 grid over
# > $[-8, 8]^2$. Under the prior $\mathcal N(0, I)$ the point $(8, 8)$ has density
# > $e^{-64}$ relative to the origin: no training image was ever encoded anywhere near it, so
# > the decoder was never asked what to draw there. What it draws is extrapolation.

# %%
wide = grid((-8, 8), (-8, 8), steps=8).to(device)            # [64, 2]
with torch.no_grad():
    wide_images = torch.sigmoid(models[2].decode(wide))
ax = show_images(wide_images, nrow=8, title="L = 2: decoded 8 × 8 grid over [-8, 8]²")
ax.set(xlabel="$z_1$ from -8 to 8", ylabel="$z_2$ from 8 (top) to -8")
plt.show()

# %% [markdown]
# The centre holds digits. Towards the border the same few shapes repeat, ever thicker and
# more saturated (the logits keep growing as $z$ moves outward), and where two classes meet far
# from the data the decoder draws broken strokes that are no digit at all. Measure why: how far
# is each grid point from the nearest real test code, and how much prior mass lies beyond
# radius 3?

# %% tags=["nbval-ignore-output"]
distance = nearest_distance(wide, codes[2])
border = wide.abs().max(dim=1).values > 5
print(f"distance to the nearest test code: inner points {distance[~border].mean():.2f}, "
      f"border points {distance[border].mean():.2f}")
outside = torch.distributions.Chi2(torch.tensor(2.0)).cdf(torch.tensor(9.0))
print(f"prior mass outside radius 3: {1 - outside:.4f};  log-density ratio (8,8) vs origin: "
      f"{-0.5 * 128:.0f}")
assert distance[border].mean() > settings.pick(3, 1) * distance[~border].mean()


# %% [markdown]
# Border points are several units from any encoded image, far beyond where the prior puts
# appreciable mass (about 1% lies outside radius 3). The fix is simple: sample the grid where
# the prior lives, e.g. $[-3, 3]$, or through the inverse normal CDF of an evenly spaced grid
# in $(0, 1)$.
#
# ### Pitfall: a straight walk that starts outside the prior · deeper
#
# The journal-club notebook walks a straight line through its 2-D latent space and decodes 11
# evenly spaced points on it. Its code first selects the codes of the 0s and of the 3s, as if
# to walk from one class to the other, then overwrites both with fixed points: the walk runs
# from $(0, 10)$ to $(0, 5)$ in steps of 0.5. Whatever its own model's codes looked like, its
# KL term pulls them toward the prior $\mathcal N(0, I)$, under which these points lie 10 and 5
# standard deviations from the origin. Draw the same walk over the test codes of the $L = 2$
# model, and decode it.

# %%
def draw_walk(path: torch.Tensor, title: str) -> torch.Tensor:
    """Draw a path [T, 2] over the L = 2 test codes; decode it; return the images [T, 1, 28, 28]."""
    with torch.no_grad():
        images = torch.sigmoid(models[2].decode(path))
    fig, axes = plt.subplots(2, 1, figsize=(7, 7.5), gridspec_kw={"height_ratios": [4, 1]})
    scatter_latent(codes[2], test.labels, f"L = 2: test codes and {title}", ax=axes[0])
    axes[0].plot(*path.cpu().T, "k.--")
    axes[0].annotate("start", path[0].tolist())
    show_images(images, nrow=len(path), ax=axes[1], title=f"decoded along {title} (start left)")
    plt.show()
    return images


# %%
t = torch.linspace(0, 1, 11, device=device)                   # 11 points, both ends included
start, end = torch.tensor([0.0, 10.0], device=device), torch.tensor([0.0, 5.0], device=device)
fixed = lerp(start, end, t)                                   # [11, 2], steps of 0.5 along z_2
fixed_images = draw_walk(fixed, "the walk (0, 10) -> (0, 5)")

# %% [markdown]
# The dashed line lies beyond the whole cloud of codes, and the decoder draws nearly the same
# image at all 11 points: the shape of whatever class lies in that direction from the cloud,
# not a 3 turning into a 0. (In fast mode the model is barely trained and decodes much the same
# blur everywhere.) How far out are the two endpoints, under the prior and among the codes?

# %% tags=["nbval-ignore-output"]
far = nearest_distance(fixed, codes[2])                        # [11]
print(f"{'point':>11} {'|z|':>4} {'log p(z)':>9} {'prior mass beyond |z|':>22} "
      f"{'test codes within |z|':>22} {'nearest code':>13}")
for z, distance_to_code in ((fixed[0], far[0]), (fixed[-1], far[-1])):
    r = z.norm().item()                                       # Mahalanobis radius under N(0, I)
    print(f"{str(tuple(z.tolist())):>11} {r:4.0f} {-math.log(2 * math.pi) - r**2 / 2:9.1f} "
          f"{math.exp(-r**2 / 2):22.1e} {(radius < r).float().mean():22.1%} "
          f"{distance_to_code:13.2f}")
print(f"for comparison, log p(z) at the origin: {-math.log(2 * math.pi):.1f}")
assert math.exp(-5**2 / 2) < 1e-5                       # prior mass beyond |z| = 5 (2-D)
assert (radius < 10).all() and (radius < 5).float().mean() > settings.pick(0.99, 0.9)

# %% [markdown]
# Under the prior, the log-density of the end of the walk is 12.5 nats below that of the
# origin, and of its start 50 nats below; the prior puts about 4 in a million of its mass
# beyond radius 5. The codes
# agree: nearly every test code lies within radius 5, so the whole walk runs outside the data,
# and what the decoder draws there is extrapolation, as at the edges of the wide grid above.
#
# The journal-club code's variable names say which walk it meant: from the 3s to the 0s. Walk
# from the mean code of the 3s to the mean code of the 0s instead, again in 11 points.

# %%
means = class_means(codes[2], test.labels)                    # [10, 2]: mean code of each class
inside = lerp(means[3], means[0], t)                          # from the 3s to the 0s, 11 points
inside_images = draw_walk(inside, "the walk from mean 3 to mean 0")

# %% [markdown]
# This walk stays inside the cloud, and the decoded images change along it: a 3 at the start,
# a 0 at the end, and in between the digits of whichever classes the line crosses in the
# scatter plot. (Again, fast mode trains too briefly for this.) Measured:

# %% tags=["nbval-ignore-output"]
near = nearest_distance(inside, codes[2])
change = {name: (images[1:] - images[:-1]).abs().mean().item()
          for name, images in (("fixed", fixed_images), ("class means", inside_images))}
print(f"distance to the nearest test code: fixed walk {far.mean():.2f} on average, "
      f"class-mean walk {near.max():.3f} at most")
print(f"mean pixel change per step: fixed walk {change['fixed']:.4f}, "
      f"class-mean walk {change['class means']:.4f}")
assert far.mean() > 10 * near.max()
assert change["class means"] > settings.pick(3, 0.5) * change["fixed"]

# %% [markdown]
# Every point of the class-mean walk has a real test code within a few hundredths of a unit.
# In full mode its images change several times faster per step than those of the fixed walk,
# which barely change at all. A straight walk is a fair experiment only between points where the
# codes are.
#
# ## 4. Latent size: 2 vs 20 vs 128 · deeper
#
# The R torch book trains with $L = 2$ and $L = 128$. Train the third model and compare three
# things:
#
# * the **test ELBO** (nats per image; higher is better, so print $-$ELBO, lower is better);
# * the **KL of each latent dimension**, averaged over the test set, and the number of
#   **active units**: following Burda et al. (2015), a dimension $u$ is active when its
#   posterior mean varies with the input, $A_u = \mathrm{Var}_x\big(\mu_u(x)\big) > 10^{-2}$;
# * **samples**: a picture, and a crude number: the mean pixel distance from each sample to
#   its nearest test image (small means "looks like some real digit").

# %% tags=["nbval-ignore-output"]
torch.manual_seed(128)
models[128] = MLPVAE(latent_dim=128, hidden=400).to(device)
histories[128] = checkpoints.train_or_load(models[128], train, test, **FIT)
codes[128] = encode_all(models[128], test)


def active_units(mu: torch.Tensor, threshold: float = 1e-2) -> int:
    """Dimensions whose posterior mean varies across the data: Var_x(mu_u) > threshold."""
    return int((mu.var(dim=0) > threshold).sum())


print({latent: active_units(codes[latent]) for latent in models})


# %%
def kl_by_dimension(model, data) -> torch.Tensor:
    """KL(q(z_u|x) || N(0, 1)) of each latent dimension, averaged over data; [L]."""
    with torch.no_grad():
        mu, logvar = model.encode(data.images)
    return kl_per_dimension(mu, logvar).mean(0)   # notebook 04's closed form, per dimension


g = torch.Generator().manual_seed(1)
real = test_gray.images.flatten(1)                           # [N, 784] grey test digits
table = {}
for latent, model in models.items():
    kl_u = kl_by_dimension(model, test)
    samples = model.sample(500, generator=g)
    table[latent] = dict(elbo=evaluate(model, test).total, kl=kl_u.sum().item(),
                         active=active_units(codes[latent]), kl_u=kl_u,
                         nearest=nearest_distance(samples.flatten(1), real).mean().item())

# %% tags=["nbval-ignore-output"]
print(f"{'L':>4} {'-ELBO':>8} {'KL':>6} {'active':>7} {'KL per active unit':>19} "
      f"{'sample->test':>13}")
for latent, row in table.items():
    print(f"{latent:>4} {row['elbo']:8.2f} {row['kl']:6.2f} {row['active']:>4}/{latent:<3}"
          f"{row['kl'] / max(row['active'], 1):19.2f} {row['nearest']:13.2f}")
    assert abs(row["kl_u"].sum() - row["kl"]) < 1e-3 and (row["kl_u"] >= -1e-6).all()
print("dimensions with KL > 0.1 nats:",
      {latent: int((row["kl_u"] > 0.1).sum()) for latent, row in table.items()})
assert table[20]["elbo"] < table[2]["elbo"] + SLACK
assert table[128]["active"] < 128

# %% [markdown]
# More latent dimensions help a lot from 2 to 20, and then stop helping: the 128-dimensional
# model uses only a fraction of its dimensions. The others are **inactive**: their KL is near
# zero, the encoder outputs $\mu_u \approx 0$, $\sigma_u \approx 1$ for every image, and the
# decoder ignores them. Plotting the KL of every dimension, sorted, shows this.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 1.4]})
for latent, row in table.items():
    axes[0].plot(row["kl_u"].sort(descending=True).values.cpu(), "o-", ms=3, label=f"L = {latent}")
axes[0].set(yscale="log", title="KL of each latent dimension, sorted",
            xlabel="dimension (sorted by KL)", ylabel="KL (nats, test-set mean)")
axes[0].legend()
g = torch.Generator().manual_seed(2)
show_images(torch.cat([models[latent].sample(8, generator=g) for latent in models]), nrow=8,
            ax=axes[1], labels=[f"L = {latent}" for latent in models],
            title="samples from the prior, one row per latent size")
plt.show()

# %% [markdown]
# The sorted KL curves of $L = 20$ and $L = 128$ lie almost on top of each other over the first
# twenty dimensions. The $L = 128$ curve goes on a little further: a few more dimensions carry a
# few tenths of a nat each (the table above counted the dimensions with more than 0.1 nats).
# Then it falls off a cliff, and the rest of its dimensions sit close to the prior, carrying a
# few hundredths of a nat each or less. A count of "active" units depends on where that tail
# is cut. Per dimension,
# $\mathrm{KL}_u \ge \tfrac12\,\mathbb E_x[\mu_u^2] \ge \tfrac12\,\mathrm{Var}_x(\mu_u)$,
# so a dimension just above the variance threshold of 0.01 is only guaranteed 0.005 nats: the
# two rules (variance of $\mu_u$, or KL) cut the tail at different places. The samples of
# $L = 20$ and $L = 128$ look alike, as the curves predict. The nearest-test-image distance is
# a crude proxy: it favours the blurry, average-looking $L = 2$ samples, so read it next to the
# pictures, never alone.
#
# ## 5. Saving, loading and the train-or-load cache · deeper
#
# The slides save a model with `torch.save(vae.state_dict(), ...)` and restore it with
# `load_state_dict`. The Hasktorch tutorial does the same in Haskell. A bare `state_dict`
# holds tensors and nothing else.
#
# > **Pitfall: a state_dict does not know its architecture.** Load the weights of the
# > $L = 20$ model into a freshly built model of a different latent size, the way a
# > colleague would who only got the file, and PyTorch refuses with a wall of size
# > mismatches.

# %%
folder = Path(tempfile.mkdtemp())
torch.save(models[20].state_dict(), folder / "bare.pt")
try:
    MLPVAE(latent_dim=2).load_state_dict(torch.load(folder / "bare.pt", weights_only=True))
except RuntimeError as err:
    print(str(err).splitlines()[0])
    print(f"... {len(str(err).splitlines()) - 1} more lines of size mismatches")

# %% [markdown]
# The fix: save the model's description (class and constructor arguments) next to its
# weights. `companion.checkpoints.save` does this, atomically, and `load(path)` rebuilds the
# right model without being told what it is. It reads the file with `weights_only=True`, so
# opening a checkpoint cannot run code.

# %%
path = checkpoints.save(models[20], folder / "vae20.pt", histories[20])
restored, meta = checkpoints.load(path)
print(meta["model"])
x = test.images[:16]
assert torch.equal(restored.reconstruct(x), models[20].reconstruct(x))
print("restored model reconstructs exactly like the original")
try:
    checkpoints.load(path, MLPVAE(latent_dim=2))
except checkpoints.CheckpointMismatch as err:
    print("CheckpointMismatch:", err)

# %% [markdown]
# `train_or_load` builds on this. It hashes what shapes the weights into a file name under
# `data/checkpoints/`: the model's description and the source code of its class, every
# argument of `fit` with its defaults filled in, a fingerprint of the training images and
# labels themselves (so a preprocessed copy of a dataset gets its own key) and fast or full
# mode. The first call trains and saves; every later call with the same settings loads.
# Change the architecture, its code, a training setting, the data or the mode, and the key
# changes with it. The test set is not in the key: it does not change the weights.
#
# The key does not cover the initial weights. The check below builds a fresh $L = 20$ model
# without `torch.manual_seed(20)`, so its initial weights differ from those of the model of
# section 1, and still it gets that model from the cache. So if you change only the
# `torch.manual_seed` before building a model, you get the cached one; run `make clean-cache`
# (or delete that model's file under `data/checkpoints/`) to train it again.

# %% tags=["nbval-ignore-output"]
key = checkpoints.cache_key(models[20], train, FIT)
other = checkpoints.cache_key(models[20], train, {**FIT, "epochs": FIT["epochs"] + 1})
print(f"cache key {key}; with one more epoch {other}")
again = MLPVAE(latent_dim=20).to(device)     # no torch.manual_seed(20): other initial weights
history = checkpoints.train_or_load(again, train, test, **FIT)
assert key != other and history.test_loss == histories[20].test_loss
assert torch.equal(again.reconstruct(x), models[20].reconstruct(x))

# %% [markdown]
# ## 6. How likely is a test digit? Importance-weighted bounds · deeper
#
# The ELBO is a lower bound on $\log p(x)$; the gap is
# $\mathrm{KL}\big(q(z\mid x)\,\|\,p(z\mid x)\big)$.
# To compare with published numbers you need $\log p(x)$ itself. Write it as an expectation
# under the encoder:
#
# $$
# p(x) = \mathbb E_{z\sim q(z\mid x)}\left[\frac{p(x\mid z)\,p(z)}{q(z\mid x)}\right]
# \approx \frac1k\sum_{i=1}^k w_i,\qquad
# w_i = \frac{p(x\mid z_i)\,p(z_i)}{q(z_i\mid x)},\quad z_i\sim q(z\mid x).
# $$
#
# The average of the $w_i$ is an unbiased estimate of $p(x)$, and by Jensen's inequality its
# logarithm is, on average, below $\log p(x)$. Burda et al. (2015) call it
# $\mathcal L_k = \mathbb E\big[\log\frac1k\sum_i w_i\big]$ and prove
# $\mathrm{ELBO} = \mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x)$, with
# $\mathcal L_k \to \log p(x)$ as $k \to \infty$. In code the log-weights are computed
# for a batch and $k$ samples at once, and combined with `logsumexp` (exercise 1 asks why).
#
# > **Pitfall: a likelihood of grey pixels.** A Bernoulli log-likelihood of grey values
# > is not a log-probability, so "nats" computed on the grey test set cannot be compared with
# > anything. The estimator refuses such data:

# %%
try:
    importance_weighted(models[20], test_gray.subset(10), k=2)
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# ### The model for the likelihood number
#
# For the headline number train a larger model for longer: the same one-hidden-layer MLP VAE,
# wider and with more latent dimensions, 784-1024-$L$ with $L = 50$, on dynamically binarized
# MNIST, 50 epochs of Adam (lr $10^{-3}$, batches of 128). Cold, that takes about five minutes
# on a quiet 2-core CPU; afterwards it loads from the cache.

# %% tags=["nbval-ignore-output"]
LIKELIHOOD_FIT = dict(FIT, epochs=settings.pick(50, 2))
torch.manual_seed(0)
big = MLPVAE(latent_dim=50, hidden=1024).to(device)
big_history = checkpoints.train_or_load(big, train, test, **LIKELIHOOD_FIT)
print(f"{big_history.epochs} epochs, test -ELBO {big_history.test_loss[-1]:.2f} nats")
assert big_history.test_loss[-1] < big_history.test_loss[0]

# %% [markdown]
# Now the bound for growing $k$ on a random sample of the binarized test set (the first
# images of the file are easier than average, so a first-$n$ subset would flatter the model).
# The same samples give both numbers per image: the mean of the $\log w_i$ (the ELBO estimate) and
# $\log\frac1k\sum_i w_i$ (IWAE$_k$).

# %% tags=["nbval-ignore-output"]
n_eval = settings.pick(1_000, 100)
_, subset = train_val_split(test, n_val=n_eval, seed=0)    # a random sample of the test set
bounds = {}
for k in settings.pick((1, 10, 100, 1000), (1, 10, 100)):
    est = importance_weighted(big, subset, k=k, seed=0)
    bounds[k] = (-est.elbo.mean().item(), -est.log_px.mean().item())
    print(f"k = {k:>5}: -ELBO {bounds[k][0]:7.2f}   -IWAE_k {bounds[k][1]:7.2f} nats "
          f"({n_eval} test images)")
    assert (est.log_px >= est.elbo - 1e-3).all()   # sanity check of the code: Jensen, any log w
nll = [b[1] for b in bounds.values()]
assert all(a > b for a, b in zip(nll, nll[1:]))   # the real test: -IWAE_k falls with every k

# %%
ks = list(bounds)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(ks, [bounds[k][0] for k in ks], "s--", label="-ELBO (same samples)")
ax.plot(ks, [bounds[k][1] for k in ks], "o-", label="$-\\mathcal{L}_k$ (IWAE bound)")
ax.set(xscale="log", xlabel="number of importance samples k", ylabel="nats per test image",
       title="784-1024-50 VAE: the bound tightens with k")
ax.legend()
plt.show()

# %% [markdown]
# The ELBO line is flat (more samples only make its estimate less noisy) while the IWAE
# bound drops with every tenfold increase of $k$, with diminishing returns. The gap between the
# two lines is a lower bound on how much the encoder's Gaussian misses the true posterior.
#
# The literature reports $k = 5000$. That costs 5000 decoder passes per image, so here it runs
# on the first images of that random sample; the ELBO on the same images and on the whole
# test set shows how typical they are.

# %% tags=["nbval-ignore-output"]
K_FINAL, n_final = settings.pick(5000, 50), settings.pick(500, 20)
final = importance_weighted(big, subset.subset(n_final), k=K_FINAL, seed=1)
sem = final.log_px.std().item() / math.sqrt(n_final)
print(f"-log p(x) ~ {-final.log_px.mean():.2f} ± {sem:.2f} nats  (IWAE, k = {K_FINAL}, "
      f"{n_final} random test images, {big_history.epochs} epochs, dynamic binarization)")
print(f"-ELBO on the same images: {-final.elbo.mean():.2f} nats; "
      f"on the whole test set: {big_history.test_loss[-1]:.2f} nats")
assert final.log_px.mean() > final.elbo.mean()   # sanity check of the code (Jensen), as above

# %% [markdown]
# **Comparing honestly with the literature.** Burda et al. (2015) report 86.76 nats for a VAE
# with one stochastic layer of 50 units (two deterministic layers of 200 units each way),
# trained for about 3 280 epochs with the same $k = 5000$ estimate on the whole test set. The
# number above differs in four ways, each stated in the printout or the code: a different
# network (one hidden layer of 1024 units each way), far fewer epochs, a random subset of the
# test set (the ± is the standard error over those images; compare the subset's ELBO with the
# whole test set's to see how typical it is), and a different random binarization of the test
# set. It estimates an upper bound on $-\log p(x)$ of *this* model, up to Monte Carlo noise.

# %% [markdown]
# ## 7. Posterior collapse, shown and cured · deeper
#
# Section 4 found dimensions that a model leaves unused. **Posterior collapse** is the extreme
# case: $q(z\mid x) = p(z)$ for every image, a KL of zero in every dimension, and a decoder
# that ignores $z$. Nothing warns you: the loss is finite and falls as usual. At a large
# enough β any decoder collapses (notebook 06 shows it at β = 32); at a mild β it takes a
# decoder that can model the images without $z$. The MLP decoder cannot, since $z$ is all it
# sees. An **autoregressive** decoder can: it predicts the pixels one at a time, in reading
# order, each from $z$ *and the pixels before it*,
#
# $$
# p(x\mid z) = \prod_{i=1}^{784} p(x_i \mid x_1, \dots, x_{i-1}, z).
# $$
#
# `companion.models.AutoregressiveVAE` keeps the MLP encoder and uses a MADE (Germain et al.
# 2015) as its decoder: an MLP from the image to 784 logits (one hidden layer of 500 units, and
# direct pixel-to-logit weights) whose weights are multiplied by fixed 0/1 masks, so that logit
# $i$ is computed from pixels $1, \dots, i-1$ only. $z$ enters the hidden layer without a mask.
# Given the image, one pass returns all 784 logits (**teacher forcing**), and
# $-\log p(x\mid z)$ is the same sum of binary cross-entropies as before, so `fit` and
# `evaluate` need no change. Check the masks: flip one pixel and see which logits move.

# %%
torch.manual_seed(0)
made = AutoregressiveVAE(latent_dim=20, hidden=500).to(device)   # untrained: the masks suffice
x, z = test.images[:1], torch.randn(1, 20, device=device)
flipped = x.clone()
flipped.view(-1)[400] = 1 - flipped.view(-1)[400]                # flip pixel 400 (of 0..783)
with torch.no_grad():
    moved = (made.decode(z, x) != made.decode(z, flipped)).flatten()
print(f"{int(moved.sum())} of 784 logits moved; the first is logit {int(moved.nonzero()[0])}")
assert not moved[:401].any() and moved[401:].all()

# %% [markdown]
# Logits 0 to 400 stay put: none of them may see pixel 400. Every later one moves.
#
# **Does this decoder need $z$?** Train it with the plain ELBO ($\beta = 1$) and with
# $\beta = 3$, a mild extra pull toward the prior (notebook 06 goes up to $\beta = 32$). For
# comparison, train the MLP VAE of section 4 with $\beta = 3$ as well. All have $L = 20$ and
# train for four epochs, with the settings of section 1 otherwise. The table gives the test
# $-$ELBO at $\beta = 1$ (reconstruction + KL), whatever $\beta$ a model trained with, the
# active units of section 4 ($\mathrm{Var}_x\,\mu_u(x) > 0.01$) and the KL of each dimension.

# %%
COLLAPSE_FIT = dict(FIT, epochs=settings.pick(4, 1))
TRAINED = settings.pick(True, False)   # fast mode trains one epoch on 2 000 images: no claims


def train_run(kind, objective: dict, seed: int = 0) -> tuple:
    """An L = 20 model of the given kind (a class, or a functools.partial of one) and its
    History, trained with COLLAPSE_FIT and this training seed on the Objective with these
    settings (beta, warmup_epochs, free_bits)."""
    torch.manual_seed(settings.training_seed(20 + seed))
    model = kind(latent_dim=20).to(device)
    return model, checkpoints.train_or_load(model, train, test, **dict(COLLAPSE_FIT, seed=seed),
                                            objective=Objective(**objective))


# %%
def row_of(model, h) -> dict:
    """Active units, KL per dimension, test -ELBO and training time of one trained run."""
    return dict(active=active_units(encode_all(model, test)), kl_u=kl_by_dimension(model, test),
                kl=h.test_kl[-1], reconstruction=h.test_reconstruction[-1],
                elbo=h.test_reconstruction[-1] + h.test_kl[-1],
                seconds=sum(len(train) / speed for speed in h.images_per_s))


def print_rows(runs: dict) -> dict:
    """The row of each run (`row_of`), printed as a table."""
    rows = {name: row_of(model, h) for name, (model, h) in runs.items()}
    print(f"{'model, training':<24}{'active':>7}{'KL':>7}{'KL_u min':>9}{'max':>7}"
          f"{'recon.':>8}{'-ELBO':>8}{'train s':>8}")
    for name, r in rows.items():
        print(f"{name:<24}{r['active']:>4}/20{r['kl']:7.2f}{r['kl_u'].min():9.3f}"
              f"{r['kl_u'].max():7.3f}{r['reconstruction']:8.2f}{r['elbo']:8.2f}"
              f"{r['seconds']:8.0f}")
        assert (r["kl_u"] >= -1e-6).all() and abs(r["kl_u"].sum() - r["kl"]) < 0.05 * r["kl"] + 0.05
    return rows


# %% tags=["nbval-ignore-output"]
SETTINGS = {"MADE, β = 1": (AutoregressiveVAE, {}),           # name: (model kind, objective)
            "MADE, β = 3": (AutoregressiveVAE, dict(beta=3.0)),
            "MLP, β = 3": (MLPVAE, dict(beta=3.0))}
runs = {name: train_run(kind, objective) for name, (kind, objective) in SETTINGS.items()}
rows = print_rows(runs)

# %% tags=["nbval-ignore-output"]
made1, made3, mlp3 = (rows[name] for name in runs)
print(f"MADE at β = 1: z buys {made3['reconstruction'] - made1['reconstruction']:.1f} nats of "
      f"reconstruction for {made1['kl']:.1f} nats of KL, a net {made3['elbo'] - made1['elbo']:.1f}")
if TRAINED:
    assert made1["active"] == 20 and made1["kl"] > 10                 # β = 1: z in use ...
    assert 0 < made3["elbo"] - made1["elbo"] < 2.5                    # ... but worth about a nat
    assert made1["kl"] > 0.8 * (made3["reconstruction"] - made1["reconstruction"])
    assert made3["kl"] < 0.2 and made3["kl_u"].max() < 0.05          # β = 3: collapsed
    assert mlp3["active"] >= 15 and mlp3["kl"] > 8                     # the MLP decoder: not
    assert made3["elbo"] < mlp3["elbo"] - 10


# %% [markdown]
# Read the table from the top (one run of each; the end of this section repeats the
# comparisons over three runs). With the plain ELBO the MADE decoder uses $z$: all 20 units
# are active. But $z$ is worth little to it. The code cuts the reconstruction term a lot and
# costs almost as many nats of KL, so the model one row down, which has no code at all, is only
# about a nat worse in ELBO. Charge three times as much for each nat of KL and the trade no
# longer pays: at $\beta = 3$ the whole code carries under a fifth of a nat, and no dimension
# more than a few hundredths (a run may leave one of them just active, its mean varying a
# little from image to image). That is posterior collapse, but say plainly which kind: not the
# classic collapse of a strong decoder under the plain ELBO (with $\beta = 1$ this MADE keeps
# every unit), but the collapse an objective asks for once it charges three times for each nat
# of KL. The MLP decoder at the same $\beta$ keeps most of its units: without $z$ it has
# nothing to draw from. And note the $-$ELBO column: the collapsed model is still a better
# density model than the MLP VAE trained with the same $\beta = 3$, by more than ten nats.
# Collapse costs you the code, not the likelihood: the collapsed MADE is within a few nats of
# the MADE that uses its code.
#
# **What collapse looks like.** Reconstruct eight test digits: encode each one, then draw an
# image from $p(x\mid z)$ at $z = \mu(x)$. Drawing is sequential: pixel $i$ can be predicted
# only once pixels $1, \dots, i-1$ are drawn, so it takes one decoder pass per pixel, 784
# passes for a batch, where scoring a batch took one. To see whether the input matters, give
# every digit the same coin flips: one row of uniform numbers, pixel $i$ becoming 1 when its
# number falls below $p(x_i = 1\mid x_{<i}, z)$.

# %% tags=["nbval-ignore-output"]
def redraw(model, x: torch.Tensor) -> torch.Tensor:
    """Reconstructions of x drawn from p(x | z = mu(x)), the same coin flips for every image."""
    coins = torch.rand(1, 784, generator=torch.Generator().manual_seed(0))   # one row, shared
    start = time.perf_counter()
    images = model.reconstruct(x, coins=coins)
    print(f"784 decoder passes for {len(x)} images: {time.perf_counter() - start:.1f} s")
    return images


x = test.images[:32]
redrawn = {name: redraw(runs[name][0], x) for name in ("MADE, β = 1", "MADE, β = 3")}

# %%
show_images(torch.cat([x[:8], *(r[:8] for r in redrawn.values())]), nrow=8,
            labels=["test digit", *redrawn],
            title="Reconstructions drawn with the same coin flips for every digit")
plt.show()


# %% [markdown]
# The $\beta = 1$ model redraws each digit in its own shape. The collapsed model's drawings do
# not follow their digits: its code is about the same for every input, so with the same coin
# flips the input hardly matters. Three numbers, on 32 test digits, say the same: how much
# more often a reconstruction agrees with its own digit than with the other digits (the share
# of pixels; 0 when the input does not matter), the share of pixels that differ between the
# reconstructions of two different digits, and the **swap cost**, how many nats worse the
# decoder scores a test image (teacher-forced, one pass) when it gets the code $\mu$ of
# another image instead of its own.

# %%
def follows_its_digit(x: torch.Tensor, drawn: torch.Tensor) -> float:
    """How much more often drawn[i] agrees with x[i] than with the other x[j], per pixel."""
    agree = (drawn.flatten(1)[:, None] == x.flatten(1)[None]).float().mean(-1)   # [N, N]
    n, own = len(x), agree.diagonal().sum()
    return (own / n - (agree.sum() - own) / (n * (n - 1))).item()


def differing_pixels(images: torch.Tensor) -> float:
    """The share of pixels that differ between two different images of the batch, on average."""
    flat = images.flatten(1)
    pairs = len(flat) * (len(flat) - 1)
    return ((flat[:, None] != flat[None]).float().mean(-1).sum() / pairs).item()


def swap_cost(model, data) -> float:
    """How many nats worse each image scores with the next image's code than with its own."""
    with torch.no_grad():
        mu, _ = model.encode(data.images)
        own = model.nll(data.images, mu)                     # -log p(x | z), [N]
        other = model.nll(data.images, mu.roll(1, dims=0))
    return (other - own).mean().item()


# %% tags=["nbval-ignore-output"]
scored = test.subset(1_000)
print(f"pixels that differ between two test digits: {differing_pixels(x):.1%}")
for name, images in redrawn.items():
    print(f"{name}: follows its digit {follows_its_digit(x, images):+.3f}; "
          f"{differing_pixels(images):5.1%} differ between two reconstructions; swap cost "
          f"{swap_cost(runs[name][0], scored):6.2f} nats")
if TRAINED:
    collapsed, kept = runs["MADE, β = 3"][0], runs["MADE, β = 1"][0]
    assert follows_its_digit(x, redrawn["MADE, β = 3"]) < 0.02 < 0.05 < follows_its_digit(
        x, redrawn["MADE, β = 1"])
    assert differing_pixels(redrawn["MADE, β = 3"]) < 0.5 * differing_pixels(redrawn["MADE, β = 1"])
    assert swap_cost(collapsed, scored) < 1 < 50 < swap_cost(kept, scored)

# %% [markdown]
# The collapsed model's reconstructions agree with their own digits hardly more often than
# with any other (less than 2 % of the pixels, against more than 5 % for $\beta = 1$), and they
# differ from each other in less than half as many pixels as those of $\beta = 1$. Handed
# another digit's code, the $\beta = 1$ decoder scores a test image far worse, by more than
# fifty nats; the collapsed decoder barely notices, by less than a nat. It ignores $z$.
#
# ### Two cures: KL warm-up and free bits
#
# **KL warm-up** (Bowman et al. 2016; Sønderby et al. 2016) ramps $\beta$ from 0 up to its
# final value over the first epochs, so the encoder learns to use $z$ before the KL term
# charges its full price. `Objective(warmup_epochs=2)` ramps over the first two of the four
# epochs.
#
# **Free bits** (Kingma et al. 2016) change the KL term instead: the KL of each latent
# dimension, averaged over the batch, is replaced by $\max(\lambda, \mathrm{KL}_j)$,
#
# $$
# \text{loss} = \text{reconstruction}
#   + \beta \sum_{j=1}^{L} \max\big(\lambda,\ \overline{\mathrm{KL}}_j\big),\qquad
# \overline{\mathrm{KL}}_j = \text{the KL of dimension } j \text{, averaged over the batch}.
# $$
#
# Below $\lambda$ nats a dimension pays $\lambda$ whatever it does: a constant, so the KL term
# no longer pushes it toward the prior. Above $\lambda$ it pays its KL as usual.
# `fit(..., objective=Objective(free_bits=0.5))` trains with $\lambda = 0.5$ nats per
# dimension (the formula is `companion.losses.free_bits_kl`). Only the training objective
# changes: the test numbers are still the true ELBO. Train both cures with $\beta = 3$, the setting that collapsed.

# %% tags=["nbval-ignore-output"]
FREE_BITS = 0.5   # nats per latent dimension
CURES = {"MADE, β = 3, warm-up": (AutoregressiveVAE,
                                 dict(beta=3.0, warmup_epochs=COLLAPSE_FIT["epochs"] / 2)),
         "MADE, β = 3, free bits": (AutoregressiveVAE, dict(beta=3.0, free_bits=FREE_BITS))}
SETTINGS.update(CURES)
runs.update({name: train_run(kind, objective) for name, (kind, objective) in CURES.items()})
rows = print_rows(runs)

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4))
made_runs = [name for name in runs if name.startswith("MADE")]
for i, name in enumerate(made_runs):
    axes[0].bar(torch.arange(1, 21) + (i - 1.5) * 0.2, rows[name]["kl_u"].clamp(min=1e-4).cpu(),
                width=0.2, label=name)
    axes[1].plot(range(1, len(runs[name][1].test_kl) + 1), runs[name][1].test_kl, "o-", label=name)
axes[0].axhline(FREE_BITS, color="k", ls=":", label=f"free-bits floor λ = {FREE_BITS}")
axes[0].set(yscale="log", xticks=range(1, 21), xlabel="latent dimension",
            ylabel="KL (nats, test-set mean)", title="KL of each latent dimension after training")
axes[1].set(xlabel="epoch", ylabel="test KL (nats per image)", title="Test KL, epoch by epoch",
            xticks=range(1, COLLAPSE_FIT["epochs"] + 1))
axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
axes[0].legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
plt.show()

# %% [markdown]
# Left, on a log scale: one group of four bars per latent dimension, one bar per MADE model.
# Compare the bars of the collapsed model and of the two cures with the dotted free-bits
# floor. Right: how the test KL of each model moved from epoch to epoch. The numbers:

# %% tags=["nbval-ignore-output"]
warm, free = rows["MADE, β = 3, warm-up"], rows["MADE, β = 3, free bits"]
warm_kl = runs["MADE, β = 3, warm-up"][1].test_kl
print(f"warm-up: test KL by epoch {[round(kl, 2) for kl in warm_kl]} nats; swap cost "
      f"{swap_cost(runs['MADE, β = 3, warm-up'][0], scored):.2f} nats")
print(f"free bits: KL per dimension from {free['kl_u'].min():.2f} to {free['kl_u'].max():.2f} "
      f"nats; swap cost {swap_cost(runs['MADE, β = 3, free bits'][0], scored):.2f} nats")
freed = redraw(runs["MADE, β = 3, free bits"][0], x)
print(f"free bits: reconstructions follow their digits {follows_its_digit(x, freed):+.3f}")

# %%
if TRAINED:
    assert warm_kl[0] > 5 and all(a > b for a, b in zip(warm_kl, warm_kl[1:])) and warm_kl[-1] < 1
    assert warm["active"] > 0 and warm["kl_u"].max() < 0.1
    assert free["active"] == 20 and 0.7 * FREE_BITS < free["kl_u"].min()
    assert free["kl_u"].max() < 1.3 * FREE_BITS
    assert free["reconstruction"] < made3["reconstruction"] - 5
    assert abs(free["elbo"] - made3["elbo"]) < 1
    assert swap_cost(runs["MADE, β = 3, free bits"][0], scored) > 10
    assert follows_its_digit(x, freed) > 0.05

# %%
show_images(torch.cat([x[:8], freed[:8]]), nrow=8, labels=["test digit", "free bits"],
            title="Free bits, β = 3: reconstructions with the same coin flips")
plt.show()

# %% [markdown]
# **Warm-up cannot cure this collapse, by construction; it delays it.** While $\beta$ is
# small the model uses $z$: after the first epoch its test KL is several nats. Then, with $\beta$ on its way to 3
# and at 3, the KL falls epoch after epoch, below one nat by the last. Warm-up helps when
# collapse is an accident of the first steps, when the KL term wins before the encoder has
# learned anything. Here the objective itself prefers the collapsed model, and a slow start
# does not change the objective. (The table still counts some of its units as active: a
# unit counts when its mean varies across images, as in section 4, and these means still
# wiggle a little while their KL is near zero. The KL columns show the collapse.)
#
# **Free bits do cure it.** Every dimension keeps close to its $\lambda = 0.5$ free nats (the
# bars sit at the dotted line), all 20 units are active, the reconstruction term is several
# nats lower than the collapsed model's, the swap cost is back to many nats, and the
# reconstructions follow their digits again. The test ELBO, though, stays within a nat of the
# collapsed model's: the code saves about what it costs. Free bits buy a model that uses its
# code, not a better density model.

# %% [markdown]
# ### Three runs of each, and a stronger decoder
#
# Every row so far is one training run. Train each setting twice more, with other training
# seeds (other initial weights, another order of the batches, other coin flips), and add one
# more setting: a **stronger** decoder, a MADE with two hidden layers instead of one
# (`AutoregressiveVAE(layers=2)`), trained with the plain ELBO. Chen et al. (2017) argue that
# a decoder which can model the images on its own leaves $z$ unused under the plain ELBO,
# since every nat in $z$ costs a nat of KL. The one-layer MADE comes close, within about a nat
# of its ELBO without a code, and still keeps $z$. Does a stronger decoder tip it into the
# classic collapse at $\beta = 1$, the case that warm-up and the aggressive encoder updates
# of He et al. (2019) were made for? Each number below is the mean ± sd over the three runs.

# %% tags=["nbval-ignore-output"]
SEEDS = (0, 10, 20)                  # training seeds: the runs above, and two more
DEEPER = "MADE, 2 layers, β = 1"
SETTINGS[DEEPER] = (functools.partial(AutoregressiveVAE, layers=2), {})
runs[DEEPER] = train_run(*SETTINGS[DEEPER])


def measure(model, history) -> dict:
    """The row of the table above for one trained run, its KL by epoch and its swap cost."""
    return dict(row_of(model, history), first_kl=history.test_kl[0],
                kl_by_epoch=history.test_kl, swap=swap_cost(model, scored))


measured = {name: [measure(*runs[name])] + [measure(*train_run(kind, objective, seed))
                                             for seed in SEEDS[1:]]
            for name, (kind, objective) in SETTINGS.items()}
over = {name: {key: Spread([run[key] for run in results])
               for key in ("kl", "reconstruction", "elbo", "swap")}
        for name, results in measured.items()}
print(f"{'model, training':<24}{'active':>10}{'KL':>24}{'-ELBO':>24}{'swap cost':>26}")
for name, spread in over.items():
    active = "/".join(str(run["active"]) for run in measured[name])
    print(f"{name:<24}{active:>10}{spread['kl']:>24.2f}{spread['elbo']:>24.2f}"
          f"{spread['swap']:>26.2f}")


def paired(a: str, b: str, key: str) -> Spread:
    """b's number minus a's, run by run (runs with the same training seed paired)."""
    return Spread([rb[key] - ra[key] for ra, rb in zip(measured[a], measured[b])])


worth = paired("MADE, β = 1", "MADE, β = 3", "elbo")
print(f"-ELBO of the collapsed MADE minus the MADE at β = 1: {worth:.2f} nats")
print(f"-ELBO, collapsed MADE {compare(over['MADE, β = 3']['elbo'], over['MLP, β = 3']['elbo'])}"
      f" MLP at β = 3; free bits minus collapsed: "
      f"{paired('MADE, β = 3', 'MADE, β = 3, free bits', 'elbo'):.2f} nats")
print(f"KL, 2-layer MADE {compare(over[DEEPER]['kl'], over['MADE, β = 1']['kl'])} "
      f"1-layer MADE, both at β = 1")
at_beta3 = {name: Spread([r["reconstruction"] + 3 * r["kl"] for r in measured[name]])
            for name in ("MADE, β = 3", "MADE, β = 3, free bits")}
print(f"the β = 3 objective, reconstruction + 3 KL: collapsed {at_beta3['MADE, β = 3']:.1f}, "
      f"free bits {at_beta3['MADE, β = 3, free bits']:.1f}")

# %%
if TRAINED:
    for run in range(len(SEEDS)):   # what the single runs showed, in every run
        made1, made3, mlp3, warm, free, deeper = (measured[name][run] for name in SETTINGS)
        assert made1["active"] == 20 and made1["kl"] > 10 and made1["swap"] > 50
        assert made3["kl"] < 0.2 and made3["kl_u"].max() < 0.05 and made3["swap"] < 1
        assert mlp3["active"] >= 15 and mlp3["kl"] > 8
        assert warm["first_kl"] > 5 and warm["kl"] < 1 and all(
            a > b for a, b in zip(warm["kl_by_epoch"], warm["kl_by_epoch"][1:]))
        assert free["active"] == 20 and 0.7 * FREE_BITS < free["kl_u"].min()
        assert free["kl_u"].max() < 1.3 * FREE_BITS and free["swap"] > 10
        assert deeper["active"] == 20 and deeper["kl"] > 5 and deeper["swap"] > 50
    assert 0 < worth.interval[0] and worth.interval[1] < 2.5          # z is worth about a nat
    assert paired("MADE, β = 3", "MLP, β = 3", "elbo").interval[0] > 10
    close = paired("MADE, β = 3", "MADE, β = 3, free bits", "elbo")
    assert -1 < close.interval[0] and close.interval[1] < 1
    assert paired("MADE, β = 3, free bits", "MADE, β = 3", "reconstruction").interval[0] > 5
    assert at_beta3["MADE, β = 3"].below(at_beta3["MADE, β = 3, free bits"])
    assert over[DEEPER]["kl"].below(over["MADE, β = 1"]["kl"])

# %% [markdown]
# In each of the three runs: the one-layer MADE keeps all 20 units at $\beta = 1$ and
# collapses at $\beta = 3$, where a swapped code costs it under a nat; warm-up starts with
# several nats of KL and loses some every epoch, ending below one; free bits keep every unit
# near its floor and a swapped code costs many nats; the MLP decoder keeps most of its units.
# The gaps between models hold over the runs too, each as the 95 % interval of a difference
# paired by seed: the code is worth about a nat of ELBO to the MADE (between 0 and 2.5 nats),
# the collapsed MADE beats the MLP VAE at $\beta = 3$ by more than ten nats, the free-bits
# model's ELBO lies within a nat of the collapsed one's, and its reconstruction term is more
# than five nats lower.
#
# **The stronger decoder does not collapse.** With two hidden layers the MADE needs less of
# $z$: its KL is lower than the one-layer MADE's, beyond the spread of the runs. But it keeps
# all 20 units active in every run, and a swapped code still costs it many nats. At this
# budget, four epochs, the classic collapse of a strong decoder under the plain ELBO does not
# appear, so there is nothing at $\beta = 1$ for a cure to cure. That also leaves out the
# aggressive encoder updates of He et al. (2019): they change the path of training (the encoder
# catches up with the decoder before each decoder step), not the objective. And at $\beta = 3$
# the objective itself favours collapse over these codes: the last line above scores the
# free-bits models, which use their codes, by the $\beta = 3$ objective, and the collapsed
# models score better by many nats.

# %% [markdown]
# ### Pitfall: a mean where a sum belongs · deeper
#
# > **Pitfall.** The question asked most often about VAE code: should the loss *sum* or
# > *average*, and why do some examples carry a `kld_weight`? PyTorch's
# > `F.binary_cross_entropy` averages by default, over the pixels as well as the images. Next
# > to a KL averaged over the batch, that gives
# > $$\frac{1}{784}\,\mathrm{reconstruction} + \mathrm{KL}
# > = \frac{1}{784}\big(\mathrm{reconstruction} + 784\cdot\mathrm{KL}\big),$$
# > the ELBO with a **hidden β = 784**. (The factor in front scales every gradient alike, and
# > Adam undoes such a scale.)
#
# Averaging over the *batch* is harmless: both terms shrink by the same $1/N$. Mixing the two
# is not: a KL summed over the batch next to a reconstruction averaged over it is β = $N$, the
# batch size. Check the identity on one batch of the $L = 20$ model of section 1:

# %% tags=["nbval-ignore-output"]
x, model = test.images[:128], models[20]
torch.manual_seed(1)
logits, mu, logvar = model(x)
averaged = F.binary_cross_entropy_with_logits(logits.view_as(x), x) + kl_divergence(mu, logvar).mean()
per_image = bernoulli_nll(logits, x).mean() + 784 * kl_divergence(mu, logvar).mean()
print(f"784 x (pixel-mean BCE + KL) = {784 * averaged.item():.3f}; "
      f"reconstruction + 784 KL = {per_image.item():.3f}")
assert torch.isclose(784 * averaged, per_image, rtol=1e-5)

# %% [markdown]
# What does a β of 784 do to a model? Train the $L = 20$ MLP VAE of section 1 with it, three
# times with three training seeds, for two epochs each, and compare with the section-1 model
# after its second epoch:

# %% tags=["nbval-ignore-output"]
HIDDEN_BETA_FIT = dict(FIT, epochs=settings.pick(2, 1))
hidden = []
for seed in (0, 10, 20):
    torch.manual_seed(settings.training_seed(seed))
    model = MLPVAE(latent_dim=20, hidden=400).to(device)
    history = checkpoints.train_or_load(model, train, test, **dict(HIDDEN_BETA_FIT, seed=seed),
                                        objective=Objective(beta=784.0))
    hidden.append((model, history))
epoch = HIDDEN_BETA_FIT["epochs"] - 1
reference = histories[20]
print(f"plain ELBO (section 1), after epoch {epoch + 1}: test KL {reference.test_kl[epoch]:.1f} nats, "
      f"reconstruction {reference.test_reconstruction[epoch]:.1f}")
for seed, (model, history) in zip((0, 10, 20), hidden):
    print(f"hidden beta 784, seed {seed:>2}: test KL {history.test_kl[-1]:.4f} nats, reconstruction "
          f"{history.test_reconstruction[-1]:.1f}, active units "
          f"{active_units(encode_all(model, test))} of 20")
if TRAINED:   # in every run: no information in the code, reconstructions of the average digit
    for model, history in hidden:
        assert history.test_kl[-1] < 0.1 and active_units(encode_all(model, test)) == 0
        assert history.test_reconstruction[-1] > reference.test_reconstruction[epoch] + 50

# %%
show_images(torch.cat([test.images[:8], hidden[0][0].reconstruct(test.images[:8]),
                       models[20].reconstruct(test.images[:8])]), nrow=8,
            labels=["test digit", "hidden β = 784", "plain ELBO"],
            title="Reconstructions: a mean over the pixels next to a mean KL")
plt.show()


# %% [markdown]
# In every run the code carries almost nothing, no unit is active, and every test digit
# comes back as the same blur, the average digit: the posterior collapse of this section,
# asked for by a reduction. That is why examples with pixel-averaged losses need a
# `kld_weight` of about 1/784 to work at all: it undoes the hidden β. Sum over the pixels and
# the latent dimensions, average over the batch (or sum it, for both terms alike), and β is
# what you wrote.

# %% [markdown]
# ## Exercises
#
# **Exercise 1 — the IWAE bound from log-weights.** Write `iwae_from_log_weights(log_w)`
# taking a tensor $[k, N]$ of $\log w_i$ and returning IWAE$_k$ for each of the $N$ images,
# $\log\frac1k\sum_i e^{\log w_i}$. Real log-weights are around $-100$ to $-1000$: what
# happens if you take `exp` first?

# %% tags=["solution"]
def iwae_from_log_weights(log_w: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


checks.check_iwae(iwae_from_log_weights)

# %% [markdown]
# **Exercise 2 — the same loss, from `torch.distributions`.** In section 1 you wrote the
# negative ELBO with its formulas spelled out. Write it again without writing any formula:
# `negative_elbo_from_distributions(logits, x, mu, logvar)`, for logits and binary images
# `x` of shape $[N, 784]$ and encoder outputs of shape $[N, L]$, returning one number, the
# negative ELBO averaged over the batch. Use `D.Bernoulli(logits=...)` for $p(x\mid z)$,
# `D.Normal(loc, scale)` for $q(z\mid x)$ and the prior, and `D.kl_divergence` (`D` is
# `torch.distributions`). Mistakes hide in three places: what `Normal` takes as its second
# argument, which dimensions you sum over, and which one you average over. Written this way,
# a different likelihood or prior is a one-line change.

# %% tags=["solution"]
import torch.distributions as D


def negative_elbo_from_distributions(logits, x, mu, logvar):
    """The negative ELBO, averaged over the batch, from torch.distributions objects."""
    likelihood = D.Bernoulli(logits=logits)                          # p(x|z), one per pixel
    posterior = D.Normal(mu, torch.exp(0.5 * logvar))                # q(z|x): scale is sigma
    prior = D.Normal(torch.zeros_like(mu), torch.ones_like(mu))      # p(z) = N(0, I)
    reconstruction = -likelihood.log_prob(x).sum(dim=1)              # [N], summed over pixels
    kl = D.kl_divergence(posterior, prior).sum(dim=1)                # [N], summed over L
    return (reconstruction + kl).mean()


checks.check_elbo_from_distributions(negative_elbo_from_distributions)


# %% [markdown]
# **Exercise 3 (open) — a tighter bound without a better model.** The gap between
# IWAE$_{1000}$ and the ELBO is at most $\mathrm{KL}\big(q(z\mid x)\,\|\,p(z\mid x)\big)$:
# it measures how well the encoder matches *this decoder's* posterior. Predict whether it is
# larger for the $L = 2$ or the $L = 20$ model (`models[2]` and `models[20]` of section 4),
# then measure it with `importance_weighted` on a few hundred binarized test images
# (`test.subset(300)`): with $k = 1000$ each image costs a thousand decoder passes.
#
# **Exercise 4 — free bits, written out.** Write `free_bits_term(mu, logvar, floor)` for
# encoder outputs of shape $[N, L]$: the KL of each latent dimension (the closed form of
# notebook 04, one dimension at a time), averaged over the batch, replaced by
# $\max(\text{floor}, \mathrm{KL}_j)$ and summed over the $L$ dimensions; one number. The
# self-check compares it with `companion.losses.free_bits_kl` and also looks at its gradient:
# a dimension below the floor must get none.

# %% tags=["solution"]
def free_bits_term(mu: torch.Tensor, logvar: torch.Tensor, floor: float) -> torch.Tensor:
    """The KL term with free bits, one number, for encoder outputs mu, logvar [N, L]."""
    kl = 0.5 * (mu**2 + logvar.exp() - logvar - 1)       # [N, L]: each image, each dimension
    return kl.mean(dim=0).clamp(min=floor).sum()          # batch mean, then the floor, then sum


checks.check_free_bits(free_bits_term)

# %% [markdown]
# ## Summary
#
# * A VAE is about fifty lines of PyTorch: an encoder with $\mu$ and $\log\sigma^2$ heads,
#   `reparameterize`, a decoder that returns logits, the negative ELBO (summed over pixels and
#   latent dimensions, averaged over the batch) and a five-move training step. On dynamically
#   binarized MNIST its loss is a real negative ELBO in nats, and training trades KL
#   (information in $z$) for reconstruction.
# * A 2-D latent space can be drawn and walked; decode only where the prior has mass, since a
#   grid over $[-8, 8]^2$, or a walk from $(0, 10)$ to $(0, 5)$, asks the decoder about places
#   it has never seen. Walk between codes of real images instead, such as two class means.
# * Beyond some size, extra latent dimensions stay inactive: their KL is zero and the decoder
#   ignores them. Count active units, don't assume them.
# * Save a model with its description, not a bare `state_dict`; `train_or_load` caches by a hash
#   of the architecture, the training settings, the data and the mode, but not of the initial
#   weights (`make clean-cache` retrains).
# * The importance-weighted bound IWAE$_k$ is at least the ELBO and rises with $k$ toward
#   $\log p(x)$: report it with $k$, epochs, binarization and test subset.
# * A decoder that can model the images on its own (an autoregressive one) may ignore $z$:
#   posterior collapse, a KL of zero in every dimension and reconstructions that do not depend
#   on the input. Here it took $\beta = 3$: under the plain ELBO the MADE decoders, one or two
#   hidden layers, kept all 20 units in each of three runs. Free bits keep a floor of KL per
#   dimension; KL warm-up only delays a collapse that the objective itself prefers.
#
# ## References
#
# * D. P. Kingma, M. Welling. *Auto-Encoding Variational Bayes.* 2013. arXiv:1312.6114.
# * Y. Burda, R. Grosse, R. Salakhutdinov. *Importance Weighted Autoencoders.* 2015.
#   arXiv:1509.00519 (the IWAE bound, active units, and the 86.76-nat baseline).
# * S. R. Bowman et al. *Generating Sentences from a Continuous Space.* 2016. arXiv:1511.06349
#   (KL annealing); C. K. Sønderby et al. *Ladder Variational Autoencoders.* 2016.
#   arXiv:1602.02282 (warm-up).
# * M. Germain, K. Gregor, I. Murray, H. Larochelle. *MADE: Masked Autoencoder for
#   Distribution Estimation.* 2015. arXiv:1502.03509 (the masked autoregressive decoder).
# * D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling. *Improved
#   Variational Inference with Inverse Autoregressive Flow.* 2016. arXiv:1606.04934 (free bits).
# * X. Chen et al. *Variational Lossy Autoencoder.* 2017. arXiv:1611.02731 (why a strong
#   autoregressive decoder ignores $z$).
# * J. He, D. Spokoyny, G. Neubig, T. Berg-Kirkpatrick. *Lagging Inference Networks and
#   Posterior Collapse in Variational Autoencoders.* 2019. arXiv:1901.05534 (aggressive encoder
#   updates).
# * Bogdan Penkovsky, "10 Days of Grad", day 9: the 784-400-L MLP VAE, the latent scatter, the
#   walk over $[-3, 3]^2$ and saving/loading a model.
# * Sigrid Keydana, *Deep Learning and Scientific Computing with R torch*, ch. 16: latent
#   sizes 2 vs 128 and the 8 × 8 grid over $[-8, 8]^2$.
# * A 2018 ML journal-club notebook on VAEs: the 784-400-2 VAE, its embedding scatter and its
#   straight walk through the latent space.
# * 2022 slides "Variational Autoencoder": saving and reloading a model's `state_dict`.
