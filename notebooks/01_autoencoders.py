# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Autoencoders: a digit squeezed through two numbers
#
# You will train a network that compresses each MNIST digit into two numbers and rebuilds it
# from them, look at what those two numbers capture, and find out why such a network cannot,
# on its own, draw new digits.
#
# **Learning objectives.** After this notebook you can
#
# 1. build and train an autoencoder, and compare it with the best *linear* compression (PCA);
# 2. read a two-dimensional latent space: what it keeps, what it throws away, and how to
#    measure that with a linear probe;
# 3. choose between a squared-error and a Bernoulli reconstruction loss, and say what each
#    one assumes about the pixels;
# 4. recognise a "loss" that goes negative because the data break the loss's assumptions;
# 5. explain why decoding random codes from a plain autoencoder fails: holes and an arbitrary
#    scale. This is the problem the variational autoencoder of the next notebooks solves.
#
# **Prerequisites.** Notebook 00 (the data, and why a Bernoulli loss needs pixels in
# $[0, 1]$); Python and PyTorch basics: tensors, `nn.Module`, one optimizer step.
#
# **Time to run:** about 10 s in fast mode (`COURSE_FAST=1`). In full mode about a minute
# on a quiet 2-core CPU the first time, when three networks train, and about 10 s afterwards,
# when they load from the cache in `data/checkpoints/`.

# %%
import copy
import math

import matplotlib.pyplot as plt
import torch
from torch import nn

import companion
from companion import settings
from companion.checkpoints import train_or_load
from companion.checks import autoencoders as checks
from companion.data import Batches, ImageSet, load
from companion.introspect import summary
from companion.latent import (encode_all, fit_class_gaussians, grid, knn_classify,
                              linear_probe, nearest_distance)
from companion.losses import bernoulli_nll, squared_error
from companion.models import Autoencoder
from companion.plots import scatter_latent, show_images
from companion.training import evaluate, fit, make_optimizer, train_step

companion.setup(seed=0, datasets=["mnist"])

# %% [markdown]
# Fast mode uses the same code with smaller numbers: fewer training images, fewer epochs.
# Its networks train for seconds only, too briefly for the comparisons between trained
# models that the text makes; those are asserted only when `TRAINED` is true (full mode).

# %% tags=["nbval-ignore-output"]
N_TRAIN = settings.pick(60_000, 4_000)   # training images
N_TEST = settings.pick(10_000, 2_000)    # test images
EPOCHS = settings.pick(5, 2)
TRAINED = settings.pick(True, False)     # long enough training to compare trained models
device = settings.device()

train = load("mnist", "train").subset(N_TRAIN)
test = load("mnist", "test").subset(N_TEST)
print(f"{len(train)} training and {len(test)} test images, {EPOCHS} epochs")
assert len(train) == N_TRAIN and len(test) == N_TEST

# %% [markdown]
# ## 1. The best linear code: PCA · core
#
# An MNIST image is 784 numbers, one per pixel, but handwritten digits have structure: a
# stroke is a chain of neighbouring dark pixels, a "1" is mostly a slant and a thickness. So a
# handful of numbers may be enough to say which digit you are looking at and how it was
# written. This notebook squeezes each digit into **two** numbers, and first measures how well
# the best *linear* squeeze does.
#
# Principal component analysis (PCA) finds the directions $V$ in pixel space along which the
# images vary most. Keep the first two and you have a 2-number code
# $z = V_2^\top (x - \bar x)$ and a decoder $\hat x = V_2 z + \bar x$. On the images it was
# fitted to, no other linear code of two numbers has a smaller squared error (the
# Eckart–Young theorem), so it is the baseline an autoencoder has to beat. The simplest
# baseline of all keeps zero numbers and answers every image with the mean image $\bar x$.

# %%
x = load("mnist", "train").images[:10_000].flatten(1)   # [10000, 784], the same in both modes
pixel_mean = x.mean(dim=0)                                # [784]
_, s, vt = torch.linalg.svd(x - pixel_mean, full_matrices=False)   # rows of vt: directions


def pca_encode(images: torch.Tensor) -> torch.Tensor:
    return (images.flatten(1) - pixel_mean) @ vt[:2].T          # [N, 784] -> [N, 2]


def pca_decode(z: torch.Tensor) -> torch.Tensor:
    return (z @ vt[:2] + pixel_mean).view(-1, 1, 28, 28)        # [N, 2] -> [N, 1, 28, 28]


def squared_error_on_test(reconstruction: torch.Tensor) -> float:
    """Squared error summed over the pixels, averaged over the test images."""
    return (reconstruction - test.images).pow(2).flatten(1).sum(1).mean().item()


baselines = {"mean image (0 numbers)": squared_error_on_test(pixel_mean.view(1, 1, 28, 28)),
             "PCA (2 numbers)": squared_error_on_test(pca_decode(pca_encode(test.images)))}
assert baselines["PCA (2 numbers)"] < baselines["mean image (0 numbers)"]

# %% [markdown]
# ### How compressible are digits? · deeper
#
# If you pick 784 numbers at random you get noise, never a digit: handwritten digits fill a
# tiny corner of the space of all images. PCA measures how small: if a few directions carry
# most of the variance, the images are compressible.

# %%
explained = s.pow(2).cumsum(0) / s.pow(2).sum()           # variance kept by the first k
for k in (2, 10, 50, 150):
    print(f"{k:3d} of 784 directions keep {explained[k - 1]:.0%} of the pixel variance")
assert explained[49] > 0.75

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1.3, 1]})
noise = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
show_images(torch.cat([x[:8].view(-1, 1, 28, 28), noise]), nrow=8, ax=axes[0],
            labels=["digits", "random pixels"], title="Real digits and random images")
axes[1].plot(range(1, 785), explained)
axes[1].set(xscale="log", xlabel="number of principal directions k",
            ylabel="fraction of variance kept", title="PCA of 10 000 MNIST digits")
plt.show()


# %% [markdown]
# Random pixels look nothing like digits, and the curve climbs steeply: a few dozen directions
# out of 784 carry most of the variation.

# %% [markdown]
# ## 2. The autoencoder · core
#
# An autoencoder replaces PCA's two linear maps with two small neural networks: an
# **encoder** $f_\phi$ that squeezes an image into a code $z$ of $L$ numbers (the
# *bottleneck*), and a **decoder** $g_\theta$ that rebuilds the image from the code.
#
# $$z = f_\phi(x) \in \mathbb{R}^L, \qquad \hat x = g_\theta(z), \qquad
# \min_{\phi,\theta} \; \sum_{\text{images}} \lVert x - \hat x \rVert^2 .$$
#
# Nobody tells the network what the code should mean. The only pressure is that $\hat x$ must
# look like $x$, and everything the decoder needs has to pass through $L$ numbers. You will
# use $L = 2$ throughout, so that you can draw the latent space.
#
# Here is the 784-400-$L$-400-784 network of the Hasktorch tutorial (10 Days of Grad),
# written out in full, with two changes. First, the tutorial's autoencoder puts a ReLU on the
# code as well; this course leaves the code layer linear, so a code can take any real value.
# Second, the tutorial ends the decoder with a sigmoid; here the decoder ends with one *logit*
# per pixel, and $\sigma(\text{logit})$, the sigmoid, is applied outside the network (by the
# loss, or when you want pixel intensities in $[0, 1]$). Section 5 and exercise 1 show why.

# %%
class TinyAutoencoder(nn.Module):
    """784 -> hidden -> L -> hidden -> 784 with ReLU in between."""

    def __init__(self, latent_dim: int = 2, hidden: int = 400):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(),          # 784 -> hidden
                                     nn.Linear(hidden, latent_dim))              # -> L
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),   # L -> hidden
                                     nn.Linear(hidden, 784))                     # -> 784

    def forward(self, x: torch.Tensor) -> torch.Tensor:    # x: [N, 1, 28, 28]
        z = self.encoder(x.flatten(1))                     # [N, L], the code
        return self.decoder(z).view(-1, 1, 28, 28)         # logits; sigmoid gives pixels


# %% [markdown]
# The course package has the same network as `companion.models.Autoencoder`, with `encode`,
# `decode` and `reconstruct` methods that later notebooks use. Check that the two are the
# same function: copy the weights of one into the other and compare the outputs.

# %%
torch.manual_seed(0)
ours, package = TinyAutoencoder(2, 400), Autoencoder(latent_dim=2, hidden=400)
package.load_state_dict(ours.state_dict())     # same layer names, same shapes
batch = test.images[:5].cpu()
assert torch.equal(package(batch), ours(batch))
layers = summary(package, batch)
assert layers[2] == ("encoder.2", (5, 2))      # the bottleneck: two numbers per image
# the two changes: a linear code layer and a linear output layer (logits), no ReLU or sigmoid
assert isinstance(ours.encoder[-1], nn.Linear) and isinstance(ours.decoder[-1], nn.Linear)


# %% [markdown]
# The network outputs logits; the objective above compares the image with the pixels they
# stand for, $\hat x = \sigma(\text{logits})$.
#
# **Your turn (5 min).** Write that loss: `squared_error_loss(logits, x)` takes the decoder's
# logits and the images, both `[N, 1, 28, 28]`, and returns $\lVert x - \sigma(\text{logits})
# \rVert^2$ for each image, the squared differences summed over its 784 pixels: one number
# per image, shape `[N]` (training averages them over a batch). The self-check names the
# usual mistakes; the cells below score the trained networks with your function once it
# passes.

# %% tags=["solution"]
def squared_error_loss(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """||x - sigmoid(logits)||^2, summed over the pixels of each image: [N]."""
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(dim=1)


# %%
squared_error_loss = checks.check_squared_error_loss(squared_error_loss)


# %% [markdown]
# The 2018 journal-club notebook used a slimmer network, 784-100-2-100-784. You will train
# both with this squared error (the course's copy is `companion.losses.squared_error`), with
# Adam at learning rate $10^{-3}$ and batches of 128.
# The loss belongs to the model: `Autoencoder(..., likelihood="squared_error")` trains on it,
# and `evaluate(model, test)` reports it. `train_or_load` trains a model once and caches it, so
# running the notebook again loads it.

# %%
def train_autoencoder(hidden: int, likelihood: str):
    """Build (with a fixed seed), train or load, and return an Autoencoder and its History."""
    torch.manual_seed(0)
    model = Autoencoder(latent_dim=2, hidden=hidden, likelihood=likelihood).to(device)
    history = train_or_load(model, train, test, epochs=EPOCHS, seed=0, progress=False)
    return model, history


# %% tags=["nbval-ignore-output"]
ae, ae_history = train_autoencoder(400, likelihood="squared_error")       # 784-400-2-400-784
slim, slim_history = train_autoencoder(100, likelihood="squared_error")   # 784-100-2-100-784
for h in (ae_history, slim_history):
    assert h.loss[-1] < h.loss[0] and h.test_loss[-1] < h.test_loss[0]
print(f"test squared error per image: 400 hidden {ae_history.test_loss[-1]:.2f}, "
      f"100 hidden {slim_history.test_loss[-1]:.2f}")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, h in [("784-400-2-400-784", ae_history), ("784-100-2-100-784", slim_history)]:
    ax.plot(range(1, h.epochs + 1), h.test_loss, "o-", label=name)
for name, value in baselines.items():
    ax.axhline(value, ls="--", c="gray")
    ax.annotate(name, (1, value), va="bottom", fontsize=8, color="gray")
ax.set(title="Test reconstruction error while training", xlabel="epoch",
       ylabel="squared error per image")
ax.legend()
plt.show()

# %% [markdown]
# The dashed lines are the two baselines from section 1. After one epoch both networks are
# already below them, and they keep improving; the wider network stays ahead. The numbers,
# scored with your `squared_error_loss`:

# %% tags=["nbval-ignore-output"]
errors = dict(baselines)
for name, model in [("autoencoder 784-100-2-100-784", slim), ("autoencoder 784-400-2-400-784", ae)]:
    with torch.no_grad():
        errors[name] = squared_error_loss(model(test.images), test.images).mean().item()
    assert math.isclose(errors[name], evaluate(model, test).total, rel_tol=1e-4)  # its own loss
for name, value in errors.items():
    print(f"{name:32s} {value:6.2f}")
wide, narrow = errors["autoencoder 784-400-2-400-784"], errors["autoencoder 784-100-2-100-784"]
pca = errors["PCA (2 numbers)"]
assert wide < errors["mean image (0 numbers)"]
if TRAINED:   # the comparisons the text makes
    assert wide < narrow < pca
    assert max(ae_history.test_loss[0], slim_history.test_loss[0]) < pca   # after one epoch
    assert all(a < b for a, b in zip(ae_history.test_loss, slim_history.test_loss))

# %% [markdown]
# With the same two numbers per image, both autoencoders beat PCA, and the wider network
# beats the slimmer one. The nonlinear encoder can bend its two coordinates along the data,
# where PCA has to use two straight directions. (In fast mode the networks train for a few
# seconds only and may not get past PCA.)
#
# ## 3. What the reconstructions look like · core
#
# Numbers hide *how* a reconstruction fails. Take the first test image of each class and
# show it above its PCA and autoencoder reconstructions.

# %%
first_of_each = torch.stack([(test.labels == k).nonzero()[0, 0] for k in range(10)])
originals = test.images[first_of_each]                                 # [10, 1, 28, 28]
rows = [originals, pca_decode(pca_encode(originals)), ae.reconstruct(originals)]
show_images(torch.cat(rows), nrow=10, labels=["original", "PCA, 2 numbers", "AE, 2 numbers"],
            title="Test digits and their reconstructions from two numbers")
plt.show()

# %% [markdown]
# PCA gives grey ghosts that share a rough outline. The autoencoder's reconstructions are
# sharper, but only about half of them are clearly the right digit. Two numbers cannot hold
# everything: the other digits come back as a similar-looking class or a blur, and the
# particular style of the writing (a curl, an open loop) is mostly lost.
#
# ## 4. The latent space · core
#
# Every test image now has a code $z = (z_1, z_2)$. Plot the codes, coloured by the digit's
# label. The autoencoder never saw a label; any grouping by class is something it found on
# its own because it helps reconstruction.

# %%
codes = {"PCA": pca_encode(test.images), "autoencoder": encode_all(ae, test)}
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
for ax, (name, z) in zip(axes, codes.items()):
    scatter_latent(z, test.labels, ax=ax, title=f"{name} codes of the test set")
plt.show()

# %% [markdown]
# In the PCA plane only a few classes (the 0s, the 1s) stand apart; the others pile on top of
# each other. The autoencoder's codes form clearer groups, several classes with a region of
# their own, while some similar-looking classes still share theirs.
#
# How much of the *label* survives the squeeze? A **linear probe** answers with a number:
# train a logistic-regression classifier on the codes of training images and measure its
# accuracy on the test codes. A straight cut cannot follow curved groups, so also try a
# $k$-nearest-neighbour vote, which can. Chance is 10 %.

# %% tags=["nbval-ignore-output"]
N_PROBE = settings.pick(10_000, 2_000)
probe_set = train.subset(N_PROBE)
train_codes = {"PCA": pca_encode(probe_set.images), "autoencoder": encode_all(ae, probe_set)}
probe = {}
for name in codes:
    probe[name] = linear_probe(train_codes[name], probe_set.labels, codes[name], test.labels)
    knn = knn_classify(codes[name], train_codes[name], probe_set.labels, k=10)
    knn_acc = (knn == test.labels).float().mean().item()
    print(f"{name:12s} linear probe {probe[name]:.1%}   10-nearest neighbours {knn_acc:.1%}")
    assert probe[name] > 0.2 and knn_acc > 0.2      # well above chance (10 %)
probe["pixels"] = linear_probe(probe_set.images.flatten(1), probe_set.labels,
                               test.images.flatten(1), test.labels)
print(f"{'raw pixels':12s} linear probe {probe['pixels']:.1%}   (784 numbers per image)")
if TRAINED:
    assert probe["pixels"] > probe["autoencoder"] > probe["PCA"] + 0.05

# %% [markdown]
# Two numbers from the autoencoder keep clearly more class information than two numbers from
# PCA, but far from all that a linear classifier finds in the raw 784 pixels. The bottleneck
# keeps what matters most for redrawing the *pixels*, and that only partly coincides with the
# label.
#
# ## 5. Squared error or Bernoulli? · deeper
#
# The squared error is not the only way to score a reconstruction, and it makes a hidden
# assumption. Minimising $\lVert x - \hat x\rVert^2$ is the same as maximising the
# likelihood of a Gaussian $\mathcal N(x;\, \hat x,\, \sigma^2 I)$ with a fixed $\sigma$:
# the pixel is the prediction plus symmetric noise, and a pixel can be any real number.
#
# MNIST pixels are not like that. They live in $[0, 1]$ and most of them sit at one end or
# the other:

# %%
pixels = load("mnist", "test").images
near_ends = ((pixels < 0.1) | (pixels > 0.9)).float().mean().item()
print(f"{near_ends:.1%} of all test pixels are below 0.1 or above 0.9")
assert near_ends > 0.9

# %% [markdown]
# That suggests treating each pixel as a coin that lands "ink" with probability
# $p_i = \sigma(a_i)$, where $a_i$ is the decoder's logit. The negative log-likelihood of the
# image is the **binary cross-entropy** (BCE):
#
# $$-\log p(x \mid z) = -\sum_{i=1}^{784} \Big[x_i \log p_i + (1 - x_i)\log(1 - p_i)\Big].$$
#
# For grey pixels ($0 < x_i < 1$) this is a cross-entropy between two coins rather than a
# likelihood, but it still has its minimum at $p_i = x_i$. `companion.losses.bernoulli_nll`
# computes it from the logits with `binary_cross_entropy_with_logits`, which never takes the
# log of 0 (no `+1e-10` needed).
#
# There is also a practical difference. Look at the gradient with respect to the logit $a$ of
# one pixel. For BCE it is $\sigma(a) - x$. For the squared error it is
# $2(\sigma(a) - x)\,\sigma'(a)$, and $\sigma'(a)$ is tiny when $a$ is far from 0. A pixel the
# decoder gets confidently wrong hardly moves under the squared error. Check it:

# %%
a = torch.tensor([-8.0, -2.0, 0.0], requires_grad=True)   # three logits, all pixels truly ink
target = torch.ones(3)
grad_bce, = torch.autograd.grad(bernoulli_nll(a[None], target[None]).sum(), a)
grad_se, = torch.autograd.grad(squared_error(a[None], target[None]).sum(), a)
print("logit       ", a.tolist())
print("BCE gradient", [round(g, 4) for g in grad_bce.tolist()])
print("SE gradient ", [round(g, 4) for g in grad_se.tolist()])
assert abs(grad_bce[0]) > 1000 * abs(grad_se[0])

# %% [markdown]
# At logit −8 (the decoder is sure there is no ink, and it is wrong) the BCE gradient is
# still about −1, while the squared-error gradient has all but vanished. Now train the same
# 784-400-2-400-784 network with the Bernoulli loss and compare the two on *both* measures.

# %% tags=["nbval-ignore-output"]
ae_bce, ae_bce_history = train_autoencoder(hidden=400, likelihood="bernoulli")
assert ae_bce_history.test_loss[-1] < ae_bce_history.test_loss[0]
@torch.no_grad()
def test_error(model, loss) -> float:
    """The mean over the test set of loss(logits, x) per image, whatever the model trained on."""
    return loss(model(test.images), test.images).mean().item()


table = {name: [test_error(model, loss) for loss in (squared_error, bernoulli_nll)]
         for name, model in [("trained with squared error", ae), ("trained with BCE", ae_bce)]}
assert math.isclose(table["trained with BCE"][1], evaluate(ae_bce, test).total, rel_tol=1e-3)
print(f"{'':28s} {'test squared error':>19s} {'test BCE':>9s}")
for name, (se, bce) in table.items():
    print(f"{name:28s} {se:19.2f} {bce:9.1f}")
assert table["trained with BCE"][1] < table["trained with squared error"][1]
if TRAINED:   # about as good on the other model's measure
    assert table["trained with BCE"][0] < 1.05 * table["trained with squared error"][0]

# %%
rows = [originals, ae.reconstruct(originals), ae_bce.reconstruct(originals)]
show_images(torch.cat(rows), nrow=10, labels=["original", "squared error", "Bernoulli (BCE)"],
            title="The same network trained with two reconstruction losses")
plt.show()

# %% [markdown]
# The Bernoulli model wins clearly on its own measure, and on the squared error, the measure
# the other model was trained for, it is about as good. In the pictures both models keep the
# same kind of information; they differ in which digits they confuse and in how bold the
# strokes come out. From here on you will use the Bernoulli model, as the VAEs of the later
# notebooks do.
#
# > **Pitfall: a "loss" that goes negative.** The BCE formula assumes $0 \le x_i \le 1$
# > (notebook 00 showed why, without training anything). Image pipelines often *standardise*
# > pixels instead, $x \mapsto (x - \text{mean}) / \text{std}$, which maps ink to about
# > $+2.8$ and background to about $-0.4$. The 2018 journal-club notebook fed such data to
# > BCE and printed an epoch loss of about −19 000. Try it on 2 000 standardised images:

# %% tags=["nbval-ignore-output"]
small = train.subset(2_000)
mean, std = small.images.mean(), small.images.std()
standardised = ImageSet((small.images - mean) / std, small.labels, small.classes,
                        small.tag + "~standardised")
print(f"standardised pixels range from {standardised.images.min():.2f} "
      f"to {standardised.images.max():.2f}")
try:
    fit(Autoencoder(2, 100, likelihood="bernoulli").to(device), standardised, epochs=3,
        progress=False)
    refused = ""
except ValueError as err:
    refused = str(err)
print(refused)
assert refused.startswith("The Bernoulli likelihood needs pixels in [0, 1]")

# %% [markdown]
# > `fit` checks the range of the pixels before it trains, and refuses. What would the
# > training have done? `train_step`, the one step inside `fit`, trusts its inputs: run three
# > epochs of it by hand.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
broken = Autoencoder(2, 100).to(device)
optimizer, batches = make_optimizer(broken), Batches(standardised, 128, seed=0)
epoch_losses = []
for epoch in range(3):
    losses = [train_step(broken, optimizer, x).total.item() for x, _ in batches]
    epoch_losses.append(sum(losses) / len(losses))
print("BCE per image, epoch by epoch:", [round(v, 1) for v in epoch_losses])
assert epoch_losses[-1] < 0 and epoch_losses[-1] < epoch_losses[-2]


# %% [markdown]
# > The loss falls below zero and keeps falling. Look at one pixel with target $t$ and logit
# > $a$: its BCE is $\ell_t(a) = \log(1 + e^{a}) - t\,a$. For $t \in [0, 1]$ this has a
# > minimum, at $\sigma(a) = t$, and the minimum is $\ge 0$. For $t > 1$ the slope
# > $\sigma(a) - t$ is negative everywhere, so the loss has no minimum at all: pushing $a$ to
# > $+\infty$ drives it to $-\infty$. The optimiser happily does that, and the "loss" measures
# > nothing.

# %%
def pixel_bce(a: torch.Tensor, t: float) -> torch.Tensor:
    """BCE of one pixel with target t, for each logit in a."""
    target = torch.full_like(a, t)
    return nn.functional.binary_cross_entropy_with_logits(a, target, reduction="none")


a = torch.linspace(-6, 6, 201)                     # logits, a = 0 included
targets = (0.0, 0.5, 1.0, round(standardised.images.max().item(), 1))
fig, ax = plt.subplots(figsize=(6, 3.5))
for t in targets:
    ax.plot(a, pixel_bce(a, t), label=f"target t = {t}")
ax.axhline(0, c="gray", lw=0.8)
ax.set(title="BCE of one pixel as a function of its logit", xlabel="logit a",
       ylabel="loss $\\ell_t(a)$", ylim=(-8, 8))
ax.legend()
plt.show()
assert all((pixel_bce(a, t).min() >= 0) == (t <= 1) for t in targets)
assert torch.isclose(pixel_bce(a, 0.5).min(), torch.tensor(math.log(2)))   # at a = 0

# %% [markdown]
# > For targets in $[0, 1]$ each curve has a bottom at or above zero (at $t = 0.5$ the bottom
# > is $\log 2$, at $a = 0$). The curve for a standardised ink pixel has no bottom. **The fix**:
# > keep pixels in $[0, 1]$ when you use a Bernoulli loss (the course's `load` does), or use a
# > loss that accepts any real number, such as the squared error. Same network, same images,
# > unstandardised:

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
fixed = fit(Autoencoder(2, 100, likelihood="bernoulli").to(device), small, epochs=3,
            progress=False)
print("BCE per image, epoch by epoch:", [round(v, 1) for v in fixed.loss])
assert min(fixed.loss) > 0 and fixed.loss[-1] < fixed.loss[0]

# %% [markdown]
# Positive and decreasing, as a negative log-likelihood should be. How low *can* it go? Not to
# zero: notebook 00 (its exercise 2) showed that no decoder can bring an image's BCE below
# the entropy of its pixels, $\sum_i H(x_i)$. Compare the Bernoulli autoencoder with that
# floor; the gap is what the two-number bottleneck costs.

# %% tags=["nbval-ignore-output"]
entropy = -(torch.xlogy(test.images, test.images)                      # H(x_i) per pixel,
            + torch.xlogy(1 - test.images, 1 - test.images))          # 0 log 0 counts as 0
floor = entropy.flatten(1).sum(1).mean().item()     # notebook 00's floor, mean over the test set
test_bce = evaluate(ae_bce, test).total     # ae_bce's own loss: the Bernoulli one
print(f"test BCE {test_bce:.1f} nats per image; floor {floor:.1f}; gap {test_bce - floor:.1f}")
assert test_bce > floor > 0

# %% [markdown]
# ## 6. Can a plain autoencoder generate? · core
#
# The decoder turns any two numbers into an image. So why not pick random codes, decode them,
# and get new digits? To do that you need to know *which* random codes. Take the
# 784-400-2-400-784 autoencoder trained with the Bernoulli loss, a binary cross-entropy that
# suits MNIST's nearly black-and-white pixels (the deeper section *Squared error or
# Bernoulli?* trains it; here it loads from the cache), and try the obvious choice, a
# standard normal $z \sim \mathcal N(0, I)$. Where do the codes of real images actually lie?

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
ae_bce = Autoencoder(latent_dim=2, hidden=400, likelihood="bernoulli").to(device)
train_or_load(ae_bce, train, test, epochs=EPOCHS, seed=0, progress=False)   # loads once trained
known = train.subset(settings.pick(10_000, 2_000))   # training images that show where codes lie
test_codes, train_codes = encode_all(ae_bce, test), encode_all(ae_bce, known)   # [N, 2] each
lo, hi = test_codes.min(dim=0).values, test_codes.max(dim=0).values
sd = test_codes.std(dim=0)
print(f"z1 ranges over [{lo[0]:.1f}, {hi[0]:.1f}], z2 over [{lo[1]:.1f}, {hi[1]:.1f}]")
print(f"standard deviations {sd[0]:.1f} and {sd[1]:.1f} (a standard normal has 1 and 1)")
inside = (test_codes.norm(dim=1) < 3).float().mean().item()
print(f"within radius 3 of the origin: {inside:.0%} of the test codes, "
      f"{1 - math.exp(-9 / 2):.0%} of standard-normal draws")
assert inside < 0.9

# %% [markdown]
# Nothing in the training asked the codes to have any particular size, and they do not look
# like draws from $\mathcal N(0, I)$. Worse, **the scale of the codes is arbitrary**. Multiply
# the encoder's last layer by $c$, so every code becomes $c\,z$, and divide the weights of the
# decoder's first layer by $c$. That layer computes $W z + b$, and $(W / c)(c\,z) + b = W z + b$:
# the twin network reconstructs every image exactly as before, so it has exactly the same
# loss. The training objective cannot prefer one scale over another, so nothing tells you
# which distribution to draw codes from. (The deeper part at the end of this section builds
# the twin and samples from both.)
#
# Suppose you sidestep the scale problem and sample uniformly over the box that holds the
# test codes. The next problem is **holes**: regions of the box where no real image has its
# code. The decoder was never trained there, and what it draws there is anybody's guess.
#
# To find the holes, measure how far a point is from the nearest code of a training image.
# Call a point "in a hole" when it is farther than 99 % of the *test* codes are, so real
# unseen digits almost never count as holes.

# %% tags=["nbval-ignore-output"]
radius = nearest_distance(test_codes, train_codes).quantile(0.99)
points = grid((lo[0].item(), hi[0].item()), (lo[1].item(), hi[1].item()), steps=15).to(device)
in_hole = nearest_distance(points, train_codes) > radius
print(f"hole radius {radius:.2f}; {in_hole.float().mean():.0%} of a 15 x 15 grid "
      f"over the box of test codes lies in holes")
assert 0 < in_hole.float().mean() < 1

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
scatter_latent(test_codes, test.labels, ax=axes[0], title="Test codes and a grid over their box")
axes[0].scatter(*points[~in_hole].T.cpu(), marker="+", c="k", s=30, label="near data")
axes[0].scatter(*points[in_hole].T.cpu(), marker="x", c="r", s=30, label="in a hole")
axes[0].legend(loc="lower right")
show_images(torch.sigmoid(ae_bce.decode(points)).detach(), nrow=15, ax=axes[1],
            title="The grid decoded (same layout)")
plt.show()

# %% [markdown]
# Near the codes of real digits the decoded grid shows clear digits that morph into each
# other; along the long streak of 1s, for example, the slant and the thickness change
# gradually. In the holes (red crosses) it shows thick smeared shapes, or stretched copies of
# whichever digit lies in that direction.
#
# **The lesson.** A plain autoencoder learns codes that are good for reconstruction and
# nothing else. Their scale is arbitrary, their shape is whatever the training found, and
# the space between them is unused. To generate, you want the opposite: a fixed, simple
# distribution $p(z)$ to sample from, and a decoder that has learned to turn *every* likely
# $z$ into a plausible image. The variational autoencoder gets both by adding a term to the
# loss that pulls each code towards $\mathcal N(0, I)$; the next notebooks derive it.

# %% [markdown]
# ### The scale, tried out · deeper
#
# The Hasktorch tutorial (10 Days of Grad) also found large values coming out of an encoder,
# that of its *VAE*, whose means $\mu$ it plots for the test set. It blamed the unbounded ReLU
# and suggested `tanh` instead. That VAE's ReLU sits on the hidden layer (its $\mu$ head is
# linear, like this course's code layer); a `tanh` there would bound the hidden units, and
# with them how far a linear head can reach. This autoencoder has the same ReLU hidden layer
# and a linear code layer, and its codes reach large values, negative ones too; the deeper
# reason is the arbitrary scale. Build the twin with $c = 10$:

# %%
c = 10.0
twin = copy.deepcopy(ae_bce)
with torch.no_grad():
    twin.encoder[-1].weight.mul_(c)     # codes become c * z
    twin.encoder[-1].bias.mul_(c)
    twin.decoder[0].weight.div_(c)      # ... and the decoder undoes the factor
batch = test.images[:256]
assert torch.allclose(twin.encode(batch), c * ae_bce.encode(batch), rtol=1e-5, atol=1e-4)
assert torch.allclose(twin(batch), ae_bce(batch), rtol=1e-4, atol=1e-4)
print("same reconstructions, codes 10 times larger")

# %% [markdown]
# So "decode $z \sim \mathcal N(0, I)$" means something different for two equally good
# networks. Decode the same 16 standard-normal draws with both:

# %%
z = torch.randn(16, 2, generator=torch.Generator().manual_seed(1)).to(device)
samples = {name: torch.sigmoid(model.decode(z)).detach() for name, model in
           [("autoencoder", ae_bce), ("its twin (c = 10)", twin)]}
show_images(torch.cat(list(samples.values())), nrow=16, labels=list(samples),
            title="The same draws z ~ N(0, I), decoded by two equivalent networks")
plt.show()
spread = {name: torch.pdist(s.flatten(1)).mean().item() for name, s in samples.items()}
assert spread["its twin (c = 10)"] < spread["autoencoder"]

# %% [markdown]
# For the twin, the standard normal covers only a tiny patch at the centre of its codes, so
# its 16 samples are nearly the same picture. For the original network they vary more, but
# they still come from the crowded centre only. Count which class each of many draws lands
# among (a 10-nearest-neighbour vote among the training codes), and compare with the data:

# %% tags=["nbval-ignore-output"]
draws = torch.randn(2_000, 2, generator=torch.Generator().manual_seed(4)).to(device)
landed = {"real training images": known.labels,
          "N(0, I), autoencoder": knn_classify(draws, train_codes, known.labels),
          "N(0, I), twin": knn_classify(draws / c, train_codes, known.labels)}  # twin: z/c
print(f"{'share of class':22s}" + "".join(f"{k:>5d}" for k in range(10)))
shares = {name: labels.bincount(minlength=10) / len(labels) for name, labels in landed.items()}
for name, share in shares.items():
    print(f"{name:22s}" + "".join(f"{v:5.0%}" for v in share.tolist()))
assert shares["real training images"].min() > 0.08                # the data: all classes
assert shares["N(0, I), autoencoder"].min() < 0.02 and shares["N(0, I), twin"].max() > 0.5

# %% [markdown]
# Every digit makes up about a tenth of the data. The standard-normal draws miss some classes
# almost entirely and overrepresent others, and the twin's draws crowd into a few classes.
# Nothing fixes the scale, so nothing tells you which distribution to draw from.

# %% [markdown]
# ### Sampling from a Gaussian per class · deeper
#
# The journal-club notebook tried a smarter idea: fit a Gaussian to the codes of each class
# and sample from it. This avoids the scale problem, because the Gaussians are fitted to
# where the codes really are. Does it avoid the holes?

# %%
gaussians = fit_class_gaussians(train_codes, known.labels)
z, wanted = gaussians.sample_each(8, generator=torch.Generator().manual_seed(2))   # [80, 2]
images = torch.sigmoid(ae_bce.decode(z)).detach()
show_images(images, nrow=8, labels=[f"class {k}" for k in range(10)],
            title="Decoded samples from a Gaussian fitted to each class's codes")
plt.show()

# %% [markdown]
# Only a few rows show their own digit most of the time. In other rows many samples come out
# as a neighbouring digit, and some are smudges. Measure it on more samples: how many land
# in a hole, and how many land among codes of the class they were drawn for (a
# 10-nearest-neighbour vote among the training codes)? Compare with real test codes, which
# set the ceiling.

# %% tags=["nbval-ignore-output"]
z, wanted = gaussians.sample_each(200, generator=torch.Generator().manual_seed(3))
hole_rate = (nearest_distance(z, train_codes) > radius).float().mean().item()
right_class = (knn_classify(z, train_codes, known.labels) == wanted).float().mean().item()
real = (knn_classify(test_codes, train_codes, known.labels) == test.labels).float().mean()
print(f"class-Gaussian samples: {hole_rate:.1%} in holes, {right_class:.1%} among their class")
real_holes = (nearest_distance(test_codes, train_codes) > radius).float().mean().item()
print(f"real test codes:        {real_holes:.1%} in holes, {real:.1%} among their class")
assert hole_rate > real_holes and right_class < real


# %% [markdown]
# Samples from the class Gaussians land in holes more often than real codes do, and only
# about half of them land among their own class, clearly fewer than real codes do. The reason
# is visible in the scatter plot: the codes of a class do not form an elliptical blob but
# long or bent shapes pressed against other classes, so a Gaussian fitted to them spills into
# empty space and into the neighbours.

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: the Bernoulli loss from logits
#
# Section 5 said that `bernoulli_nll` computes the BCE from the logits and never takes the log
# of 0. Write that computation yourself, without torch's BCE functions:
# `bce_from_logits(logits, x)` takes logits and images, both `[N, 1, 28, 28]`, and returns the
# BCE of each image, $-\sum_i \big[x_i \log\sigma(a_i) + (1 - x_i)\log(1 - \sigma(a_i))\big]$,
# in nats, shape `[N]`. It must stay exact for logits as large as $\pm 200$, where
# $\sigma(a)$ rounds to exactly 0 or 1 in float32, and its gradient with respect to the
# logits must still be $\sigma(a) - x$ there.
#
# Hint: $\log\sigma(a) = a - \log(1 + e^{a})$ and $\log(1 - \sigma(a)) = -\log(1 + e^{a})$,
# so one pixel costs $\log(1 + e^{a}) - x\,a$. Compute $\log(1 + e^{a})$ as
# $\max(a, 0) + \log(1 + e^{-|a|})$ (`torch.log1p`), whose exponent is never positive, or
# with `torch.nn.functional.softplus`.

# %% tags=["solution"]
def bce_from_logits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x | logits) for Bernoulli pixels, summed over the pixels of each image: [N]."""
    softplus = logits.clamp(min=0) + torch.log1p(torch.exp(-logits.abs()))   # log(1 + e^a)
    return (softplus - x * logits).flatten(1).sum(dim=1)


# %%
from companion.checks import skip_if_unwritten  # noqa: E402
from companion.checks.autoencoders import check_bce_from_logits  # noqa: E402

check_bce_from_logits(bce_from_logits)

# %% [markdown]
# Why the care? Run the trained Bernoulli autoencoder on the test set and score it three
# ways: from the logits (what your function and `bernoulli_nll` compute), with the sigmoid
# first and then the logs, and with the same plus $10^{-10}$ inside each log, the guard that
# the Hasktorch tutorial uses.

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    logits = ae_bce(test.images)                                        # [N_TEST, 1, 28, 28]
exact = bernoulli_nll(logits, test.images)                              # [N_TEST], from the logits
p, ink = torch.sigmoid(logits), test.images
shortcuts = {"sigmoid, then log": -(ink * p.log() + (1 - ink) * (1 - p).log()),
             "sigmoid, then log(. + 1e-10)": -(ink * (p + 1e-10).log()
                                               + (1 - ink) * (1 - p + 1e-10).log())}
print(f"the decoder's logits range from {logits.min():.1f} to {logits.max():.1f}")
broken, error = {}, {}
for name, per_pixel in shortcuts.items():
    loss = per_pixel.flatten(1).sum(1)                                  # [N_TEST]
    broken[name] = (~loss.isfinite()).sum().item()
    error[name] = (loss - exact)[loss.isfinite()].abs().max().item()
    print(f"{name:29s} {broken[name]:4d} images get an infinite or NaN loss, "
          f"the others are off by up to {error[name]:.2g} nats")
if TRAINED:   # a decoder trained this long is sure enough of some pixels to break both
    assert broken["sigmoid, then log"] > 0
    assert broken["sigmoid, then log(. + 1e-10)"] == 0 and error["sigmoid, then log(. + 1e-10)"] > 1
with skip_if_unwritten():                           # runs once bce_from_logits is written
    assert torch.allclose(bce_from_logits(logits, test.images), exact, rtol=1e-4, atol=1e-2)
    print("bce_from_logits agrees with bernoulli_nll on every test image")


# %% [markdown]
# The decoder is so sure about some background pixels that their logits lie far below zero,
# where $\sigma(a)$ is exactly 0 in float32. The first shortcut then takes $\log 0$, and the
# loss of the whole image becomes infinite, or NaN where a blank pixel makes it $0 \cdot
# \log 0$. The $10^{-10}$ keeps every number finite, but it caps what one confidently wrong
# pixel can cost at $-\log 10^{-10} \approx 23$ nats, so some images are scored too low, by up
# to the number printed. Working from the logits avoids both problems.

# %% [markdown]
# ### Exercise 2: rotate the latent space
#
# Section 6 showed that scaling the codes changes nothing the loss can see. Neither does a
# rotation. Write `rotate_codes(model, angle)` that returns a **new** autoencoder (leave
# `model` untouched) whose codes are the old codes rotated by `angle` radians
# counter-clockwise, $z' = R z$ with
# $R = \begin{pmatrix}\cos\theta & -\sin\theta\\ \sin\theta & \cos\theta\end{pmatrix}$, and
# whose reconstructions are unchanged. Hint: the encoder's last layer computes $W z + b$,
# and $R^{-1} = R^\top$.

# %% tags=["solution"]
def rotate_codes(model: Autoencoder, angle: float) -> Autoencoder:
    cos, sin = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[cos, -sin], [sin, cos]], device=device)   # R
    rotated = copy.deepcopy(model)
    with torch.no_grad():
        rotated.encoder[-1].weight.copy_(rotation @ model.encoder[-1].weight)   # z' = R z
        rotated.encoder[-1].bias.copy_(rotation @ model.encoder[-1].bias)
        rotated.decoder[0].weight.copy_(model.decoder[0].weight @ rotation.T)   # W R^T z' = W z
    return rotated


# %%
from companion.checks.autoencoders import check_rotate_codes  # noqa: E402

check_rotate_codes(rotate_codes, ae_bce, test.images[:64])

# %% [markdown]
# Scale and rotation are two cases of one symmetry: for any invertible $2 \times 2$ matrix
# $A$, the codes $A z$ with the decoder weight $W A^{-1}$ give $(W A^{-1})(A z) = W z$, the
# same reconstructions. That is one more reason not to read much into the particular axes
# of a plain autoencoder's latent space.
#
# ## Summary
#
# - An autoencoder is an encoder and a decoder trained so that the image survives a
#   bottleneck. With two numbers per MNIST digit it beats the best linear code (PCA) and
#   groups the digits by class without ever seeing a label; a linear probe measures how much
#   class information the code keeps.
# - Squared error assumes Gaussian pixels; the Bernoulli loss (BCE from logits) fits MNIST's
#   nearly black-and-white pixels and keeps its gradient where the sigmoid saturates.
# - BCE needs targets in $[0, 1]$. Standardised pixels make it unbounded below, and the
#   "loss" goes negative. Its true floor is the pixels' entropy (notebook 00), which is positive.
# - Compute BCE from the logits, $\log(1 + e^{a}) - x\,a$: taking the sigmoid first breaks down
#   where the decoder is confident.
# - A plain autoencoder is not a generator: its codes have an arbitrary scale (and rotation),
#   leave holes in the latent space, and do not follow any distribution you could sample.
#
# ## References
#
# - C. Eckart and G. Young (1936), "The approximation of one matrix by another of lower
#   rank", *Psychometrika* 1 — why PCA is the best linear code.
# - P. Baldi and K. Hornik (1989), "Neural networks and principal component analysis:
#   learning from examples without local minima", *Neural Networks* 2 — a linear
#   autoencoder learns the PCA subspace.
# - G. E. Hinton and R. R. Salakhutdinov (2006), "Reducing the dimensionality of data with
#   neural networks", *Science* 313 — deep autoencoders compared with PCA.
# - D. P. Kingma and M. Welling (2013), "Auto-encoding variational Bayes", arXiv:1312.6114 —
#   the Bernoulli decoder and the VAE this notebook leads to.
# - C. Doersch (2016), "Tutorial on variational autoencoders", arXiv:1606.05908.
# - G. Alain and Y. Bengio (2016), "Understanding intermediate layers using linear classifier
#   probes", arXiv:1610.01644.
# - Source documents whose ideas this notebook reuses: Bogdan Penkovsky, "10 Days of Grad",
#   day 9 "Roaming the latent space" (the 784-400-$L$-400-784 autoencoder, $L = 2$, the note
#   on large encoder outputs and the ReLU, the $10^{-10}$ inside the BCE's logs); a 2018 ML journal-club
#   notebook on variational autoencoders (the 784-100-2-100-784 autoencoder with squared
#   error, the latent scatter plot, sampling from per-class Gaussians, and the negative loss
#   from standardised data fed to BCE).
