# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Decoders for grey images, a small VQ-VAE, and where VAEs went next
#
# **By the end of this notebook you can choose the decoder's likelihood for grey images and say
# what each choice assumes, train a VAE whose codes are discrete, and place the VAEs of later
# papers on the map of what you have learned.**
#
# ### Learning objectives
#
# 1. Derive that a Gaussian decoder with a fixed σ is the squared error with β = 2σ², and
#    check it with autograd.
# 2. Let the decoder learn σ, shared or per pixel; watch a per-pixel σ collapse, and fix it.
# 3. Compare Bernoulli, fixed-σ and learned-σ decoders on Fashion-MNIST with notebook 09's
#    sample yardstick.
# 4. Build a small VQ-VAE (codebook, nearest code, straight-through gradient, commitment
#    loss), count the codes it uses, and see why it needs a prior of its own.
# 5. Say what flows, hierarchical VAEs and the autoencoder of latent diffusion changed, and
#    measure what a tiny β does.
#
# **Prerequisites:** 02 (the ELBO), 03 (pathwise and score-function gradients), 04 (the KL
# term), 05 (training), 06 (β), 07 (the conv VAE) and 09 (the sample yardstick).
#
# **Time to run:** about 15 s in fast mode. In full mode about 2 minutes on a quiet 2-core CPU
# the first time, when eight small models and a classifier train (a second classifier is
# notebook 09's, loaded from the cache if you ran 09, else trained here too), and about 40 s
# afterwards: the two models of section 4 train again on every run, because the point is to
# watch them train.

# %% [markdown]
# ## Setup

# %% tags=["nbval-ignore-output"]
import math

import matplotlib.pyplot as plt
import torch

import companion
from companion import settings
from companion.checkpoints import train_or_load
from companion.checks import decoders_and_beyond as checks
from companion.data import load, load_first, source_of
from companion.evaluation.samples import Yardstick, accuracy, train_classifier
from companion.losses import (Objective, bernoulli_nll, gaussian_nll, kl_divergence,
                              squared_error, vq_loss)
from companion.models import VQVAE, ConvVAE, GaussianConvVAE, eval_mode
from companion.models.vq import codebook_usage
from companion.plots import show_images
from companion.training import TrainingDiverged, fit

companion.setup(seed=0, datasets=["mnist"])
device = settings.device()          # where load() puts the data; every model goes there too
assert source_of("mnist") != "not staged"

# %% [markdown]
# Fast mode trains on fewer images for one epoch, too briefly for the comparisons the text
# makes: those are asserted only when `TRAINED` is true (full mode). Without Fashion-MNIST the
# notebook uses MNIST and says so in one line.

# %% tags=["nbval-ignore-output"]
N_TRAIN = settings.pick(20_000, 1_000)    # training images of every model
EPOCHS = settings.pick(2, 1)
BATCH = 32                                # small batches: more steps for the same images
N_SCORE = settings.pick(5_000, 500)       # images in each set the yardstick scores
N_CHECK = settings.pick(2_000, 500)       # test images for the checks of each model
TRAINED = settings.pick(True, False)      # long enough training to compare trained models
LATENT, CHANNELS = 16, (16, 32)           # every conv VAE here: 16 latents, a lean ConvVAE

train = load_first(["fashion-mnist", "mnist"], "train").subset(N_TRAIN)
test = load(train.dataset, "test")
FASHION = train.dataset == "fashion-mnist"
print(f"{train.dataset}: {len(train)} training images, {EPOCHS} epochs of batches of {BATCH}")


def train_vae(model, data=None, beta: float = 1.0) -> dict:
    """Train (or load) a model with the settings above; returns it with its history.
    The model's likelihood is part of the model (ConvVAE(..., likelihood=...))."""
    data = train if data is None else data
    history = train_or_load(model.to(device), data, load(data.dataset, "test").subset(N_CHECK),
                            epochs=EPOCHS, lr=ConvVAE.lr, batch_size=BATCH,
                            objective=Objective(beta=beta), seed=0, progress=False)
    return {"model": model, "history": history}


# %% [markdown]
# ## 1. What a decoder assumes · deeper
#
# Every decoder so far read each pixel as a coin, $p(x_i \mid z) = \mathrm{Bernoulli}(\sigma(a_i))$.
# MNIST's pixels nearly are coins; photographs of clothes are not. Count the grey pixels of
# each dataset, and the Bernoulli loss that a *perfect* decoder (whose logits give back every
# pixel exactly) would still pay:

# %% tags=["nbval-ignore-output"]
grey_share = lambda images: ((images > 0.1) & (images < 0.9)).float().mean().item()
bernoulli_floor = lambda images: bernoulli_nll(torch.logit(images.clamp(1e-6, 1 - 1e-6)),
                                               images).mean().item()       # a perfect decoder
mnist_test = load("mnist", "test")
datasets = {"mnist": mnist_test.images, train.dataset: test.images}
for name, images in datasets.items():
    print(f"{name:<14} pixels between 0.1 and 0.9: {grey_share(images):5.1%}; a perfect "
          f"decoder's Bernoulli loss: {bernoulli_floor(images):5.1f} nats per image")
if FASHION:
    assert grey_share(test.images) > 3 * grey_share(mnist_test.images)
    assert bernoulli_floor(test.images) > 2 * bernoulli_floor(mnist_test.images)

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for name, images in datasets.items():
    ax.hist(images[:1_000].flatten().cpu(), bins=51, range=(0, 1), histtype="step", log=True, label=name)
ax.set(title="Pixel values of 1000 test images", xlabel="pixel value", ylabel="count (log scale)")
ax.legend()
plt.show()

# %% [markdown]
# Both datasets pile up at 0, the background; between the ends Fashion-MNIST has several
# times more pixels than MNIST, and even a perfect decoder pays the entropy of a coin for each
# of them. The Bernoulli loss is still smallest when the decoder's probability equals the
# pixel, which is why it works on grey images at all; but its number is not a log-likelihood,
# and a *sample* of the model would be black and white. A Gaussian suits a continuous pixel.
#
# ## 2. A Gaussian decoder with a fixed σ is the squared error · deeper
#
# Let the decoder's output $\hat x = \sigma(a)$ be the mean of a Gaussian with a fixed
# standard deviation σ for every pixel. For an image of $D = 784$ pixels,
#
# $$-\log \mathcal N(x;\,\hat x,\,\sigma^2 I)
# = \sum_{i=1}^{D}\Big[\frac{(x_i-\hat x_i)^2}{2\sigma^2} + \log\sigma + \tfrac12\log 2\pi\Big]
# = \frac{\lVert x-\hat x\rVert^2}{2\sigma^2} + D\log\big(\sigma\sqrt{2\pi}\big).$$
#
# The second term does not depend on the network, so the negative ELBO is
# $\lVert x-\hat x\rVert^2/(2\sigma^2) + \mathrm{KL} + \text{const}$. Multiply it by
# $2\sigma^2 > 0$, which moves no minimum:
#
# $$2\sigma^2\,\big(-\mathrm{ELBO}\big) = \lVert x-\hat x\rVert^2 + 2\sigma^2\,\mathrm{KL}
# + \text{const}.$$
#
# **A VAE trained with the squared error summed over the pixels and a weight β on the KL is a
# VAE with a Gaussian decoder of $\sigma = \sqrt{\beta/2}$.** The popular "squared error +
# KL" (β = 1) tells the model that the pixels carry noise of σ = 1/√2 ≈ 0.71, more than any
# quantity confined to [0, 1] can spread (its standard deviation is at most 0.5). With the
# squared error *averaged* over the 784 pixels, as PyTorch's `F.mse_loss` does by default,
# β = 1 means σ = √(784/2) ≈ 20: a decoder told that the pixels are almost pure noise.
#
# Check it on one forward pass of an untrained conv VAE with σ = 0.1: the two losses differ
# by the same constant for every image, and their gradients agree up to the factor
# $1/(2\sigma^2) = 50$.

# %% tags=["nbval-ignore-output"]
sigma, x = 0.1, test.images[:64]
torch.manual_seed(0)
model = ConvVAE(LATENT, CHANNELS).to(device)
logits, mu, logvar = model(x)                          # one draw of z for both losses
kl = kl_divergence(mu, logvar).mean()
gaussian = gaussian_nll(logits, x, sigma).mean() + kl
mse = squared_error(logits, x).mean() + 2 * sigma**2 * kl          # beta = 2 sigma^2
offset = gaussian_nll(logits, x, sigma) - squared_error(logits, x) / (2 * sigma**2)
grads = [torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()),
                                                            retain_graph=True)])
         for loss in (gaussian, mse)]
print(f"offset per image: {offset.min():.3f} to {offset.max():.3f}; "
      f"784 log(sigma sqrt(2 pi)) = {784 * math.log(sigma * math.sqrt(2 * math.pi)):.3f}")
print(f"gradient ratio: {grads[0].norm() / grads[1].norm():.2f}")
assert torch.allclose(offset, torch.full_like(offset, 784 * math.log(sigma * math.sqrt(2 * math.pi))))
assert torch.allclose(grads[0] * 2 * sigma**2, grads[1], rtol=1e-3, atol=1e-6)

# %% [markdown]
# σ and β are two names for one knob. Now train a lean conv VAE of notebook 07 (16 and 32
# channels, 16 latents) twice: with the Bernoulli loss, and with "squared error + KL".

# %% tags=["nbval-ignore-output"]
runs = {"Bernoulli": train_vae(ConvVAE(LATENT, CHANNELS)),
        "Gaussian, sigma 0.71 fixed": train_vae(
            ConvVAE(LATENT, CHANNELS, likelihood="squared_error"))}
for name, run in runs.items():
    h = run["history"]
    print(f"{name:<28} test KL {h.test_kl[-1]:5.1f} nats")
    assert math.isfinite(h.test_loss[-1]) and h.test_kl[-1] > 0
kl_of = lambda name: runs[name]["history"].test_kl[-1]
if TRAINED:   # told that the pixels are that noisy, the model keeps about half the information
    assert kl_of("Gaussian, sigma 0.71 fixed") < 0.6 * kl_of("Bernoulli")


# %%
def show_reconstructions(names: list[str], n: int = 10) -> None:
    """Test images (top row) and their reconstructions by each run, one row per run."""
    x = test.images[:n]
    rows = [x] + [runs[name]["model"].reconstruct(x) for name in names]
    show_images(torch.cat(rows).cpu(), nrow=n, labels=["original"] + names,
                title=f"{train.dataset}: test images and their reconstructions (decoder means)")
    plt.show()


show_reconstructions(list(runs))

# %% [markdown]
# Told that the pixels are this noisy, the model with σ = 0.71 keeps about half as many nats
# about each image in its code as the Bernoulli model (the KL above). In both rows a shirt's
# pattern and a logo vanish; the σ = 0.71 reconstructions are the blurrier ones, and section 5
# measures it: they lie farther from real images. Neither choice of likelihood
# looked at the data. The next section lets the data choose σ.
#
# ## 3. Learning σ · deeper
#
# Make σ a parameter. For a shared σ and reconstructions that are fixed for the moment, set the
# derivative of $\lVert x-\hat x\rVert^2/(2\sigma^2) + D\log\sigma$ to zero:
#
# $$\sigma^2_\star = \frac{\lVert x-\hat x\rVert^2}{D},$$
#
# the mean squared error per pixel. So a learned σ follows the root mean squared error of the
# reconstructions, and the effective $\beta = 2\sigma^2$ falls as the decoder improves: the
# balance you had to pick by hand in notebook 06 now adjusts itself (Rybkin et al. 2021 call
# this a *calibrated decoder*). `GaussianConvVAE(sigma="shared")` is the same conv VAE with
# one more parameter, $\log\sigma$, starting at 0 ($\sigma = 1$); its likelihood is the
# Gaussian one, and its `nll` uses the learned σ.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
runs["Gaussian, sigma learned"] = train_vae(GaussianConvVAE(LATENT, CHANNELS, sigma="shared"))
learned = runs["Gaussian, sigma learned"]["model"]
with torch.no_grad():                                   # as the loss sees them: z drawn from q
    logits, *_ = learned(test.images[:N_CHECK])
rmse = (torch.sigmoid(logits) - test.images[:N_CHECK]).pow(2).mean().sqrt().item()
sigma_learned = learned.shared_log_sigma.exp().item()
print(f"learned sigma {sigma_learned:.3f}, RMSE of its reconstructions {rmse:.3f}, "
      f"effective beta 2 sigma^2 = {2 * sigma_learned**2:.3f}")
print(f"test KL {kl_of('Gaussian, sigma learned'):.1f} nats")
assert sigma_learned < 1
if TRAINED:   # sigma found the error it measures, and the code carries far more
    assert abs(sigma_learned / rmse - 1) < 0.1 and sigma_learned < 0.71 / 5
    assert kl_of("Gaussian, sigma learned") > 2 * kl_of("Bernoulli")

# %% [markdown]
# The learned σ ends within 10 % of the error it measures and more than five times below the
# 0.71 of "squared error + KL": the effective β is a few hundredths, the code carries more
# than twice the Bernoulli model's nats, and the reconstructions (last row below) are the
# sharpest so far. (Adam moves $\log\sigma$ by about the learning rate per step, so getting
# from σ = 1 to about 0.1 takes hundreds of steps: that is why these models train with
# batches of 32.)

# %%
show_reconstructions(list(runs))


# %% [markdown]
# Compare the rows: the last, with the learned σ, keeps prints and edges that the σ = 0.71
# row blurs away (section 5 puts a number on it).
#
# ## 4. Pitfall: a σ for every pixel · deeper
#
# > **Pitfall.** Let the decoder draw a second channel, $\log\sigma_i$ for every pixel $i$ of
# > every image (`GaussianConvVAE(sigma="pixel")`). Where the decoder can predict a pixel almost
# > exactly, such as the blank background around a garment, shrinking $\sigma_i$ keeps paying:
# > each halving gains $\log 2$ nats, with no end. The likelihood of such a model has no
# > maximum (Mattei & Frellsen 2018). And once $\sigma_i$ is tiny, a pixel the decoder gets a
# > little wrong costs $(x_i-\hat x_i)^2/(2\sigma_i^2)$: enormous. Training lurches between
# > the two.
#
# Watch it happen. `SigmaProbe` is a callback for `fit`: every 10 batches it decodes the
# codes of 200 fixed test images and records the smallest σ the decoder draws and the worst
# image's negative log-likelihood. Train a free per-pixel σ and, as the fix, the same model
# with a floor under σ. Pixels are stored in steps of 1/255 ≈ 0.004, so a σ below that claims
# a precision the data do not have; `min_sigma=0.01` clamps $\log\sigma$ at $\log 0.01$.

# %%
class SigmaProbe:
    """A callback for fit: the smallest sigma and the worst NLL on fixed images, every 10 steps."""

    def __init__(self, x: torch.Tensor, every: int = 10):
        self.x, self.every, self.steps, self.min_sigma, self.worst_nll = x, every, [], [], []

    @torch.no_grad()
    def __call__(self, model, step: int) -> None:
        if step % self.every:
            return
        with eval_mode(model):
            logits, log_sigma = model.decode_with_sigma(model.encode(self.x)[0])
        self.steps.append(step)
        self.min_sigma.append(log_sigma.exp().min().item())
        self.worst_nll.append(gaussian_nll(logits, self.x, log_sigma=log_sigma).max().item())


# %% tags=["nbval-ignore-output"]
probes, diverged = {}, {}
for min_sigma in (0.0, 0.01):
    torch.manual_seed(0)
    model = GaussianConvVAE(LATENT, CHANNELS, sigma="pixel", min_sigma=min_sigma).to(device)
    probes[min_sigma] = SigmaProbe(test.images[:200])
    try:
        fit(model, train.subset(settings.pick(10_000, 640)), epochs=1, lr=ConvVAE.lr,
            batch_size=BATCH, on_batch=probes[min_sigma], progress=False)
        diverged[min_sigma] = False
        print(f"min_sigma={min_sigma}: trained for the whole epoch")
    except TrainingDiverged as err:
        diverged[min_sigma] = True
        print(f"min_sigma={min_sigma}: {err}")
late = {m: torch.tensor(p.worst_nll[len(p.worst_nll) // 2:]).median().item() for m, p in probes.items()}
quarter = len(probes[0.01].worst_nll) // 4
first_q, last_q = (torch.tensor(part).median().item() for part in
                   (probes[0.01].worst_nll[:quarter], probes[0.01].worst_nll[-quarter:]))
for min_sigma, probe in probes.items():
    print(f"min_sigma={min_sigma}: smallest sigma {min(probe.min_sigma):.1e}; worst test NLL, "
          f"median over the second half of training: {late[min_sigma]:.0f} nats")
print(f"without the floor, the worst image's loss is {late[0.0] / late[0.01]:.1f} times the "
      "floored model's in this run")
print(f"with the floor, the worst image's loss: median {first_q:.0f} nats over the first "
      f"quarter of training, {last_q:.0f} over the last")
assert min(probes[0.01].min_sigma) > 0.0099 and not diverged[0.01]
if TRAINED:   # without the floor sigma collapses; with it the model learns
    assert min(probes[0.0].min_sigma) < 1e-6
    assert last_q < first_q

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
for min_sigma, probe in probes.items():
    left.plot(probe.steps, probe.min_sigma, label=f"min_sigma = {min_sigma}")
    right.plot(probe.steps, probe.worst_nll, label=f"min_sigma = {min_sigma}")
left.set(title="Smallest sigma on 200 test images", xlabel="batch", ylabel="sigma", yscale="log")
right.set(title="Worst test image's -log p(x|z)", xlabel="batch", ylabel="nats", yscale="symlog")
left.legend(), right.legend()
plt.show()

# %% [markdown]
# Without a floor, the smallest σ falls below $10^{-6}$ (left): wherever the decoder predicts
# a background pixel well, σ races toward 0. The worst test image then pays for the few
# pixels where its garment reaches into what the decoder took for background (right). How
# much it pays changes a lot from one training run to the next (try other runs with
# `COURSE_SEED_OFFSET`, notebook 00): the ratio printed above is this run's alone, so this
# notebook asserts no size for it. A handful of
# pixels dominate the loss and training lurches; the loss can even become NaN, and `fit` then
# leaves the weights alone from that batch on, stops at the end of the epoch with
# `TrainingDiverged` and keeps the last good weights (the first line printed above
# says whether that happened in this run; its advice about inputs and learning rates is the
# general one, while the cause here is σ → 0). With the floor, σ stops at 0.01, and the worst
# image's loss is lower in the last quarter of training than in the first (medians over each
# quarter, printed above; by how much changes from run to run).
#
# A shared σ (section 3) is the other fix: one number cannot shrink onto the background
# alone. Trained like the other models, where does the floored decoder put its σ?

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
runs["Gaussian, sigma per pixel, floor 0.01"] = train_vae(
    GaussianConvVAE(LATENT, CHANNELS, sigma="pixel", min_sigma=0.01))
floored, x = runs["Gaussian, sigma per pixel, floor 0.01"]["model"], test.images[:N_CHECK]
with torch.no_grad():
    logits, log_sigma = floored.decode_with_sigma(floored.encode(x)[0])
floor_mask, background = log_sigma.exp() < 0.0101, x == 0
at_floor = floor_mask.float().mean().item()
background_at_floor = floor_mask[background].float().mean().item()
print(f"sigma at the floor for {at_floor:.0%} of the test pixels ({background_at_floor:.0%} of "
      f"the background pixels, those exactly 0), up to {log_sigma.exp().max():.2f} elsewhere")
if TRAINED:
    assert at_floor > 0.25 and log_sigma.exp().max() > 0.25 and background_at_floor > 0.5

# %%
sigma_map = log_sigma[:10].exp() / log_sigma[:10].exp().max()
show_images(torch.cat([x[:10], torch.sigmoid(logits[:10]), sigma_map]).cpu(), nrow=10,
            labels=["original", "mean", "sigma (dark = large)"],
            title="Per-pixel sigma with a floor: what the decoder draws and how sure it is")
plt.show()

# %% [markdown]
# Most of the background sits at the floor, and σ is largest inside the garments, on prints, folds
# and edges: where the decoder is unsure it does not draw the pixel, it declares it noise.
#
# ## 5. Which decoder draws the best samples? · deeper
#
# The losses of these models are not comparable: a Bernoulli loss on grey pixels is not a
# log-likelihood, and the Gaussian ones are densities whose size depends on σ. Samples can be
# compared, with notebook 09's yardstick: a small classifier trained on the dataset, and the
# Fréchet distance (FD) between the statistics of its features on generated and on real images
# (lower is closer; two random halves of the real test set give the floor, and an FD carries
# a 95 % bootstrap interval). Each model draws
# `N_SCORE` images from $z\sim\mathcal N(0, I)$; as everywhere in the course, an image is the
# decoder's *mean*, not a noisy draw from $p(x\mid z)$. The classifier is notebook 09's, trained
# here on this notebook's Fashion-MNIST training images for one epoch (09 trains its MNIST one
# longer), and cached like every model. FD values measured with different classifiers cannot
# be compared with each other. Given labels,
# `score(images, labels)` also says how often the classifier reads an image as the class it
# should be: for a reconstruction, the class of its original.

# %% tags=["nbval-ignore-output"]
classifier = train_classifier(train, test.subset(N_CHECK), epochs=1)
test_accuracy = accuracy(classifier, test)
half = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))   # a random split
real_a, real_b = test.images[half[:N_SCORE]], test.images[half[N_SCORE:2 * N_SCORE]]
labels_b = test.labels[half[N_SCORE:2 * N_SCORE]]
yardstick = Yardstick(classifier, real_a)
floor = yardstick.score(real_b, labels_b)
print(f"the classifier labels {test_accuracy:.1%} of the test images correctly")
print(f"{'real test images (the floor)':<38} FD {floor.frechet:7.2f}, labelled right {floor.accuracy:.1%}")
assert test_accuracy > (0.8 if TRAINED else 0.2)

# %% tags=["nbval-ignore-output"]
generator = torch.Generator().manual_seed(0)
scores, labelled = {}, {}          # (FD of samples, FD of reconstructions); labels kept
for name, run in runs.items():
    sampled = yardstick.score(run["model"].sample(N_SCORE, generator=generator))
    rebuilt = yardstick.score(run["model"].reconstruct(real_b), labels_b)
    scores[name], labelled[name] = (sampled.frechet, rebuilt.frechet), rebuilt.accuracy
    print(f"{name:<38} FD of samples {scores[name][0]:7.2f}, of reconstructions "
          f"{scores[name][1]:6.2f}, labelled right {labelled[name]:.1%}")
    assert scores[name][0] > floor.frechet
if TRAINED:
    best = "Gaussian, sigma learned"
    assert all(fd_samples > 1.5 * fd_rebuilt for fd_samples, fd_rebuilt in scores.values())
    assert all(scores[best][i] == min(v[i] for v in scores.values()) for i in (0, 1))
    assert labelled[best] == max(labelled.values())
    assert scores["Gaussian, sigma per pixel, floor 0.01"][0] > 1.2 * max(
        v[0] for name, v in scores.items() if "per pixel" not in name)
    bernoulli, fixed = scores["Bernoulli"], scores["Gaussian, sigma 0.71 fixed"]
    assert bernoulli[1] < 0.8 * fixed[1]

# %%
generator = torch.Generator().manual_seed(1)
images = torch.cat([run["model"].sample(10, generator=generator) for run in runs.values()])
show_images(images.cpu(), nrow=10, labels=list(runs), title="Samples: decoder means at z ~ N(0, I)")
plt.show()

# %% [markdown]
# Three things to read off. Every model's samples lie far above its own reconstructions and
# far from the floor: sampling from the prior is harder than reconstructing, the gap notebook
# 09 measured on MNIST. The learned shared σ wins on every count: the closest samples, the
# closest reconstructions, and the reconstructions the classifier most often reads as the
# garment they came from ("labelled right"; on real images the classifier itself is only that
# accurate, as printed first). And the per-pixel σ, even with its floor, draws the worst
# samples, pale ghosts of garments: its decoder raised σ where it was unsure instead of
# drawing the pixel, and a mean image needs no detail where the model calls the pixel noise.
# Between the Bernoulli decoder and the fixed σ = 0.71, the Bernoulli decoder reconstructs
# clearly better; whether their samples differ, one run of each cannot say. (Each row is one
# training run: the orders asserted here also hold for runs with other seeds,
# `COURSE_SEED_OFFSET=1` and `2`; the sizes of the gaps change from run to run.)
#
# ## 6. Discrete codes: a small VQ-VAE · deeper
#
# A VQ-VAE (van den Oord et al. 2017) replaces the Gaussian code by a *discrete* one. The
# encoder turns a 28×28 image into a 7×7 grid of vectors $z_e$ of size $D$; a **codebook**
# holds $K$ vectors $e_1, \dots, e_K$; each vector of the grid is replaced by its nearest code,
#
# $$k = \arg\min_j \lVert z_e - e_j\rVert^2, \qquad z_q = e_k,$$
#
# and the decoder draws the image from the grid of codes: 49 integers in $0..K-1$. Here is the
# assignment step of `companion.models.VQVAE`, written out for one image:

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
vq = VQVAE(codes=128, code_dim=16, channels=CHANNELS).to(device)
z_e = vq.encode(mnist_test.images[:1])                            # [1, 16, 7, 7]
vectors = z_e[0].flatten(1).T                                      # [49, 16]: one per position
distances = torch.cdist(vectors, vq.codebook.weight)               # [49, 128]
k = distances.argmin(1)                                            # [49] nearest code
print("codes of the first row of the grid:", k[:7].tolist())
assert torch.equal(k.view(7, 7), vq.code(mnist_test.images[:1])[0])

# %% [markdown]
# **How does a gradient get through the argmin?** It does not. $z_q$ is a step function of
# $z_e$, with derivative 0 almost everywhere: notebook 03's $\mathbb 1[z > 0]$, where the
# pathwise estimate came out as 0. (The score function helped there because $z$ was random;
# this encoder is deterministic and has no density to differentiate.) The VQ-VAE uses the
# **straight-through estimator**: the decoder sees $z_q$ in the forward pass, and the backward
# pass copies the gradient at $z_q$ to $z_e$, as if quantizing were the identity:
#
# ```python
# decoder_input = z_e + (z_q - z_e).detach()     # value z_q, gradient of z_e
# ```
#
# That is the pathwise gradient of a *different* function (the identity), so it is biased
# (the end of this section measures it). It works because the loss keeps $z_q$ close to $z_e$.
#
# **The loss.** The straight-through path skips the codebook, so the codes learn from a term
# of their own, and a third term keeps the encoder close to its codes ("commitment";
# sg = stop the gradient):
#
# $$\mathcal L = -\log p(x\mid z_q) + \lVert \mathrm{sg}[z_e] - e_k\rVert^2
# + \beta_c\,\lVert z_e - \mathrm{sg}[e_k]\rVert^2, \qquad \beta_c = 0.25.$$
#
# No KL term: against a uniform prior over the codes, a posterior sure of one code has the
# constant KL $\log K$ per position. Written out, next to `companion.losses.vq_loss` (which
# the VQ-VAE's own `loss` uses; there $\beta_c$ is the model's `commitment`):

# %% tags=["nbval-ignore-output"]
x = mnist_test.images[:64]
logits, z_e, z_q = vq(x)
codebook_term = (z_e.detach() - z_q).pow(2).flatten(1).sum(1).mean()
commitment_term = (z_e - z_q.detach()).pow(2).flatten(1).sum(1).mean()
ours = bernoulli_nll(logits, x).mean() + codebook_term + 0.25 * commitment_term
print(f"written out {ours:.3f}, companion.losses.vq_loss {vq_loss(logits, x, z_e, z_q).total:.3f}")
assert torch.isclose(ours, vq_loss(logits, x, z_e, z_q).total)

# %% [markdown]
# Train it on MNIST, so that notebook 09's MNIST yardstick can score it in section 7, with the
# settings of the conv VAEs above:

# %% tags=["nbval-ignore-output"]
mnist_train = load("mnist", "train").subset(N_TRAIN)
torch.manual_seed(0)
vq_runs = {"uniform": train_vae(VQVAE(codes=128, code_dim=16, channels=CHANNELS),
                                data=mnist_train)}
vq_model, vq_history = vq_runs["uniform"]["model"], vq_runs["uniform"]["history"]
x = mnist_test.images[:N_CHECK]
rmse = (vq_model.reconstruct(x) - x).pow(2).mean().sqrt().item()
print(f"test loss {vq_history.test_loss[-1]:.1f} (reconstruction "
      f"{vq_history.test_reconstruction[-1]:.1f} + codebook and commitment terms "
      f"{vq_history.test_loss[-1] - vq_history.test_reconstruction[-1]:.1f}); the constant KL "
      f"49 log K = {vq_history.test_kl[-1]:.1f} nats; RMSE {rmse:.3f}")
assert rmse < 0.4                  # an untrained decoder's grey 0.5 everywhere: about 0.45
if TRAINED:                        # close to the originals
    assert rmse < 0.12

# %%
x = mnist_test.images[:10]
show_images(torch.cat([x, vq_model.reconstruct(x)]).cpu(), nrow=10, labels=["original", "VQ-VAE"],
            title="MNIST test digits and their VQ-VAE reconstructions (49 codes each)")
plt.show()

# %% [markdown]
# Each digit comes back from 49 integers almost unchanged. An image's code holds at most
# $49 \log_2 128 = 343$ bits, plenty for a digit.
#
# ### How biased is the straight-through gradient? · deeper
#
# Take the untrained VQ-VAE of the first cell and one image: nudge $z_e$ a little along the
# straight-through gradient, and compare the change of the loss it predicts with the real one.

# %% tags=["nbval-ignore-output"]
x = mnist_test.images[:1]
z_e = vq.encode(x).detach().requires_grad_()
z_q, _ = vq.quantize(z_e)
loss = bernoulli_nll(vq.decoder(z_e + (z_q - z_e).detach()), x).sum()
grad, = torch.autograd.grad(loss, z_e)
step = 1e-3 * grad / grad.norm()                                   # a tiny step uphill
with torch.no_grad():
    moved = bernoulli_nll(vq.decoder(vq.quantize(z_e + step)[0]), x).sum()
print(f"straight-through predicts a change of {(grad * step).sum():.2e}, the loss changes by "
      f"{moved - loss:.2e}")
assert (grad * step).sum() > 0 and moved == loss.detach()

# %% [markdown]
# The step changes no code, so the loss does not move at all, while the straight-through
# gradient predicts that it does: its information comes from the decoder's slope at $z_q$,
# not from the quantizer.
#
# ## 7. Codebook usage, and the prior a VQ-VAE lacks · deeper
#
# A codebook of 128 codes is only worth its size if the encoder uses the codes. Count how often
# each code is chosen on the test set. Two summaries: the fraction of codes used at least
# once, and the **perplexity** $\exp(H)$, with $H = -\sum_k p_k \log p_k$ the entropy of the
# code frequencies: $K$ if all codes are used equally, 1 if only one is.

# %% tags=["nbval-ignore-output"]
usage = codebook_usage(vq_model.code(mnist_test.images[:N_SCORE]), 128)
print(f"perplexity {usage.perplexity:.1f} of 128, codes used {usage.used:.0%}, "
      f"dead codes {int((usage.counts == 0).sum())}")
assert 1 <= usage.perplexity <= 128 * usage.used + 1e-9
if TRAINED:
    assert usage.used < 0.5 and usage.perplexity < 128 / 4

# %% [markdown]
# Fewer than half of the codes are chosen for any of these test digits, and the perplexity says
# the encoder behaves as if it had fewer than a quarter of its 128 codes, used equally often.
# The unused ones are **dead codes**: never the nearest to any encoder output, so neither term
# of the loss ever moves them.
#
# **A fix for dead codes.** The codebook started as 128 tiny vectors near 0
# ($\pm 1/K$), while the encoder's outputs lie elsewhere; the codes that happen to be nearest
# at the start take all the assignments, and the others never receive a gradient. Start the
# codebook where the data are instead: `VQVAE(init="data")` replaces the codes, at the first
# training batch, by 128 of the encoder's own outputs. (Other fixes restart dead codes during
# training, as Jukebox does (Dhariwal et al. 2020), or normalise codes and encoder outputs, as
# ViT-VQGAN does (Yu et al. 2022).)

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
vq_runs["data"] = train_vae(VQVAE(codes=128, code_dim=16, channels=CHANNELS, init="data"),
                            data=mnist_train)
usages = {init: codebook_usage(run["model"].code(mnist_test.images[:N_SCORE]), 128)
          for init, run in vq_runs.items()}
for init, u in usages.items():
    h = vq_runs[init]["history"]
    print(f"init={init!r:<10} perplexity {u.perplexity:5.1f}, codes used {u.used:4.0%}, "
          f"test loss {h.test_loss[-1]:6.1f}, of which reconstruction {h.test_reconstruction[-1]:6.1f}")
assert all(1 <= u.perplexity <= 128 * u.used + 1e-9 for u in usages.values())

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
for init, u in usages.items():
    ax.plot(u.counts.sort(descending=True).values.clamp(min=0.5).cpu(), label=f"init={init!r}")
ax.set(title="How often each code is chosen on the MNIST test set", yscale="log",
       xlabel="code, most used first", ylabel="count (unused: shown at 0.5)")
ax.legend()
plt.show()

# %% [markdown]
# Does starting from the data help? **Not resolved with one run of each.** The lines above
# compare one training run of each codebook, and one run each cannot say whether a
# difference belongs to the initialisation or to the run: trained again with other seeds
# (`COURSE_SEED_OFFSET`, notebook 00), the order of the two rows can change. So this notebook
# asserts no winner; to settle it, train each kind over several seeds and compare the spread,
# as notebook 06 does for β. In the curves, where each one drops to zero is the number of
# codes in use.
#
# **Samples need a prior over the codes.** A VAE samples $z\sim\mathcal N(0, I)$ because the
# KL term pulled its codes toward that prior. A VQ-VAE trained no such thing: its prior is
# uniform only on paper. Draw the 49 indices uniformly and decode them (`VQVAE.sample`), and
# score them with an MNIST yardstick next to the reconstructions, which use the right codes:

# %% tags=["nbval-ignore-output"]
# notebook 09's classifier, with its settings: loaded from the cache if you ran 09
mnist_classifier = train_classifier(load("mnist", "train").subset(settings.pick(60_000, 3_000)),
                                    mnist_test.subset(settings.pick(10_000, 1_000)),
                                    epochs=settings.pick(3, 1))
half = torch.randperm(len(mnist_test), generator=torch.Generator().manual_seed(0))   # at random
mnist_yardstick = Yardstick(mnist_classifier, mnist_test.images[half[:N_SCORE]])
vq_best, generator = vq_runs["data"]["model"], torch.Generator().manual_seed(0)
rest = half[N_SCORE:2 * N_SCORE]
digits, digit_labels = mnist_test.images[rest], mnist_test.labels[rest]
vq_scores = {"real test digits (floor)": mnist_yardstick.score(digits, digit_labels,
                                                               interval=True),
             "reconstructions": mnist_yardstick.score(vq_best.reconstruct(digits), digit_labels,
                                                      interval=True),
             "uniform prior": mnist_yardstick.score(vq_best.sample(N_SCORE, generator=generator),
                                                    interval=True)}
for name, score in vq_scores.items():
    print(f"{name:<26} {score}")
floor_vq, rebuilt_vq, uniform_vq = vq_scores.values()
assert uniform_vq.frechet > floor_vq.frechet
if TRAINED:   # the decoder draws digits from the right codes, not from uniform ones
    assert floor_vq.below(rebuilt_vq) and rebuilt_vq.below(uniform_vq)
    assert uniform_vq.frechet > 5 * rebuilt_vq.frechet and rebuilt_vq.accuracy > 0.95

# %%
show_images(vq_best.sample(20, generator=torch.Generator().manual_seed(1)).cpu(), nrow=10,
            title="VQ-VAE (init='data'): 49 code indices drawn uniformly, decoded")
plt.show()

# %% [markdown]
# The reconstructions are farther from the reference digits than a second random set of real
# digits (the floor; it cannot be compared with the Fashion-MNIST floor of section 5,
# measured with another classifier), with the intervals apart, but the classifier reads more
# than 95 % of them as the digit they came from: with the right codes the decoder draws
# digits. Uniformly drawn codes decode to a patchwork of strokes, more than five times
# further away: every 4×4 patch is a
# plausible piece of a digit, but the pieces do not agree with each other. The codes of real digits follow
# each other in patterns (a stroke continues into the next patch), and a model must learn
# those patterns: the VQ-VAE paper trains a PixelCNN over the 7×7 grid of indices after the
# VQ-VAE, and draws from it. That second model is out of this notebook's scope; the point is
# that a VQ-VAE is half of a generative model.
#
# ## 8. Where VAEs went next · deeper
#
# Four lines of work grew from the VAE of this course. Each fixes one of its limits.
#
# **Richer posteriors: normalizing flows.** The encoder's $q(z\mid x)$ has been a diagonal
# Gaussian, and notebook 02 showed that the gap between the ELBO and $\log p(x)$ is
# $\mathrm{KL}(q \,\|\, p(z\mid x))$: a posterior that a diagonal Gaussian cannot match costs
# that much. A normalizing flow pushes a simple sample through a chain of invertible maps
# whose Jacobian determinants are cheap, so $\log q$ stays computable. The inverse
# autoregressive flow (IAF; Kingma et al. 2016) makes each map
# $z \mapsto \mu_t(z) + \sigma_t(z)\odot z$, with $\mu_t, \sigma_t$ autoregressive in $z$: the
# Jacobian is triangular, its determinant the product of the $\sigma_t$, and all dimensions
# update in parallel. The same paper introduced the free bits that notebook 05 uses against
# posterior collapse.
#
# **Hierarchies of latents.** One layer of latents has to hold everything from the pose of a
# digit to the grain of a stroke. A hierarchical VAE stacks layers,
# $p(z_1\mid z_2)\,p(z_2\mid z_3)\cdots$, with top-down inference: the Ladder VAE (Sønderby et
# al. 2016) lets the encoder's bottom-up features correct a top-down prior at every layer.
# NVAE (Vahdat & Kautz 2020) scales the idea to dozens of layers of spatial latents with
# residual cells, spectral regularisation and careful KL balancing, and draws convincing
# 256×256 faces from a VAE trained by its ELBO alone (VQ-VAE-2, below, had drawn 1024×1024
# faces a year earlier, with a separate autoregressive prior over discrete codes).
#
# **Discrete codes and learned priors.** The VQ-VAE of section 6 and VQ-VAE-2 (Razavi et al.
# 2019) separate the work: an autoencoder with discrete codes, then an autoregressive prior
# over the codes. The same split, with a transformer as the prior, underlies many image and
# audio generators since.
#
# **The autoencoder of latent diffusion.** Latent diffusion (Rombach et al. 2022), the model
# behind Stable Diffusion, does not generate pixels. A VAE first compresses a 256×256 image
# into a small grid of latents, and a diffusion model learns the prior over that grid. The VAE
# is trained with a tiny weight on its KL term (about $10^{-6}$, next to a reconstruction loss
# summed over pixels, plus a perceptual and an adversarial loss): it is almost a plain
# autoencoder, whose KL only keeps the latents from drifting to any scale. Nobody samples it
# from $\mathcal N(0, I)$: the diffusion model is its prior.
#
# What does a tiny β do? Train the Bernoulli conv VAE of section 2 with β = 0.1 and 0.001,
# and measure the **rate** (the KL, nats the code carries), the **distortion** (the
# reconstruction loss), how far the codes spread ($\mathrm{std}$ of $\mu$ over the test set)
# and how wide the posteriors are (the mean $\sigma$ of $q(z\mid x)$).

# %% tags=["nbval-ignore-output"]
BETAS = [1.0, 0.1, 0.001]
sweep = {1.0: runs["Bernoulli"]}
for beta in BETAS[1:]:
    torch.manual_seed(0)
    sweep[beta] = train_vae(ConvVAE(LATENT, CHANNELS), beta=beta)
rows = {}
for beta, run in sweep.items():
    with torch.no_grad():
        mu, logvar = run["model"].encode(test.images[:N_CHECK])
    h = run["history"]
    samples = run["model"].sample(N_SCORE, generator=torch.Generator().manual_seed(0))
    rows[beta] = {"rate": h.test_kl[-1], "distortion": h.test_reconstruction[-1],
                  "code std": mu.std(0).mean().item(), "posterior sigma": (0.5 * logvar).exp().mean().item(),
                  "FD samples": yardstick.score(samples).frechet}

# %% tags=["nbval-ignore-output"]
print(f"{'beta':>6} " + " ".join(f"{k:>16}" for k in rows[1.0]))
for beta, r in rows.items():
    print(f"{beta:>6} " + " ".join(f"{v:16.3f}" for v in r.values()))
perfect = bernoulli_floor(test.images[:N_CHECK])
tiny, mid, one = rows[0.001], rows[0.1], rows[1.0]
print(f"a perfect decoder's distortion on these test images (section 1): {perfect:.1f}")
reducible = {beta: r["distortion"] - perfect for beta, r in rows.items()}   # above a perfect decoder
print(f"from beta 1 to 0.001: rate x {tiny['rate'] / one['rate']:.1f}, distortion "
      f"{tiny['distortion'] / one['distortion'] - 1:+.1%}, its part above a perfect decoder "
      f"{reducible[1.0]:.1f} -> {reducible[0.001]:.1f} nats "
      f"({reducible[0.001] / reducible[1.0] - 1:+.0%})")
if TRAINED:   # beta falls: the rate climbs, the distortion barely moves
    assert one["rate"] < mid["rate"] < tiny["rate"] and tiny["rate"] > 8 * one["rate"]
    assert perfect < tiny["distortion"] < one["distortion"] < 1.1 * tiny["distortion"]
    assert reducible[0.001] < 0.85 * reducible[1.0]        # the part a decoder can remove
    assert tiny["rate"] > 3 * mid["rate"] and abs(mid["distortion"] / tiny["distortion"] - 1) < 0.02
    assert tiny["posterior sigma"] < 0.05 and tiny["code std"] > 2 and tiny["FD samples"] > 1.5 * one["FD samples"]

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
ax.plot([r["rate"] for r in rows.values()], [r["distortion"] for r in rows.values()], "o-")
for beta, r in rows.items():
    ax.annotate(f"β = {beta:g}", (r["rate"], r["distortion"]), textcoords="offset points",
                xytext=(6, 4))
ax.set(title=f"Rate and distortion on {train.dataset} (test set)", xlabel="rate: KL (nats)",
       ylabel="distortion: reconstruction loss (nats, grey pixels)")
plt.show()


# %% [markdown]
# From β = 1 to β = 0.001 the rate grows more than eightfold, while the distortion falls by
# less than a tenth and stays above the floor of a perfect decoder. Most of the distortion is
# that floor, though: the part a better model could remove, the distortion above the floor,
# falls by more than 15 % (printed above). Below β = 0.1 the rate
# still more than triples and the distortion moves by less than 2 %: the extra nats buy
# detail the Bernoulli loss hardly rewards. Meanwhile the posteriors shrink almost to points,
# and the codes spread over several units, far beyond the $\mathcal N(0, I)$ that samples are
# drawn from, so the samples from the prior get much worse. That is the trade latent diffusion makes
# on purpose: keep the reconstructions, give up the prior, and hand the prior to a diffusion
# model trained on the codes. The tiny KL still has a job: it stops the codes from drifting to
# any scale (latent diffusion also rescales them to unit variance before the diffusion model
# sees them).
#
# ## Exercises
#
# ### Exercise 1: the Gaussian negative log-likelihood
#
# Write `negative_log_likelihood(mean, x, log_sigma)`: $-\log\mathcal N(x;\,\text{mean},\,\sigma^2)$ for
# each image, summed over its pixels, where `log_sigma` has one entry per pixel
# ($\sigma = e^{\log\sigma}$). All three arguments are `[N, 1, 28, 28]`; return `[N]`.

# %% tags=["solution"]
def negative_log_likelihood(mean: torch.Tensor, x: torch.Tensor,
                            log_sigma: torch.Tensor) -> torch.Tensor:
    squared = (x - mean).pow(2) / (2 * torch.exp(2 * log_sigma))
    return (squared + log_sigma + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


# %%
checks.check_gaussian_nll(negative_log_likelihood)


# %% [markdown]
# ### Exercise 2: the nearest code
#
# Write `nearest_code(z, codebook)`: for vectors `z` `[M, D]` and a codebook `[K, D]`, the
# index of the nearest code for each vector, `[M]`. Use
# $\lVert z - e\rVert^2 = \lVert z\rVert^2 - 2\,z\cdot e + \lVert e\rVert^2$ (or `torch.cdist`).

# %% tags=["solution"]
def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    distances = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.T + codebook.pow(2).sum(1)
    return distances.argmin(1)


# %%
checks.check_nearest_code(nearest_code)


# %% [markdown]
# ### Exercise 3: the perplexity of a codebook
#
# Write `perplexity(indices, codes)`: the exponential of the entropy (in nats) of the
# frequencies with which the `codes` codes appear in `indices` (a tensor of any shape).

# %% tags=["solution"]
def perplexity(indices: torch.Tensor, codes: int) -> float:
    p = torch.bincount(indices.flatten(), minlength=codes).double() / indices.numel()
    p = p[p > 0]                                   # 0 log 0 counts as 0
    return math.exp(-(p * p.log()).sum().item())


# %%
checks.check_perplexity(perplexity)

# %% [markdown]
# ## Summary
#
# * The decoder's likelihood is a modelling choice. A Bernoulli decoder on grey pixels learns
#   the right means but reports a number that is not a log-likelihood.
# * A Gaussian decoder with a fixed σ *is* the squared error (summed over the pixels) with
#   β = 2σ²: "squared error + KL" assumes σ ≈ 0.71 and gives blurry images. A learned shared σ settles near the RMSE of
#   the reconstructions, balances the two terms by itself, and gave the best samples and
#   reconstructions on the yardstick.
# * A σ per pixel collapses on pixels the decoder can predict, and the likelihood runs away;
#   a floor on σ (or a shared σ) fixes it. Even with a floor, a per-pixel σ drew the worst
#   samples: its decoder calls noise what it cannot draw.
# * A VQ-VAE quantizes the code to the nearest of K vectors, trains through the argmin with
#   the biased straight-through estimator, and needs a codebook term and a commitment term.
#   Watch its codebook usage, and remember that it needs a learned prior to sample.
# * Flows (IAF), hierarchies (Ladder VAE, NVAE) and the tiny-β autoencoder of latent diffusion
#   each fix one limit of the plain VAE.
#
# ## References
#
# * A. van den Oord, O. Vinyals, K. Kavukcuoglu. *Neural Discrete Representation Learning.*
#   NeurIPS 2017. arXiv:1711.00937.
# * P.-A. Mattei, J. Frellsen. *Leveraging the Exact Likelihood of Deep Latent Variable Models.*
#   NeurIPS 2018. arXiv:1802.04826.
# * O. Rybkin, K. Daniilidis, S. Levine. *Simple and Effective VAE Training with Calibrated
#   Decoders.* ICML 2021. arXiv:2006.13202.
# * P. Dhariwal, H. Jun, C. Payne, J. W. Kim, A. Radford, I. Sutskever. *Jukebox: A Generative
#   Model for Music.* 2020. arXiv:2005.00341 (random restarts of dead codes).
# * J. Yu, X. Li, J. Y. Koh, H. Zhang, R. Pang, J. Qin, A. Ku, Y. Xu, J. Baldridge, Y. Wu.
#   *Vector-quantized Image Modeling with Improved VQGAN.* ICLR 2022. arXiv:2110.04627
#   (normalised codes).
# * Y. Bengio, N. Léonard, A. Courville. *Estimating or Propagating Gradients Through
#   Stochastic Neurons for Conditional Computation.* 2013. arXiv:1308.3432 (the
#   straight-through estimator).
# * D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling. *Improved
#   Variational Inference with Inverse Autoregressive Flow.* NeurIPS 2016. arXiv:1606.04934.
# * C. K. Sønderby, T. Raiko, L. Maaløe, S. K. Sønderby, O. Winther. *Ladder Variational
#   Autoencoders.* NeurIPS 2016. arXiv:1602.02282.
# * A. Vahdat, J. Kautz. *NVAE: A Deep Hierarchical Variational Autoencoder.* NeurIPS 2020.
#   arXiv:2007.03898.
# * A. Razavi, A. van den Oord, O. Vinyals. *Generating Diverse High-Fidelity Images with
#   VQ-VAE-2.* NeurIPS 2019. arXiv:1906.00446.
# * R. Rombach, A. Blattmann, D. Lorenz, P. Esser, B. Ommer. *High-Resolution Image Synthesis
#   with Latent Diffusion Models.* CVPR 2022. arXiv:2112.10752.
# * M. Heusel et al. *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
#   Equilibrium* (the Fréchet distance on a network's features). NeurIPS 2017. arXiv:1706.08500.
# * H. Xiao, K. Rasul, R. Vollgraf. *Fashion-MNIST.* 2017. arXiv:1708.07747.
