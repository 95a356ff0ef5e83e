# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · The ELBO: what a VAE really optimizes
#
# **By the end of this notebook you will know why the probability of an image cannot simply be
# computed, you will have derived the bound that a VAE maximizes instead (twice), and you will
# have checked every step of the derivation on a model where nothing is hidden.**
#
# ### Learning objectives
#
# 1. Write a VAE as a latent-variable model $p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz$ and
#    show, with numbers, why drawing $z$ from the prior cannot estimate this integral for images.
# 2. Derive the evidence lower bound (ELBO) with Jensen's inequality, and again from the identity
#    $\log p(x) = \text{ELBO} + \mathrm{KL}\big(q(z\mid x)\,\|\,p(z\mid x)\big)$.
# 3. Say what each term of the ELBO does, and what the weight $\beta$ changes
#    ($\beta = 0$, $\beta = 1$, $\beta > 1$).
# 4. Verify the identity to machine precision on a linear-Gaussian model, and watch the gap close
#    as $q$ approaches the true posterior.
# 5. Explain the encoder $q_\phi(z\mid x)$ as *amortized* inference, and measure what it saves and
#    what it costs.
#
# **Prerequisites:** 01 (autoencoders); expectations, Gaussian densities and Bayes' rule. You
# need only one fact about the KL divergence here: $\mathrm{KL}(q\,\|\,p) \ge 0$, with equality
# exactly when $q = p$ (notebook 04 proves it and much more).
#
# **Time to run:** about 10 s in fast mode. In full mode under half a minute on a quiet 2-core
# CPU the first time, when a small VAE trains, and about 10 s afterwards, when it loads from the
# cache.

# %% [markdown]
# ## Setup

# %% tags=["nbval-ignore-output"]
import math
import time

import matplotlib.pyplot as plt
import torch
from torch.distributions import Normal

import companion
from companion import settings
from companion.checks import skip_if_unwritten
from companion.checks import vae_theory as checks
from companion.checkpoints import train_or_load
from companion.data import load, source_of
from companion.evaluation.likelihood import effective_sample_size, log_weights, running_estimates
from companion.gaussians import (ellipse, full_gaussian_log_density, gaussian_kl,
                                 sample_gaussian)
from companion.losses import bernoulli_nll, kl_divergence
from companion.models import MLPVAE
from companion.models.linear_gaussian import LinearGaussian, fit_q
from companion.plots import show_images

companion.setup(seed=0, datasets=["mnist"])
# Where the data came from differs between machines (hence no output check); it must be staged.
assert source_of("mnist") != "not staged"

# %% [markdown]
# The notebook studies one trained model: the course's MLP VAE with 20 latent dimensions,
# trained for a few epochs on MNIST (the first run trains it, later runs load it from the
# cache). The objective it trains with is the subject of this notebook: take it on trust for
# now, and by section 3 you will have derived it. `x` holds the test digits that the sections
# below study.

# %% tags=["nbval-ignore-output"]
device = settings.device()
train = load("mnist", "train").subset(settings.pick(60_000, 2_000))
test = load("mnist", "test")
torch.manual_seed(0)
vae = MLPVAE(latent_dim=20, hidden=400).to(device)
history = train_or_load(vae, train, epochs=settings.pick(3, 1), progress=False)
vae.eval().requires_grad_(False)        # from here on the model is fixed: only q will change
print("training loss per epoch (-ELBO on grey pixels, per image):",
      [round(v, 1) for v in history.loss])
assert history.loss[-1] < 784 * math.log(2)   # better than a coin flip for every pixel
x = test.images[:settings.pick(100, 20)]       # [N, 1, 28, 28] the test digits studied below

# %% [markdown]
# ## 1. A model with a hidden cause · core
#
# A VAE tells a two-step story of how an image comes about. First a code $z$ is drawn from a
# simple distribution, the **prior** $p(z) = \mathcal N(0, I)$. Then the decoder turns $z$ into
# one probability per pixel, and each pixel is drawn from a Bernoulli distribution with that
# probability: that is the **likelihood** $p_\theta(x\mid z)$. You never see $z$; it is *latent*.
#
# A Bernoulli distribution with probability $p$ is a biased coin: it gives 1 (ink) with
# probability $p$ and 0 with probability $1 - p$, so pixel $i$ takes its value $x_i$ with
# probability $p_i^{x_i}(1 - p_i)^{1 - x_i}$. Over the 784 pixels,
# $\log p_\theta(x\mid z) = \sum_i \big[x_i \log p_i + (1 - x_i)\log(1 - p_i)\big]$: minus the
# binary cross-entropy, which `companion.losses.bernoulli_nll` computes from the decoder's
# logits.
#
# The probability that the story produces a given image $x$ adds up every code that could have
# produced it:
#
# $$p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz = \mathbb E_{z\sim p(z)}\big[p_\theta(x\mid z)\big].$$
#
# Fitting the model by maximum likelihood means making $\sum_i \log p_\theta(x_i)$ as large as
# possible over the training images. Everything in this notebook is about that one integral.
#
# **A word on the unit.** MNIST pixels are grey levels in $[0, 1]$, and the Bernoulli
# "likelihood" the decoder gives a grey value is not the probability of anything (notebook 05
# binarizes the images for this reason). So every number of nats on MNIST in this notebook,
# the training loss printed in the setup and every "$\log p(x)$" below, is a training loss on grey pixels: compare
# such numbers with each other, never with published log-likelihoods. The arguments do not
# suffer: the integral, Jensen's inequality, importance sampling and the ELBO identity hold
# for any positive function $p_\theta(x\mid z)$, normalised or not. The linear-Gaussian model
# of sections 3, 4 and 6 has true densities, and its numbers are true log-densities.
#
# Here is the story run forwards: codes from the prior, decoded into pixel probabilities.

# %%
show_images(vae.sample(32, generator=torch.Generator().manual_seed(0)), nrow=16,
            title="Decoded codes z ~ p(z): the generative story run forwards")
plt.show()

# %% [markdown]
# Some samples are clear digits and many are blurry blends of two: after a few epochs this is
# not a great generator, but it is a real one, and it is all you need to study the integral.
#
# ## 2. Why the integral is intractable · deeper
#
# The decoder is a neural network, so the integral has no closed form, and a grid over 20
# dimensions is out of the question (10 points per axis already make $10^{20}$ decoder calls).
# The expectation form suggests the obvious Monte Carlo estimate instead: draw $K$ codes from
# the prior and average the likelihoods,
#
# $$p_\theta(x) \approx \frac1K \sum_{k=1}^K p_\theta(x\mid z_k), \qquad z_k \sim p(z).$$
#
# It is unbiased. Try it on one test digit.

# %% tags=["nbval-ignore-output"]
x0 = test.images[1:2]                                         # one test digit (a 2), [1, 1, 28, 28]
K = settings.pick(10_000, 1_000)
z = torch.randn(K, vae.latent_dim, generator=torch.Generator().manual_seed(1)).to(device)
log_px_z = -bernoulli_nll(vae.decode(z), x0.expand(K, -1, -1, -1))   # [K] log p(x|z_k)
share = (log_px_z.max() - torch.logsumexp(log_px_z, 0)).exp()       # largest term / sum
print(f"log p(x|z_k) over {K} prior codes: from {log_px_z.min():.0f} to {log_px_z.max():.0f} nats")
print(f"the largest single p(x|z_k) makes up {share:.0%} of their sum")
assert log_px_z.max() < -104                                  # every term is below e^-104

# %% [markdown]
# Each $p_\theta(x\mid z_k)$ is a product of 784 pixel probabilities, so it is a tiny number,
# and the tiny numbers differ from each other by many orders of magnitude. That already causes
# a practical problem.
#
# > **Pitfall: averaging probabilities that a float cannot hold.** The estimate needs the mean
# > of $e^{\log p(x\mid z_k)}$. The smallest positive float32 is about $1.4\times10^{-45}
# > \approx e^{-103}$, and for this digit every one of these likelihoods is smaller:
#

# %%
tiny = torch.tensor(2.0**-149)                                # the smallest positive float32
print(f"smallest positive float32: {tiny.item():.1e} = e^{math.log(tiny.item()):.1f}")
assert tiny > 0 and tiny / 2 == 0                             # half of it is already 0
naive = log_px_z.exp().mean().log()
print("log(mean(exp(log p(x|z)))) =", naive.item())
assert naive.item() == -math.inf

# %% [markdown]
# > Every term underflowed to 0, so the "estimate" is $\log 0 = -\infty$. The fix is to take
# > the largest term out before exponentiating: with $a_k = \log p(x\mid z_k)$ and
# > $a^\ast = \max_k a_k$,
# > $\log \frac1K\sum_k e^{a_k} = a^\ast + \log \frac1K \sum_k e^{a_k - a^\ast}$, where every
# > exponent is $\le 0$ and the largest term is exactly 1. `torch.logsumexp` does this.

# %% tags=["nbval-ignore-output"]
log_px = torch.logsumexp(log_px_z, 0) - math.log(K)          # log of the mean, computed stably
print(f"naive Monte Carlo with {K} prior codes: log p(x) ≈ {log_px:.1f} nats")
assert torch.isfinite(log_px)
# companion.evaluation.likelihood.log_weights computes the same log p(x|z_k) for a batch of images at once
same = log_weights(vae, x0, K, "prior", generator=torch.Generator().manual_seed(1))   # [K, 1]
assert torch.allclose(same[:, 0], log_px_z, rtol=1e-4, atol=1e-2)

# %% [markdown]
# Now the estimate is finite, but is it any good? To judge it you need a reference. If you
# could draw $z$ from where $p_\theta(x\mid z)$ is large, a few samples would do. *Importance
# sampling* makes that legal: for any distribution $r(z)$ that is positive wherever
# $p_\theta(x, z)$ is,
#
# $$p_\theta(x) = \int r(z)\,\frac{p_\theta(x\mid z)\,p(z)}{r(z)}\,dz
# = \mathbb E_{z\sim r}\!\left[\frac{p_\theta(x\mid z)\,p(z)}{r(z)}\right].$$
#
# The VAE's encoder supplies a good $r$ for each image: the Gaussian $q_\phi(z\mid x)$ around
# the codes that explain $x$ (sections 3 and 5 say where it comes from). Compare the two
# estimates on the hundred test digits `x` (twenty in fast mode), using more and more samples.

# %% tags=["nbval-ignore-output"]
n_prior, n_enc = settings.pick(100_000, 1_000), settings.pick(1_000, 100)
start = time.perf_counter()
log_w_prior = log_weights(vae, x, n_prior, "prior", torch.Generator().manual_seed(2))  # [S, N]
log_w_enc = log_weights(vae, x, n_enc, "encoder", torch.Generator().manual_seed(3))    # [S', N]
sizes_prior = [10**k for k in range(round(math.log10(n_prior)) + 1)]
sizes_enc = [10**k for k in range(round(math.log10(n_enc)) + 1)]
curve_prior = running_estimates(log_w_prior, sizes_prior).mean(1)    # mean over the images
curve_enc = running_estimates(log_w_enc, sizes_enc).mean(1)
for k, v in zip(sizes_prior, curve_prior):
    print(f"{k:>7,} prior codes:   log p(x) ≈ {v:7.1f}")
print(f"{n_enc:>7,} encoder codes: log p(x) ≈ {curve_enc[-1]:7.1f}   ({time.perf_counter() - start:.0f} s)")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.semilogx(sizes_prior, curve_prior, "o-", label="codes from the prior p(z)")
ax.semilogx(sizes_enc, curve_enc, "s-", label="codes from the encoder q(z|x), reweighted")
ax.set(title="Estimates of log p(x), averaged over test digits", xlabel="number of samples K",
       ylabel="estimate of log p(x) (nats)")
ax.legend()
plt.show()

# %% [markdown]
# The encoder's estimate is flat almost from the first sample. The prior's estimate climbs
# steadily with every tenfold increase in samples and, at the largest $K$, is still far below.
# Every estimate of this kind is too low on average for finite $K$ (its expectation is the log
# of the mean only in the limit), and a curve that is still climbing has not arrived.
#
# How far is it from arriving? Three numbers tell.

# %% tags=["nbval-ignore-output"]
shortfall = (curve_enc[-1] - curve_prior[-1]).item()
ess = effective_sample_size(log_w_prior)                      # [N]
with torch.no_grad():
    kl_q = kl_divergence(*vae.encode(x))                      # [N] KL(q(z|x) || p(z)) in nats
print(f"shortfall after {n_prior:,} prior codes: {shortfall:.1f} nats, "
      f"so p(x) is underestimated by a factor of about 10^{shortfall / math.log(10):.0f}")
print(f"effective sample size of those {n_prior:,} codes: median {ess.median():.2f}")
print(f"KL(q(z|x) || p(z)): median {kl_q.median():.1f} nats, so about "
      f"10^{kl_q.median() / math.log(10):.0f} prior codes would be needed per image")
assert shortfall > 1 and ess.median() < 10 and (kl_q > 0).all()
assert 0 < curve_enc[-1] - curve_enc[0] < curve_prior[-1] - curve_prior[0]   # both climb; prior's far more

# %% [markdown]
# - **The shortfall.** After all those samples the estimate is still lower than the
#   importance-sampled one by the number of nats printed; as a ratio of probabilities that is
#   the power of ten printed next to it.
# - **The effective sample size** $\big(\sum_k w_k\big)^2 / \sum_k w_k^2$ (Kong 1992) counts
#   how many of the weights $w_k = p(x\mid z_k)$ matter. Its median is close to 1: for each
#   image, one code out of the whole sample carries nearly all of the estimate, and the rest
#   contribute nothing.
# - **How many samples would be enough?** Importance sampling from a proposal $r$ needs about
#   $e^{\mathrm{KL}(\text{target}\,\|\,r)}$ samples (Chatterjee & Diaconis 2018). Here the target
#   is the posterior $p(z\mid x)$, which $q(z\mid x)$ approximates, and the proposal is the
#   prior. The printed power of ten is per image, for one estimate.
#
# What do the best codes look like? For a few test digits, decode the prior code with the
# largest weight among all those drawn, and one code drawn from $q(z\mid x)$.

# %%
z_prior = torch.randn(n_prior, vae.latent_dim, generator=torch.Generator().manual_seed(2))
best = z_prior[log_w_prior[:, :8].argmax(0)].to(device)      # [8, L] the same codes as above
assert torch.allclose(-bernoulli_nll(vae.decode(best), x[:8]), log_w_prior[:, :8].max(0).values,
                      rtol=1e-4, atol=1e-2)
with torch.no_grad():
    from_q = vae.decode(vae.reparameterize(*vae.encode(x[:8])))
rows = torch.cat([x[:8], torch.sigmoid(vae.decode(best)), torch.sigmoid(from_q)])
show_images(rows, nrow=8, labels=["test digit", "best prior code", "one code from q"],
            title="The best of all prior codes versus a single code from the encoder")
plt.show()

# %% [markdown]
# For a few of these digits the best prior code comes close. For the others it decodes to a
# blurrier picture or to a differently shaped stroke, while a single code from $q(z\mid x)$
# stays close to the original in nearly every column.
# In 20 dimensions the codes that explain a particular image fill a vanishingly small part of
# what the prior covers. So you need $q$. The rest of the notebook derives how to use it, and how to learn it.
#
# ## 3. The ELBO, derived twice · core
#
# ### Via Jensen's inequality
#
# Take any distribution $q(z\mid x)$ that is positive wherever $p_\theta(x, z)$ is. Step by
# step:
#
# $$
# \begin{aligned}
# \log p_\theta(x) &= \log \int p_\theta(x, z)\,dz
#   && \text{(the marginal: sum out } z\text{)}\\
# &= \log \int q(z\mid x)\,\frac{p_\theta(x, z)}{q(z\mid x)}\,dz
#   && \text{(multiply and divide by } q\text{)}\\
# &= \log \mathbb E_{q(z\mid x)}\!\left[\frac{p_\theta(x, z)}{q(z\mid x)}\right]
#   && \text{(an expectation under } q\text{)}\\
# &\ge \mathbb E_{q(z\mid x)}\!\left[\log \frac{p_\theta(x, z)}{q(z\mid x)}\right]
#   =: \mathcal L(x)
#   && \text{(Jensen: } \log \text{ is concave, so } \log \mathbb E[W] \ge \mathbb E[\log W]\text{)}
# \end{aligned}
# $$
#
# $\mathcal L(x)$ is the **evidence lower bound** (ELBO); "evidence" is another name for
# $p_\theta(x)$. Unlike $\log p_\theta(x)$, it is an expectation of something you can compute
# at any sampled $z$, so an average over a few samples estimates it without bias.
#
# Jensen's inequality holds for any distribution, including the empirical distribution of a
# finite sample. Take the VAE's encoder as $q$: for each test digit, draw $n$ codes
# $z_k \sim q(z\mid x)$ and compute the log-weights $\log p_\theta(x, z_k) - \log q(z_k\mid x)$
# (`log_weights(vae, x, n, "encoder")` returns them, `[n, N]`). Their mean is a Monte Carlo
# ELBO; the log of the mean weight is an importance-sampling estimate of $\log p(x)$. The
# first must lie below the second, image by image. That holds for any set of numbers, so the
# `assert` below checks the arithmetic of the two lines, not the model:

# %% tags=["nbval-ignore-output"]
n = settings.pick(200, 50)                                    # codes per test digit
log_w = log_weights(vae, x, n, "encoder", torch.Generator().manual_seed(3))   # [n, N]
elbo_mc = log_w.mean(0)                                       # [N] mean of log-weights
log_px_is = torch.logsumexp(log_w, 0) - math.log(n)           # [N] log of the mean weight
print(f"mean over images: ELBO ≈ {elbo_mc.mean():.1f}, log p(x) ≈ {log_px_is.mean():.1f} nats")
assert (elbo_mc <= log_px_is).all()   # always true (mean of logs <= log of mean): a code check

# %% [markdown]
# ### Via the gap to the true posterior
#
# How loose is the bound? Write the difference, and use $p_\theta(x, z) = p_\theta(z\mid x)\,
# p_\theta(x)$ (the definition of the posterior):
#
# $$
# \begin{aligned}
# \log p_\theta(x) - \mathcal L(x)
# &= \mathbb E_{q}\big[\log p_\theta(x)\big] - \mathbb E_{q}\!\left[\log \frac{p_\theta(x, z)}{q(z\mid x)}\right]
#   && (\log p_\theta(x) \text{ does not depend on } z)\\
# &= \mathbb E_{q}\!\left[\log \frac{q(z\mid x)\,p_\theta(x)}{p_\theta(x, z)}\right]
#  = \mathbb E_{q}\!\left[\log \frac{q(z\mid x)}{p_\theta(z\mid x)}\right]
#   && \text{(Bayes' rule)}\\
# &= \mathrm{KL}\big(q(z\mid x)\,\|\,p_\theta(z\mid x)\big).
# \end{aligned}
# $$
#
# So, exactly,
#
# $$\boxed{\;\log p_\theta(x) = \mathcal L(x) + \mathrm{KL}\big(q(z\mid x)\,\|\,p_\theta(z\mid x)\big)\;}$$
#
# Three things follow.
#
# 1. Because a KL divergence is never negative, $\mathcal L \le \log p_\theta(x)$: Jensen's
#    result again, now with the size of the gap.
# 2. $\log p_\theta(x)$ does not depend on $q$. So raising $\mathcal L$ by changing $q$ can
#    only mean shrinking the KL: **maximizing the ELBO over $q$ pulls $q$ toward the true
#    posterior** $p_\theta(z\mid x)$, and the bound is tight exactly when $q$ equals it.
# 3. Changing $\theta$ to raise $\mathcal L$ raises a floor under $\log p_\theta(x)$: whatever
#    the gap does, $\log p_\theta(x) \ge \mathcal L$. So the decoder ($\theta$) and the encoder
#    (which sets $q$) can be trained together, on one objective.
#
# ### Checking the identity on a model you can solve
#
# You cannot check the boxed identity on the MNIST VAE: its posterior is as intractable as
# $p_\theta(x)$. So take a model in which everything has a closed form. Replace the neural
# decoder by a linear map with Gaussian noise:
#
# $$z \sim \mathcal N(0, I_K), \qquad x\mid z \sim \mathcal N(Wz + b,\ \sigma^2 I_D).$$
#
# `companion.models.linear_gaussian.LinearGaussian` knows this model's exact $\log p(x)$
# (`log_marginal`), its exact posterior $p(z\mid x)$ (`posterior`), and the exact
# $\mathrm{KL}(q\,\|\,p(z\mid x))$ of any Gaussian $q$ (`kl_to_posterior`); section 4 writes
# out the formulas. Take one with $D = 4$ observed and $K = 2$ latent dimensions, and one
# observation $x$.

# %%
lg = LinearGaussian.random(data_dim=4, latent_dim=2, sigma=1.0, seed=7)
x_lg, _ = lg.sample(1, torch.Generator().manual_seed(0))          # one observation, [1, 4]
post_mean, post_cov = lg.posterior(x_lg)                          # [1, 2], [2, 2]
eye = torch.eye(2, dtype=torch.float64)
print(f"x = {x_lg[0].numpy().round(3)}, exact log p(x) = {lg.log_marginal(x_lg).item():.4f}")


# %% [markdown]
# **Your turn (8 min).** The ELBO is the side of the identity that a VAE has to estimate.
# Write `mc_elbo(model, x, mean, cov, n_samples, generator)`: for every row of `x` (`[N, D]`),
# draw `n_samples` codes from $q = \mathcal N(\text{mean}, \text{cov})$ (`mean` is `[N, K]`,
# `cov` is `[K, K]`) and return the average over the samples of
# $\log p(x\mid z) + \log p(z) - \log q(z\mid x)$: one number per row, shape `[N]`. Useful
# pieces: `sample_gaussian(mean, cov, n, generator)` returns `[n, N, K]` draws;
# `model.log_likelihood(x, z)` and `model.log_prior(z)` return `[n, N]`;
# `full_gaussian_log_density(z, mean, cov)` gives $\log q(z)$, also `[n, N]`. The self-check
# names the usual mistakes; the cell after it uses your estimator to test the identity.

# %% tags=["solution"]
def mc_elbo(model, x, mean, cov, n_samples, generator=None):
    """Monte Carlo ELBO of q = N(mean, cov) for each row of x: [N]."""
    z = sample_gaussian(mean, cov, n_samples, generator)                  # [S, N, K] z ~ q
    log_w = model.log_likelihood(x, z) + model.log_prior(z) - full_gaussian_log_density(z, mean, cov)
    return log_w.mean(0)                                                  # [N]


# %%
mc_elbo = checks.check_mc_elbo(mc_elbo)

# %% [markdown]
# Now test the identity with three choices of $q$: the prior, the posterior shifted by 0.5, and
# the exact posterior. For each, estimate the ELBO with `mc_elbo` and compare
# $\log p(x) - \mathcal L$ with the exact $\mathrm{KL}(q\,\|\,p(z\mid x))$.

# %% tags=["nbval-ignore-output"]
three_q = {"prior N(0, I)": (torch.zeros(1, 2, dtype=torch.float64), eye),
           "posterior, shifted": (post_mean + 0.5, post_cov),
           "exact posterior": (post_mean, post_cov)}
print(f"{'q':<20}{'ELBO (Monte Carlo)':>20}{'log p(x) - ELBO':>17}{'KL(q || p(z|x))':>17}")
gaps = {}
for name, (m, S) in three_q.items():
    elbo = mc_elbo(lg, x_lg, m, S, 20_000, torch.Generator().manual_seed(8))   # [1]
    gap, kl = lg.log_marginal(x_lg) - elbo, lg.kl_to_posterior(x_lg, m, S)
    print(f"{name:<20}{elbo.item():20.3f}{gap.item():17.3f}{kl.item():17.3f}")
    assert abs(gap - kl).item() < 0.05 + 0.04 * kl.item()   # equal up to Monte Carlo error (~5 sd)
    gaps[name] = gap.item()
assert max(gaps, key=gaps.get) == "prior N(0, I)" and abs(gaps["exact posterior"]) < 1e-4


# %% [markdown]
# The last two columns agree up to the Monte Carlo error of the estimate, and the gap is
# largest for the prior, which knows nothing about $x$. For the exact posterior it vanishes,
# and not only on average: with $q = p(z\mid x)$ every sample has the same log-weight,
# $\log p(x, z) - \log p(z\mid x) = \log p(x)$, so even a single sample gives $\log p(x)$.
#
# ### The form a VAE trains with
#
# Split the joint the other way, $p_\theta(x, z) = p_\theta(x\mid z)\,p(z)$:
#
# $$\mathcal L(x) = \underbrace{\mathbb E_{q(z\mid x)}\big[\log p_\theta(x\mid z)\big]}_{\text{reconstruction}}
# \;-\; \underbrace{\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big)}_{\text{regularizer}}.$$
#
# - **Reconstruction**: encode $x$, draw a code from $q$, decode it, and score how well the
#   result explains $x$ (a binary cross-entropy for Bernoulli pixels). This is an autoencoder's
#   loss, with noise added to the code.
# - **Regularizer**: keep each $q(z\mid x)$ close to the prior. Then the codes you will later
#   draw from $p(z)$ to generate images look like codes the decoder saw in training. For the
#   diagonal Gaussians of a VAE it has a closed form, `kl_divergence(mu, logvar)`.
#
# Both forms are the same number. Check it on the MNIST VAE: estimate the first form by
# averaging $\log p(x\mid z) + \log p(z) - \log q(z\mid x)$ over samples, and the second by
# averaging $\log p(x\mid z)$ over the same samples and subtracting the closed-form KL.

# %% tags=["nbval-ignore-output"]
def log_normal(z, mu, logvar):
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)


mu, logvar = vae.encode(x)                                              # [N, L] each
eps = torch.randn(n, *mu.shape, generator=torch.Generator().manual_seed(4)).to(device)
z = mu + (0.5 * logvar).exp() * eps                                     # [n, N, L] z ~ q(z|x)
log_px_z = -bernoulli_nll(vae.decode(z.flatten(0, 1)), x.repeat(n, 1, 1, 1)).view(n, -1)
log_ratio = log_normal(z, 0 * mu, 0 * logvar) - log_normal(z, mu, logvar)  # log p(z) - log q(z|x)
joint_form = (log_px_z + log_ratio).mean(0)                             # [N]
recon_form = log_px_z.mean(0) - kl_divergence(mu, logvar)               # [N]
stderr = log_ratio.std(0) / math.sqrt(n)                                # MC error of the KL part
print(f"largest difference: {(joint_form - recon_form).abs().max():.3f} nats "
      f"(Monte Carlo error of the KL part up to {stderr.max():.3f})")
assert ((joint_form - recon_form).abs() < 5 * stderr).all()

# %% [markdown]
# The two forms differ only by the sampling error of the KL part. The closed form has none,
# which is why VAEs train with the second form.
#
# ### The weight β
#
# Many VAEs put a weight on the regularizer:
#
# $$\mathcal L_\beta(x) = \mathbb E_{q(z\mid x)}\big[\log p_\theta(x\mid z)\big]
# - \beta\,\mathrm{KL}\big(q(z\mid x)\,\|\,p(z)\big).$$
#
# - $\beta = 0$: only reconstruction counts. Nothing stops $q$ from shrinking to a single
#   point, and the model becomes a plain autoencoder.
# - $\beta = 1$: the true ELBO, a bound on $\log p_\theta(x)$. This is the VAE.
# - $\beta > 1$: a stronger pull toward the prior, whose coordinates are independent. Higgins
#   et al. (2017) found that this pressure pushes the latent coordinates toward separate,
#   interpretable factors (*disentanglement*), at the price of blurrier reconstructions.
#   It is still a lower bound on $\log p_\theta(x)$, only a looser one: the KL is never
#   negative, so $\mathcal L_\beta = \mathcal L - (\beta - 1)\,\mathrm{KL} \le \mathcal L$.
#
# For $\beta < 1$ the same identity runs the other way, $\mathcal L_\beta \ge \mathcal L$, and
# $\mathcal L_\beta$ can rise above $\log p_\theta(x)$: it is then no bound at all. Section 6
# shows each of these cases on the linear-Gaussian model.
#
# ## 4. A model where everything is tractable · deeper
#
# The linear-Gaussian model of section 3,
# $z \sim \mathcal N(0, I_K)$, $x\mid z \sim \mathcal N(Wz + b,\ \sigma^2 I_D)$,
# is probabilistic PCA (Tipping & Bishop 1999). Every quantity of the previous section
# has a closed form there, because everything is Gaussian:
#
# - the marginal: $p(x) = \mathcal N\big(b,\ WW^\top + \sigma^2 I\big)$;
# - the posterior (Bayes' rule, completing the square):
#   $p(z\mid x) = \mathcal N(m^\ast, S^\ast)$ with
#   $S^\ast = \big(I + W^\top W/\sigma^2\big)^{-1}$ and $m^\ast = S^\ast W^\top (x - b)/\sigma^2$;
# - the ELBO of any Gaussian $q = \mathcal N(m, S)$:
#   $\mathbb E_q[\log p(x\mid z)] = -\frac{1}{2\sigma^2}\big(\lVert x - Wm - b\rVert^2 +
#   \operatorname{tr}(W S W^\top)\big) - \frac D2 \log(2\pi\sigma^2)$, minus the Gaussian
#   $\mathrm{KL}(q\,\|\,\mathcal N(0, I))$.
#
# `companion.models.linear_gaussian` implements these formulas (its tests check them against
# `torch.distributions` and against Bayes' rule at arbitrary $z$). For the model and the
# observation $x$ of section 3:

# %%
print("x =", x_lg[0].numpy().round(3))
print(f"log p(x) = {lg.log_marginal(x_lg).item():.4f}")
print("posterior mean", post_mean[0].numpy().round(3), " posterior std",
      post_cov.diagonal().sqrt().numpy().round(3),
      f" correlation {post_cov[0, 1] / post_cov.diagonal().prod().sqrt():.3f}")

# %% [markdown]
# Section 3 checked the boxed identity up to the Monte Carlo error of the ELBO. With the
# closed-form ELBO it can be checked term by term, to machine precision. Take a few Gaussians
# $q$, and the exact posterior for comparison, and compute $\log p(x) - \mathcal L$ and
# $\mathrm{KL}(q\,\|\,p(z\mid x))$ separately, each from its own formula.

# %%
candidates = {"prior N(0, I)": (torch.zeros(1, 2, dtype=torch.float64), eye),
              "posterior, 3x too wide": (post_mean, 9 * post_cov),
              "posterior, shifted": (post_mean + 0.5, post_cov),
              "exact posterior": (post_mean, post_cov)}
print(f"{'q':<24}{'ELBO':>9}{'log p(x) - ELBO':>17}{'KL(q || p(z|x))':>17}")
for name, (m, S) in candidates.items():
    gap = lg.log_marginal(x_lg) - lg.elbo(x_lg, m, S)
    kl = lg.kl_to_posterior(x_lg, m, S)
    g, k = (round(v.item(), 4) + 0.0 for v in (gap, kl))   # + 0.0 prints -0.0 as 0.0
    print(f"{name:<24}{lg.elbo(x_lg, m, S).item():9.4f}{g:17.4f}{k:17.4f}")
    assert torch.allclose(gap, kl, atol=1e-10) and gap.item() >= -1e-12

# %% [markdown]
# The two columns agree to every printed digit (the `assert` demands agreement to $10^{-10}$),
# and the gap vanishes only for the exact posterior.
#
# ### Closing the gap by optimizing q
#
# Point 2 above says that maximizing the ELBO over $q$ drives $q$ toward the posterior. Watch
# it happen: start $q$ at the prior and follow the gradient of the ELBO (Adam, in
# `companion.models.linear_gaussian.fit_q`). Do it twice: once with a full covariance for $q$, and
# once with a diagonal covariance, the kind a VAE's encoder outputs.

# %%
steps = 300
runs = {"full covariance": fit_q(lg, x_lg, steps=steps),
        "diagonal covariance": fit_q(lg, x_lg, steps=steps, diagonal=True)}
curves = {}
for name, trace in runs.items():
    elbo = torch.cat([lg.elbo(x_lg, m, S) for m, S in trace])               # [steps + 1]
    kl = torch.cat([lg.kl_to_posterior(x_lg, m, S) for m, S in trace])
    curves[name] = (elbo, lg.log_marginal(x_lg) - elbo, kl)
    assert torch.allclose(curves[name][1], kl, atol=1e-9)                    # at every step
    print(f"{name:<20} final gap = KL(q || posterior): {kl[-1]:.6f} nats")
assert curves["full covariance"][2][-1] < 1e-6 < 1e-3 < curves["diagonal covariance"][2][-1]

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), layout="constrained")
axes[0].plot(*ellipse(torch.zeros(2), eye, 2.0), "k:", lw=2, label="prior")
axes[0].plot(*ellipse(post_mean[0], post_cov, 2.0), "k-", lw=5, alpha=0.25, label="true posterior")
for name, color in [("full covariance", "C0"), ("diagonal covariance", "C1")]:
    for step, alpha in [(20, 0.4), (steps, 1.0)]:
        m, S = runs[name][step]
        axes[0].plot(*ellipse(m[0], S[0], 2.0), color=color, alpha=alpha,
                     label=f"q, {name}, step {step}")
    elbo, gap, kl = curves[name]
    axes[1].plot(elbo, color=color, label=f"ELBO, {name}")
    axes[2].semilogy(gap, color=color, lw=3, alpha=0.4, label=f"log p(x) - ELBO, {name}")
    axes[2].semilogy(kl, "--", color=color, label=f"KL(q || posterior), {name}")
axes[1].axhline(lg.log_marginal(x_lg).item(), color="k", ls=":", label="log p(x)")
axes[0].set(title="q in latent space (2-std ellipses)", xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
axes[1].set(title="The ELBO rises toward log p(x)", xlabel="Adam step", ylabel="nats", ylim=(-25, 0))
axes[2].set(title="The gap is the KL to the posterior", xlabel="Adam step", ylabel="nats (log scale)")
for ax in axes:
    ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# Left: $q$ travels from the prior to the posterior. The full-covariance $q$ ends on top of the
# posterior; the diagonal $q$ ends centred on the posterior mean, but as an axis-aligned
# ellipse that cannot follow the posterior's tilt. Middle: the ELBO climbs toward $\log p(x)$.
# Right: the gap and the KL to the posterior are one curve (the thick and the dashed line lie
# on top of each other). With a full covariance the gap keeps shrinking toward zero; with a
# diagonal one it levels off, because no diagonal Gaussian can equal a posterior with
# correlated coordinates. That leftover is the *approximation gap* of the family of $q$, and a
# VAE with a diagonal encoder pays it too.
#
# ### Why KL(q ‖ p) and not KL(p ‖ q)
#
# The diagonal $q$ above is not only untilted, it is also too *narrow*: it covers less of the
# posterior than the posterior's own spread along each axis. That comes from the direction of
# the KL divergence. The ELBO's gap is $\mathrm{KL}(q\,\|\,p(z\mid x)) = \mathbb E_q[\log q -
# \log p(z\mid x)]$, an expectation under $q$, which you can estimate from samples of $q$. The
# other direction, $\mathrm{KL}(p(z\mid x)\,\|\,q)$, is an expectation under the posterior,
# and samples from the posterior are exactly what you do not have. So a VAE minimises the
# "reverse" KL, and that choice has a character:
#
# - $\mathrm{KL}(q\,\|\,p)$ is huge wherever $q$ puts mass that $p$ lacks, and costs little
#   where $p$ has mass that $q$ ignores. The best $q$ stays inside $p$: **mode-seeking**.
# - $\mathrm{KL}(p\,\|\,q)$ is huge wherever $p$ has mass that $q$ lacks. The best $q$ covers
#   all of $p$, even if that puts mass where $p$ has little: **mass-covering**.
#
# For a Gaussian $p = \mathcal N(m, \Sigma)$ with precision $\Lambda = \Sigma^{-1}$ and a
# diagonal Gaussian $q$, both optima have closed forms (Bishop 2006, section 10.1.2): both
# are centred on $m$; $\mathrm{KL}(q\,\|\,p)$ is smallest for variances $1/\Lambda_{ii}$ (the
# spread of $z_i$ with the other coordinates *held fixed*), $\mathrm{KL}(p\,\|\,q)$ for
# variances $\Sigma_{ii}$ (the marginal spread). Check both against `fit_q` and against
# `gaussian_kl`, the course's closed-form KL between full Gaussians:

# %%
reverse_var = 1 / torch.linalg.inv(post_cov).diagonal()        # argmin of KL(q || p): 1/Lambda_ii
forward_var = post_cov.diagonal()                               # argmin of KL(p || q): Sigma_ii
_, fitted_cov = runs["diagonal covariance"][-1]                 # what the ELBO ascent found
scales = torch.logspace(-1, 1, 201, dtype=torch.float64)        # q's variances: c * reverse_var
q_covs = torch.diag_embed(scales[:, None] * reverse_var)        # [201, 2, 2]
means, p_covs = post_mean.expand(len(scales), -1), post_cov.expand(len(scales), -1, -1)
kl_reverse = gaussian_kl(means, q_covs, means, p_covs)          # [201] KL(q || p)
kl_forward = gaussian_kl(means, p_covs, means, q_covs)          # [201] KL(p || q)
rho = post_cov[0, 1] / post_cov.diagonal().prod().sqrt()
print(f"posterior correlation {rho:.3f}; variances: KL(q||p)-optimal {reverse_var.numpy().round(4)}, "
      f"ELBO ascent {fitted_cov[0].diagonal().numpy().round(4)}, "
      f"KL(p||q)-optimal {forward_var.numpy().round(4)}")
print(f"the wide q's variances are 1 / (1 - rho^2) = {1 / (1 - rho**2):.3f} times the narrow q's; "
      f"KL minima at c = {scales[kl_reverse.argmin()]:.3f} and c = {scales[kl_forward.argmin()]:.3f}")

# %%
assert torch.allclose(fitted_cov[0].diagonal(), reverse_var, rtol=1e-4)   # the ELBO picks 1/Lambda_ii
assert (reverse_var < forward_var).all()                                  # ... the narrower q
assert torch.allclose(forward_var / reverse_var, 1 / (1 - rho**2))
assert abs(scales[kl_reverse.argmin()] - 1) < 0.02                         # the grid agrees with the
assert abs(scales[kl_forward.argmin()] / (1 / (1 - rho**2)) - 1) < 0.02    # closed forms

# %% [markdown]
# The ELBO ascent landed on the narrow answer to four digits. Now the picture, with a second
# target where the two directions disagree more sharply: a mixture of two well-separated
# Gaussians in one dimension. The best Gaussian under $\mathrm{KL}(p\,\|\,q)$ matches the
# mixture's mean and variance; the best one under $\mathrm{KL}(q\,\|\,p)$ is found below by
# trying every mean and standard deviation on a grid (the integrals as sums over a fine grid
# of $z$).

# %%
zs = torch.linspace(-8, 8, 801, dtype=torch.float64)                     # integration grid
dz = zs[1] - zs[0]
p_mix = 0.5 * Normal(-2.0, 0.6).log_prob(zs).exp() + 0.5 * Normal(2.0, 0.6).log_prob(zs).exp()
m_grid = torch.linspace(-3, 3, 61, dtype=torch.float64)                  # candidate means
s_grid = torch.linspace(0.2, 3, 29, dtype=torch.float64)                 # ... and stds
q_grid = Normal(m_grid[:, None, None], s_grid[None, :, None]).log_prob(zs)  # [61, 29, 801] log q
rev_mix = (q_grid.exp() * (q_grid - p_mix.log())).sum(-1) * dz            # KL(q || p) by sums
best_m, best_s = divmod(rev_mix.argmin().item(), len(s_grid))
fwd_mean = (zs * p_mix).sum() * dz                                       # moment matching
fwd_std = (((zs - fwd_mean) ** 2 * p_mix).sum() * dz).sqrt()
print(f"KL(q || p)-optimal q: mean {m_grid[best_m]:+.2f}, std {s_grid[best_s]:.2f}   "
      f"KL(p || q)-optimal q: mean {round(fwd_mean.item(), 2) + 0.0:+.2f}, std {fwd_std:.2f}")
assert abs(abs(m_grid[best_m]) - 2) < 0.1 and abs(s_grid[best_s] - 0.6) < 0.1   # one mode
assert abs(fwd_mean) < 1e-6 and abs(fwd_std - math.sqrt(0.36 + 4)) < 1e-3       # both modes

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
a.plot(*ellipse(post_mean[0], post_cov, 2.0), "k-", lw=5, alpha=0.25, label="posterior p")
a.plot(*ellipse(post_mean[0], torch.diag(reverse_var), 2.0), "C1", label="best diagonal q, KL(q || p)")
a.plot(*ellipse(post_mean[0], torch.diag(forward_var), 2.0), "C2--", label="best diagonal q, KL(p || q)")
a.set(title="A correlated Gaussian p (2-std ellipses)", xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
b.fill_between(zs, p_mix, color="k", alpha=0.2, label="two-mode p")
b.plot(zs, Normal(m_grid[best_m], s_grid[best_s]).log_prob(zs).exp(), "C1", label="best q, KL(q || p)")
b.plot(zs, Normal(fwd_mean, fwd_std).log_prob(zs).exp(), "C2--", label="best q, KL(p || q)")
b.set(title="A two-mode p and the best single Gaussian", xlabel="z", ylabel="density")
a.legend(fontsize=8, loc="lower right")
b.legend(fontsize=8)
plt.show()

# %%
valley = {"p": p_mix[len(zs) // 2].item(),                                 # densities at z = 0
          "wide q": Normal(fwd_mean, fwd_std).log_prob(torch.tensor(0.0)).exp().item()}
print(f"density at z = 0, between the modes: p {valley['p']:.4f}, KL(p || q)-optimal q "
      f"{valley['wide q']:.4f}")
assert torch.allclose(rev_mix, rev_mix.flip(0)) and valley["wide q"] > 10 * valley["p"]

# %% [markdown]
# Left: along each axis the $\mathrm{KL}(q\,\|\,p)$ ellipse spans less than the posterior
# does, while the $\mathrm{KL}(p\,\|\,q)$ ellipse spans exactly the posterior's extent along
# each axis and so sticks out of it across the tilt. Right: $\mathrm{KL}(q\,\|\,p)$ picks one
# mode and ignores the other (the mixture is symmetric, so the other mode is exactly as good),
# while $\mathrm{KL}(p\,\|\,q)$ spreads one wide bump over both modes and puts its peak in the
# valley between them, where $p$ has almost no mass (the densities printed above). A VAE's
# encoder is of the first kind: its $q$ tends to be *overconfident*, narrower than the true
# posterior, and on a posterior with several modes it settles on one. That is the price of
# the only direction you can compute.
#
# > **Pitfall: the mean of the logs is not the log of the mean.** A tempting shortcut for
# > $\log p(x)$ is to average $\log p(x\mid z_k)$ over prior samples, instead of averaging
# > $p(x\mid z_k)$ and taking the log. In this model you can see exactly what that computes.
#

# %%
z_lg = torch.randn(100_000, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
log_lik = lg.log_likelihood(x_lg, z_lg.unsqueeze(1))[:, 0]              # [S] log p(x|z_k)
prior = (torch.zeros(1, 2, dtype=torch.float64), eye)
log_of_mean = torch.logsumexp(log_lik, 0) - math.log(len(log_lik))
print(f"exact log p(x)                        {lg.log_marginal(x_lg).item():9.3f}")
print(f"mean of log p(x|z_k), z_k ~ p(z)      {log_lik.mean().item():9.3f}")
print(f"exact ELBO of q = p(z)                {lg.elbo(x_lg, *prior).item():9.3f}")
print(f"log of mean of p(x|z_k), z_k ~ p(z)   {log_of_mean.item():9.3f}")
se = log_lik.std() / math.sqrt(len(log_lik))
assert abs(log_lik.mean() - lg.elbo(x_lg, *prior)) < 4 * se           # the shortcut = that ELBO
assert abs(log_of_mean - lg.log_marginal(x_lg)) < 0.05                 # the log of the mean is right


# %% [markdown]
# > The shortcut lands many nats too low, on the ELBO of $q = p(z)$, and that is no accident:
# > with $q$ equal to the prior the ELBO is $\mathbb E_{p(z)}[\log p(x\mid z)]$, exactly what
# > the shortcut averages. It misses $\log p(x)$ by $\mathrm{KL}(p(z)\,\|\,p(z\mid x))$, the first
# > row of the table above, however many samples you take. The log of the mean is right
# > (in two latent dimensions the prior covers the posterior well enough). On MNIST, in 20
# > dimensions, even that needed far more samples than you can afford, as section 2 showed.
#
# ## 5. The encoder: amortized inference · deeper
#
# `fit_q` did *variational inference* the classic way: for one observation, run an
# optimizer over the parameters of $q$. On a dataset that means one optimization per image,
# repeated for every new image you want to encode.
#
# A VAE instead trains one network, the encoder, that maps any $x$ to the parameters
# $(\mu_\phi(x), \log\sigma^2_\phi(x))$ of $q_\phi(z\mid x)$ in a single forward pass. The
# cost of inference is paid once, during training, and shared by every image: it is
# *amortized* (Gershman & Goodman 2014). The price is that one network must serve all images,
# so for any particular image its $q$ is usually a little worse than what a dedicated
# optimization would find. Cremer et al. (2018) call the difference the *amortization gap*.
#
# Measure both sides on the MNIST VAE. The function below runs per-image inference: Adam on a
# separate $(\mu, \log\sigma^2)$ for every image, maximizing a Monte Carlo ELBO. (It writes the
# sample as $z = \mu + \sigma\varepsilon$ so that gradients reach $\mu$ and $\sigma$; notebook
# 03 explains why.)

# %%
def optimize_q(vae, x, mu, logvar, steps, lr=0.05, samples=8, seed=0):
    """Per-image inference: Adam on a separate (mu, logvar) per image; returns them and the ELBO curve."""
    gen = torch.Generator().manual_seed(seed)
    mu, logvar = mu.clone().requires_grad_(), logvar.clone().requires_grad_()
    optimizer, curve = torch.optim.Adam([mu, logvar], lr=lr), []
    for _ in range(steps):
        eps = torch.randn(samples, *mu.shape, generator=gen).to(mu.device)     # [S, N, L]
        z = mu + (0.5 * logvar).exp() * eps
        recon = bernoulli_nll(vae.decode(z.flatten(0, 1)), x.repeat(samples, 1, 1, 1))
        loss = recon.view(samples, -1).mean(0) + kl_divergence(mu, logvar)      # -ELBO, [N]
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
        curve.append(-loss.mean().item())
    return mu.detach(), logvar.detach(), curve


# %% [markdown]
# Start one run at the prior ($\mu = 0$, $\log\sigma^2 = 0$), as classic variational inference
# would, and one at the encoder's answer. Score every $q$ with the same precise ELBO estimate
# (many samples, via `log_weights`; its mean log-weight is the ELBO).

# %% tags=["nbval-ignore-output"]
xs, steps_vi = x[:settings.pick(32, 8)], settings.pick(200, 60)
start = time.perf_counter()
mu_enc, logvar_enc = vae.encode(xs)                                     # one forward pass
t_encoder = time.perf_counter() - start
start = time.perf_counter()
mu_vi, logvar_vi, curve_vi = optimize_q(vae, xs, 0 * mu_enc, 0 * logvar_enc, steps_vi)
t_vi = time.perf_counter() - start
mu_warm, logvar_warm, curve_warm = optimize_q(vae, xs, mu_enc, logvar_enc, steps_vi)


def precise_elbo(q):
    return log_weights(vae, xs, 500, q=q, generator=torch.Generator().manual_seed(6)).mean(0)


scores = {"encoder": precise_elbo((mu_enc, logvar_enc)),
          "per-image, from the prior": precise_elbo((mu_vi, logvar_vi)),
          "per-image, from the encoder": precise_elbo((mu_warm, logvar_warm))}
for name, s in scores.items():
    print(f"{name:<28} mean ELBO {s.mean():8.2f} nats")
print(f"time for {len(xs)} images: encoder {1e3 * t_encoder:.1f} ms, per-image optimization {t_vi:.1f} s")

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(curve_vi, alpha=0.8, label="per-image optimization, from the prior")
ax.plot(curve_warm, alpha=0.8, label="per-image optimization, from the encoder's q")
ax.axhline(scores["encoder"].mean().item(), color="k", ls="--", label="encoder: one forward pass")
ax.set(title="Per-image inference versus the encoder", xlabel="Adam step",
       ylabel="ELBO, mean over images (nats)", ylim=(scores["encoder"].mean().item() - 60, None))
ax.legend()
plt.show()

# %% [markdown]
# Starting from the prior, per-image optimization needs many steps, each a full pass through
# the decoder, before it matches what the encoder gives in one forward pass. Started from
# the encoder's answer, the same optimization still climbs a little: that remaining climb is
# the amortization gap. The check below makes both statements precise.

# %% tags=["nbval-ignore-output"]
enc = scores["encoder"].mean().item()
reached = next((i + 1 for i, v in enumerate(curve_vi) if v >= enc), None)
print(f"steps from the prior until the (noisy) ELBO matches the encoder's: {reached}")
gap = (scores["per-image, from the encoder"] - scores["encoder"]).mean().item()
print(f"amortization gap (per-image optimum minus encoder), mean over images: {gap:.2f} nats")
assert reached is not None and reached > 5
assert gap > 0 and t_encoder < t_vi

# %% [markdown]
# ## 6. What β does, in a model you can solve · deeper
#
# Back to the linear-Gaussian model, where the best $q$ for any $\beta$ can be found exactly.
# `fit_q` accepts one $\beta$ per row, so a single run optimizes $q$ for five values of
# $\beta$ at once.

# %%
betas = torch.tensor([0.0, 0.25, 1.0, 4.0, 16.0], dtype=torch.float64)
trace = fit_q(lg, x_lg.expand(len(betas), -1), beta=betas, steps=500)
q_mean, q_cov = trace[-1]                                                # [5, 2], [5, 2, 2]
kl_prior = lg.kl_to_prior(q_mean, q_cov)                                 # [5]
corr = (q_cov[:, 0, 1] / q_cov.diagonal(dim1=1, dim2=2).prod(1).sqrt()).abs()
spread = q_cov.det().pow(0.25)                                           # geometric-mean std
true_elbo = lg.elbo(x_lg.expand(len(betas), -1), q_mean, q_cov)         # [5] the beta = 1 ELBO
beta_elbo = true_elbo + (1 - betas) * kl_prior                           # [5] L_beta, its objective
print(f"{'beta':>5}{'KL(q || p(z))':>15}{'|correlation|':>15}{'std':>8}{'ELBO (beta=1)':>15}"
      f"{'L_beta':>9}")
for i, b in enumerate(betas):
    print(f"{b.item():5.2f}{kl_prior[i]:15.3f}{corr[i]:15.3f}{spread[i]:8.3f}{true_elbo[i]:15.3f}"
          f"{beta_elbo[i]:9.3f}")

# %%
fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
ax.plot(*ellipse(torch.zeros(2), eye, 2.0), "k:", lw=2, label="prior")
ax.plot(*ellipse(post_mean[0], post_cov, 2.0), "k-", lw=5, alpha=0.25, label="true posterior")
for i, b in enumerate(betas):
    ax.plot(*ellipse(q_mean[i], q_cov[i], 2.0), color=f"C{i}", label=f"best q, beta = {b.item():g}")
ax.set(title="The best q for each beta (2-std ellipses)", xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
plt.show()

# %% [markdown]
# As $\beta$ grows, the best $q$ slides from a tiny ellipse toward the prior's circle. Checks,
# one per claim of section 3:

# %%
least_squares = torch.linalg.lstsq(lg.W, (x_lg - lg.b).T).solution.T   # an autoencoder's code
std_beta0 = [S[0].det().pow(0.25).item() for _, S in (trace[250], trace[500])]
assert lg.kl_to_posterior(x_lg, q_mean[2:3], q_cov[2]).item() < 1e-6  # beta = 1: the posterior
assert torch.allclose(q_mean[0], least_squares[0], atol=1e-3)         # beta = 0: least squares,
assert std_beta0[1] < std_beta0[0] < spread[2]                          # and q keeps shrinking
assert (kl_prior.diff() < 0).all() and (corr[2:].diff() < 0).all()      # beta up: toward p(z)
assert true_elbo.argmax() == 2                                          # any beta != 1 costs ELBO
log_px_lg = lg.log_marginal(x_lg)
assert (beta_elbo[betas >= 1] <= log_px_lg + 1e-12).all()   # beta >= 1: a bound (+ rounding)
assert (beta_elbo[betas < 1] > log_px_lg).any()             # beta < 1: can pass log p(x)
print("beta = 0: mean = least-squares code", least_squares[0].numpy().round(3),
      f"and std still shrinking ({std_beta0[0]:.3f} after 250 steps, {std_beta0[1]:.3f} after 500)")

# %% [markdown]
# - **β = 0**: the mean of $q$ is the least-squares code of $x$, what a linear autoencoder
#   would output, and the spread of $q$ keeps shrinking for as long as you optimize. The best
#   $q$ is a point: an autoencoder.
# - **β = 1**: the best $q$ is the exact posterior, and its ELBO is $\log p(x)$.
# - **β > 1**: $q$ moves toward the prior. Its KL to the prior drops, and its coordinates
#   become less correlated: the pressure toward the prior's independent coordinates that
#   β-VAEs rely on for disentanglement. The ELBO column shows the price: a lower true ELBO.
# - **The last column** is the objective $\mathcal L_\beta$ that each $q$ maximizes. For
#   $\beta \ge 1$ it stays at or below $\log p(x)$, printed in section 4; for $\beta < 1$ it
#   climbs above it, so a β below 1 does not give a bound on $\log p(x)$.
#
# > **Pitfall: $q(z\mid x)$ is not trying to become the prior.** Write-ups of VAEs sometimes
# > call $p(z\mid x)$, the target of the encoder, a prior, or describe β as keeping the prior
# > $q(z\mid x)$ simple. The prior is $p(z)$; $p(z\mid x)$ is the posterior,
# > and that is what $q$ approximates (point 2 of section 3). The KL to the prior in the loss is
# > a counterweight, not the goal. Reading it as the goal leads to setting $q = p(z)$, which
# > makes that KL zero. Compare:
#

# %%
elbo_prior_q = lg.elbo(x_lg, *prior).item()
elbo_posterior = lg.elbo(x_lg, post_mean, post_cov).item()
print(f"q = prior:     KL(q || p(z)) = 0,     ELBO = {elbo_prior_q:.3f}")
print(f"q = posterior: KL(q || p(z)) = {lg.kl_to_prior(post_mean, post_cov).item():.3f}, "
      f"ELBO = {elbo_posterior:.3f} = log p(x)")
assert elbo_prior_q < elbo_posterior and lg.kl_to_prior(post_mean, post_cov).item() > 0


# %% [markdown]
# > With $q$ equal to the prior, the code carries no information about $x$ (every image gets
# > the same $q$), and the ELBO drops by the full $\mathrm{KL}(p(z)\,\|\,p(z\mid x))$. The best
# > $q$ keeps a positive KL to the prior: it measures how far $q$ has moved away from the prior
# > to describe this $x$. Averaged over a dataset, that KL is an upper bound on the information
# > the code carries about $x$ (Hoffman & Johnson 2016).
#
# ## Exercises
#
# ### Exercise 1: the best q for any β
#
# Section 6 found the best $q$ by gradient ascent. Find it with pen and paper instead. For
# $q = \mathcal N(m, S)$ the β-ELBO of the linear-Gaussian model is, up to constants,
#
# $$-\frac{1}{2\sigma^2}\Big(\lVert x - b - Wm\rVert^2 + \operatorname{tr}(W^\top W S)\Big)
# - \frac\beta2\Big(\operatorname{tr} S + m^\top m - \log\det S\Big).$$
#
# Set its gradients with respect to $m$ and $S$ to zero, and write
# `beta_optimal_q(model, x, beta)` that returns `(mean [N, K], cov [K, K])` for $\beta > 0$
# (`model.W`, `model.b`, `model.sigma`). At $\beta = 1$ you should recover `model.posterior(x)`.

# %% tags=["solution"]
def beta_optimal_q(model, x, beta):
    eye = torch.eye(model.latent_dim, dtype=x.dtype)
    a_inv = torch.linalg.inv(beta * eye + model.W.T @ model.W / model.sigma**2)   # [K, K]
    mean = (x - model.b) @ model.W @ a_inv / model.sigma**2                        # [N, K]
    return mean, beta * a_inv


checks.check_beta_optimal_q(beta_optimal_q)

# %% [markdown]
# Your formula should also agree with what gradient ascent found in section 6:

# %%
with skip_if_unwritten():                      # runs once beta_optimal_q is written
    for i, b in enumerate(betas[1:], start=1):
        m, S = beta_optimal_q(lg, x_lg, b.item())
        assert torch.allclose(m, q_mean[i:i + 1], atol=1e-4)
        assert torch.allclose(S, q_cov[i], atol=1e-4)
    print("closed form and gradient ascent agree for beta =", betas[1:].tolist())

# %% [markdown]
# Once your formula passes, read your covariance as a function of β and follow it to both
# ends: as $\beta \to 0$ it should shrink to a point (the autoencoder of section 6's
# $\beta = 0$ row), and as $\beta \to \infty$ it should become the prior's covariance $I$.
#
# ## Summary
#
# - A VAE is a latent-variable model, $p_\theta(x) = \int p_\theta(x\mid z)\,p(z)\,dz$. For
#   images the integral cannot be computed, and sampling $z$ from the prior fails badly: one
#   code carries all the weight, and the estimate stays far too low after $10^5$ samples.
# - The ELBO, $\mathbb E_q[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z))$, is a lower
#   bound on $\log p_\theta(x)$ (Jensen), and its gap is exactly
#   $\mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$. So maximizing it over $q$ pulls $q$ toward the
#   true posterior.
# - On a linear-Gaussian model the identity holds to $10^{-10}$; a full-covariance $q$ closes
#   the gap, a diagonal one cannot.
# - The encoder amortizes inference: one forward pass replaces a per-image optimization, at
#   the cost of a small amortization gap.
# - β weighs the KL term: β = 0 gives an autoencoder, β = 1 the VAE and the exact bound,
#   β > 1 a looser bound that pulls $q$ toward the factorized prior (the disentanglement
#   pressure of β-VAEs). Below 1, $\mathcal L_\beta$ is no bound on $\log p(x)$.
#
# ## References
#
# - D. P. Kingma and M. Welling, *Auto-Encoding Variational Bayes*, 2013, arXiv:1312.6114.
# - D. J. Rezende, S. Mohamed and D. Wierstra, *Stochastic Backpropagation and Approximate
#   Inference in Deep Generative Models*, 2014, arXiv:1401.4082.
# - C. Doersch, *Tutorial on Variational Autoencoders*, 2016, arXiv:1606.05908.
# - D. M. Blei, A. Kucukelbir and J. D. McAuliffe, *Variational Inference: A Review for
#   Statisticians*, 2017, arXiv:1601.00670 (Jensen's bound, the KL identity, mean-field $q$).
# - C. M. Bishop, *Pattern Recognition and Machine Learning*, Springer, 2006, section 10.1.2
#   (the two directions of the KL for a factorized $q$: variances $1/\Lambda_{ii}$ against
#   marginal variances, and one mode against both).
# - M. E. Tipping and C. M. Bishop, *Probabilistic Principal Component Analysis*, Journal of
#   the Royal Statistical Society B, 1999 (the linear-Gaussian model).
# - I. Higgins et al., *β-VAE: Learning Basic Visual Concepts with a Constrained Variational
#   Framework*, ICLR 2017.
# - M. D. Hoffman and M. J. Johnson, *ELBO Surgery: Yet Another Way to Carve Up the
#   Variational Evidence Lower Bound*, NIPS 2016 Workshop in Advances in Approximate Bayesian
#   Inference.
# - Y. Burda, R. Grosse and R. Salakhutdinov, *Importance Weighted Autoencoders*, 2015,
#   arXiv:1509.00519 (estimating $\log p(x)$ with the encoder as proposal).
# - A. Kong, *A Note on Importance Sampling using Standardized Weights*, technical report,
#   University of Chicago, 1992 (the effective sample size).
# - S. Chatterjee and P. Diaconis, *The Sample Size Required in Importance Sampling*, Annals of
#   Applied Probability, 2018, arXiv:1511.01437.
# - S. J. Gershman and N. D. Goodman, *Amortized Inference in Probabilistic Reasoning*,
#   CogSci 2014.
# - C. Cremer, X. Li and D. Duvenaud, *Inference Suboptimality in Variational Autoencoders*,
#   ICML 2018, arXiv:1801.03558 (the amortization gap).
# - The course's source documents: "10 Days of Grad", day 9, by Bogdan Penkovsky (the reading
#   of β = 0, 1 and > 1); a 2018 ML journal-club notebook on VAEs (the theory after Kingma &
#   Welling and Doersch, and the prior/posterior mix-up of the last pitfall); the 2022 slides
#   "Variational Autoencoder" (the encoder as a Gaussian layer with mean and log-variance
#   heads).
