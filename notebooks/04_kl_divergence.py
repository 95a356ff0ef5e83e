# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · The KL divergence
#
# **By the end of this notebook you can derive the KL term of the VAE loss by hand, check it
# three independent ways, and spot three mistakes that break it without any error message.**
#
# ### Learning objectives
#
# 1. State what $\mathrm{KL}(q\,\|\,p)$ measures, and check that it is never negative and not
#    symmetric.
# 2. Derive the closed form of $\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(0, 1)\big)$
#    step by step, and extend it to a diagonal Gaussian in $L$ dimensions.
# 3. Verify a closed form against `torch.distributions` and against a Monte Carlo estimate
#    with error bars.
# 4. Read the KL as a force: how it pulls each $\mu$ toward 0 and each $\sigma$ toward 1.
# 5. Recognise three pitfalls: a sign slip in the formula, `nn.KLDivLoss` fed probabilities,
#    and "mean" reductions that silently reweight the two terms of the ELBO.
#
# **Prerequisites:** 02 (the ELBO, where the KL term comes from) and 03 (the encoder's
# outputs $\mu$ and $\log\sigma^2$, and the reparameterization trick).
#
# **Time to run:** about 10 s in fast mode and 15 s in full mode on a quiet 2-core CPU. The two
# small VAEs of section 8 train inside the notebook every time: they are part of the lesson.

# %% [markdown]
# ## Setup

# %% tags=["nbval-ignore-output"]
import math
import warnings

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import distributions as D

import companion
from companion import settings
from companion.checks import kl_divergence as checks
from companion.data import Batches, load, source_of
from companion.gaussians import gaussian_log_density, kl_monte_carlo, kl_per_dimension
from companion.losses import elbo_loss, kl_divergence
from companion.models import MLPVAE
from companion.plots import show_images
from companion.training import evaluate

companion.setup(seed=0, datasets=["mnist"])
# Where the data came from differs between machines (hence no output check); it must be staged.
assert source_of("mnist") != "not staged"


# %% [markdown]
# ## 1. What the KL divergence measures · deeper
#
# Take two probability distributions over the same space: $q$, the one you have, and $p$, a
# reference. The **Kullback–Leibler divergence** of $q$ from $p$ is the average, under $q$, of
# the log-ratio of the two:
#
# $$
# \mathrm{KL}(q\,\|\,p) \;=\; \mathbb E_{z\sim q}\!\left[\log\frac{q(z)}{p(z)}\right]
# \;=\; \int q(z)\,\log\frac{q(z)}{p(z)}\,dz
# \qquad\Big(\text{a sum } \textstyle\sum_k q_k \log\frac{q_k}{p_k} \text{ for discrete } z\Big).
# $$
#
# Where $q$ puts mass that $p$ does not expect, the log-ratio is large and positive. Two
# facts make it useful as a penalty:
#
# * it is **never negative**, and it is **zero only when $q = p$** (Jensen's inequality:
#   $-\mathrm{KL} = \mathbb E_q[\log \tfrac{p}{q}] \le \log \mathbb E_q[\tfrac{p}{q}] = \log 1 = 0$);
# * it is **not symmetric**: $\mathrm{KL}(q\,\|\,p) \ne \mathrm{KL}(p\,\|\,q)$ in general, so
#   it is a divergence, not a distance.
#
# In a VAE, $q$ is the encoder's distribution $q(z \mid x)$ for one image and $p$ is the prior
# $\mathcal N(0, I)$. The loss is the negative ELBO, reconstruction plus KL. Start with three
# outcomes to see both facts in numbers.

# %%
def kl_discrete(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) = sum_k p_k log(p_k / q_k) for probability vectors (last dimension)."""
    return (p * (p / q).log()).sum(-1)


p = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
q = torch.tensor([0.1, 0.6, 0.3], dtype=torch.float64)
print(f"KL(p || q) = {kl_discrete(p, q):.4f} nats")
print(f"KL(q || p) = {kl_discrete(q, p):.4f} nats")
print(f"KL(p || p) = {kl_discrete(p, p):.4f} nats")
reference = D.kl_divergence(D.Categorical(probs=p), D.Categorical(probs=q))
assert torch.isclose(kl_discrete(p, q), reference) and kl_discrete(p, p) == 0

# %% [markdown]
# The two directions differ. Non-negativity is a claim about *every* pair of distributions, so
# test it on many random pairs, including very uneven ones:

# %%
g = torch.Generator().manual_seed(0)
pairs = torch.softmax(3 * torch.randn(2, 10_000, 6, generator=g, dtype=torch.float64), dim=-1)
forward, backward = kl_discrete(pairs[0], pairs[1]), kl_discrete(pairs[1], pairs[0])
print(f"smallest KL over 10 000 random pairs: {min(forward.min(), backward.min()):.4f}")
print(f"pairs where the two directions differ by more than 1e-6: "
      f"{((forward - backward).abs() > 1e-6).sum().item()} of 10000")
assert (forward >= 0).all() and (backward >= 0).all()

# %% [markdown]
# ## 2. The closed form in one dimension · core
#
# The encoder of a VAE outputs, for each latent coordinate, a mean $\mu$ and a
# log-variance $\log\sigma^2$ (an unconstrained number, so $\sigma^2 = e^{\log\sigma^2}$ is
# always positive). Its distribution is $q = \mathcal N(\mu, \sigma^2)$; the prior is
# $p = \mathcal N(0, 1)$. The **Kullback–Leibler divergence** of $q$ from $p$, the KL term of
# the VAE loss, is the average under $q$ of the log-ratio of the two densities,
# $\mathrm{KL}(q\,\|\,p) = \mathbb E_{z\sim q}[\log q(z) - \log p(z)]$: it is zero when $q = p$
# and grows as $q$ moves away from $p$. To compute it, write out the two log-densities:
#
# $$
# \log q(z) = -\tfrac12\log(2\pi) - \tfrac12\log\sigma^2 - \frac{(z-\mu)^2}{2\sigma^2},
# \qquad
# \log p(z) = -\tfrac12\log(2\pi) - \frac{z^2}{2}.
# $$
#
# **Step 1 — subtract.** The $\log(2\pi)$ terms cancel:
#
# $$
# \log q(z) - \log p(z) = -\tfrac12\log\sigma^2 - \frac{(z-\mu)^2}{2\sigma^2} + \frac{z^2}{2}.
# $$
#
# **Step 2 — take the expectation under $q$.** Only two averages are needed. The first is
# the variance itself, $\mathbb E_q[(z-\mu)^2] = \sigma^2$. The second is a second moment,
# variance plus squared mean: $\mathbb E_q[z^2] = \sigma^2 + \mu^2$.
#
# **Step 3 — substitute and tidy up:**
#
# $$
# \mathrm{KL}(q\,\|\,p) = -\tfrac12\log\sigma^2 - \frac{\sigma^2}{2\sigma^2} + \frac{\sigma^2+\mu^2}{2}
# = \tfrac12\left(\mu^2 + \sigma^2 - \log\sigma^2 - 1\right).
# $$
#
# Check each step with numbers before trusting the result. `gaussian_log_density(z, mu, logvar)`
# from `companion.gaussians` is the formula for $\log\mathcal N(z;\mu,\sigma^2)$ above, one
# line of code.

# %%
mu, logvar = torch.tensor(1.5, dtype=torch.float64), torch.tensor(-0.7, dtype=torch.float64)
var = logvar.exp()
g = torch.Generator().manual_seed(1)
z = mu + var.sqrt() * torch.randn(1_000_000, generator=g, dtype=torch.float64)   # z ~ q

# Step 1: log q - log p, with the 2 pi cancelled by hand
difference = gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, 0 * z, 0 * z)
assert torch.allclose(difference, -0.5 * logvar - (z - mu) ** 2 / (2 * var) + z**2 / 2)
# Step 2: the two expectations, estimated from a million samples
print(f"E[(z - mu)^2] = {((z - mu) ** 2).mean():.4f}   sigma^2        = {var:.4f}")
print(f"E[z^2]        = {(z**2).mean():.4f}   mu^2 + sigma^2 = {mu**2 + var:.4f}")
assert abs(((z - mu) ** 2).mean() - var) < 0.01 and abs((z**2).mean() - mu**2 - var) < 0.01

# %% [markdown]
# Both expectations match. Now the closed form of step 3, in terms of what the encoder
# produces, $\mu$ and $\log\sigma^2$ (so $\sigma^2$ is `logvar.exp()`):

# %%
closed_1d = 0.5 * (mu**2 + logvar.exp() - logvar - 1)
print(f"closed form:              {closed_1d:.4f} nats")
print(f"average of log q - log p: {difference.mean():.4f} nats (the definition, 10^6 samples)")
assert abs(closed_1d - difference.mean()) < 0.01

# %% [markdown]
# One point proves little. `torch.distributions` has its own implementation of the KL between
# two normal distributions; compare on a grid of 5 551 pairs $(\mu, \log\sigma^2)$ that covers
# everything an encoder is likely to output.

# %%
grid_mu = torch.linspace(-3, 3, 61, dtype=torch.float64)
grid_logvar = torch.linspace(-6, 3, 91, dtype=torch.float64)
M, LV = torch.meshgrid(grid_mu, grid_logvar, indexing="ij")
ours = 0.5 * (M**2 + LV.exp() - LV - 1)                  # step 3 at every grid point
theirs = D.kl_divergence(D.Normal(M, (0.5 * LV).exp()), D.Normal(0.0, 1.0))
assert torch.allclose(ours, theirs, rtol=1e-10, atol=1e-12) and (ours >= 0).all()
best = ours.argmin()
print(f"{ours.numel()} grid points agree with torch.distributions")
print(f"smallest KL {ours.min().item():.1e} at mu = {round(M.flatten()[best].item(), 2) + 0.0}, "
      f"log sigma^2 = {round(LV.flatten()[best].item(), 2) + 0.0}")
assert ours.min() < 1e-12 and M.flatten()[best].abs() < 1e-9 and LV.flatten()[best].abs() < 1e-9


# %% [markdown]
# ## 3. A diagonal Gaussian in $L$ dimensions · core
#
# The encoder outputs $L$ means and $L$ log-variances, and its distribution is
# $q(z) = \prod_{j=1}^{L} \mathcal N(z_j; \mu_j, \sigma_j^2)$: a Gaussian with a **diagonal**
# covariance matrix, independent coordinates. The prior $\mathcal N(0, I)$ factorises the same
# way. The log of a product is a sum, so $\log q(z) - \log p(z) = \sum_j \big(\log q_j(z_j) -
# \log p_j(z_j)\big)$, and the expectation of a sum is the sum of the expectations. Each term
# only involves $z_j$, so it is exactly the one-dimensional KL of section 2:
#
# $$
# \mathrm{KL}\big(\mathcal N(\mu, \mathrm{diag}\,\sigma^2)\,\|\,\mathcal N(0, I)\big)
# = \sum_{j=1}^{L} \tfrac12\left(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1\right).
# $$
#
# This is the formula of Kingma & Welling (2013, appendix B), usually written with the
# opposite sign as $-\mathrm{KL} = \tfrac12\sum_j (1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2)$.

# %% [markdown]
# **Your turn (5 min).** Write `kl_diagonal(mu, logvar)`: for encoder outputs `mu` and
# `logvar` of shape `[N, L]` (a batch of $N$ examples, $L$ latent dimensions), return one KL
# per example, shape `[N]`, from the formula above, with $\sigma_j^2$ = `logvar.exp()`. The
# check compares your answer with `torch.distributions` and names the usual slips: the sign,
# the variance where the standard deviation belongs (or the other way round), the factor
# $\tfrac12$, and a mean where the sum over dimensions belongs. Until your function is written,
# the cells below use the course's answer, `kl_divergence` from `companion.gaussians`.

# %% tags=["solution"]
def kl_diagonal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, diag(exp(logvar))) || N(0, I) ) per example: [N, L] -> [N]."""
    return 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(dim=-1)   # sum over the L dimensions


# %%
kl_diagonal = checks.check_kl_diagonal(kl_diagonal)

# %%
g = torch.Generator().manual_seed(2)
mu5, logvar5 = torch.randn(2, 5, 20, generator=g, dtype=torch.float64)   # 5 examples, L = 20
print("ours:", [round(v, 4) for v in kl_diagonal(mu5, logvar5).tolist()])

# %% [markdown]
# Compare with two ways of building the same distributions in `torch.distributions`: as
# $L$ independent normals, and as one multivariate normal whose covariance matrix happens to be
# diagonal. Also compare with `companion.losses.kl_divergence`, the function that the training
# code of the course uses.

# %%
std5 = (0.5 * logvar5).exp()
zero, one = torch.zeros(20, dtype=torch.float64), torch.ones(20, dtype=torch.float64)
independent = D.kl_divergence(D.Independent(D.Normal(mu5, std5), 1),
                              D.Independent(D.Normal(zero, one), 1))
full_cov = D.kl_divergence(D.MultivariateNormal(mu5, torch.diag_embed(std5**2)),
                           D.MultivariateNormal(zero, torch.diag(one)))
for name, other in [("Independent(Normal)", independent), ("MultivariateNormal", full_cov),
                    ("companion.losses.kl_divergence", kl_divergence(mu5, logvar5))]:
    assert torch.allclose(kl_diagonal(mu5, logvar5), other, rtol=1e-10)
    print(f"{name:<31} agrees: {[round(v, 4) for v in other.tolist()]}")


# %% [markdown]
# ## 4. A Monte Carlo check with error bars · core
#
# `torch.distributions` could share a mistake with us: both are closed forms. The definition
# itself gives an independent check. $\mathrm{KL}(q\,\|\,p) = \mathbb E_{z\sim q}[\log q(z) -
# \log p(z)]$ is an average, so draw $S$ samples $z^{(s)} \sim q$ and average:
#
# $$
# \widehat{\mathrm{KL}} = \frac1S\sum_{s=1}^{S} \Big(\log q(z^{(s)}) - \log p(z^{(s)})\Big),
# \qquad
# \mathrm{SE} = \frac{\text{standard deviation of the } S \text{ terms}}{\sqrt S}.
# $$
#
# The **standard error** (SE) says how far such an average typically lands from the truth. By
# the central limit theorem, about 95 % of estimates fall within $\pm 1.96\,\mathrm{SE}$ of it.
# Here it is in code. The samples are drawn exactly as in notebook 03: $z = \mu + \sigma\varepsilon$.

# %%
def kl_mc(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int, generator) -> tuple:
    """Monte Carlo KL(q || N(0, I)) per example, [N, L] -> ([N] estimate, [N] standard error)."""
    eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype)
    z = mu + (0.5 * logvar).exp() * eps                                    # [S, N, L], z ~ q
    terms = (gaussian_log_density(z, mu, logvar) - gaussian_log_density(z, 0 * z, 0 * z)).sum(-1)
    return terms.mean(0), terms.std(0) / math.sqrt(n_samples)              # [N], [N]


# The same function lives in the package, for the notebooks that come later:
ours_mc = kl_mc(mu5, logvar5, 100, torch.Generator().manual_seed(3))
package = kl_monte_carlo(mu5, logvar5, 100, torch.Generator().manual_seed(3))
assert torch.allclose(ours_mc[0], package.mean) and torch.allclose(ours_mc[1], package.stderr)

# %% [markdown]
# Now estimate the KL of the five 20-dimensional Gaussians from section 3 with 20 000 samples
# each, and measure how many standard errors each estimate lies from the closed form (the
# "z-score"). An honest estimator gives z-scores of a few units at most, with either sign.

# %%
estimate, stderr = kl_mc(mu5, logvar5, 20_000, torch.Generator().manual_seed(4))
closed = kl_diagonal(mu5, logvar5)
print("example   closed form   Monte Carlo ± SE     z-score")
for i in range(5):
    score = (estimate[i] - closed[i]) / stderr[i]
    print(f"{i:>7}   {closed[i]:11.3f}   {estimate[i]:8.3f} ± {stderr[i]:.3f}   {score:+7.2f}")
assert ((estimate - closed).abs() < 4 * stderr).all()

# %% [markdown]
# The picture: the estimate for example 0 as the number of samples grows, with a 95 % error bar
# at each size. The bars shrink like $1/\sqrt S$ (a hundred times more samples, a ten times
# shorter bar), and they keep covering the closed form.

# %%
sizes = [10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000]
runs = [kl_mc(mu5[:1], logvar5[:1], s, torch.Generator().manual_seed(5)) for s in sizes]
means = torch.stack([m[0] for m, _ in runs])
errors = torch.stack([1.96 * e[0] for _, e in runs])
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.errorbar(sizes, means, yerr=errors, fmt="o", capsize=4, label="Monte Carlo ± 1.96 SE")
ax.axhline(closed[0].item(), color="k", linestyle="--", label="closed form")
ax.set(xscale="log", xlabel="number of samples $S$", ylabel="KL (nats)",
       title="Monte Carlo estimates close in on the closed form")
ax.legend()
plt.show()
assert 5 < errors[2] / errors[6] < 20                  # 100 -> 10 000 samples: about 10x shorter
assert ((means - closed[0]).abs() < errors).all()       # every bar covers the closed form

# %% [markdown]
# At ten samples the estimate is rough and its bar is wide; by 30 000 samples the bar is tight
# around the dashed line. Three independent routes — algebra, `torch.distributions`, and
# sampling from the definition — agree on the same number.

# %% [markdown]
# ## 5. The KL as a force: the pull toward the prior · deeper
#
# Split the one-dimensional KL into a part that depends only on $\mu$ and a part that depends
# only on $\sigma$:
#
# $$
# \mathrm{KL} = \underbrace{\tfrac12\mu^2}_{\text{a spring on }\mu}
# + \underbrace{\tfrac12\left(\sigma^2 - \log\sigma^2 - 1\right)}_{\text{a well around }\sigma = 1},
# \qquad
# \frac{\partial\,\mathrm{KL}}{\partial\mu} = \mu,
# \qquad
# \frac{\partial\,\mathrm{KL}}{\partial\log\sigma^2} = \tfrac12\left(\sigma^2 - 1\right).
# $$
#
# During training, gradient descent moves each encoder output against these gradients. From
# here on, `kl_per_dimension(mu, logvar)` from `companion.gaussians` computes the closed form
# of section 2 element by element. Draw the landscape over the two numbers the encoder
# actually outputs, $\mu$ and $\log\sigma^2$, with arrows that point downhill (computed by
# autograd, not by the formula above).

# %%
am, alv = torch.meshgrid(torch.linspace(-2.7, 2.7, 10), torch.linspace(-5.5, 2.5, 9), indexing="xy")
am, alv = am.clone().requires_grad_(), alv.clone().requires_grad_()     # 90 encoder outputs
g_mu, g_lv = torch.autograd.grad(kl_per_dimension(am, alv).sum(), [am, alv])
assert torch.allclose(g_mu, am) and torch.allclose(g_lv, 0.5 * (alv.exp() - 1))
# Follow the arrows: 500 small downhill steps from each of the 90 starting points
walk = torch.stack([am.detach(), alv.detach()])
for _ in range(500):
    walk = walk - 0.1 * torch.stack([walk[0], 0.5 * (walk[1].exp() - 1)])
assert walk.abs().max() < 1e-6
print("after 500 downhill steps, all 90 points sit at mu = 0, log sigma^2 = 0 (within 1e-6)")

# %%
m_axis, lv_axis = torch.linspace(-3, 3, 121), torch.linspace(-6, 3, 121)
MM, LL = torch.meshgrid(m_axis, lv_axis, indexing="xy")
norm = torch.sqrt(g_mu**2 + g_lv**2)                          # draw directions only
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
filled = left.contourf(MM, LL, kl_per_dimension(MM, LL), levels=30, cmap="viridis")
fig.colorbar(filled, ax=left, label="KL (nats)")
left.quiver(am.detach(), alv.detach(), -g_mu / norm, -g_lv / norm, color="w", scale=18)
left.plot(0, 0, "r*", markersize=14, label="the prior: $\\mu = 0$, $\\sigma = 1$")
left.set(xlabel="$\\mu$", ylabel="$\\log\\sigma^2$", title="KL to N(0, 1), arrows point downhill")
left.legend(loc="lower left")
for m0 in (0.0, 1.0, 2.0):
    right.plot(lv_axis, kl_per_dimension(torch.tensor(m0), lv_axis), label=f"$\\mu = {m0:g}$")
right.set(xlabel="$\\log\\sigma^2$", ylabel="KL (nats)",
          title="Slices: the $\\sigma$-well shifted by $\\mu^2/2$")
right.legend()
plt.show()

# %% [markdown]
# Follow the arrows on the left from anywhere and you reach the red star, the prior: the KL drags
# every $\mu$ back to 0 and every $\sigma$ back to 1. On the right, the curves have the same shape
# and their minimum sits at $\log\sigma^2 = 0$ whatever $\mu$ is; a larger $\mu$ only lifts the
# curve by $\mu^2/2$.
# The well is lopsided: shrinking $\sigma$ is penalised slowly (like $-\log\sigma^2$), growing it
# quickly (like $\sigma^2$).
#
# This pull is half of a tug of war. The reconstruction term wants the opposite: codes spread
# far apart (large $|\mu|$) and almost no noise (small $\sigma$), so that each image is decoded
# exactly. The KL keeps the codes of all images packed into the region where the prior puts its
# mass, which is what lets you later sample $z \sim \mathcal N(0, I)$ and decode something
# sensible. Check the two claims about the slices:

# %%
curves = torch.stack([kl_per_dimension(torch.tensor(m0), lv_axis) for m0 in (0.0, 1.0, 2.0)])
lowest = lv_axis[curves.argmin(dim=1)]
print("log sigma^2 at the bottom of each curve:", [round(v, 3) + 0.0 for v in lowest.tolist()])
assert (lowest.abs() < 0.1).all() and torch.allclose(curves[2] - curves[0], torch.tensor(2.0))
print(f"KL at log sigma^2 = -6: {kl_per_dimension(torch.tensor(0.0), torch.tensor(-6.0)):.2f} nats;"
      f" at +3: {kl_per_dimension(torch.tensor(0.0), torch.tensor(3.0)):.2f} nats")


# %% [markdown]
# ## 6. Pitfall: a sign slip in the formula · deeper
#
# > **Pitfall: $+(\log\sigma^2 + 1)$ where $-(\log\sigma^2 + 1)$ belongs.** The 2022 slides
# > this course draws on derive the right formula, then code it with the last bracket *added*
# > instead of subtracted. Nothing crashes; the loss just optimises something else. Here is the
# > sign slip, written as a function. (The same code holds a second slip; it comes at the end of
# > this section.)

# %%
def kl_sign_slip(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The KL with the sign slip: + (log sigma^2 + 1) where - belongs. Not a KL."""
    return 0.5 * (mu**2 + logvar.exp() + logvar + 1)


at_prior = torch.zeros(5, 20, dtype=torch.float64)                    # mu = 0, log sigma^2 = 0
print(f"at the prior itself, correct: {kl_diagonal(at_prior, at_prior)[0]:.2f}, "
      f"slipped: {kl_sign_slip(at_prior, at_prior).sum(-1)[0]:.2f} (should be 0)")
low_sigma = kl_sign_slip(torch.tensor(0.0), torch.tensor(-10.0))
print(f"at mu = 0, log sigma^2 = -10, slipped: {low_sigma:.2f}"
      " (a 'KL' below zero)")


# %% [markdown]
# Worse than a wrong value is a wrong direction. Minimise each version by plain gradient descent
# on $(\mu, \log\sigma^2)$, starting from $\mu = 1.5$, $\log\sigma^2 = 1$, the way the KL term
# acts on an encoder's outputs during training.

# %%
def descend(kl_fn, steps: int = 300, lr: float = 0.1) -> torch.Tensor:
    """Gradient descent on kl_fn(mu, logvar) alone; returns the path, [steps + 1, 2]."""
    params = torch.tensor([1.5, 1.0], dtype=torch.float64, requires_grad=True)
    path = [params.detach().clone()]
    for _ in range(steps):
        grad, = torch.autograd.grad(kl_fn(params[0], params[1]), params)
        with torch.no_grad():
            params -= lr * grad
        path.append(params.detach().clone())
    return torch.stack(path)


right_path, slipped_path = descend(kl_per_dimension), descend(kl_sign_slip)

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
lv = torch.linspace(-8, 3, 200)
a.plot(lv, kl_per_dimension(torch.tensor(0.0), lv), label="correct KL")
a.plot(lv, kl_sign_slip(torch.tensor(0.0), lv), label="sign slip")
a.axhline(0, color="gray", linewidth=0.8)
a.set(xlabel="$\\log\\sigma^2$", ylabel="loss term", title="At $\\mu = 0$: a well versus a slope")
b.plot(right_path[:, 1], label="correct KL")
b.plot(slipped_path[:, 1], label="sign slip")
b.set(xlabel="gradient step", ylabel="$\\log\\sigma^2$",
      title="Where gradient descent takes $\\log\\sigma^2$")
for ax in (a, b):
    ax.legend()
plt.show()

# %% [markdown]
# The correct term (left, blue) is a well with its floor at 0; the slipped one is a slope that
# goes down forever as $\sigma$ shrinks. So gradient descent (right) settles at
# $\log\sigma^2 = 0$ with the correct term, but drives $\log\sigma^2$ down without end with the
# slipped one. In a VAE this squeezes every $\sigma$ toward zero: the encoder stops being
# random, the model turns back into a plain autoencoder, and sampling from the prior no longer
# decodes into anything sensible. The loss keeps falling the whole time, so nothing looks wrong.

# %%
for name, path, fn in [("correct", right_path, kl_per_dimension),
                       ("slipped", slipped_path, kl_sign_slip)]:
    mu_end, lv_end = path[-1]
    print(f"{name}: mu -> {mu_end:+.3f}, log sigma^2 -> {lv_end:+.2f}, "
          f"loss term -> {fn(mu_end, lv_end):+.2f}")
assert right_path[-1].abs().max() < 1e-3                       # the prior, found
assert slipped_path[-1, 1] < -10 and kl_sign_slip(*slipped_path[-1]) < 0   # runs off, "KL" < 0


# %% [markdown]
# **The fix** is the minus sign, `0.5 * (mu**2 + logvar.exp() - logvar - 1)`, and a habit that
# would have caught the slip at once: evaluate your KL at the prior ($\mu = 0$,
# $\log\sigma^2 = 0$), where it must be exactly 0, and compare it with `torch.distributions` on
# a few random inputs, as in section 2.
#
# You need both tests, because the slides' code has a second slip that the first test misses.
# Their encoder layer outputs $\log\sigma^2$ (their sampling step takes $\sigma$ as `exp` of half
# of it), yet their `KLLoss` squares `exp` of that same output: $(\sigma^2)^2 = \sigma^4$ where
# $\sigma^2$ belongs. At the prior $\sigma^4 = \sigma^2 = 1$, so this slip alone still gives 0
# there. Run both tests on each version: the squared variance alone, and the code as the slides
# have it, with both slips.

# %%
def kl_squared_variance(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The second slip alone: exp(logvar) squared, sigma^4 where sigma^2 belongs. Not a KL."""
    return 0.5 * (mu**2 + logvar.exp() ** 2 - logvar - 1)


def kl_as_in_slides(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Both slips, as the slides' KLLoss computes it: (mu^2 + sigma^4 + log sigma^2 + 1) / 2."""
    return 0.5 * (mu**2 + logvar.exp() ** 2 + logvar + 1)


gen = torch.Generator().manual_seed(3)
mu_r, logvar_r = torch.randn(2, 1000, generator=gen, dtype=torch.float64)   # random inputs
reference_kl = D.kl_divergence(D.Normal(mu_r, (0.5 * logvar_r).exp()), D.Normal(0.0, 1.0))
origin = torch.zeros((), dtype=torch.float64)                             # mu = log sigma^2 = 0
verdicts = {}
for name, fn in [("correct", kl_per_dimension), ("sign slip", kl_sign_slip),
                 ("squared variance", kl_squared_variance), ("as in the slides", kl_as_in_slides)]:
    at_zero = fn(origin, origin).item() == 0
    agrees = torch.allclose(fn(mu_r, logvar_r), reference_kl)
    verdicts[name] = (at_zero, agrees)
    print(f"{name:<16}  0 at the prior: {at_zero!s:<5}  agrees with torch.distributions: {agrees}")
assert verdicts == {"correct": (True, True), "sign slip": (False, False),
                    "squared variance": (True, False), "as in the slides": (False, False)}

# %% [markdown]
# The test at the prior catches the sign slip but lets the squared variance through; the
# comparison with `torch.distributions` catches every version that is not the KL.

# %% [markdown]
# ## 7. Pitfall: `nn.KLDivLoss` wants log-probabilities · deeper
#
# > **Pitfall: "my KLDivLoss is going negative".** The same slides tried PyTorch's built-in
# > `nn.KLDivLoss` first, saw it return negative values, and wrote their own (with the slips
# > above). They show no code for that attempt, so what went wrong there is an inference, not
# > something you can read off the page. The built-in is not broken; it has an unusual
# > contract. `KLDivLoss()(input, target)` computes
# > $\sum_k \text{target}_k\,(\log \text{target}_k - \text{input}_k)$: the **input must
# > already be log-probabilities**, the target plain probabilities, and the result is
# > $\mathrm{KL}(\text{target}\,\|\,\text{input})$ — the model's distribution goes *second* in
# > the math, although it is the first argument. The most likely cause, the one that
# > reproduces the sign every time, is probabilities passed where log-probabilities belong.
#
# Use the two distributions $p$ and $q$ of section 1 (as a batch of one row each).

# %%
kl_loss = torch.nn.KLDivLoss(reduction="batchmean")
wrong = kl_loss(q.unsqueeze(0), p.unsqueeze(0))          # q given as probabilities
right = kl_loss(q.log().unsqueeze(0), p.unsqueeze(0))    # q given as log-probabilities
print(f"probabilities as input:     {wrong:+.4f}")
print(f"log-probabilities as input: {right:+.4f}")
print(f"KL(p || q) from section 1:  {kl_discrete(p, q):+.4f}")
assert wrong < 0 and torch.isclose(right, kl_discrete(p, q))

# %% [markdown]
# Why the wrong call is *always* negative: with probabilities as input it returns
# $\sum_k p_k \log p_k - \sum_k p_k q_k$. The first sum is minus the entropy of $p$, never
# positive; the second is subtracted and is positive. So no pair of distributions can make
# it come out positive. Check that on the 10 000 random pairs of section 1:

# %%
wrong_all = F.kl_div(pairs[1], pairs[0], reduction="none").sum(-1)         # one value per pair
assert torch.allclose(wrong_all, (pairs[0] * pairs[0].log()).sum(-1) - (pairs[0] * pairs[1]).sum(-1))
right_all = F.kl_div(pairs[1].log(), pairs[0], reduction="none").sum(-1)
print(f"probabilities as input:     largest value over 10 000 pairs {wrong_all.max():+.4f}")
print(f"log-probabilities as input: smallest value over 10 000 pairs {right_all.min():+.4f}")
assert (wrong_all < 0).all() and torch.allclose(right_all, kl_discrete(pairs[0], pairs[1]))

# %% [markdown]
# Two more details of its contract. The default `reduction="mean"` divides by the number of
# *entries* (batch size × number of classes), not by the batch size, so it is not the KL per
# example; `reduction="batchmean"` is (PyTorch warns about this when you use the default).
# And it compares two *lists of probabilities*: it cannot take an encoder's $(\mu, \log\sigma^2)$.
# To use it on Gaussians you would have to chop both densities into fine bins first — which
# works, as a last check of section 2's closed form, but the closed form is the tool for a VAE.

# %%
batch = pairs[:, :4]                                                      # 4 pairs, 6 classes each
with warnings.catch_warnings(record=True) as caught:                    # keep the warning quiet
    warnings.simplefilter("always")
    default = torch.nn.KLDivLoss()(batch[1].log(), batch[0])
assert any("batchmean" in str(w.message) for w in caught)                 # ... but check it came
per_example = kl_discrete(batch[0], batch[1]).mean()
print(f"default 'mean': {default:.4f} = per-example KL {per_example:.4f} / 6 classes")
assert torch.isclose(default * 6, per_example)

# %%
bins = torch.linspace(-12, 12, 24_001, dtype=torch.float64)                # z on a fine grid
q_bins = torch.softmax(gaussian_log_density(bins, mu, logvar), 0)        # N(1.5, e^-0.7), binned
p_bins = torch.softmax(gaussian_log_density(bins, 0 * bins, 0 * bins), 0)  # N(0, 1), binned
binned = F.kl_div(p_bins.log(), q_bins, reduction="sum")                 # KL(q || p)
print(f"binned Gaussians: {binned:.6f}   closed form: {kl_per_dimension(mu, logvar):.6f}")
assert torch.isclose(binned, kl_per_dimension(mu, logvar), rtol=1e-6)

# %% [markdown]
# ## 8. Pitfall: "mean" reductions unbalance the ELBO · deeper
#
# For one image $x$ with $D = 784$ pixels and a latent of $L$ dimensions, the negative ELBO is
# a **sum over pixels** plus a **sum over latent dimensions**:
#
# $$
# -\mathrm{ELBO}(x) = \underbrace{\sum_{d=1}^{D} -\log p(x_d \mid z)}_{R(x)}
# + \underbrace{\sum_{j=1}^{L} \mathrm{KL}_j}_{K(x)} ,
# $$
#
# and you average that over the images of a batch. PyTorch's losses default to
# `reduction="mean"`, which averages over *every entry*. Write the reconstruction with the
# default `F.binary_cross_entropy_with_logits(logits, x)` and the KL with `.mean()`, and you have
# divided $R$ by $D$ and $K$ by $L$:
#
# $$
# \text{loss}_{\text{mean}} = \frac{R}{D} + \frac{K}{L} = \frac1D\Big(R + \frac{D}{L}\,K\Big).
# $$
#
# Up to the overall factor $1/D$, that is a β-VAE with $\beta = D/L$: 39.2 for $L = 20$. The
# KL weighs almost forty times more than the ELBO says. First check the algebra on one batch.

# %%
LATENT = 20
train_set = load("mnist", "train").subset(settings.pick(10_000, 1_000))
test_set = load("mnist", "test").subset(2_000)


def mean_reduced_loss(logits, x, mu, logvar):
    """The ELBO with PyTorch's default 'mean' everywhere: over N*784 pixels and N*L latents."""
    return F.binary_cross_entropy_with_logits(logits, x) + kl_per_dimension(mu, logvar).mean()


def summed_loss(logits, x, mu, logvar):
    """The course's convention: sums inside each example, mean over the batch (beta = 1)."""
    return elbo_loss(logits, x, mu, logvar).total


# %%
torch.manual_seed(0)
model, x = MLPVAE(latent_dim=LATENT).to(settings.device()), test_set.images[:128]
logits, mu_x, logvar_x = model(x)
parts = elbo_loss(logits, x, mu_x, logvar_x)
beta_equivalent = 784 / LATENT
scaled = 784 * mean_reduced_loss(logits, x, mu_x, logvar_x)
as_beta_vae = parts.reconstruction + beta_equivalent * parts.kl
print(f"784 x mean-reduced loss          = {scaled:.1f}")
print(f"R + (784/L) K  (beta = {beta_equivalent:.1f})      = {as_beta_vae:.1f}")
assert torch.isclose(scaled, as_beta_vae, rtol=1e-4)   # float32 sums of 100 352 terms, two orders


# %% [markdown]
# Now the consequence. Train the same VAE twice, from the same initial weights, on the same
# batches in the same order, with Adam at the same learning rate; only the reduction differs.
# The loop is the core of `companion.training.fit`, with the loss function as an argument.

# %%
def train(loss_fn, epochs: int, seed: int = 0) -> MLPVAE:
    """Train a fresh MLPVAE with Adam (lr 1e-3, batch 128) on train_set, minimising loss_fn."""
    seed = settings.training_seed(seed)             # shifted by COURSE_SEED_OFFSET (notebook 00)
    torch.manual_seed(seed)
    model = MLPVAE(latent_dim=LATENT).to(settings.device())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = Batches(train_set, batch_size=128, shuffle=True, seed=seed)
    for _ in range(epochs):
        for x, _labels in batches:
            logits, mu, logvar = model(x)
            loss = loss_fn(logits, x, mu, logvar)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


# %% tags=["nbval-ignore-output"]
EPOCHS = settings.pick(5, 1)
print(f"training on {len(train_set)} images for {EPOCHS} epochs, twice")
summed_model = train(summed_loss, EPOCHS)
mean_model = train(mean_reduced_loss, EPOCHS)


# %% [markdown]
# Judge both models by the same yardstick, the real ELBO ($\beta = 1$, sums) on 2 000 test
# images, and count the **active** latent dimensions: those whose KL, averaged over the test
# images, exceeds 0.01 nats. A dimension with a KL near zero has $q(z_j \mid x) \approx
# \mathcal N(0, 1)$ for every image, so it carries no information about the image.

# %%
@torch.no_grad()
def average_kl_per_dimension(model: MLPVAE) -> torch.Tensor:
    """Average KL of each latent dimension over test_set, [L]."""
    mu, logvar = model.encode(test_set.images)
    return kl_per_dimension(mu, logvar).mean(0).cpu()


torch.manual_seed(1)
results = {name: (evaluate(m, test_set), average_kl_per_dimension(m))
           for name, m in [("summed", summed_model), ("mean", mean_model)]}

# %% tags=["nbval-ignore-output"]
print("reduction   test -ELBO   reconstruction   KL      active dimensions")
for name, (parts, per_dim) in results.items():
    print(f"{name:<9} {parts.total:11.1f} {parts.reconstruction:15.1f} {parts.kl:8.2f}"
          f" {(per_dim > 0.01).sum().item():8d} of {LATENT}")
(summed_parts, summed_dims), (mean_parts, mean_dims) = results["summed"], results["mean"]
assert mean_parts.kl < summed_parts.kl / 10                      # the KL is crushed
assert mean_parts.reconstruction > summed_parts.reconstruction    # so reconstructions suffer
assert summed_parts.total < mean_parts.total                      # and so does the real ELBO
assert (mean_dims > 0.01).sum() <= LATENT // 4 < (summed_dims > 0.01).sum()

# %% [markdown]
# With the mean reductions the KL is pushed almost to zero and the latent dimensions go
# inactive (in the full-mode run printed above, every one of them): the encoder gives up
# describing the image, because each nat of KL costs forty times what it should.
# The reconstruction term pays for it, and so does the real ELBO. This is **posterior
# collapse**, caused here by nothing but a default argument. The pictures make it plain.

# %%
x8 = test_set.images[:8]
rows = torch.cat([x8, summed_model.reconstruct(x8), mean_model.reconstruct(x8)])
show_images(rows, nrow=8, title="Test digits and their reconstructions",
            labels=["original", "summed", "mean"])
plt.show()
spread = {name: r.std(0).mean().item() for name, r in [("summed", rows[8:16]), ("mean", rows[16:])]}
assert spread["mean"] < spread["summed"] / 2      # the mean model's outputs barely depend on x

# %% [markdown]
# The model trained with sums reconstructs each digit (blurry, as a small VAE does). The model
# trained with means returns nearly the same smudge for every input, whatever the digit: its
# code says almost nothing about the image.

# %%
fig, ax = plt.subplots(figsize=(7, 3.8), layout="constrained")
order = torch.arange(1, LATENT + 1)
ax.bar(order - 0.2, summed_dims.sort(descending=True).values, width=0.4, label="summed (β = 1)")
ax.bar(order + 0.2, mean_dims.sort(descending=True).values, width=0.4,
       label=f"mean (acts as β = {beta_equivalent:.1f})")
ax.axhline(0.01, color="gray", linestyle=":", label="0.01 nats: 'active'")
ax.set(yscale="log", xlabel="latent dimension, sorted by its KL", ylabel="average KL (nats)",
       title="How much each latent dimension is used", xticks=order[::2])
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
plt.show()


# %% [markdown]
# Each bar is one latent dimension's share of the KL. With sums, the information spreads over
# many dimensions; with means, the bars fall below the dotted line (in a full-mode run, all
# of them).
#
# **The fix:** sum inside each example, over pixels and over latent dimensions, and take the
# mean over the batch only — the convention of `companion.losses`
# (`F.binary_cross_entropy_with_logits(..., reduction="none").flatten(1).sum(1).mean()`). If
# you *want* a different balance, say so with an explicit β, as notebook 06 does, rather than
# getting one by accident. The 2018 journal-club notebook and "10 Days of Grad" both sum *both*
# terms over everything, the batch included; that keeps them in balance and only scales the
# loss with the batch size.

# %% [markdown]
# ## Exercises
#
# ### Exercise 1 — the KL between two Gaussians
#
# Some VAEs use a prior other than $\mathcal N(0, 1)$ (a learned one, or a conditional one).
# Derive $\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathcal N(m, s^2)\big)$ with the
# three steps of section 2, and implement it in terms of log-variances:
# `kl_two_gaussians(mu, logvar, m, logs2)`, element by element.
#
# *Hint:* under $q$, $\mathbb E[(z - m)^2] = \sigma^2 + (\mu - m)^2$. Your answer must reduce to
# section 2's formula when $m = 0$ and $s = 1$.

# %% tags=["solution"]
def kl_two_gaussians(mu, logvar, m, logs2):
    """KL( N(mu, e^logvar) || N(m, e^logs2) ), element by element."""
    return 0.5 * (logs2 - logvar + (logvar.exp() + (mu - m) ** 2) / logs2.exp() - 1)


# %%
checks.check_kl_two_gaussians(kl_two_gaussians)


# %% [markdown]
# ### Exercise 2 — the KL to a Laplace prior, by Monte Carlo
#
# A Laplace prior, $p(z) = \frac{1}{2b}\,e^{-|z|/b}$, has a sharper peak and heavier tails
# than $\mathcal N(0, 1)$. You do not need a closed form for
# $\mathrm{KL}\big(\mathcal N(\mu, \sigma^2)\,\|\,\mathrm{Laplace}(0, b)\big)$: the definition
# and the estimator of section 4 are enough. Write
# `kl_to_laplace_mc(mu, logvar, b, n_samples, generator)` that returns two tensors shaped
# like `mu`: the Monte Carlo estimate of that KL, element by element, and its standard error.
# Draw the noise from `generator`, so that the same seed gives the same numbers.
#
# *Hint:* compared with section 4, only $\log p(z)$ changes. The check compares your
# estimates with the closed form that `torch.distributions` has for this pair.
#
# *Going further:* which scale $b$ makes $\mathrm{Laplace}(0, b)$ closest to $\mathcal N(0, 1)$?
# Scan $b$ with your function (the same seed for every $b$ keeps the curve smooth), then
# derive the answer by differentiating the KL with respect to $b$.

# %% tags=["solution"]
def kl_to_laplace_mc(mu, logvar, b, n_samples, generator):
    """Monte Carlo KL( N(mu, e^logvar) || Laplace(0, b) ), element by element: (estimate, SE)."""
    eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype)
    z = mu + (0.5 * logvar).exp() * eps                                    # [S, ...], z ~ q
    log_p = -math.log(2 * b) - z.abs() / b                                 # Laplace(0, b)
    terms = gaussian_log_density(z, mu, logvar) - log_p
    return terms.mean(0), terms.std(0) / math.sqrt(n_samples)


# %%
checks.check_kl_to_laplace_mc(kl_to_laplace_mc)


# %% [markdown]
# ### Exercise 3 — which β does this snippet train?
#
# This loss appears in many tutorials: the reconstruction with PyTorch's default reduction
# (a mean over all $N \times D$ pixels of the batch), the KL summed over all $N \times L$
# entries.
#
# ```python
# recon = F.binary_cross_entropy_with_logits(logits, x)
# kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())
# loss = recon + kl
# ```
#
# Up to a constant factor, it equals the batch mean of $R + \beta K$. Write
# `effective_beta(n_pixels, latent_dim, batch_size)` returning that β. (Not every argument
# has to matter.)

# %% tags=["solution"]
def effective_beta(n_pixels, latent_dim, batch_size):
    """beta of the snippet: its loss is (sum of R + N * D * sum of K) / (N * D)."""
    return n_pixels * batch_size


# %%
checks.check_effective_beta(effective_beta)

# %% [markdown]
# ## Summary
#
# * $\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q - \log p]$ is never negative, is zero only when
#   $q = p$, and is not symmetric.
# * For the encoder's Gaussian against the prior, it has a closed form,
#   $\tfrac12\sum_j(\mu_j^2 + \sigma_j^2 - \log\sigma_j^2 - 1)$: a sum of one-dimensional KLs,
#   derived in three steps and confirmed by `torch.distributions` and by Monte Carlo within
#   its error bars.
# * As a loss term it is a pull toward the prior, $\mu \to 0$ and $\sigma \to 1$, that balances
#   the reconstruction term's push toward spread-out, noiseless codes.
# * Check any KL at the prior (it must be 0) and against a reference: a sign slip turns the pull
#   into a slide toward $\sigma = 0$ with a loss that falls forever, and a squared variance
#   ($\sigma^4$ for $\sigma^2$) passes the first test and fails only the second.
# * `nn.KLDivLoss` takes log-probabilities as input and computes KL(target ‖ input); and
#   "mean" reductions silently act as a large β, collapsing the latent code.
#
# ## References
#
# * S. Kullback and R. A. Leibler, "On information and sufficiency", *Annals of Mathematical
#   Statistics* 22 (1951) — the divergence itself.
# * D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114 (2013),
#   appendix B — the closed-form KL for a diagonal Gaussian encoder.
# * C. Doersch, "Tutorial on Variational Autoencoders", arXiv:1606.05908 (2016) — the KL
#   between multivariate Gaussians in the VAE objective.
# * I. Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
#   Framework", ICLR 2017 — weighting the KL term with β.
# * S. R. Bowman et al., "Generating Sentences from a Continuous Space", arXiv:1511.06349
#   (2015) — posterior collapse, the KL driven to zero.
# * PyTorch documentation, `torch.nn.KLDivLoss` — the input/target contract and `batchmean`.
# * Source documents of this course: the 2022 slides "Variational Autoencoder" (the
#   step-by-step derivation of the diagonal-Gaussian KL, and the sign slip, the squared
#   variance and the `KLDivLoss` puzzle turned into pitfalls here); "10 Days of Grad" by
#   Bogdan Penkovsky, day 9, and a 2018 ML journal-club notebook on VAEs (a KL term next to a
#   reconstruction summed over pixels).
