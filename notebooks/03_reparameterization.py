# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · The reparameterization trick
#
# **By the end of this notebook you can send gradients through a random sample: you will know
# why a plain draw blocks them, measure the two estimators that get around it, and write the
# three lines every VAE uses.**
#
# ### Learning objectives
#
# 1. Show that `q.sample()` gives the encoder no gradient, and that `torch.normal` gives it a
#    gradient of exactly zero without any warning.
# 2. Derive the score-function (REINFORCE) and the pathwise (reparameterized) estimators of
#    $\nabla_\phi\,\mathbb E_{q_\phi}[f(z)]$, and measure how their variances shrink with the
#    number of samples.
# 3. Write $z = \mu + \sigma \odot \varepsilon$ with $\sigma = \exp(\tfrac12\log\sigma^2)$, and
#    explain why encoders output $\log\sigma^2$ rather than $\sigma$ or $\sigma^2$.
# 4. Recognise three bugs from real VAE code: one $\varepsilon$ for the whole batch, a missing
#    `exp`, and a hard-coded `"cuda"`.
#
# **Prerequisites:** 01 (autoencoders) and 02 (the ELBO, whose expectation over
# $q_\phi(z\mid x)$ you will differentiate here), and `loss.backward()` from any PyTorch
# introduction.
#
# **Time to run:** under 10 s in fast mode. In full mode under half a minute on a quiet 2-core
# CPU the first time, most of it training the two small VAEs of section 7, and under 10 s
# afterwards, when they load from the cache.

# %% [markdown]
# ## Setup

# %% tags=["nbval-ignore-output"]
import math

import matplotlib.pyplot as plt
import torch
from torch.distributions import Normal

import companion
from companion import settings
from companion.checks import reparameterization as checks
from companion.checkpoints import train_or_load
from companion.data import load, source_of
from companion.losses import bernoulli_nll, kl_divergence
from companion.models import MLPVAE, VAE

companion.setup(seed=0, datasets=["mnist"])
device = settings.device()          # where load() puts the data; models go there too
# Where the data came from differs between machines (hence no output check); it must be staged.
assert source_of("mnist") != "not staged"

# %% [markdown]
# ## 1. A random draw has no gradient · core
#
# The ELBO of notebook 02 contains an expectation over the encoder's distribution. Write its
# reconstruction part as
#
# $$\mathcal L(\phi) = \mathbb E_{z \sim q_\phi(z\mid x)}\big[f(z)\big], \qquad
# f(z) = \log p_\theta(x\mid z),$$
#
# where $\phi$ are the encoder's weights, which produce $\mu$ and $\log\sigma^2$. Training needs
# $\nabla_\phi \mathcal L$. You cannot compute the expectation exactly, so you draw a $z$ and
# evaluate $f(z)$. But how does a drawn number change when $\mu$ moves a little? A random
# number generator does not say: "draw from $\mathcal N(\mu, \sigma^2)$" is not a formula in
# $\mu$, so the chain rule has nothing to work with. PyTorch agrees, in two different ways.

# %%
mu = torch.tensor(1.0, requires_grad=True)
logvar = torch.tensor(0.0, requires_grad=True)
z = Normal(mu, torch.exp(0.5 * logvar)).sample()
print("Normal(...).sample(): z.requires_grad =", z.requires_grad)

z = torch.normal(mu, torch.exp(0.5 * logvar))      # has a backward, but see what it returns
(z ** 2).backward()
print(f"torch.normal: d(z^2)/dmu = {mu.grad.item()}, d(z^2)/dlogvar = {logvar.grad.item()}")
assert mu.grad == 0 and logvar.grad == 0

# %% [markdown]
# `.sample()` cuts the graph: $z$ is a constant as far as autograd knows. `torch.normal` is
# sneakier: it does take part in autograd, but its backward returns zeros. Yet
# $\mathbb E[z^2] = \mu^2 + \sigma^2$ clearly depends on $\mu$ — its derivative at $\mu = 1$
# is 2, not 0.
#
# In a VAE this means the encoder never hears from the reconstruction term. Take an (untrained)
# MLP VAE from `companion.models`, sample its codes the plain way, and backpropagate the
# reconstruction loss of a batch of MNIST digits.

# %%
x = load("mnist", "test").images[:64]                    # [64, 1, 28, 28]
vae = MLPVAE(latent_dim=20, hidden=400).to(device)       # on the data's device
mu, logvar = vae.encode(x)                               # [64, 20] each
z = Normal(mu, torch.exp(0.5 * logvar)).sample()         # the plain draw
bernoulli_nll(vae.decode(z), x).mean().backward()
print("decoder gets a gradient:", vae.decoder[0].weight.grad is not None)
print("encoder gets a gradient:", vae.mu.weight.grad is not None)
assert vae.decoder[0].weight.grad is not None and vae.mu.weight.grad is None


# %% [markdown]
# The decoder learns; the encoder's $\mu$ and $\log\sigma^2$ heads get nothing. They would only
# ever feel the KL term, which pulls every code toward the prior no matter what the image is.
# There are two ways out.

# %% [markdown]
# ## 2. Two gradient estimators · core
#
# **The score function (REINFORCE).** Differentiate under the integral and use
# $\nabla q = q\,\nabla\log q$:
#
# $$\nabla_\phi\,\mathbb E_{q_\phi}[f(z)] = \int f(z)\,\nabla_\phi q_\phi(z)\,dz
# = \mathbb E_{q_\phi}\big[f(z)\,\nabla_\phi \log q_\phi(z)\big].$$
#
# The right-hand side is an expectation again, so you can estimate it by drawing samples. It
# only needs *values* of $f$, never its derivative. For a Gaussian,
# $\partial_\mu \log \mathcal N(z;\mu,\sigma^2) = (z - \mu)/\sigma^2$.
#
# **The pathwise estimator (reparameterization).** Draw the randomness from a distribution that
# does not depend on $\phi$, then move it into place with a differentiable function:
#
# $$z = \mu + \sigma\,\varepsilon,\quad \varepsilon \sim \mathcal N(0, 1)
# \qquad\Longrightarrow\qquad
# \nabla_\phi\,\mathbb E_{q_\phi}[f(z)]
# = \mathbb E_{\varepsilon}\big[\nabla_\phi f(\mu + \sigma\varepsilon)\big]
# = \mathbb E_{\varepsilon}\Big[f'(z)\,\frac{\partial z}{\partial \phi}\Big].$$
#
# The expectation is now over $\varepsilon$, which $\phi$ does not touch, so the gradient moves
# inside and autograd does the rest: $\partial z/\partial\mu = 1$ and
# $\partial z/\partial\sigma = \varepsilon$.
#
# To compare them you need an objective whose gradient you know exactly. Take $f(z) = z^2$ and
# $z \sim \mathcal N(\mu, \sigma^2)$: $\mathbb E[z^2] = \mu^2 + \sigma^2$, so the exact gradient
# is $\partial_\mu = 2\mu$. Both estimators below return `repeats` independent estimates, each
# the average over `n` samples.

# %%
def f(z: torch.Tensor) -> torch.Tensor:
    return z ** 2


def score_function_grad(f, mu: float, sigma: float, n: int, repeats: int = 1) -> torch.Tensor:
    """[repeats] estimates of d/dmu E[f(z)], each the mean of f(z) * (z - mu) / sigma^2."""
    z = mu + sigma * torch.randn(repeats, n)          # plain samples: no gradient needed
    return (f(z) * (z - mu) / sigma**2).mean(1)


def pathwise_grad(f, mu: float, sigma: float, n: int, repeats: int = 1) -> torch.Tensor:
    """[repeats] estimates of d/dmu E[f(z)]: backpropagate through z = mu + sigma * eps."""
    mu_ = torch.full((repeats, 1), mu, requires_grad=True)
    z = mu_ + sigma * torch.randn(repeats, n)         # [repeats, n]
    f(z).mean(1).sum().backward()                     # row r depends on mu_[r] only
    return mu_.grad[:, 0]


# %%
mu0, sigma0, many = 1.0, 1.0, 1_000_000
print(f"exact {2 * mu0:.3f} | score function {score_function_grad(f, mu0, sigma0, many).item():.3f}"
      f" | pathwise {pathwise_grad(f, mu0, sigma0, many).item():.3f}")
assert abs(score_function_grad(f, mu0, sigma0, many) - 2 * mu0) < 0.05
assert abs(pathwise_grad(f, mu0, sigma0, many) - 2 * mu0) < 0.05

# %% [markdown]
# With a million samples both land on the exact gradient: both are *unbiased*. The difference
# is in how much a single estimate scatters around it, and with a training loop you get one
# estimate per step, from a handful of samples. So measure that: 10 000 estimates from one
# sample each, and the spread (standard deviation) of each estimator around the exact value.

# %%
torch.manual_seed(2)
one_sample = {name: estimator(f, mu0, sigma0, 1, 10_000).std().item()
              for name, estimator in [("score function", score_function_grad),
                                      ("pathwise", pathwise_grad)]}
print(", ".join(f"{name}: spread {value:.2f}" for name, value in one_sample.items()))
assert one_sample["score function"] > 2 * one_sample["pathwise"]


# %% [markdown]
# Same mean, but the score-function estimates scatter more than twice as widely as the
# pathwise ones. Averaging $n$ samples shrinks both spreads by the same factor $\sqrt n$, so the
# score function needs several times more samples for the same precision. That is why VAEs
# use the pathwise estimator, the trick of section 4. Section 3 works out the exact variances,
# shows how the gap grows with $\mu$, and finds where the pathwise estimate goes wrong.

# %% [markdown]
# ## 3. Same mean, different spread · deeper
#
# For $f(z) = z^2$ you can work out the variance of one-sample estimates exactly. Write
# $z = \mu + \sigma\varepsilon$ and use the moments $\mathbb E[\varepsilon^2] = 1$,
# $\mathbb E[\varepsilon^4] = 3$, $\mathbb E[\varepsilon^6] = 15$ (odd moments vanish):
#
# * pathwise: the estimate is $f'(z) = 2z$, so its variance is $4\sigma^2$;
# * score function: the estimate is $z^2\,\varepsilon/\sigma$, whose second moment is
#   $(\mu^4 + 18\mu^2\sigma^2 + 15\sigma^4)/\sigma^2$; subtract the squared mean $4\mu^2$.
#
# Averaging $n$ independent samples divides both variances by $n$. The experiment below
# measures the spread (standard deviation) of each estimator over many repeats, for a growing
# number of samples, and puts the formulas next to the measurements.

# %%
def one_sample_variances(mu: float, sigma: float) -> tuple[float, float]:
    """Exact variances of one-sample estimates of d/dmu E[z^2]: (score function, pathwise)."""
    score = (mu**4 + 18 * mu**2 * sigma**2 + 15 * sigma**4) / sigma**2 - 4 * mu**2
    return score, 4 * sigma**2


score_var, path_var = one_sample_variances(mu0, sigma0)
print(f"one sample, mu = {mu0}, sigma = {sigma0}: variance {score_var:.1f} (score function) "
      f"vs {path_var:.1f} (pathwise), {score_var / path_var:.1f} times larger")

# %%
sample_counts = settings.pick([1, 4, 16, 64, 256, 1024, 4096], [1, 4, 16, 64, 256])
repeats = settings.pick(4000, 1000)
spread = {"score function": [], "pathwise": []}
for n in sample_counts:
    spread["score function"].append(score_function_grad(f, mu0, sigma0, n, repeats).std().item())
    spread["pathwise"].append(pathwise_grad(f, mu0, sigma0, n, repeats).std().item())

mus = torch.linspace(0, 3, 13).tolist()                  # second panel: vary mu, one sample each
estimators = {"score function": score_function_grad, "pathwise": pathwise_grad}
single = {name: [estimator(f, m, sigma0, 1, 5 * repeats).var().item() for m in mus]
          for name, estimator in estimators.items()}
single_exact = {"score function": [one_sample_variances(m, sigma0)[0] for m in mus],
                "pathwise": [one_sample_variances(m, sigma0)[1] for m in mus]}

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
for (name, values), exact_var, color in zip(spread.items(), (score_var, path_var), ("C3", "C0")):
    a.loglog(sample_counts, values, "o", color=color, label=f"{name}, measured")
    a.loglog(sample_counts, [math.sqrt(exact_var / n) for n in sample_counts], "--", color=color,
             label=f"{name}, exact")
    b.semilogy(mus, single[name], "o", color=color, label=f"{name}, measured")
    b.semilogy(mus, single_exact[name], "--", color=color, label=f"{name}, exact")
a.set(title=f"Spread of the gradient estimate ($\\mu$ = {mu0}, $\\sigma$ = {sigma0})",
      xlabel="samples per estimate $n$", ylabel="standard deviation of the estimate")
b.set(title=f"One-sample variance as $\\mu$ moves ($\\sigma$ = {sigma0})", xlabel="$\\mu$",
      ylabel="variance of the estimate")
a.legend(), b.legend()
plt.show()

# %% [markdown]
# On the left, both lines fall with the same slope, $1/\sqrt n$: more samples help both
# estimators equally. But the score-function line sits well above the pathwise line at every
# $n$, so to reach the same precision it needs as many times more samples as its variance is
# larger. On the right you see that the gap is not a constant: it widens as $\mu$ moves away
# from zero, because the score-function estimate multiplies the noise by $f(z)$ itself,
# which grows with $\mu$, while the pathwise variance, $4\sigma^2$, does not depend on $\mu$ at
# all. The measured points (dots) follow the formulas (dashed lines).

# %% tags=["nbval-ignore-output"]
for name, exact_var in zip(spread, (score_var, path_var)):
    exact_spread = torch.tensor([math.sqrt(exact_var / n) for n in sample_counts])
    ratio = torch.tensor(spread[name]) / exact_spread
    print(f"{name:>14}: measured / exact spread between {ratio.min():.2f} and {ratio.max():.2f}")
    assert (ratio - 1).abs().max() < 0.3
assert all(p < s for p, s in zip(spread["pathwise"], spread["score function"]))
gap = [s / p for s, p in zip(single["score function"], single["pathwise"])]
print(f"one-sample variance ratio, score function / pathwise: {gap[0]:.1f} at mu = 0, "
      f"{gap[-1]:.1f} at mu = 3 (exact {single_exact['score function'][0] / 4:.1f} and "
      f"{single_exact['score function'][-1] / 4:.1f})")
assert min(gap) > 1 and gap[-1] > 3 * gap[0]
assert all(abs(p / 4 - 1) < 0.15 for p in single["pathwise"])     # 4 sigma^2, whatever mu is


# %% [markdown]
# ### When the pathwise estimate is wrong
#
# The pathwise estimator rests on one step: moving the gradient inside the expectation,
# $\nabla_\mu\,\mathbb E_\varepsilon[f(\mu + \sigma\varepsilon)] =
# \mathbb E_\varepsilon[\nabla_\mu f(\mu + \sigma\varepsilon)]$. That swap is safe when $f$
# is Lipschitz, like the smooth functions of a VAE (Mohamed et al. 2020 discuss the exact
# conditions); being differentiable almost everywhere is not enough. For a step (a threshold,
# a count, a rounding) it fails. Take $f(z) = \mathbb 1[z > 0]$: $\mathbb E[f] = \Phi(\mu/\sigma)$,
# whose derivative in $\mu$ is the normal density $\varphi(\mu/\sigma)/\sigma > 0$. But
# $f'(z) = 0$ at every $z \neq 0$, and a sample hits $z = 0$ with probability zero, so the
# pathwise estimate is exactly 0: computed without an error, and wrong. The score function
# differentiates only the density $q$, which is smooth, so its swap is fine.
#
# Write the step with `torch.sign`, whose derivative autograd takes to be 0 everywhere (the
# comparison `z > 0` would return a tensor without a graph, and `backward` would refuse):

# %%
def step(z: torch.Tensor) -> torch.Tensor:
    """1 where z > 0, 0 where z < 0; autograd's derivative of it is 0 everywhere."""
    return (torch.sign(z) + 1) / 2


torch.manual_seed(3)                # reseed: the numbers printed below do not depend on the mode
exact = Normal(0.0, 1.0).log_prob(torch.tensor(mu0 / sigma0)).exp().item() / sigma0
by_score = score_function_grad(step, mu0, sigma0, many).item()
by_path = pathwise_grad(step, mu0, sigma0, many).item()
print(f"exact {exact:.3f} | score function {by_score:.3f} | pathwise {by_path:.3f}")
assert abs(by_score - exact) < 0.01 and by_path == 0.0

# %% [markdown]
# Where did the gradient go? Freeze the noise, as section 4 will do for a smooth $f$: the
# average $\frac1n\sum_k f(\mu + \sigma\varepsilon_k)$ is then a staircase in $\mu$, flat
# except for a jump of $1/n$ wherever some $\mu + \sigma\varepsilon_k$ crosses 0. Its slope
# over a small interval is the true gradient; its derivative at almost every single $\mu$,
# which is what autograd computes, is 0. All of the gradient sits in the jumps.

# %%
frozen_steps = torch.randn(100_000, generator=torch.Generator().manual_seed(8))   # eps, drawn once
staircase = lambda m: step(m + sigma0 * frozen_steps).mean().item()
width = 0.05
slope = (staircase(mu0 + width) - staircase(mu0 - width)) / (2 * width)
mu_point = torch.tensor(mu0, requires_grad=True)
step(mu_point + sigma0 * frozen_steps).mean().backward()
print(f"frozen noise: slope over [{mu0 - width}, {mu0 + width}] {slope:.3f}, "
      f"autograd's derivative at mu = {mu0}: {mu_point.grad.item()}")
assert abs(slope - exact) < 0.02 and mu_point.grad.item() == 0.0

# %% [markdown]
# The slope of the staircase matches the exact gradient printed above; the derivative at a
# point does not see it.
#
# This is why REINFORCE is still used for discrete choices (and why a large literature exists on
# taming its variance, with baselines and control variates; see the references). A VAE with
# Gaussian latents has a smooth $f$, so it takes the pathwise road.

# %% [markdown]
# ## 4. The trick: $z = \mu + \sigma \odot \varepsilon$ · core
#
# A code drawn with `Normal(mu, sigma).sample()` is a constant as far as autograd knows: no
# gradient reaches $\mu$ and $\sigma$, so the encoder that produced them cannot learn from the
# reconstruction term. The trick moves the randomness out of the way.
#
# In a VAE the encoder returns, for each example, a vector $\mu$ and a vector $\log\sigma^2$
# (shape `[N, L]` for a batch). Reparameterizing means:
#
# 1. draw $\varepsilon \sim \mathcal N(0, I)$ with the same shape, independently of everything;
# 2. turn the log-variance into a standard deviation, $\sigma = \exp(\tfrac12\log\sigma^2)$;
# 3. shift and stretch: $z = \mu + \sigma \odot \varepsilon$ (element by element).
#
# The randomness becomes an *input* of the computation, like the image itself, and $\mu$ and
# $\sigma$ sit on an ordinary differentiable path to $z$. Here is the picture in two
# dimensions, with $\mu = (2, -1)$ and $\sigma = (0.5, 1.5)$.

# %%
torch.manual_seed(4)
mu2, sigma2 = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 1.5])
eps = torch.randn(2000, 2)                          # standard normal noise, [2000, 2]
z2 = mu2 + sigma2 * eps                             # shift and stretch every point

fig, ax = plt.subplots(figsize=(6, 6))
ax.scatter(eps[:, 0], eps[:, 1], s=3, color="gray", alpha=0.4, label="$\\varepsilon$ ~ N(0, I)")
ax.scatter(z2[:, 0], z2[:, 1], s=3, color="C0", alpha=0.4,
           label="$z = \\mu + \\sigma \\odot \\varepsilon$")
for e, zz in zip(eps[:8], z2[:8]):
    ax.annotate("", xy=tuple(zz), xytext=tuple(e), arrowprops=dict(arrowstyle="->", color="C3"))
ax.set(title="Noise points moved to samples of $q$", xlabel="$z_1$", ylabel="$z_2$",
       xlim=(-6.5, 6.5), ylim=(-6.5, 6.5), aspect="equal")
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# The grey cloud is standard normal noise; each red arrow carries one noise point to its $z$.
# The blue cloud is centred on $\mu$ and stretched by $\sigma$ in each direction — narrow along
# $z_1$, wide along $z_2$. Because the arrows are a fixed formula, you can ask how $z$ moves when
# $\mu$ or $\sigma$ moves. Three checks: the cloud has the right moments, it is exactly what
# `torch.distributions` calls `rsample` ("reparameterized sample"), and autograd's derivatives
# are $\partial z/\partial\mu = 1$ and
# $\partial z/\partial\log\sigma^2 = \tfrac12\sigma\varepsilon = \tfrac12(z - \mu)$.

# %%
print("sample mean", [round(v, 2) for v in z2.mean(0).tolist()], "vs mu", mu2.tolist())
print("sample std ", [round(v, 2) for v in z2.std(0).tolist()], "vs sigma", sigma2.tolist())
assert torch.allclose(z2.mean(0), mu2, atol=0.1) and torch.allclose(z2.std(0), sigma2, rtol=0.06)

torch.manual_seed(1)
by_hand = mu2 + sigma2 * torch.randn(5, 2)
torch.manual_seed(1)
same = torch.equal(Normal(mu2, sigma2).rsample((5,)), by_hand)
print("rsample draws the same numbers:", same)
assert same

# %%
m = torch.tensor([2.0, -1.0], requires_grad=True)
lv = torch.tensor([math.log(0.25), math.log(2.25)], requires_grad=True)
z = m + torch.exp(0.5 * lv) * torch.randn(2)
z.sum().backward()
print("dz/dmu", m.grad.tolist(), "| dz/dlogvar equals (z - mu)/2:",
      torch.allclose(lv.grad, 0.5 * (z - m).detach()))
assert torch.equal(m.grad, torch.ones(2)) and torch.allclose(lv.grad, 0.5 * (z - m).detach())

# %% [markdown]
# One more way to see what the pathwise gradient *is*: freeze the noise. With a fixed set of
# $\varepsilon$'s, the Monte Carlo average $\frac1n\sum_k f(\mu + \sigma\varepsilon_k)$, here
# for $f(z) = z^2$, is an ordinary smooth function of $\mu$ and $\log\sigma^2$, and the
# pathwise estimate is exactly its derivative — finite differences agree with autograd.

# %%
torch.manual_seed(5)
frozen = torch.randn(1000, dtype=torch.float64)        # the noise, drawn once


def mc_average(m, lv):
    """(1/n) sum_k (m + exp(lv / 2) * eps_k)^2 with the frozen eps: a smooth function."""
    return ((m + torch.exp(0.5 * lv) * frozen) ** 2).mean()


m = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)
lv = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
mc_average(m, lv).backward()
h = 1e-5
fd_mu = (mc_average(m + h, lv) - mc_average(m - h, lv)) / (2 * h)
fd_lv = (mc_average(m, lv + h) - mc_average(m, lv - h)) / (2 * h)
print(f"d/dmu:     autograd {m.grad.item():.6f} | finite differences {fd_mu.item():.6f}")
print(f"d/dlogvar: autograd {lv.grad.item():.6f} | finite differences {fd_lv.item():.6f}")
assert torch.allclose(m.grad, fd_mu) and torch.allclose(lv.grad, fd_lv)


# %% [markdown]
# **Your turn (5 min).** Write `reparameterize(mu, logvar)` for a batch, as every VAE of this
# course uses it: `mu` and `logvar` have shape `[N, L]`, and the result
# $z = \mu + \sigma \odot \varepsilon$ must have the same shape, with
# $\sigma = \exp(\tfrac12\log\sigma^2)$ and fresh noise $\varepsilon \sim \mathcal N(0, I)$ for
# every example, every dimension and every call. Gradients must reach both `mu` and `logvar`,
# and it must work on whatever device the inputs are on. The check below names the usual
# slips; until your function is written, the cells after it use the course's
# `VAE.reparameterize` from `companion.models`.

# %% tags=["solution"]
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps with sigma = exp(logvar / 2) and a fresh eps ~ N(0, I) of mu's shape."""
    std = torch.exp(0.5 * logvar)              # sigma, always positive
    eps = torch.randn_like(std)                # same shape, dtype and device as std
    return mu + std * eps


# %%
reparameterize = checks.check_reparameterize(reparameterize)

# %% [markdown]
# Now put it into a VAE: an untrained MLP VAE from `companion.models` and a batch of 64 MNIST
# test digits. With a plain draw the reconstruction loss would not reach the encoder at all.
# With your `reparameterize` it reaches both heads, the one for $\mu$ and the one for
# $\log\sigma^2$.

# %%
x = load("mnist", "test").images[:64]                    # [64, 1, 28, 28]
vae = MLPVAE(latent_dim=20, hidden=400).to(device)       # untrained, on the data's device
mu, logvar = vae.encode(x)                               # [64, 20] each
z = reparameterize(mu, logvar)                           # the reparameterized draw
bernoulli_nll(vae.decode(z), x).mean().backward()
for head in ("mu", "logvar"):
    grad = getattr(vae, head).weight.grad
    gets = grad is not None and bool(grad.abs().sum() > 0)
    print(f"encoder's {head} head gets a gradient:", gets)
    assert gets

# %% [markdown]
# ## 5. Why the encoder outputs $\log\sigma^2$ · deeper
#
# An encoder's last layer is linear: its outputs can be any real number. A standard deviation
# must be positive. Read the output $h$ as $\log\sigma^2$ and every $h$ is valid, since
# $\sigma = \exp(\tfrac12 h) > 0$; nothing has to constrain the network. Read it as $\sigma$ or
# as $\sigma^2$ and half of the outputs are meaningless.

# %%
h = torch.arange(-40, 41) / 10        # what a linear head might output; 0 exactly in the middle
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.plot(h, h, label="$h$ read as $\\sigma$")
ax.plot(h, h.sqrt(), label="$h$ read as $\\sigma^2$: $\\sigma = \\sqrt{h}$")
ax.plot(h, torch.exp(0.5 * h), label="$h$ read as $\\log\\sigma^2$: $\\sigma = e^{h/2}$")
ax.axhspan(-4, 0, color="gray", alpha=0.15, label="not a standard deviation ($\\sigma \\leq 0$)")
ax.set(title="Three ways to read one output of the encoder", xlabel="network output $h$",
       ylabel="standard deviation $\\sigma$", ylim=(-4, 7.5))
ax.legend(loc="upper left")
plt.show()

# %% [markdown]
# Read as $\sigma$ (blue), every negative output is an invalid standard deviation; read as
# $\sigma^2$ (orange), the square root of a negative output does not exist and the curve simply
# stops. Only $e^{h/2}$ (green) stays above zero for every $h$.

# %%
print(f"h read as sigma:      {(h <= 0).sum().item()} of {len(h)} outputs are not positive")
print(f"h read as sigma^2:    {h.sqrt().isnan().sum().item()} of {len(h)} give a NaN sigma")
print(f"h read as log sigma^2: {(torch.exp(0.5 * h) <= 0).sum().item()} of {len(h)} invalid")
assert (torch.exp(0.5 * h) > 0).all()

# %% [markdown]
# Two more reasons, both about numbers near zero. A confident encoder wants tiny variances:
# $\sigma = 10^{-4}$ means $\sigma^2 = 10^{-8}$, which in half precision (common on GPUs)
# rounds to 0, and the KL term's $\log\sigma^2$ becomes $-\infty$. Kept as a log-variance, it is
# just $-18.4$. And the gradient of the KL term with respect to $\sigma^2$,
# $\tfrac12(1 - 1/\sigma^2)$, explodes near zero, while with respect to $\log\sigma^2$ it is
# $\tfrac12(\sigma^2 - 1)$, never larger than $\tfrac12$ in size on that side.

# %%
logvar_half = torch.tensor([[math.log(1e-8)]], dtype=torch.float16)   # sigma = 1e-4
mu_half = torch.zeros_like(logvar_half)
var_half = logvar_half.exp()                                          # rounds to 0
print(f"float16: sigma^2 = {var_half.item()}, log(sigma^2) = {torch.log(var_half).item()}, "
      f"log-variance kept = {logvar_half.item():.1f}")
kl_half = kl_divergence(mu_half.float(), logvar_half.float())
print("KL computed from the log-variance:", round(kl_half.item(), 2))

v = torch.tensor(1e-8, requires_grad=True)
lv = torch.tensor(math.log(1e-8), requires_grad=True)
(0.5 * (v - torch.log(v) - 1)).backward()                 # KL of N(0, v) against N(0, 1)
(0.5 * (lv.exp() - lv - 1)).backward()
print(f"dKL/d(sigma^2) = {v.grad.item():.3g}   vs   dKL/d(log sigma^2) = {lv.grad.item():.3g}")
assert torch.isinf(torch.log(var_half)).all() and abs(lv.grad) <= 0.5 < abs(v.grad)


# %% [markdown]
# What does one optimizer step do with these gradients? Take a parameter that *is* the
# variance, or its log (as in notebook 02, where Adam optimizes a separate $(\mu, \log\sigma^2)$
# per image), start at $\sigma^2 = 10^{-8}$, and take one step with learning rate $10^{-3}$,
# with plain SGD and with Adam, the optimizer of this course:

# %%
def variance_after_step(optimizer_class, log_scale: bool, loss: str = "kl") -> float:
    """sigma^2 after one step (lr 1e-3) from sigma^2 = 1e-8, on the KL to N(0, 1) or on sigma^2."""
    start = math.log(1e-8) if log_scale else 1e-8
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([p], lr=1e-3)
    var = p.exp() if log_scale else p
    (0.5 * (var - var.log() - 1) if loss == "kl" else var).backward()
    optimizer.step()
    return (p.exp() if log_scale else p).item()


after = {(opt.__name__, log_scale): variance_after_step(opt, log_scale)
         for opt in (torch.optim.SGD, torch.optim.Adam) for log_scale in (False, True)}
for (name, log_scale), var in after.items():
    print(f"{name:>4} on {'log sigma^2' if log_scale else 'sigma^2    '}: sigma^2 1e-08 -> {var:.5g}")
shrunk = variance_after_step(torch.optim.Adam, False, loss="variance")
print(f"Adam on sigma^2, when the loss wants a smaller variance: sigma^2 1e-08 -> {shrunk:.3g}")

# %%
assert after["SGD", False] > 1e3 and after["Adam", False] > 1e4 * 1e-8   # both jump
assert abs(after["Adam", False] - 1e-3) < 1e-6                           # Adam: by about lr
assert all(0 < after[name, True] / 1e-8 - 1 < 2e-3 for name in ("SGD", "Adam"))
assert shrunk < 0


# %% [markdown]
# Plain SGD steps by learning rate × gradient, so on $\sigma^2$ the exploding gradient throws
# the variance far past any sensible value. Adam divides each parameter's step by a running
# estimate of that parameter's gradient size, so its first step moves every parameter by
# about the learning rate, whatever the gradient: the explosion is tamed. The *units* are not.
# Adding $10^{-3}$ to a variance of $10^{-8}$ still multiplies it by about $10^5$, and when the
# loss asks for a smaller variance the same step makes it negative. On $\log\sigma^2$ both
# optimizers change the variance by a small *factor* (for Adam, $e^{\pm 0.001}$), the same at
# every scale. In an encoder the variance is the output of a layer rather than a parameter,
# but the same holds for that output: a change of $h = \log\sigma^2$ is a relative change of
# $\sigma^2$, at any scale. (Some implementations use a softplus instead of the exponential;
# the point, an unconstrained output mapped to a positive number, is the same.)

# %% [markdown]
# ## 6. Pitfall: one $\varepsilon$ for the whole batch · deeper
#
# > **Pitfall: `eps = torch.randn(latent_dim)`.** The "Gaussian layer" of the 2022 slides this
# > course draws on draws its noise with the shape of the *latent vector*, not of the batch.
# > Broadcasting then adds the same $\varepsilon$ to every example. Nothing crashes and every
# > shape is right.

# %%
def reparameterize_one_eps(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The bug: eps has shape [L] and is shared by every row of the batch."""
    return mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape[-1])


torch.manual_seed(6)
same_q = torch.zeros(4, 3)                     # 4 examples whose q(z|x) are all N(0, I)
z = reparameterize_one_eps(same_q, same_q)
print("shape", tuple(z.shape), "- no error. The four rows:")
print(z.numpy().round(3))
assert torch.equal(z, z[:1].expand_as(z))


# %% [markdown]
# Four examples, four identical codes. The batch mean of a loss is supposed to average $N$
# independent draws; here it averages *one* draw $N$ times, so a bigger batch buys no less
# noise. Measure it: the gradient with respect to a shared $\mu$ of the batch mean of $z_i^2$
# (exact value $2\mu = 2$, with $\sigma = 1$), repeated many times, for growing batch sizes. The
# fixed version is `VAE.reparameterize` from `companion.models`, which draws
# `torch.randn_like(std)`: one $\varepsilon$ per example and per dimension.

# %%
def batch_gradient_spread(reparameterize, batch: int, repeats: int) -> float:
    """Std over repeats of d/dmu of the batch mean of z^2 (all rows share mu = 1, logvar = 0)."""
    grads = []
    for _ in range(repeats):
        mu = torch.ones(1, 1, requires_grad=True)
        z = reparameterize(mu.expand(batch, 1), torch.zeros(batch, 1))   # [batch, 1]
        (z ** 2).mean().backward()
        grads.append(mu.grad.item())
    return torch.tensor(grads).std().item()


# %% tags=["nbval-ignore-output"]
batch_sizes, reps = [1, 8, 64, 512], settings.pick(1000, 300)
table = {b: (batch_gradient_spread(reparameterize_one_eps, b, reps),
             batch_gradient_spread(VAE.reparameterize, b, reps)) for b in batch_sizes}
print("batch size | spread, one eps (bug) | spread, fresh eps (fixed) | exact, fresh eps")
for b, (bug, fixed) in table.items():
    print(f"{b:>10} | {bug:>21.3f} | {fixed:>25.3f} | {2 / math.sqrt(b):>16.3f}")
assert table[512][1] < 0.2 * table[512][0]
assert all(abs(bug / 2 - 1) < 0.2 for bug, _ in table.values())
assert all(abs(fixed / (2 / math.sqrt(b)) - 1) < 0.2 for b, (_, fixed) in table.items())

# %% [markdown]
# With one shared $\varepsilon$ the spread stays at the one-sample value, 2, whatever the batch
# size. With fresh noise it falls like $2/\sqrt{N}$, as it should.
#
# **The fix:** draw the noise with the shape of the standard deviation,
# `eps = torch.randn_like(std)`: one number per example and per latent dimension.

# %%
torch.manual_seed(6)
z = VAE.reparameterize(same_q, same_q)
print(z.numpy().round(3))
assert not torch.equal(z, z[:1].expand_as(z))


# %% [markdown]
# ## 7. Pitfall: the standard deviation without `exp` · deeper
#
# > **Pitfall: `std = 0.5 * logvar`.** The R torch book's VAE chapter computes its standard
# > deviation as half the log-variance and forgets the exponential. But
# > $\tfrac12\log\sigma^2 = \log\sigma$, not $\sigma$. At $\log\sigma^2 = 0$ (variance 1)
# > it adds no noise at all, and for $\log\sigma^2 < 0$ its "standard deviation" is negative.

# %%
def reparameterize_no_exp(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The bug: 0.5 * logvar is log(sigma), not sigma."""
    std = 0.5 * logvar
    return mu + std * torch.randn_like(std)


torch.manual_seed(7)
logvar = torch.tensor([math.log(4.0), 0.0, math.log(0.25)]).expand(100_000, 3)  # sigma = 2, 1, 1/2
zeros = torch.zeros_like(logvar)
versions = {"without exp (bug)": reparameterize_no_exp, "with exp (fixed)": VAE.reparameterize}
for name, fn in versions.items():
    print(f"{name}: sample std {[round(s, 3) for s in fn(zeros, logvar).std(0).tolist()]}")
print(f"wanted:           sigma      {torch.exp(0.5 * logvar[0]).tolist()}")
assert torch.allclose(reparameterize_no_exp(zeros, logvar).std(0), (0.5 * logvar[0]).abs(),
                      atol=0.01)


# %% [markdown]
# The buggy version's spreads are $|\log\sigma|$: $\log 2 \approx 0.69$ where 2 and 0.5 were
# wanted, and nothing at all where 1 was. Worse, a VAE trained with it does not complain. Train
# two small MLP VAEs on the same digits, identical except for this line, and look at what each
# one reports.

# %% tags=["nbval-ignore-output"]
class NoExpVAE(MLPVAE):
    """MLPVAE with the R torch book's standard deviation: 0.5 * logvar."""
    reparameterize = staticmethod(reparameterize_no_exp)


train = load("mnist", "train").subset(settings.pick(10_000, 2_000))
models, histories = {}, {}
for name, cls in [("correct", MLPVAE), ("no exp", NoExpVAE)]:
    torch.manual_seed(0)                                      # the same starting weights
    models[name] = cls(latent_dim=20, hidden=200).to(device)
    histories[name] = train_or_load(models[name], train, epochs=settings.pick(3, 1), progress=False)
    print(f"{name}: training loss per epoch {[round(v, 1) for v in histories[name].loss]}")
final = [h.loss[-1] for h in histories.values()]
first = [h.loss[0] for h in histories.values()]
assert final[1] < 1.05 * final[0]              # the buggy loss is about as good, or better,
assert final[0] - final[1] >= first[0] - first[1]  # and its lead does not shrink with training


# %% [markdown]
# Both trained without an error, and the buggy model's loss is about as good as the correct
# one's, or better (the longer the training, the better it looks): nothing in the training log
# looks wrong. The catch is in the KL term. It is computed from $h = \log\sigma^2$ as if the noise
# had standard deviation $e^{h/2}$, while the buggy model really adds noise of standard
# deviation $|h/2|$. So measure the spread of the codes each model actually draws (200 draws
# per test image), and compute the KL of *that* distribution.

# %%
@torch.no_grad()
def honest_report(model: VAE, x: torch.Tensor, draws: int = 200) -> dict[str, float]:
    """Reconstruction, the KL the model reports, and the KL of the noise it really adds."""
    mu, logvar = model.encode(x)                                            # [N, L] each
    z = torch.stack([model.reparameterize(mu, logvar) for _ in range(draws)])  # [draws, N, L]
    used_std = z.std(0)                                                     # [N, L]
    return {"reconstruction": bernoulli_nll(model.decode(z[0]), x).mean().item(),
            "KL reported": kl_divergence(mu, logvar).mean().item(),
            "KL of the noise used": kl_divergence(mu, 2 * used_std.log()).mean().item(),
            "std claimed": torch.exp(0.5 * logvar).mean().item(),
            "std used": used_std.mean().item()}


# %% tags=["nbval-ignore-output"]
x_test = load("mnist", "test").images[:settings.pick(2000, 500)]
reports = {name: honest_report(model, x_test) for name, model in models.items()}
print(f"{'':>8}" + "".join(f"{column:>22}" for column in reports["correct"]))
for name, report in reports.items():
    print(f"{name:>8}" + "".join(f"{value:>22.3g}" for value in report.values()))
right, wrong = reports["correct"], reports["no exp"]
assert abs(right["KL of the noise used"] - right["KL reported"]) < 0.05 * right["KL reported"] + 0.5
assert wrong["KL of the noise used"] > wrong["KL reported"] + 10
assert wrong["std used"] < 0.3 * wrong["std claimed"]
assert 0.8 < wrong["std claimed"] < 1.2


# %% [markdown]
# For the correct model the two KL columns agree: it pays for exactly the noise it adds. The
# buggy one claims standard deviations of about 1 and pays a modest KL for them, but the noise
# it adds is many times smaller, so the honest KL of its codes is far larger than the one it
# reports. Its loss is no longer a bound on anything it computes, and the number printed during
# training hides that. Bugs that hide in a healthy-looking loss are the ones that survive.
#
# **The fix:** `std = torch.exp(0.5 * logvar)`, as in `VAE.reparameterize`. A quick test
# catches the slip at once: with $\log\sigma^2 = 0$ the samples must have variance 1.

# %% [markdown]
# ## 8. Pitfall: a hard-coded `"cuda"` · deeper
#
# > **Pitfall: `torch_tensor(0.5, device = "cuda")`.** The same chapter creates its constant
# > $\tfrac12$ on the GPU. On the author's machine everything lived there, so it worked. On a
# > laptop, in CI, or on a Mac, the very first forward pass fails.

# %% tags=["nbval-ignore-output"]
def reparameterize_cuda(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The bug: a constant created on a fixed device, whatever device the inputs are on."""
    std = torch.exp(torch.tensor(0.5, device="cuda") * logvar)
    return mu + std * torch.randn_like(std)


cpu_mu, cpu_logvar = torch.zeros(4, 2), torch.zeros(4, 2)      # CPU tensors, as on a laptop
try:
    reparameterize_cuda(cpu_mu, cpu_logvar)
    failed = False
except (RuntimeError, AssertionError) as err:                  # the message depends on the machine
    failed = True
    print(f"{type(err).__name__}: {str(err).splitlines()[0]}")
assert failed

# %% [markdown]
# (On a machine with a GPU the message differs, but it fails all the same: the constant is on
# the GPU and the inputs are not.)
#
# **The fix:** write constants as Python numbers (`0.5 * logvar`), which live wherever the
# tensor does, and create new tensors *from* the inputs (`torch.randn_like(std)`), so they
# inherit shape, dtype and device. Choose the device in one place only — the course's
# `settings.device()` — and move the model and the data there.

# %%
z = VAE.reparameterize(cpu_mu, cpu_logvar)
print("inputs on", cpu_mu.device, "-> z on", z.device)
assert VAE.reparameterize(cpu_mu.to(device), cpu_logvar.to(device)).device.type == device.type


# %% [markdown]
# ## Exercises
#
# ### Exercise 1 — the score function for $\log\sigma^2$
#
# Section 2 estimated the gradient with respect to $\mu$. Now do it for the log-variance
# $v = \log\sigma^2$, by hand, with the score function:
#
# 1. Write $\log \mathcal N(z; \mu, e^v)$ out (do not forget the normalising constant) and
#    differentiate it with respect to $v$.
# 2. Implement `score_logvar(f, mu, logvar, n)`: draw `n` samples
#    $z \sim \mathcal N(\mu, e^v)$ (`mu` and `logvar` are Python floats) and return the average
#    of $f(z)\,\partial_v \log \mathcal N(z; \mu, e^v)$ — one number.
#
# The check compares your estimate with exact gradients, for $f(z) = z^2$ (where
# $\partial_v\,\mathbb E[z^2] = \sigma^2$) and for a step function, which an estimator that
# differentiates $f$ gets wrong.

# %% tags=["solution"]
def score_logvar(f, mu: float, logvar: float, n: int) -> torch.Tensor:
    """Score-function estimate of d/dlogvar E[f(z)], z ~ N(mu, exp(logvar)), from n samples."""
    sigma = math.exp(0.5 * logvar)
    z = mu + sigma * torch.randn(n)
    score = 0.5 * ((z - mu) ** 2 / sigma**2 - 1)   # d/dv of -v/2 - (z - mu)^2 / (2 e^v)
    return (f(z) * score).mean()


# %%
checks.check_score_logvar(score_logvar)

# %% [markdown]
# *Going further (no check):* compare the spread of `score_logvar` with that of a pathwise
# estimate of the same gradient (autograd through $z = \mu + e^{v/2}\varepsilon$) for
# $f(z) = z^2$, as in section 3. Which one would you rather train with?

# %% [markdown]
# ## Summary
#
# * A sampled $z$ carries no gradient: `.sample()` cuts the graph and `torch.normal` returns
#   zero gradients, so the encoder would learn nothing from the reconstruction term.
# * Two estimators of $\nabla_\phi\,\mathbb E_{q_\phi}[f(z)]$, both unbiased for a smooth $f$.
#   The score function (REINFORCE) needs only values of $f$, so it stays right for steps and
#   discrete choices, where the pathwise estimate is silently 0; but its variance is larger,
#   and grows with the size of $f$. The pathwise estimator
#   differentiates through $z = \mu + \sigma\varepsilon$ and, for $f(z) = z^2$, has a variance
#   several times smaller at every number of samples.
# * The trick: $\varepsilon \sim \mathcal N(0, I)$ drawn with the shape of $\sigma$, then
#   $z = \mu + \sigma\odot\varepsilon$ — exactly `Normal(mu, sigma).rsample()`.
# * Encoders output $\log\sigma^2$: every real output is valid, tiny variances stay
#   representable, and the KL's gradient stays bounded.
# * Three bugs to test for: one $\varepsilon$ for the batch (identical rows), a missing `exp`
#   (variance 0 at $\log\sigma^2 = 0$, and a KL that no longer matches the noise), and a
#   hard-coded device (use `randn_like` and Python constants).
#
# ## References
#
# * D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114 (2013),
#   section 2.4 — the reparameterization trick and its use in the VAE.
# * D. J. Rezende, S. Mohamed and D. Wierstra, "Stochastic Backpropagation and Approximate
#   Inference in Deep Generative Models", arXiv:1401.4082 (2014) — the same idea, found
#   independently.
# * R. J. Williams, "Simple statistical gradient-following algorithms for connectionist
#   reinforcement learning", *Machine Learning* 8 (1992) — REINFORCE, the score-function
#   estimator.
# * S. Mohamed, M. Rosca, M. Figurnov and A. Mnih, "Monte Carlo Gradient Estimation in Machine
#   Learning", *JMLR* 21 (2020), arXiv:1906.10652 — a survey of both estimators, their
#   variances, and variance reduction with baselines and control variates.
# * C. Doersch, "Tutorial on Variational Autoencoders", arXiv:1606.05908 (2016) — the trick
#   explained with a picture of the computation graph.
# * Source documents of this course: "10 Days of Grad" by Bogdan Penkovsky, day 9 (the
#   reparameterization step of an MLP VAE); "Deep Learning and Scientific Computing with R
#   torch" by Sigrid Keydana, chapter 16 (its `reparameterize`, with the missing `exp` and the
#   hard-coded `"cuda"`, turned into pitfalls here); a 2018 ML journal-club notebook on VAEs
#   (the trick in a PyTorch MLP VAE); and the 2022 slides "Variational Autoencoder" (the
#   Gaussian layer, $\sigma = \exp(\tfrac12\log\sigma^2)$ derived step by step, and the shared
#   $\varepsilon$ turned into a pitfall here).
