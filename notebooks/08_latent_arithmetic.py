# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Latent arithmetic: morphing, attribute vectors and inpainting
#
# **You will walk between digits, push a digit toward another class or make it lean, and fill
# in a hidden half of an image, all by doing arithmetic on codes, and you will measure how well
# each trick works instead of trusting the pictures.**
#
# ### Learning objectives
#
# 1. Interpolate between two encodings along a straight line and along a great circle, and
#    explain with numbers why the two paths differ in many dimensions.
# 2. Build attribute vectors: the mean code of a class, and a direction for a property you
#    measure on the images yourself (here: slant).
# 3. Check a latent edit with an independent measurement: a classifier on the decoded image,
#    or the slant of the decoded image.
# 4. Inpaint a hidden half of a digit by optimising $z$, and read the failures as honestly as
#    the successes.
# 5. Explore a latent space with sliders, and know what the static figure next to them shows.
#
# **Prerequisites:** 01 (autoencoders, latent codes, kNN in latent space), 02–04 (the VAE, its
# prior $\mathcal N(0, I)$, the encoder's $\mu$ and $\log\sigma^2$).
#
# **Time to run:** about 10 s in fast mode. In full mode about 1.5 minutes on a quiet 2-core
# CPU the first time, when two VAEs train, and about 10 s afterwards, once they are cached in
# `data/checkpoints/`.

# %% [markdown]
# ## Setup

# %% tags=["nbval-ignore-output"]
import math

import matplotlib.pyplot as plt
import torch

import companion
from companion import settings
from companion.checkpoints import train_or_load
from companion.data import load
from companion.latent import encode_all, grid, knn_classify, nearest_distance
from companion.latent_arithmetic import (attribute_direction, class_means, inpaint, lerp, slant,
                                         slerp, traverse)
from companion.models import MLPVAE
from companion.plots import image_grid, show_images
from companion.widgets import explorer

companion.setup(seed=0, datasets=["mnist"])

# %% [markdown]
# Fast mode runs the same code on fewer images for fewer epochs. Its models are too weak for
# the comparisons the text makes between trained models; those comparisons are asserted only
# when `TRAINED` is true (full mode).

# %% tags=["nbval-ignore-output"]
N_TRAIN = settings.pick(60_000, 3_000)   # training images
N_TEST = settings.pick(10_000, 1_000)    # test images
EPOCHS = settings.pick(15, 2)
TRAINED = settings.pick(True, False)     # trained long enough to compare results
device = settings.device()

train = load("mnist", "train").subset(N_TRAIN)
test = load("mnist", "test").subset(N_TEST)
print(f"{len(train)} training and {len(test)} test images, {EPOCHS} epochs")
assert len(train) == N_TRAIN and len(test) == N_TEST

# %% [markdown]
# ## 1. Two models to play with · core
#
# You need nothing new to train them: the MLP VAE of notebooks 02–04 with the Bernoulli
# likelihood and $\beta = 1$. One has $L = 2$ latent dimensions, so you can see its whole
# latent space; the other has $L = 16$, which reconstructs far better and is where the
# arithmetic of this notebook is more interesting.
#
# The printed test losses are the negative ELBO on MNIST's grey pixels: a training loss, good
# for comparing the two models with each other. A Bernoulli likelihood of grey values is not
# the probability of anything, so they are not nats of a log-likelihood (notebook 05
# binarizes the images to get those); only the KL part is a true number of nats.

# %% tags=["nbval-ignore-output"]
models, histories = {}, {}
for latent_dim in (2, 16):
    models[latent_dim] = MLPVAE(latent_dim=latent_dim, hidden=400).to(device)
    histories[latent_dim] = train_or_load(models[latent_dim], train, test, epochs=EPOCHS,
                                          progress=False)
    h = histories[latent_dim]
    print(f"L = {latent_dim:2d}: test loss {h.test_loss[-1]:6.1f} on grey pixels "
          f"(reconstruction {h.test_reconstruction[-1]:.1f} + KL {h.test_kl[-1]:.1f} nats)")
    assert h.loss[-1] < h.loss[0] and h.test_kl[-1] >= 0
vae2, vae16 = models[2], models[16]

# %% [markdown]
# Every edit in this notebook ends with a decoded image, and you will want to know what that
# image *is* without squinting at it. A simple judge: encode it with the $L = 16$ model and
# take the majority label of its 10 nearest training codes (the kNN classifier of notebook 01).
# It shares its encoder with the model that makes the edits, so it is a convenient witness
# rather than a fully independent one; a classifier trained separately would be stricter.
# First, how good is the judge on untouched test images?

# %% tags=["nbval-ignore-output"]
train_codes = encode_all(vae16, train)                 # [N_TRAIN, 16] posterior means
test_codes = encode_all(vae16, test)                   # [N_TEST, 16]


@torch.no_grad()
def judge(images: torch.Tensor) -> torch.Tensor:
    """The class the L = 16 model's kNN judge sees in each image, [N]."""
    return knn_classify(vae16.encode(images)[0], train_codes, train.labels, k=10)


judge_accuracy = (judge(test.images) == test.labels).float().mean().item()
print(f"kNN judge on clean test images: {judge_accuracy:.1%} correct")
assert judge_accuracy > (0.9 if TRAINED else 0.3)

# %% [markdown]
# Two test images serve as the running example: the first "2" and the first "7" of the test
# set.

# %%
first = {k: int((test.labels == k).nonzero()[0]) for k in range(10)}   # first test image per class
x_u, x_v = test.images[first[2]], test.images[first[7]]
print(f"test images {first[2]} (a {int(test.labels[first[2]])}) and {first[7]} "
      f"(a {int(test.labels[first[7]])})")
assert test.labels[first[2]] == 2 and test.labels[first[7]] == 7


# %% [markdown]
# ## 2. Morphing: two paths between two codes · deeper
#
# The 2022 slides "Variational Autoencoder" morph an image $x_u$ into $x_v$ by encoding both
# and decoding points on the segment between the codes:
#
# $$z(t) = (1 - t)\, z_u + t\, z_v, \qquad t \in [0, 1].$$
#
# That is **linear interpolation** ("lerp"). There is a catch in many dimensions. Under the
# prior $\mathcal N(0, I_L)$, $\lVert z \rVert^2$ is a sum of $L$ squares, so $\lVert z \rVert$
# concentrates near $\sqrt L$: samples live on a thin shell, not near the origin. The midpoint
# of two independent samples is $\mathcal N(0, I/2)$-distributed, so its norm is near
# $\sqrt{L/2}$: about 71 % of the shell's radius. The straight path cuts through the inside of
# the shell, where the decoder rarely saw a code during training.
#
# **Spherical interpolation** ("slerp", Shoemake 1985; suggested for generative models by
# White 2016) walks along the great circle instead. For unit vectors $u_0, u_1$ at angle
# $\Omega$:
#
# $$\operatorname{slerp}(u_0, u_1; t) = \frac{\sin((1-t)\,\Omega)}{\sin \Omega}\, u_0
#   + \frac{\sin(t\,\Omega)}{\sin \Omega}\, u_1, \qquad \cos\Omega = u_0^\top u_1 .$$
#
# Here it is, written out for unit vectors:

# %%
def slerp_unit(u0: torch.Tensor, u1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle path between unit vectors u0, u1 [L]; t [T] -> [T, L]."""
    omega = torch.arccos(torch.dot(u0, u1).clamp(-1, 1))
    t = t.reshape(-1, 1)
    return (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / torch.sin(omega)


# %% [markdown]
# `companion.latent_arithmetic.slerp(z0, z1, t)` applies the same formula to the directions of two codes
# of any length and interpolates their norms linearly, so the path keeps its distance from
# the origin; `companion.latent_arithmetic.lerp` is the straight line. Check the shell argument on pairs
# of prior samples in $L = 16$:

# %%
g = torch.Generator().manual_seed(0)
pairs = torch.randn(2000, 2, 16, generator=g)                       # 2000 pairs of prior samples
half = torch.tensor([0.5])
mid_linear = torch.stack([lerp(a, b, half)[0] for a, b in pairs]).norm(dim=1)
mid_sphere = torch.stack([slerp(a, b, half)[0] for a, b in pairs]).norm(dim=1)
ends = pairs.norm(dim=2).mean()
print(f"mean norm of the endpoints: {ends:.2f}  (sqrt(16) = 4)")
print(f"midpoint, linear path:      {mid_linear.mean():.2f}  ({mid_linear.mean() / ends:.0%} of it)")
print(f"midpoint, spherical path:   {mid_sphere.mean():.2f}  ({mid_sphere.mean() / ends:.0%} of it)")
assert abs(mid_linear.mean() / ends - 1 / math.sqrt(2)) < 0.05
assert abs(mid_sphere.mean() / ends - 1) < 0.01

# %% [markdown]
# Now morph real digits. Take the 2 and the 7 of section 1, encode them with the $L = 16$
# model (the posterior means $\mu$), and decode ten points on each path.

# %%
z_u, z_v = test_codes[first[2]], test_codes[first[7]]
t = torch.linspace(0, 1, 10)
paths = {"linear": lerp(z_u, z_v, t), "spherical": slerp(z_u, z_v, t)}   # [10, 16] each
with torch.no_grad():
    morphs = {name: torch.sigmoid(vae16.decode(z)) for name, z in paths.items()}
print({name: list(m.shape) for name, m in morphs.items()})

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 2.6), gridspec_kw={"width_ratios": [2.6, 1]})
show_images(torch.cat([morphs["linear"], morphs["spherical"]]).cpu(), nrow=10, ax=axes[0],
            labels=["linear", "spherical"], title="Morphing a 2 into a 7 (L = 16), t = 0 ... 1")
for name, z in paths.items():
    axes[1].plot(t, z.norm(dim=1).cpu(), "o-", label=name)
axes[1].set(xlabel="t", ylabel="norm of z(t)", title="How far each path stays from 0")
axes[1].legend()
plt.show()

# %% [markdown]
# Both rows turn the 2 into a 7; the middle frames are fainter and blurrier than the ends,
# the linear ones most of all. The right panel shows where the paths differ: the straight
# line sags toward the origin in the middle, the spherical path does not.
#
# Does the sag matter for *encodings*? They are posterior means, not prior samples, and
# nothing forces them to fill the shell evenly, so measure rather than assume. For 300
# random pairs of test codes, compare the midpoint norms and how far each midpoint lies
# from the nearest real code.
# The spherical midpoint is never shorter than the linear one: $\lVert z_u + z_v\rVert / 2 \le
# (\lVert z_u\rVert + \lVert z_v\rVert) / 2$ is the triangle inequality.

# %% tags=["nbval-ignore-output"]
idx = torch.randint(len(test_codes), (300, 2), generator=torch.Generator().manual_seed(1))
mids = {name: torch.stack([path(test_codes[i], test_codes[j], half)[0] for i, j in idx])
        for name, path in (("linear", lerp), ("spherical", slerp))}           # [300, 16] each
ends = test_codes.norm(dim=1).mean().item()
for name, m in mids.items():
    print(f"{name:9s} midpoints: norm {m.norm(dim=1).mean():.2f} (codes: {ends:.2f}), "
          f"distance to nearest test code {nearest_distance(m, test_codes).mean():.2f}")
assert (mids["spherical"].norm(dim=1) >= mids["linear"].norm(dim=1) - 1e-5).all()
if TRAINED:
    assert mids["linear"].norm(dim=1).mean() < 0.8 * ends
    assert nearest_distance(mids["linear"], test_codes).mean() <= \
        nearest_distance(mids["spherical"], test_codes).mean()


# %% [markdown]
# The norms behave as the shell argument predicts: linear midpoints are clearly shorter than
# typical codes, spherical ones about as long. But the second measure does not crown slerp:
# the linear midpoints lie *closer* to real codes than the spherical ones. The codes of real
# digits are not spread evenly over a sphere, and the inside of the shell is not empty of
# them. The shell argument is about prior samples; for encodings, check before you choose.
#
# > **Pitfall: morphing sampled codes instead of means.** `vae(x)` returns logits decoded
# > from a *sampled* $z = \mu + \sigma\varepsilon$. Morph between sampled codes and every run
# > gives a different path: the picture you show is one draw, not the model's answer.

# %% tags=["nbval-ignore-output"]
def morph_from(sample: bool) -> torch.Tensor:
    mu, logvar = vae16.encode(torch.stack([x_u, x_v]))
    z = vae16.reparameterize(mu, logvar) if sample else mu              # [2, 16]
    return torch.sigmoid(vae16.decode(lerp(z[0], z[1], t)))


with torch.no_grad():
    sampled_gap = (morph_from(True) - morph_from(True)).abs().max().item()
    mean_gap = (morph_from(False) - morph_from(False)).abs().max().item()
print(f"two runs from sampled z differ by up to {sampled_gap:.2f} in a pixel; from mu: {mean_gap}")
assert sampled_gap > 0.01 and mean_gap == 0.0

# %% [markdown]
# The fix is in the cells above: interpolate the posterior means $\mu$, which the encoder
# returns deterministically, as `encode_all` does.
#
# > **Pitfall: slerp between parallel or opposite codes.** The formula divides by
# > $\sin\Omega$, which is 0 in two cases. At $\Omega = 0$ the codes point the same way (two
# > codes on one ray from the origin, such as $3e$ and $5e$ for a unit vector $e$), and the
# > formula is $0/0$. At $\Omega = \pi$ they point in opposite directions (such as $3e$ and
# > $-5e$), and *every* half great circle joins them: there is no one path to compute.

# %%
e = torch.zeros(16)
e[0] = 1.0                                                   # a unit vector along z1
print("slerp_unit(e, e) at t = 0.5:", slerp_unit(e, e, half)[0, :3], "...")
print("companion slerp(3e, 5e):    ", slerp(3 * e, 5 * e, half)[0, :3], "...")
assert torch.isnan(slerp_unit(e, e, half)).all()
assert torch.equal(slerp(3 * e, 5 * e, half)[0], 4 * e)
ts = torch.tensor([0.0, 3 / 8, 1.0])
opposite = slerp(3 * e, -5 * e, ts)                          # [3, 16]
print("companion slerp(3e, -5e) at t = 0, 3/8, 1: norms", opposite.norm(dim=1).tolist())
assert torch.allclose(opposite, lerp(3 * e, -5 * e, ts)) and opposite[1].norm() < 1e-6


# %% [markdown]
# `companion.latent_arithmetic.slerp` checks $\sin\Omega$ first and, when it is below
# $10^{-4}$, walks the straight line instead. That covers both cases, with different results.
# For (nearly) parallel codes the straight line is also the great circle, so nothing is lost.
# For (nearly) opposite codes it is not: the straight line from $3e$ to $-5e$ passes through
# the origin at $t = 3/8$ (the norm printed above is 0), the very place slerp is meant to
# avoid, and no error tells you. Random pairs of prior samples or of test codes come
# nowhere near opposite:

# %% tags=["nbval-ignore-output"]
def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The angle between the rows of a and b, in degrees; [N]."""
    return torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1, 1).arccos().rad2deg()


widest = {"prior samples": angle(pairs[:, 0], pairs[:, 1]).max().item(),                # 2000 pairs
          "test codes": angle(test_codes[idx[:, 0]], test_codes[idx[:, 1]]).max().item()}  # 300
print("widest angle between the pairs above:",
      ", ".join(f"{v:.1f} degrees ({k})" for k, v in widest.items()))
print(f"angle at which the fallback starts: {180 - math.degrees(math.asin(1e-4)):.4f} degrees")
assert max(widest.values()) < 170

# %% [markdown]
# But if you build the second code from the first, for example to morph a code into its
# mirror image $-z$, choose the route yourself: slerp from $z$ to a direction orthogonal to it,
# then on to $-z$.
#
# ## 3. Attribute vectors · deeper
#
# ### 3.1 The mean code of a class
#
# The slides' "style transfer" replaces the target image by the decoded *mean encoding* of
# all images with the target label, $\bar z_k = \frac{1}{|S_k|}\sum_{x \in S_k} \mu(x)$, and
# morphs toward it. First look at the ten means themselves.

# %% tags=["nbval-ignore-output"]
means = class_means(train_codes, train.labels)                  # [10, 16]
with torch.no_grad():
    mean_digits = torch.sigmoid(vae16.decode(means))            # [10, 1, 28, 28]
mean_judged = judge(mean_digits)
print("the judge reads the decoded class means as:", mean_judged.tolist())
assert means.shape == (10, 16)
assert (mean_judged == torch.arange(10, device=device)).float().mean() >= (0.9 if TRAINED else 0)

# %%
show_images(mean_digits.cpu(), nrow=10, title="Decoded mean code of each class, 0 to 9 (L = 16)")
plt.show()

# %% [markdown]
# Each decoded mean is a clean, average-looking digit of its class: a prototype, with the
# individual quirks of handwriting averaged away.
#
# Two ways to move an image with code $z$ and label $s$ toward class $k$:
#
# - **toward the mean** (the slides): $z(t) = (1-t)\,z + t\,\bar z_k$. At $t = 1$ you get the
#   prototype, whatever $z$ was.
# - **by the difference of means**: $z(t) = z + t\,(\bar z_k - \bar z_s)$. It adds "what
#   separates the classes on average" and keeps the image's offset $z - \bar z_s$ from its own
#   class mean, which is where its style (slant, thickness) might live.
#
# The judge tells you when the class flips. Send 300 test images each to a random other class:

# %% tags=["nbval-ignore-output"]
gen = torch.Generator().manual_seed(2)
subset = torch.randperm(len(test), generator=gen)[:300]
source = test.labels[subset]
target = (source + torch.randint(1, 10, (300,), generator=gen).to(device)) % 10   # never source
z = test_codes[subset]
steps = torch.linspace(0, 1, 5)
hit = {"toward the mean": [], "difference of means": []}
for s in steps:
    moved = {"toward the mean": (1 - s) * z + s * means[target],
             "difference of means": z + s * (means[target] - means[source])}
    for name, codes in moved.items():
        with torch.no_grad():
            judged = judge(torch.sigmoid(vae16.decode(codes)))
        hit[name].append((judged == target).float().mean().item())
print("t:                  ", "  ".join(f"{s:4.2f}" for s in steps))
for name, h in hit.items():
    print(f"{name:20s}", "  ".join(f"{v:4.0%}" for v in h))
assert hit["toward the mean"][-1] >= hit["toward the mean"][0]
if TRAINED:
    assert hit["toward the mean"][0] < 0.1 and hit["toward the mean"][-1] > 0.9

# %% [markdown]
# At $t = 0$ almost nothing is judged as the target (the images are still themselves); by
# $t = 1$ moving toward the mean lands on the target class nearly always, since it *is* the
# prototype. The difference of means flips the class far less reliably: the image's own
# offset from its class mean is still there and pulls it elsewhere. Look at both:

# %%
rows = []
for i in range(4):
    ts = torch.linspace(0, 1, 8)
    rows.append(lerp(z[i], means[target[i]], ts))
    rows.append(traverse(z[i], means[target[i]] - means[source[i]], ts))
with torch.no_grad():
    pictures = torch.sigmoid(vae16.decode(torch.cat(rows)))
labels = [f"{int(source[i])}->{int(target[i])} {kind}" for i in range(4) for kind in ("mean", "diff")]
show_images(pictures.cpu(), nrow=8, labels=labels,
            title="Moving toward another class: to its mean, or by the difference of means")
plt.show()

# %% [markdown]
# In each pair of rows, "mean" ends on a clean prototype of the target class. "diff" often
# ends on a hybrid or a broken shape that is neither digit: the *average* offset between two
# classes is not the right edit for every individual image. The slides' recipe, toward
# the mean, is the dependable one, at the price of losing the image's individuality at
# $t = 1$.
#
# ### 3.2 An attribute you measure yourself: slant
#
# Class labels come with MNIST. Most attributes do not, but you can often measure one. Slant:
# treat each image's ink as a cloud of points $(x, y)$ weighted by intensity and take the
# slope of $x$ against $y$,
#
# $$\text{slant} = \frac{\operatorname{cov}(x, y)}{\operatorname{var}(y)},$$
#
# which is 0 for an upright stroke, positive when the top leans right. `companion.latent_arithmetic.slant`
# computes it. Then the attribute direction is the difference between the mean code of the
# most slanted quarter of the training images and that of the least slanted quarter:
#
# $$d = \bar z_{\text{top 25 \%}} - \bar z_{\text{bottom 25 \%}} .$$

# %% tags=["nbval-ignore-output"]
train_slant = slant(train.images)                                      # [N_TRAIN]
direction = attribute_direction(train_codes, train_slant)               # [16]
print(f"slant of training images: 10th percentile {train_slant.quantile(0.1):+.2f}, "
      f"median {train_slant.median():+.2f}, 90th percentile {train_slant.quantile(0.9):+.2f}")
print(f"length of the slant direction: {direction.norm():.2f}")
assert direction.shape == (16,) and torch.isfinite(direction).all()

# %% [markdown]
# Add multiples $a\,d$ to the codes of test images, decode, and *measure the slant of the
# decoded images*. That is the check: if $d$ really encodes slant, the measured slant should
# rise with $a$, and the judge should still read the same digit for moderate $a$.

# %% tags=["nbval-ignore-output"]
amounts = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
moved = traverse(test_codes[:500], direction, amounts)                    # [500, 7, 16]
with torch.no_grad():
    decoded = torch.sigmoid(vae16.decode(moved.reshape(-1, 16))).reshape(500, 7, 1, 28, 28)
measured = torch.stack([slant(decoded[:, j]) for j in range(7)], dim=1)  # [500, 7]
kept = torch.stack([(judge(decoded[:, j]) == test.labels[:500]).float().mean() for j in range(7)])
original_slant = slant(test.images[:500]).mean().item()                 # the same 500 images
print("a:               ", "  ".join(f"{a:+5.1f}" for a in amounts))
print("measured slant:  ", "  ".join(f"{s:+5.2f}" for s in measured.mean(0)))
print("same digit (kNN):", "  ".join(f"{k:5.0%}" for k in kept))
print(f"mean slant of these 500 test images themselves: {original_slant:+.2f}")
assert measured.mean(0)[-1] > measured.mean(0)[0]
if TRAINED:
    assert (measured.mean(0).diff() > 0).all() and kept[2:5].min() > 0.8
    assert abs(measured.mean(0)[3] - original_slant) < 0.05   # a = 0 keeps the slant

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), gridspec_kw={"width_ratios": [1.3, 1]})
show_images(decoded[:6].reshape(-1, 1, 28, 28).cpu(), nrow=7, ax=axes[0],
            labels=[f"test {i}" for i in range(6)],
            title="Adding a x (slant direction), a = -1.5 ... +1.5")
axes[1].plot(amounts, measured.mean(0).cpu(), "o-", label="decoded images")
axes[1].axhline(original_slant, color="grey", ls="--", label="the same test images, undecoded")
axes[1].set(xlabel="amount a of the slant direction", ylabel="measured slant (dx/dy)",
            title="Measured slant rises with a")
axes[1].legend()
plt.show()

# %% [markdown]
# Left: each row leans from backward to forward as $a$ grows; for moderate $a$ the digit stays
# the same digit, while at the extremes strokes thin out or break and the judge starts to read
# other digits (the "same digit" row). Right: the measured slant of the decoded images climbs
# steadily with $a$, from about the slant of the original images at $a = 0$ (the dashed
# line). The direction was found from the data with one subtraction; no label for slant ever
# existed.
#
# ## 4. Inpainting: filling in what you cannot see · deeper
#
# Hide the bottom half of a test digit. Which $z$ explains the visible half? Ask for the most
# probable one under the model: minimise over $z$
#
# $$\underbrace{-\sum_{i \text{ visible}} \log p(x_i \mid z)}_{\text{fit the visible pixels}}
#   \; + \; \underbrace{\tfrac12 \lVert z \rVert^2}_{-\log p(z) + \text{const}},$$
#
# then decode $z$ and paste the decoded pixels into the hidden half. The prior term keeps $z$
# where the decoder has been trained; without it the optimiser is free to chase the visible
# pixels into regions of latent space that decode to nonsense. `companion.latent_arithmetic.inpaint`
# runs Adam on $z$, starting from the encoding of the masked image (hidden pixels set to 0).
#
# Three other answers to compare it with: the encoder applied to the masked image (one shot,
# no optimisation), the same optimisation without the prior term, and the mean training image
# pasted into the hole.

# %% tags=["nbval-ignore-output"]
N_FILL = settings.pick(300, 50)
x, y = test.images[:N_FILL], test.labels[:N_FILL]
mask = torch.ones(1, 1, 28, 28, device=device)
mask[..., 14:, :] = 0                                                  # hide rows 14-27
with torch.no_grad():
    one_shot = mask * x + (1 - mask) * vae16.reconstruct(x * mask)
optimised, z_opt, losses = inpaint(vae16, x, mask, steps=settings.pick(300, 60))
no_prior, z_free, _ = inpaint(vae16, x, mask, steps=settings.pick(300, 60), prior_weight=0.0)
mean_fill = mask * x + (1 - mask) * train.images.mean(0, keepdim=True)
print(f"objective: {losses[0]:.1f} at the start, {losses[-1]:.1f} after optimising")
assert losses[-1] < losses[0]


# %% [markdown]
# Two measurements for each method: the squared error on the hidden pixels (how close the
# fill is to the truth) and whether the judge reads the completed image as the right digit.

# %% tags=["nbval-ignore-output"]
def hidden_error(filled: torch.Tensor) -> torch.Tensor:
    return ((filled - x) * (1 - mask)).pow(2).flatten(1).sum(1)         # [N_FILL]


results = {"mean image": mean_fill, "encoder, one shot": one_shot,
           "optimised z, no prior": no_prior, "optimised z + prior": optimised}
score = {name: (hidden_error(f).mean().item(), (judge(f) == y).float().mean().item())
         for name, f in results.items()}
for name, (err, acc) in score.items():
    print(f"{name:22s} hidden-pixel squared error {err:5.1f}   judged correctly {acc:4.0%}")
typical = test_codes.norm(dim=1).mean()                                # length of real codes
print(f"mean |z|: with prior {z_opt.norm(dim=1).mean():.1f}, "
      f"without {z_free.norm(dim=1).mean():.1f}, test codes {typical:.1f}")
if TRAINED:   # the prior fill has the smallest error of the four
    assert score["optimised z + prior"][0] < score["mean image"][0]
    assert score["optimised z + prior"][0] <= score["encoder, one shot"][0]
    assert score["optimised z + prior"][0] < score["optimised z, no prior"][0]
    # without the prior, z drifts far beyond the length of typical codes
    assert z_free.norm(dim=1).mean() > 1.5 * max(z_opt.norm(dim=1).mean(), typical)

# %% [markdown]
# Now the pictures, failures included. The first eight columns are simply the first eight
# test images; the last four are the images where the optimised fill has the largest error.

# %%
err = hidden_error(optimised)
worst = err.argsort(descending=True)[:4]
cols = torch.cat([torch.arange(8, device=device), worst])
grid_rows = torch.cat([x[cols], (x * mask)[cols], one_shot[cols], optimised[cols]])
judged = judge(optimised[cols]).tolist()
show_images(grid_rows.cpu(), nrow=12, labels=["original", "visible", "one shot", "optimised"],
            title=f"Inpainting the bottom half; last 4 columns: worst fills. Judge: {judged}")
plt.show()

# %% [markdown]
# Optimising $z$ with the prior gives the smallest error of the four, and dropping the prior
# lets $\lVert z \rVert$ grow far beyond typical codes (the last printed line). In the first
# columns of the figure the fills are plausible strokes in the writer's style; the one-shot
# encoder, which never saw half-hidden digits in training, leaves faint, smeared guesses. The
# worst columns show the honest limit: a top half is often ambiguous (the top of a 2 and of a
# 3, or a closed loop that could be a 9 or a 0), and the optimiser commits to one plausible
# completion, which need not be the one that was hidden. The model is not wrong to do so; the visible pixels
# simply do not decide. Running it from several starting points and keeping every answer
# would show that ambiguity instead of hiding it.
#
# ## 5. An interactive explorer · core
#
# `companion.widgets.explorer(model, x0, x1, direction, name, measure)` puts the ideas of this
# notebook under sliders: one slider per latent dimension (two for the $L = 2$ model), a slider
# $t$ on the path between two test images with a linear/spherical switch, and a slider for the
# attribute direction with the measured attribute printed underneath. The sliders decode when
# you let go. Run the cell in Jupyter to use it; the figure after it shows the same three
# views for readers without a running kernel.

# %% tags=["nbval-ignore-output"]
codes2 = encode_all(vae2, train)                                               # [N_TRAIN, 2]
direction2 = attribute_direction(codes2, slant(train.images))                  # [2]: slant
explorer(vae2, x_u, x_v, direction2, "slant", measure=slant)

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4.6), gridspec_kw={"width_ratios": [1.2, 1, 1]})
with torch.no_grad():
    pad = torch.sigmoid(vae2.decode(grid((-3, 3), (-3, 3), 9).to(device)))      # [81, 1, 28, 28]
    z2 = encode_all(vae2, test)[[first[2], first[7]]]
    walk = torch.sigmoid(vae2.decode(lerp(z2[0], z2[1], torch.linspace(0, 1, 6))))
    lean = torch.sigmoid(vae2.decode(traverse(z2[0], direction2, torch.linspace(-1.5, 1.5, 6))))
axes[0].imshow(image_grid(pad.cpu(), nrow=9), cmap="gray_r", extent=(-3, 3, -3, 3))
axes[0].set(title="Latent sliders: z1, z2 over [-3, 3]", xlabel="$z_1$", ylabel="$z_2$")
show_images(walk.cpu(), nrow=3, ax=axes[1], title="Interpolation slider: t = 0 ... 1")
show_images(lean.cpu(), nrow=3, ax=axes[2], title="Slant slider: a = -1.5 ... +1.5")
plt.show()


# %% [markdown]
# Left: what the two sliders of the $L = 2$ model reach, the decoded image at each point of a
# $9 \times 9$ grid (compare notebook 01's grid walk). Middle and right: six stops of the
# interpolation slider between the 2 and the 7, and of the slant slider on the 2, read left to
# right and top to bottom. With two dimensions there is little room: the straight path from
# the 2 to the 7 passes through other digits' regions, and the slant direction of this model
# changes which digit you see. Try `explorer(vae16, ...)` for sixteen sliders.
#
# Why does the path slider offer two paths? Under the prior $\mathcal N(0, I_L)$,
# $\lVert z \rVert^2$ is a sum of $L$ squares, so in many dimensions samples live on a thin
# shell of radius about $\sqrt L$, not near the origin. The midpoint of two independent
# samples is $\mathcal N(0, I/2)$-distributed, with a norm near $\sqrt{L/2}$: the straight
# ("linear") path cuts through the inside of the shell. The spherical path (slerp) walks along
# the great circle and keeps its distance from the origin. Does the straight path pass
# through places of *low* density under the prior?
#
# **Your turn (5 min).** Write `log_prior(z)` that returns $\log \mathcal N(z; 0, I)$ for each
# row of `z`: shape `[T, L]` in, `[T]` out, using only tensor operations (each coordinate is
# an independent standard normal).

# %% tags=["solution"]
def log_prior(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) of each row of z, [T, L] -> [T]."""
    return -0.5 * z.pow(2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)


# %%
from companion.checks import latent_arithmetic as checks  # noqa: E402

log_prior = checks.check_log_prior(log_prior)

# %% [markdown]
# Use it on 2000 pairs of prior samples in $L = 16$: the norm and the log prior density at
# the endpoints and at the midpoint of each path.

# %% tags=["nbval-ignore-output"]
prior_pairs = torch.randn(2000, 2, 16, generator=torch.Generator().manual_seed(0))  # [2000, 2, 16]
points = {"endpoints": prior_pairs.flatten(0, 1)}                                  # [4000, 16]
for name, path in (("linear", lerp), ("spherical", slerp)):
    points[f"{name} midpoints"] = torch.stack([path(a, b, torch.tensor([0.5]))[0]
                                               for a, b in prior_pairs])          # [2000, 16]
density = {name: log_prior(z).mean().item() for name, z in points.items()}
for name, z in points.items():
    print(f"{name:>19}: mean norm {z.norm(dim=1).mean():.2f}, mean log prior {density[name]:6.1f}")
assert density["linear midpoints"] > max(density["endpoints"], density["spherical midpoints"])
assert points["linear midpoints"].norm(dim=1).mean() < 0.8 * points["endpoints"].norm(dim=1).mean()


# %% [markdown]
# Read the printed numbers. The linear midpoints sit well inside the shell, yet their prior
# density is *higher* than at the endpoints, because the density of $\mathcal N(0, I)$ is
# largest at the origin. Still almost no samples lie near the origin: in 16 dimensions the
# volume near it is tiny. "High density" and "typical" are not the same thing, which is why
# the argument for slerp is about the norm (where samples are), not the density (how tall the
# peak is).
#
# ## Exercises
#
# ### Exercise 1: inpainting without an optimiser
#
# A cheaper way to inpaint: start from the masked image with the hidden pixels set to 0, and
# repeat `steps` times: reconstruct the whole image with the model (`model.reconstruct`, which
# decodes the posterior mean), then put the visible pixels back. Write
# `inpaint_by_iteration(model, x, mask, steps)`; `mask` is 1 on visible pixels and 0 on hidden
# ones.

# %% tags=["solution"]
@torch.no_grad()
def inpaint_by_iteration(model, x: torch.Tensor, mask: torch.Tensor, steps: int) -> torch.Tensor:
    filled = x * mask
    for _ in range(steps):
        filled = mask * x + (1 - mask) * model.reconstruct(filled)
    return filled


# %%
from companion.checks import skip_if_unwritten  # noqa: E402
from companion.checks.latent_arithmetic import check_inpaint_by_iteration  # noqa: E402

check_inpaint_by_iteration(inpaint_by_iteration, vae16, x[:16], mask)

# %% [markdown]
# How does it compare with optimising $z$ on the same images?

# %% tags=["nbval-ignore-output"]
with skip_if_unwritten():                      # runs once inpaint_by_iteration is written
    iterated = inpaint_by_iteration(vae16, x, mask, steps=20)
    print(f"hidden-pixel squared error: iterated {hidden_error(iterated).mean():.1f}, "
          f"optimised z {hidden_error(optimised).mean():.1f}, "
          f"one shot {hidden_error(one_shot).mean():.1f}")
    print(f"judged correctly: iterated {(judge(iterated) == y).float().mean():.0%}")
    assert hidden_error(iterated).shape == (N_FILL,)

# %% [markdown]
# Twenty rounds of reconstruct-and-restore cost twenty forward passes and no gradients. Compare
# the printed errors: the iteration lets the encoder do the work of guessing $z$, while the
# optimiser searches for it directly.
#
# ## Summary
#
# - Morphing is decoding a path between two encodings. In $L$ dimensions prior samples sit on a
#   shell of radius about $\sqrt L$; the straight path sags to about $\sqrt{L/2}$ between two of
#   them, the spherical path does not. For real encodings that is not automatically worse:
#   measure. Interpolate the means $\mu$, never sampled codes.
# - The mean code of a class decodes to a prototype. Moving toward it changes the class
#   reliably; adding a difference of class means is weaker and often lands between classes.
# - An attribute nobody labelled can still be measured (slant as an ink-weighted slope), turned
#   into a direction by one difference of means, and verified by measuring the decoded images.
# - Inpainting by optimising $z$ under the prior fills a hidden half plausibly, but an
#   ambiguous visible half gets *one* plausible answer, not necessarily the true one.
# - Sliders make all of this tangible; `companion.widgets` draws PNGs for them without
#   touching matplotlib's state.
#
# ## References
#
# - D. P. Kingma and M. Welling (2013), "Auto-Encoding Variational Bayes", arXiv:1312.6114.
# - K. Shoemake (1985), "Animating rotation with quaternion curves", *SIGGRAPH* — slerp.
# - T. White (2016), "Sampling Generative Networks", arXiv:1609.04468 — slerp for latent
#   interpolation, attribute vectors from means of labelled codes.
# - A. Radford, L. Metz, S. Chintala (2015), "Unsupervised Representation Learning with Deep
#   Convolutional GANs", arXiv:1511.06434 — vector arithmetic on latent codes.
# - The 2022 slides "Variational Autoencoder" (MNIST): morphing by interpolating two encodings
#   and "style transfer" toward the mean encoding of a label, the ideas of sections 2 and 3.1.
# - "10 Days of Grad", day 9 "Roaming the latent space", by Bogdan Penkovsky: interpolation
#   and inpainting named as applications of a VAE's latent space, and the grid walk of the
#   explorer's static figure.
