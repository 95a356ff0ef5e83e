# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Convolutional VAEs
#
# **By the end of this notebook you can read, repair and speed up the convolutional VAEs of
# the source documents, and you know what a conv VAE buys you over the MLP VAE.**
#
# ### Learning objectives
#
# 1. Say why convolutions suit images, and check it: far fewer weights, and a shifted input
#    gives a shifted output.
# 2. Read the three conv VAEs of the sources layer by layer, compute every output shape, and
#    fix their mistakes (a "BAD" block after the output layer, an RMSE loss, Dropout).
# 3. Compare transposed convolution with upsampling + convolution: shapes, checkerboard
#    artefacts, cost.
# 4. Choose a network and settings that train several times faster on a CPU, and measure it.
# 5. Train conv VAEs with latent size 2 and 128 on two datasets, watch them learn, and compare
#    them with the MLP VAE.
# 6. Run the sources' own experiments with their networks: the Hasktorch tutorial's latent map
#    and β sweeps (and test its reading of them), the R torch book's BatchNorm VAE with its
#    sampling pitfall, and the slides' network with its morph.
#
# **Prerequisites:** 01 (autoencoders, logits and the Bernoulli loss), 03 (the
# reparameterization trick) and 04 (the KL term). Notebook 05's MLP VAE is retrained here, so
# you need not have run it.
#
# **Time to run:** under a minute in fast mode. In full mode about 6 minutes on a quiet
# 2-core CPU the first time, when twelve VAEs train, and under a minute afterwards, when they
# load from the cache.

# %% [markdown]
# ## Setup

# %% tags=["nbval-ignore-output"]
import json

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import companion
from companion import settings
from companion.checkpoints import train_or_load
from companion.checks import conv_vae as checks
from companion.data import Batches, load, load_first, source_of
from companion.introspect import (images_per_second, layer_shapes, parameter_count,
                                  side_by_side)
from companion.latent import encode_all, grid, knn_classify
from companion.latent_arithmetic import lerp
from companion.losses import Objective, bernoulli_nll, kl_divergence, rmse
from companion.models import BADConvVAE, BatchNormConvVAE, ConvVAE, MLPVAE, SimpleConvVAE
from companion.plots import scatter_latent, show_images, show_pairs
from companion.training import SampleStrip, evaluate

companion.setup(seed=0, datasets=["mnist"])
device = settings.device()   # the data load onto it; every model goes there too
# Where the data came from differs between machines (hence no output check); it must be staged.
assert source_of("mnist") != "not staged"

# %% [markdown]
# ## 1. Why convolutions for images · deeper
#
# The MLP VAE of notebook 05 flattens a digit into 784 numbers. Its first layer connects every
# pixel to every hidden unit, so it knows nothing about which pixels are neighbours: shuffle
# the pixels of every image the same way and it learns just as well. It must learn "a stroke"
# separately at every position.
#
# A **convolution** slides one small kernel (say 3×3) over the whole image. Two ideas follow:
#
# * **locality and weight sharing**: each output looks at a small patch, and every patch uses
#   the same weights, so a layer has (kernel area × channels in + 1) × channels out parameters,
#   however large the image;
# * **translation equivariance**: move the input and the output moves with it,
#   $\mathrm{conv}(\mathrm{shift}(x)) = \mathrm{shift}(\mathrm{conv}(x))$. A stroke detector
#   learnt in one corner works in every corner.
#
# Count the parameters of a conv layer and of a dense layer with the same output size:

# %%
conv = nn.Conv2d(1, 32, kernel_size=3, padding=1)        # 1x28x28 -> 32x28x28
dense = nn.Linear(784, 32 * 28 * 28, device="meta")     # same output size; "meta": no memory
print(f"conv layer:  {parameter_count(conv):>12,} parameters")
print(f"dense layer: {parameter_count(dense):>12,} parameters")
assert parameter_count(conv) == (3 * 3 * 1 + 1) * 32

# %% [markdown]
# Now shift a digit three pixels to the right and check the equivariance. MNIST digits have a
# blank border, so rolling the image moves the digit without wrapping ink around the edge.

# %%
x = load("mnist", "test").images[:1]                            # [1, 1, 28, 28]
shift = lambda t: torch.roll(t, shifts=3, dims=-1)              # 3 pixels to the right
with torch.no_grad():
    same = torch.allclose(conv(shift(x)), shift(conv(x)), atol=1e-5)
print("conv(shift(x)) equals shift(conv(x)):", same)
assert same

# %% [markdown]
# ## 2. The three convolutional VAEs of the sources · deeper
#
# Three of the source documents build a conv VAE. `companion.models.conv` holds each as a class
# (subclasses of `companion.models.VAE`, so `encode`, `decode`, `sample` and the training loop
# work as before):
#
# | class | source | encoder | decoder |
# |---|---|---|---|
# | `SimpleConvVAE` | the Hasktorch tutorial "10 Days of Grad", day 9 | convs 4×4, 4×4, 3×3, stride 2, ReLU → 2×2×128 | linear → 1×1×1024 → transposed convs 4, 6, 6, stride 2 |
# | `BatchNormConvVAE` | the R torch book (Keydana), ch. 16 | four 3×3 stride-2 convs + BatchNorm + LeakyReLU, 28→14→7→4→2, 224 channels → 896 | linear → 1×1×224 → four transposed convs with BatchNorm |
# | `BADConvVAE` | the VAE slides (2022) | 3×3 convs with "BAD" blocks (BatchNorm, LeakyReLU, Dropout), channels 1→32→64→64→64, strides 1, 2, 2, 1 → 3136 | linear → 64×7×7 → mirrored transposed convs with `output_padding` |
#
# Printing each layer's output shape (the slides' debugging habit) is the quickest way to read
# a conv net. Here are the layers that change the shape, side by side (heads $\mu$ and
# $\log\sigma^2$ both print as `Linear 2`):

# %%
torch.manual_seed(0)
sources = {"Hasktorch (SimpleConvVAE)": SimpleConvVAE(latent_dim=2).to(device),
           "R torch book (BatchNormConvVAE)": BatchNormConvVAE(latent_dim=2).to(device),
           "slides (BADConvVAE)": BADConvVAE(latent_dim=2).to(device)}
shaping = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Unflatten, nn.Upsample)
x = load("mnist", "test").images[:4]
print(side_by_side({name: layer_shapes(m.eval(), x, shaping) for name, m in sources.items()},
                   width=33))
print()
for name, model in sources.items():
    print(f"{name + ':':<33}{parameter_count(model):>9,} parameters")
    assert model.decode(torch.zeros(3, 2, device=device)).shape == (3, 1, 28, 28)

# %% [markdown]
# Read the columns top to bottom. The Hasktorch tutorial's network uses no padding, so its
# sizes shrink unevenly (28 → 13 → 5 → 2), and its decoder has to grow from a single pixel
# with kernels 4, 6, 6 to land exactly on 28. The R torch book's network pads, so each
# stride-2 conv halves the size rounding up. The slides' network keeps the full 28×28
# resolution in its first layer and uses `output_padding=1` so that 7 → 14 → 28 comes out
# even. Most of the Hasktorch network's parameters sit in its decoder's first transposed
# conv: 1024 × 256 × 4 × 4 weights.
#
# ### What this course changes in the sources
#
# * **Logits out, sigmoid in the loss.** The Hasktorch tutorial and the R torch book end the
#   decoder with a sigmoid; here every decoder returns logits and the Bernoulli loss works
#   from them (notebook 01).
# * **No block after the output layer.** The slides put BatchNorm, LeakyReLU and Dropout
#   after their last transposed conv. Pitfall below.
# * **A likelihood, not RMSE.** The slides train with the root mean squared error. Pitfall
#   below.
# * **No Dropout.** Discussed after the pitfalls.
# * **`nn.Unflatten`, not a custom Reshape layer.** The slides write their own Reshape module
#   because, they say, torch has none. It has: `nn.Unflatten(1, (64, 7, 7))` turns `[N, 3136]`
#   into `[N, 64, 7, 7]`, and every decoder here uses it.
# * The R torch book's `reparameterize` forgets the `exp`; that was notebook 03's pitfall, and
#   `companion.models.VAE.reparameterize` is the fixed version all these classes share.

# %% [markdown]
# ## 3. Pitfall: a "BAD" block after the output layer · deeper
#
# > **Pitfall.** The slides follow *every* transposed conv of their decoder with a BAD block,
# > the last one included. On an output that is read as Bernoulli logits this is fatal:
# > LeakyReLU multiplies negative logits by 0.01, so a pixel that should be surely black
# > (logit −10) becomes a logit of −0.1, a coin flip; Dropout sets half the logits to 0,
# > probability ½; BatchNorm rescales the output by statistics of the batch.
#
# **A word on the unit.** MNIST's pixels are grey levels, and a Bernoulli "likelihood" of a
# grey value is not the probability of anything (notebook 05 binarizes the images for that
# reason). So every Bernoulli loss and test $-$ELBO in this notebook is a training loss on
# grey pixels: a sum of per-pixel cross-entropies, in nats, good for comparing networks
# trained and tested on the same images, but not a log-likelihood to set next to published
# results. The KL terms are true nats.
#
# Give the block the *best possible* logits, those of a decoder that knows every pixel, and
# see what is left:

# %% tags=["nbval-ignore-output"]
x = load("mnist", "test").images[:64]
perfect = torch.logit(x.clamp(1e-4, 1 - 1e-4))          # sigmoid(perfect) = x, almost exactly
bad_block = nn.Sequential(nn.BatchNorm2d(1), nn.LeakyReLU(), nn.Dropout(0.5)).train()
losses = {"plain output layer": bernoulli_nll(perfect, x).mean().item(),
          "BAD block after it": bernoulli_nll(bad_block(perfect), x).mean().item()}
for name, value in losses.items():
    print(f"{name:<20} {value:7.1f} per image (loss on grey pixels)")
assert losses["BAD block after it"] > 5 * losses["plain output layer"]

# %% [markdown]
# The perfect decoder's loss is small (what is left is the grey edge pixels' entropy, notebook
# 01); behind the BAD block the same logits cost many times more, and no training of the
# layers before can undo that. The fix is to end the decoder with the transposed conv itself,
# as `BADConvVAE` does.
#
# ## 4. Pitfall: RMSE as the reconstruction term · deeper
#
# > **Pitfall.** The slides train with $\sqrt{\frac1n\sum_i (x'_i - x_i)^2}$. That is not the
# > negative log-likelihood of any decoder: it is a *mean* over pixels and then a square root,
# > so it stays below about 0.3 even for an all-black output, while the KL term (notebook 04)
# > is a *sum* over latent dimensions of several nats. Next to the KL, the reconstruction hardly
# > counts, and the cheapest way to lower the loss is to make $q(z\,|\,x)$ equal the prior
# > for every image: **posterior collapse**. The codes then carry no information.
#
# Measure the whole range of RMSE on MNIST test digits, from a perfect output to one with no
# ink at all (the formula of `rmse`, applied to images instead of logits):

# %%
x = load("mnist", "test").images[:1000]
outputs = {"the digit itself": x,
           "mean training image": load("mnist", "train").images[:10000].mean(0),
           "all black": torch.zeros_like(x)}
rmse_of = {name: (out - x).pow(2).flatten(1).mean(1).sqrt().mean().item()
           for name, out in outputs.items()}
for name, value in rmse_of.items():
    print(f"{name:<20} RMSE {value:.2f}")
assert rmse_of["the digit itself"] == 0 < rmse_of["mean training image"] < rmse_of["all black"]
assert rmse_of["all black"] < 0.35


# %% [markdown]
# Between a perfect reconstruction and a blank image there is about 0.3 of RMSE, and the mean
# digit, an image that ignores its input, already sits much closer to the blank image than to
# a perfect one. Train the same network briefly with each loss and compare the KL and the
# RMSE at the end:

# %%
def train_briefly(reconstruction, steps: int) -> tuple[float, float]:
    """Train a latent-2 ConvVAE for `steps` batches; return the KL and RMSE of the last batches."""
    seed = settings.training_seed(0)                # shifted by COURSE_SEED_OFFSET (notebook 00)
    torch.manual_seed(seed)
    model = ConvVAE(latent_dim=2).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = load("mnist", "train").subset(steps * 32)
    kls, errors = [], []
    for x, _ in Batches(data, batch_size=32, seed=seed):
        logits, mu, logvar = model(x)
        kl = kl_divergence(mu, logvar).mean()
        loss = reconstruction(logits, x).mean() + kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        kls.append(kl.item())
        errors.append(rmse(logits, x).mean().item())
    return sum(kls[-20:]) / 20, sum(errors[-20:]) / 20


# %% tags=["nbval-ignore-output"]
steps = settings.pick(200, 50)
kl_rmse, err_rmse = train_briefly(rmse, steps)
kl_bce, err_bce = train_briefly(bernoulli_nll, steps)
print(f"after {steps} batches:")
print(f"  trained with RMSE:          KL {kl_rmse:.3f} nats, RMSE {err_rmse:.3f}")
print(f"  trained with Bernoulli NLL: KL {kl_bce:.3f} nats, RMSE {err_bce:.3f}")
assert kl_rmse < 0.2 * kl_bce
if not settings.fast_mode():   # 200 batches: the RMSE model has settled on one average output
    assert abs(err_rmse - rmse_of["mean training image"]) < 0.03 and err_bce < err_rmse

# %% [markdown]
# With RMSE the KL is driven to almost zero: the encoder's output no longer depends on the
# image, and the model's RMSE ends close to that of the mean training image, because it draws
# about the same average digit for every input. The Bernoulli NLL, a sum over 784 pixels,
# keeps the codes informative (after so few batches its reconstructions are still blurry, so
# its RMSE is only a little lower). If you want a squared error, use the Gaussian likelihood
# of notebook 02, summed over pixels, with its $1/2\sigma^2$ weight.
#
# ### Dropout in a VAE: leave it out
#
# A VAE already injects noise, $z = \mu + \sigma\varepsilon$, and the KL term already
# regularises the encoder. Dropout adds a second noise that the ELBO does not model: in
# training mode $\mu(x)$ is no longer a function of $x$, so the bound that is optimised is not
# the one you evaluate (in eval mode, Dropout off). It also slows every step (section 6).
# Here is the first symptom:

# %%
model = BADConvVAE(latent_dim=2, dropout=0.5).to(device).train()
x = load("mnist", "test").images[:8]
with torch.no_grad():
    mu_a, mu_b = model.encode(x)[0], model.encode(x)[0]
print("same images, same weights, same mu twice in training mode:", torch.allclose(mu_a, mu_b))
assert not torch.allclose(mu_a, mu_b)


# %% [markdown]
# So the course's networks use no Dropout (`BADConvVAE` keeps it as an option, `dropout=0.5`
# being the source's setting, so you can measure it).
#
# ## 5. Transposed convolution or upsample + convolution? · deeper
#
# A decoder has to grow 7×7 feature maps to 28×28. The slides name the two usual ways:
#
# * **transposed convolution** (`ConvTranspose2d`, stride $s$): every input pixel paints a
#   copy of the $k\times k$ kernel, scaled by its value, into the output, copies $s$ pixels
#   apart; where copies overlap they add. Its output size runs the conv formula backwards:
#   $\text{out} = (\text{in}-1)\,s - 2p + k + \text{output\_padding}$.
# * **upsample + convolution**: copy each pixel into an $s\times s$ block (nearest
#   neighbour), then apply an ordinary convolution with padding.
#
# **Your turn (5 min).** Write `conv_size(size, kernel, stride, padding)` and
# `tconv_size(size, kernel, stride, padding, output_padding)`: the output height of a square
# `Conv2d` and `ConvTranspose2d` (dilation 1), the sizes that section 2 printed layer by layer;
# the second formula is the one above. The check compares them with PyTorch on layers of all
# three sources.

# %% tags=["solution"]
def conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def tconv_size(size: int, kernel: int, stride: int, padding: int, output_padding: int) -> int:
    return (size - 1) * stride - 2 * padding + kernel + output_padding


# %%
checks.check_output_sizes(conv_size, tconv_size)

# %% [markdown]
#
# When $k$ is not a multiple of $s$, the copies of a transposed conv overlap unevenly: some
# output pixels receive contributions from more input pixels than their neighbours. Feed a
# constant image through each with all-one kernels: each output value then counts the
# contributions, and wherever it is not constant the layer has a pattern built in.

# %%
ones = torch.ones(1, 1, 7, 7)                                   # a constant 7x7 feature map
coverage = {
    "transposed 3x3, stride 2": F.conv_transpose2d(ones, torch.ones(1, 1, 3, 3), stride=2,
                                                   padding=1, output_padding=1),
    "transposed 4x4, stride 2": F.conv_transpose2d(ones, torch.ones(1, 1, 4, 4), stride=2,
                                                   padding=1),
    "upsample + conv 3x3": F.conv2d(F.interpolate(ones, scale_factor=2), torch.ones(1, 1, 3, 3),
                                    padding=1)}
for name, out in coverage.items():
    inner = out[0, 0, 2:-2, 2:-2].unique().tolist()              # away from the border
    print(f"{name:<26} {list(out.shape[-2:])}  values away from the border: {inner}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
for ax, (name, out) in zip(axes, coverage.items()):
    image = ax.imshow(out[0, 0], cmap="viridis")
    ax.set(title=name, xlabel="output column", ylabel="output row")
    fig.colorbar(image, ax=ax, shrink=0.8)
fig.suptitle("A constant 7x7 input through all-one kernels: the 14x14 outputs")
plt.tight_layout()
plt.show()

# %% [markdown]
# All three produce 14×14. The 3×3 transposed conv with stride 2 (the slides' choice) turns
# a constant input into a checkerboard of 1, 2 and 4: a built-in pattern the network must learn
# to cancel, and the origin of the "checkerboard artefacts" of Odena et al. (2016). A 4×4
# kernel with stride 2 gives a constant output away from the border, and so does
# upsample + conv.
#
# What does each cost? Both decoders have the same number of weights, but upsample + conv
# runs its 3×3 conv on the *large* map, four times as many positions as the transposed conv,
# which works per input pixel:

# %% tags=["nbval-ignore-output"]
x, origin = load("mnist", "train").images[:128], torch.zeros(1, 2, device=device)
for upsample in (False, True):
    torch.manual_seed(0)
    model = BADConvVAE(latent_dim=2, dropout=0.0, upsample=upsample).to(device)
    speed = images_per_second(model, x, steps=settings.pick(6, 2))
    print(f"upsample={upsample!s:<5}  {parameter_count(model):,} parameters, "
          f"{speed:6.0f} training images/s, output {list(model.decode(origin).shape)}")
    assert model.decode(origin).shape == (1, 1, 28, 28)


# %% [markdown]
# On this machine upsample + conv trains more slowly; in exchange it is free of the uneven
# overlap. The course's own network (next section) avoids the problem more cheaply: 4×4
# kernels with stride 2.

# %% [markdown]
# ## 6. A network that trains fast on a CPU · deeper
#
# Where does the slides' network spend its time? Its first layer keeps all 28×28 pixels with
# 32 channels, and each BAD block then runs BatchNorm, LeakyReLU and Dropout over those
# 25 088 numbers per image, forward and backward, with a mirror image in the decoder.
# Element-wise layers do little arithmetic but move a lot of memory.
#
# The course's `ConvVAE` halves the resolution at once with a 4×4 stride-2 conv
# (28 → 14 → 7, 32 then 64 channels), has no BatchNorm and no Dropout, and mirrors that with
# two 4×4 stride-2 transposed convs (even overlap, section 5). Its only full-resolution layer
# is the output. Measure the training speed of every network here, on one batch of 128.
#
# A timing of a few steps is at the mercy of whatever else the machine does at that moment,
# and the number of threads changes it too. So time the way `bench/conv.py` does: on one
# thread, the networks interleaved (the order alternating each round), and keep each
# network's best round, the least disturbed one.

# %%
def interleaved_speed(models: dict, x: torch.Tensor, steps: int, rounds: int) -> dict:
    """Training images/s of each model in each round, [rounds] per name; one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                       # like bench/conv.py --threads 1
    try:
        names, speeds = list(models), {name: [] for name in models}
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                speeds[name].append(images_per_second(models[name], x, steps=steps, warmup=1))
    finally:
        torch.set_num_threads(threads)
    return speeds


# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
contenders = {"Hasktorch (SimpleConvVAE)": SimpleConvVAE(2),
              "R torch book (BatchNormConvVAE)": BatchNormConvVAE(2),
              "slides (BADConvVAE, Dropout 0.5)": BADConvVAE(2),
              "slides (BADConvVAE, no Dropout)": BADConvVAE(2, 0.0),
              "course ConvVAE": ConvVAE(2)}
contenders = {name: m.to(device) for name, m in contenders.items()}
x = load("mnist", "train").images[:128]
rounds = interleaved_speed(contenders, x, steps=settings.pick(4, 1), rounds=settings.pick(3, 2))
speed = {name: max(r) for name, r in rounds.items()}                  # the best round
for name, model in contenders.items():
    print(f"{name:<33}{parameter_count(model):>11,} parameters {speed[name]:>7.0f} images/s")
fast, slow = rounds["course ConvVAE"], rounds["slides (BADConvVAE, Dropout 0.5)"]
ratio = max(fast) / max(slow)
per_round = [f / s for f, s in zip(fast, slow)]
print(f"course ConvVAE / slides (BADConvVAE, Dropout 0.5): {ratio:.1f}x "
      f"(single rounds: {min(per_round):.1f}x to {max(per_round):.1f}x)")
assert ratio >= 2

# %% [markdown]
# The course's network trains several times faster than the slides' network. Is it as good?
# And do the usual runtime tricks help? `bench/conv.py` answers both in one run with
# interleaved epochs: it trains the slides' network (run `slides`) in a plain loop (Adam,
# lr 1e-3: the slides name no optimizer, so it takes the Hasktorch tutorial's and the R torch
# book's) next to `ConvVAE` with several settings (the learning rate, `channels_last` memory
# format, bfloat16 matrix products, `torch.compile`) on the same images, and scores each by
# its test loss, the negative ELBO (lower is better). Its last stored result:

# %% tags=["nbval-ignore-output"]
bench = json.loads((settings.REPO_ROOT / "bench" / "results" / "conv.json").read_text())
print(f"{bench['config']['epochs']} epochs on {bench['config']['train_size']:,} images, "
      f"{bench['machine']['threads']} thread(s), {bench['machine']['date']}")
for name, run in bench["runs"].items():
    print(f"{name:<22}{run['images_per_s']:>7.0f} images/s {run['speedup']:>6.1f}x   "
          f"test -ELBO {run['final_test_loss']:6.1f}")
runs = bench["runs"]
assert runs["course"]["speedup"] >= 2
assert runs["course"]["final_test_loss"] <= runs["slides"]["final_test_loss"]
assert runs["course"]["final_test_loss"] < runs["course-lr1e-3"]["final_test_loss"]
assert max(runs["course-channels-last"]["speedup"], runs["course-compiled"]["speedup"]) \
    < 1.1 * runs["course"]["speedup"]
assert abs(runs["course-bf16"]["speedup"] / runs["course"]["speedup"] - 1) < 0.3
course, no_dropout, slow_lr = runs["course"], runs["slides-no-dropout"], runs["course-lr1e-3"]
print(f"course, next to slides-no-dropout: "
      f"{course['speedup'] / no_dropout['speedup']:.1f}x as fast, "
      f"test -ELBO {course['final_test_loss'] - no_dropout['final_test_loss']:+.1f} nats")
print(f"course-lr1e-3 (same network), next to course: "
      f"speed {slow_lr['speedup'] / course['speedup'] - 1:+.0%}, "
      f"test -ELBO {slow_lr['final_test_loss'] - course['final_test_loss']:+.1f} nats")
print(f"course over slides: {course['speedup']:.1f}x in the benchmark (whole epochs), "
      f"{ratio:.1f}x in section 6's timing (one batch)")
if device.type == "cpu" and not settings.fast_mode():   # same kind of timing, same kind of machine
    assert 0.5 < ratio / course["speedup"] < 2
# the trade-off: far faster than the slides' network without Dropout, a few nats worse
assert course["speedup"] > 3 * no_dropout["speedup"]
assert 0 < course["final_test_loss"] - no_dropout["final_test_loss"] < 10
# no trick is clearly faster than the plain setting
assert max(runs[k]["speedup"] for k in ("course-channels-last", "course-bf16", "course-compiled")) \
    < 1.15 * course["speedup"]

# %% [markdown]
# Four things to read off:
#
# * **Speed.** `ConvVAE` trains several times faster than the slides' network. Dropping
#   Dropout alone (`slides-no-dropout`) gains much less: the full-resolution layers are the
#   cost. The benchmark's speed-up and section 6's are printed side by side above; both time
#   on one thread with the networks interleaved. What still differs: section 6 repeats one
#   batch and trains every network with the course's `train_step` (fused Adam), while the
#   benchmark runs whole epochs of shuffled batches and trains the slides' network in their
#   plain loop (unfused Adam). The two ratios come out close (the check above asks for less
#   than a factor of 2 either way), not equal.
# * **Quality needs the learning rate.** With the sources' lr 1e-3 the small network is still
#   far behind after two epochs (`course-lr1e-3`, about 17 nats worse); with lr 3e-3
#   (`ConvVAE.lr`) it ends with a lower test loss than the slides' network with the
#   slides' Dropout.
# * **A trade-off, not a free lunch.** The slides' network *without* Dropout ends a few nats
#   better than `ConvVAE`, and `ConvVAE` trains about five times faster than it (the last
#   two printed lines). The course takes the speed: its canonical settings are `ConvVAE`
#   trained by `fit(..., lr=ConvVAE.lr)`.
# * **Runtime tricks.** `channels_last` and `torch.compile` do not speed up a network this
#   small on a CPU (compiling also costs time up front, and recompiles when the batch size
#   changes), and bfloat16 is not clearly faster either. `course-lr1e-3` runs the very same
#   network as `course`, yet its speed differs by several percent: differences of about 10 %
#   are run-to-run noise. The course keeps float32 and the default memory format.
#
# ## 7. Training on MNIST: latent 2 and latent 128 · deeper
#
# The R torch book trains its conv VAE twice, with 128 latent dimensions (good samples) and with 2
# (a map you can draw), and every 50 batches decodes 64 latent points to watch it learn. It
# draws fresh random points each time, so its snapshots do not show the same samples.
# A `SampleStrip` fixes the points instead: given to `train_or_load(..., strip=...)`, it
# records the images decoded from 8 fixed points $z\sim\mathcal N(0, I)$ before training
# and every `every` batches after (`SampleStrip(n=8, every=...)`), so that the rows compare.
# The strip is saved with the checkpoint, so a cached run shows its real strip.

# %%
EPOCHS, EVERY = settings.pick(2, 1), settings.pick(100, 4)
mnist_train = load("mnist", "train").subset(settings.pick(60000, 2000))
mnist_test = load("mnist", "test").subset(settings.pick(10000, 1000))


def train_conv(latent_dim: int, train, test) -> dict:
    """A ConvVAE trained (or loaded) with its strip of samples."""
    torch.manual_seed(0)
    model = ConvVAE(latent_dim).to(device)
    strip = SampleStrip(n=8, every=EVERY)
    history = train_or_load(model, train, test, strip=strip, epochs=EPOCHS, lr=ConvVAE.lr,
                            seed=0, progress=False)
    return {"model": model, "history": history, "strip": strip.images, "steps": strip.steps}


# %% tags=["nbval-ignore-output"]
mnist_runs = {L: train_conv(L, mnist_train, mnist_test) for L in (2, 128)}
untrained = evaluate(ConvVAE(2).to(device), mnist_test).total
for L, run in mnist_runs.items():
    print(f"latent {L:>3}: test loss (-ELBO, grey pixels) {run['history'].test_loss[-1]:6.1f} "
          f"(untrained: {untrained:.1f}), KL {run['history'].test_kl[-1]:.1f} nats")
    assert run["history"].test_loss[-1] < untrained - 100 and run["history"].test_kl[-1] > 0


# %%
def show_strips(runs: dict, title: str) -> None:
    """The strips of samples of several runs, side by side, one row per snapshot."""
    rows = len(runs[2]["steps"])
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 0.62 * rows + 1))
    for ax, (L, run) in zip(axes, runs.items()):
        show_images(run["strip"].flatten(0, 1), nrow=run["strip"].shape[1], ax=ax,
                    title=f"latent {L}", labels=[f"batch {s}" for s in run["steps"]])
    fig.suptitle(title)
    plt.tight_layout()
    plt.show()


show_strips(mnist_runs, "MNIST: samples from 8 fixed z while training")


# %% [markdown]
# Each row decodes the same eight points. Before training (batch 0) they are grey noise.
# Within the first hundred batches shapes appear (rough digits with latent 2, faint blobs with
# latent 128), and the rows below sharpen them. With 128 latent dimensions the samples end up
# sharper, with more varied strokes; with 2 they stay blurrier: two numbers cannot hold the
# details of a digit.
#
# With a 2-D latent space you can see the whole code map. Encode the test set (the means
# $\mu$), and decode an 8×8 grid of points over $[-8, 8]^2$, the R torch book's range:

# %%
def show_latent2(model, test, title: str) -> None:
    """Test-set codes of a latent-2 VAE next to the decoded 8x8 grid over [-8, 8]^2."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
    scatter_latent(encode_all(model, test), test.labels, ax=left, classes=test.classes,
                   title=f"{title}: test-set codes (mu)")
    left.set(xlim=(-8, 8), ylim=(-8, 8))
    with torch.no_grad():
        images = torch.sigmoid(model.decode(grid((-8, 8), (-8, 8), 8).to(device)))
    show_images(images, nrow=8, ax=right, title=f"{title}: decoded grid over [-8, 8]")
    plt.tight_layout()
    plt.show()


show_latent2(mnist_runs[2]["model"], mnist_test, "MNIST")

# %% [markdown]
# Left, the digits form clusters around the origin; right, the grid is laid out like the
# scatter (top row: largest $z_2$). The grid's outer rings lie far outside the prior, where
# no training code lives: the decoder extrapolates there. How much of the range does the data
# use?

# %% tags=["nbval-ignore-output"]
codes = encode_all(mnist_runs[2]["model"], mnist_test)                  # [N, 2]
inside = (codes.abs() <= 3).all(dim=1).float().mean().item()
print(f"share of test codes inside [-3, 3]^2: {inside:.1%}")
print(f"largest |mu| coordinate: {codes.abs().max():.1f}")
assert inside > 0.8

# %% [markdown]
# Almost every code lies inside $[-3, 3]^2$, so most of the R torch book's $[-8, 8]^2$ grid
# is extrapolation; $[-3, 3]$ (the Hasktorch tutorial's range) shows the learnt part in more
# detail.
#
# ## 8. A second dataset: Kuzushiji-MNIST, or what you have · deeper
#
# The R torch book's VAE chapter uses Kuzushiji-MNIST: 28×28 images of ten cursive Japanese
# characters. It can only be downloaded. `load_first` takes the first of a list of datasets
# that is available here: without Kuzushiji-MNIST this section uses Fashion-MNIST, and
# without that MNIST again, and one printed line per skipped dataset says so, with the
# command that gets it. The code is the same either way.

# %% tags=["nbval-ignore-output"]
second_train = load_first(["kmnist", "fashion-mnist", "mnist"], "train")
second_name = second_train.dataset
second_test = load(second_name, "test")
print(f"This section uses {second_name}.")
assert second_test.dataset == second_name and second_test.classes == second_train.classes
second_train = second_train.subset(settings.pick(60000, 2000))
second_test = second_test.subset(settings.pick(10000, 1000))

# %% tags=["nbval-ignore-output"]
second_runs = {L: train_conv(L, second_train, second_test) for L in (2, 128)}
for L, run in second_runs.items():
    print(f"{second_name}, latent {L:>3}: test loss (-ELBO, grey pixels) "
          f"{run['history'].test_loss[-1]:6.1f}")
    assert run["history"].test_kl[-1] > 0 and run["history"].test_loss[-1] < 500

# %%
show_strips(second_runs, f"{second_name}: samples from 8 fixed z while training")
show_latent2(second_runs[2]["model"], second_test, second_name)

# %% [markdown]
# The same pattern on the second dataset: noise, then blobs, then recognisable shapes in the
# strips; in the 2-D map the classes that look alike sit next to each other and overlap.
#
# ## 9. The conv VAE against the MLP VAE · deeper
#
# Notebook 05's MLP VAE is 784-400-20. Train it here on the same MNIST images for the same
# number of epochs (with its usual lr 1e-3), and a `ConvVAE` with the same latent size 20
# (with its lr 3e-3), then put everything in one table: size, training speed on this machine,
# and test ELBO (higher is better).

# %% tags=["nbval-ignore-output"]
table, models = {}, {"MLP VAE 784-400-20": (MLPVAE, 1e-3), "ConvVAE, latent 20": (ConvVAE, ConvVAE.lr)}
for name, (cls, lr) in models.items():
    torch.manual_seed(0)
    model = cls(20).to(device)
    history = train_or_load(model, mnist_train, mnist_test, epochs=EPOCHS, lr=lr, seed=0,
                            progress=False)
    table[name] = (model, history)
table.update({f"ConvVAE, latent {L}": (r["model"], r["history"]) for L, r in mnist_runs.items()})
x, speed, elbo = mnist_train.images[:128], {}, {}
print(f"{'model':<22}{'parameters':>12}{'images/s':>10}{'test ELBO':>11}")
for name, (model, history) in table.items():
    speed[name] = images_per_second(model, x, steps=settings.pick(8, 2))
    elbo[name] = -history.test_loss[-1]
    print(f"{name:<22}{parameter_count(model):>12,}{speed[name]:>10.0f}{elbo[name]:>11.1f}")
assert elbo["ConvVAE, latent 20"] > elbo["MLP VAE 784-400-20"] > elbo["ConvVAE, latent 2"]
assert speed["MLP VAE 784-400-20"] > speed["ConvVAE, latent 20"]
size = {name: parameter_count(model) for name, (model, _) in table.items()}
assert size["MLP VAE 784-400-20"] > size["ConvVAE, latent 20"]

# %% [markdown]
# Read the table row by row. The MLP VAE has more parameters than the conv VAE of the same
# latent size, yet trains faster per image: a matrix product on 784 numbers is cheap, a
# convolution touches every position. (Latent 128 costs the conv VAE many parameters: its
# two heads and the decoder's first layer connect 3136 features to 128 numbers.) At the same
# latent size and the same number of epochs, the conv VAE reaches the higher test ELBO.
# Convolutions, which need not learn each stroke at each position separately, may explain
# part of the gap, but this table cannot separate them from the learning rate: the two models
# were trained with different ones (1e-3 and 3e-3), and section 6 showed that the learning
# rate alone moves `ConvVAE` by about 17 nats. Latent 2 is far behind both: two numbers
# cannot describe a digit well.

# %% [markdown]
# ## 10. The Hasktorch tutorial's experiments, run · deeper
#
# The Hasktorch tutorial trains its conv VAE (`SimpleConvVAE`) on MNIST with Adam (lr 1e-3),
# batches of 128 and 20 epochs, and shows two results: the test-set codes for $L = 2$, and,
# for $L = 10$, every coordinate swept on its own for $\beta = 1$ and $\beta = 4$. It reads the
# $\beta = 4$ sweeps as disentangled: one coordinate sets how bold the digit is, another how
# wide; with $\beta = 1$ no coordinate has such a clear meaning.
#
# Run the three trainings with its settings, on the same 10 000 training images, and first
# look at the speed: it decides how many epochs fit.

# %% tags=["nbval-ignore-output"]
small_train = load("mnist", "train").subset(settings.pick(10000, 64))
small_test = load("mnist", "test").subset(settings.pick(2000, 128))


def train_hasktorch(latent_dim: int, beta: float) -> tuple:
    """SimpleConvVAE trained (or loaded) with the tutorial's Adam lr 1e-3 and batch 128."""
    torch.manual_seed(0)
    model = SimpleConvVAE(latent_dim).to(device)
    history = train_or_load(model, small_train, small_test, epochs=1, lr=1e-3,
                            objective=Objective(beta=beta), batch_size=128, seed=0,
                            progress=False)
    return model, history


hask = {(L, beta): train_hasktorch(L, beta) for L, beta in [(2, 1.0), (10, 1.0), (10, 4.0)]}

# %% tags=["nbval-ignore-output"]
for (L, beta), (model, history) in hask.items():
    per_epoch = 60000 / history.images_per_s[-1]        # seconds for one epoch of all of MNIST
    print(f"L = {L:>2}, beta = {beta:.0f}: test loss {history.test_loss[-1]:6.1f}, "
          f"KL {history.test_kl[-1]:5.1f} nats; {history.images_per_s[-1]:4.0f} images/s, "
          f"a full epoch {per_epoch / 60:4.1f} min, 20 epochs {20 * per_epoch / 3600:4.1f} h")
    assert history.test_kl[-1] > 0
    if not settings.fast_mode():   # far below an untrained model's ~540
        assert history.test_loss[-1] < 300

# %% [markdown]
# On a 2-core CPU this network trains at only a few hundred images per second (printed above,
# from the run that trained it): its decoder's transposed convs (1024 → 256 channels, then 6×6
# kernels) are expensive. Twenty epochs of three models would take hours (the printed
# estimate), so this notebook trains
# **one epoch on 10 000 images**, 1/120 of the tutorial's training. The models are rougher
# than the tutorial's: keep that in mind for every comparison below.
#
# The $L = 2$ map of the test set, and the decoded grid over $[-3, 3]^2$ (the tutorial's
# range, here in steps of 0.6):

# %%
hask2 = hask[(2, 1.0)][0]
codes = encode_all(hask2, small_test)
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8))
scatter_latent(codes, small_test.labels, ax=left, classes=small_test.classes,
               title="Hasktorch conv VAE, L = 2: test codes (mu)")
with torch.no_grad():
    images = torch.sigmoid(hask2.decode(grid((-3, 3), (-3, 3), 11).to(device)))
show_images(images, nrow=11, ax=right, title="decoded grid over [-3, 3]")
plt.tight_layout()
plt.show()

# %% [markdown]
# The classes form overlapping clouds around the origin, and the grid's digits change along
# with them. How well do the two numbers separate the classes? Classify each code of one half
# of the test set by its 10 nearest codes in the other half:

# %% tags=["nbval-ignore-output"]
half = len(codes) // 2
labels = small_test.labels
knn = (knn_classify(codes[half:], codes[:half], labels[:half]) == labels[half:]).float().mean()
print(f"10-nearest-neighbour accuracy of the 2-D codes: {knn:.1%} (chance: 10%)")
assert knn > (0.25 if not settings.fast_mode() else 0.0)   # 2.5x chance

# %% [markdown]
# Well above chance, but far from separated: after one short epoch the classes still overlap
# a lot (section 7's `ConvVAE`, trained longer with a higher learning rate, does better).
#
# ### The $\beta = 1$ and $\beta = 4$ sweeps, measured
#
# Start at $z = 0$ and move one coordinate at a time from −3 to 3, for all ten coordinates:

# %%
amounts = torch.linspace(-3, 3, 9)


def sweeps(model) -> torch.Tensor:
    """Images decoded along each coordinate from z = 0, [L, len(amounts), 1, 28, 28]."""
    L = model.latent_dim
    z = amounts.view(1, -1, 1) * torch.eye(L).unsqueeze(1)          # [L, A, L]
    with torch.no_grad():
        images = torch.sigmoid(model.decode(z.flatten(0, 1).to(device)))
    return images.cpu().view(L, len(amounts), 1, 28, 28)


swept = {beta: sweeps(hask[(10, beta)][0]) for beta in (1.0, 4.0)}

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 6.4))
for ax, (beta, images) in zip(axes, swept.items()):
    show_images(images.flatten(0, 1), nrow=len(amounts), ax=ax, title=f"beta = {beta:.0f}",
                labels=[f"$z_{{{i + 1}}}$" for i in range(len(images))])
fig.suptitle("L = 10: each row moves one coordinate from -3 to 3, the others stay 0")
plt.tight_layout()
plt.show()


# %% [markdown]
# Read each row for one property that changes while the digit stays the same. By eye this is
# hard to judge, and easy to fool yourself with. To test the tutorial's reading, measure two things along each row: the **ink** (sum of the
# pixel values: boldness) and the **width** of the digit's bounding box (columns with a pixel
# above 0.5), and report how much each changes from one end of the row to the other.

# %%
def ink(images: torch.Tensor) -> torch.Tensor:
    """Total pixel value of each image, [N]."""
    return images.flatten(1).sum(1)


def width(images: torch.Tensor) -> torch.Tensor:
    """Width in pixels of the columns that hold a pixel above 0.5, [N] (0 for a blank image)."""
    inked = (images.flatten(0, -3) > 0.5).any(dim=-2)                # [N, 28] columns
    cols = torch.arange(inked.shape[-1])
    first = torch.where(inked, cols, inked.shape[-1]).min(dim=-1).values
    last = torch.where(inked, cols, -1).max(dim=-1).values
    return (last - first + 1).clamp(min=0)


# %%
def spread(values: torch.Tensor) -> torch.Tensor:
    """Largest minus smallest value along each row, [L]."""
    return (values.max(dim=1).values - values.min(dim=1).values).float()


# %% tags=["nbval-ignore-output"]
x_test = small_test.images
effects = {}
for beta, images in swept.items():
    mu, logvar = hask[(10, beta)][0].encode(x_test)
    kl = (0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).mean(0).detach()   # per coordinate
    flat = images.flatten(0, 1)
    effects[beta] = {"kl": kl.cpu(), "ink": spread(ink(flat).view(len(images), -1)),
                     "width": spread(width(flat).view(len(images), -1))}
    print(f"beta = {beta:.0f}   coordinate:  " + " ".join(f"{f'z{i + 1}':>5}" for i in range(10)))
    for key, unit in (("kl", "nats"), ("ink", "pixels"), ("width", "columns")):
        print(f"  {key + ' (' + unit + ')':<22}" + " ".join(f"{v:5.1f}" for v in effects[beta][key]))


# %% [markdown]
# The tutorial's reading predicts, for $\beta = 4$, one coordinate that changes the ink a lot
# and the width little (boldness) and another one the other way round (width). Test exactly
# that on the measurements: call a coordinate *specific* if its effect on the other quantity
# is under half of the largest one.

# %%
def reading(e: dict) -> tuple[int, int, bool]:
    """Boldest coordinate, widest coordinate, and whether each is specific (see the text)."""
    bold, wide = int(e["ink"].argmax()), int(e["width"].argmax())
    specific = (bold != wide and e["width"][bold] < 0.5 * e["width"].max()
                and e["ink"][wide] < 0.5 * e["ink"].max())
    return bold, wide, bool(specific)


# %% tags=["nbval-ignore-output"]
for beta, e in effects.items():
    bold, wide, specific = reading(e)
    print(f"beta = {beta:.0f}: most ink change z{bold + 1} ({e['ink'][bold]:.0f} pixels, width "
          f"{e['width'][bold]:.0f} columns), most width change z{wide + 1} ({e['width'][wide]:.0f} "
          f"columns, ink {e['ink'][wide]:.0f}); largest ink change "
          f"{e['ink'].max() / e['ink'].median():.1f}x the median; specific: {specific}")
print("one coordinate for boldness and another for width at beta = 4:", reading(effects[4.0])[2])
total_kl = {beta: e["kl"].sum().item() for beta, e in effects.items()}
print("KL summed over the ten coordinates: " + ", ".join(
    f"beta = {beta:.0f}: {kl:.1f} nats" for beta, kl in total_kl.items()))
assert total_kl[4.0] < total_kl[1.0]

# %% [markdown]
# **Not tested at this budget.** The line above answers the question for this one training
# run, and a run this short is chaotic: another seed, or another machine whose rounding sends
# training down another path, can give the other answer, and runs of this very code have
# given both. An outcome that flips with the run says nothing about the network, so this
# notebook asserts neither. What holds in every run is the budget's mark on the codes: after
# 1/120 of the tutorial's training the $\beta = 4$ encoder puts less information into its ten
# coordinates than the $\beta = 1$ one (the summed KL above, asserted). Whether 20 epochs
# separate boldness from width, as the tutorial reads them, is for you to test when you can
# afford them (a GPU trains all three models in minutes): run the measurement above for two or
# three training runs (`COURSE_SEED_OFFSET`, see notebook 00) and see whether the answer stays.

# %% [markdown]
# ## 11. The R torch book's experiment, run · deeper
#
# The R torch book trains its BatchNorm conv VAE (`BatchNormConvVAE`) on Kuzushiji-MNIST with
# latent sizes 128 and 2, for 3 epochs, Adam lr 1e-3, batches of 128, and decodes 64 random
# points every 50 batches to watch it learn. Here it runs on section 8's dataset, with those
# settings and a `SampleStrip(n=64)`, on 8 000 training images (this network trains at a few
# hundred images per second here, so three epochs of all 60 000 would take several minutes
# per model).

# %%
bn_train = second_train.subset(settings.pick(8000, 64))
bn_test = second_test.subset(settings.pick(2000, 128))


def train_batchnorm(latent_dim: int) -> dict:
    """BatchNormConvVAE trained (or loaded) with the book's settings and a 64-sample strip."""
    torch.manual_seed(0)
    model = BatchNormConvVAE(latent_dim).to(device)
    strip = SampleStrip(n=64, every=settings.pick(50, 2))
    history = train_or_load(model, bn_train, bn_test, strip=strip, epochs=3, lr=1e-3,
                            batch_size=128, seed=0, progress=False)
    return {"model": model, "history": history, "strip": strip.images, "steps": strip.steps}


# %% tags=["nbval-ignore-output"]
bn_runs = {L: train_batchnorm(L) for L in (2, 128)}
for L, run in bn_runs.items():
    h = run["history"]
    print(f"{second_name}, latent {L:>3}: test loss {h.test_loss[-1]:6.1f}, KL {h.test_kl[-1]:5.1f} "
          f"nats, {sum(len(bn_train) / s for s in h.images_per_s):4.0f} s for 3 epochs")
    assert h.test_kl[-1] > 0
    if not settings.fast_mode():   # far below an untrained model's ~540
        assert h.test_loss[-1] < 300

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 5.6))
for ax, (L, run) in zip(axes, bn_runs.items()):
    show_images(run["strip"][-1], nrow=8, ax=ax, title=f"latent {L}: 64 samples, batch {run['steps'][-1]}")
plt.tight_layout()
plt.show()
show_strips({L: {**run, "strip": run["strip"][:, :12]} for L, run in bn_runs.items()},
            f"{second_name}: the first 12 of the 64 samples at each snapshot")

# %% [markdown]
# The top figure shows the last snapshot's 64 samples, as the book shows them; the strips
# below follow twelve of them from a uniform grey (batch 0) to shapes of the dataset's
# classes within 50 batches. After fewer than 200 batches both latent sizes still give blurry
# samples without fine detail. The book's 2-D map of the test set, with its 8×8 grid over
# $[-8, 8]^2$:

# %%
show_latent2(bn_runs[2]["model"], bn_test, f"{second_name} (BatchNorm VAE)")

# %% [markdown]
# Similar-looking classes lie next to each other, as with `ConvVAE` in section 8.
#
# ### Pitfall: sampling with BatchNorm in training mode
#
# > **Pitfall.** The R torch book draws its samples while the model is still in training
# > mode. In training mode BatchNorm normalises every layer with the mean and variance *of
# > the current batch*, so a sample depends on the other points decoded with it, and each call
# > also moves the running statistics that evaluation relies on a step toward that batch's
# > (by the momentum, 10 % in PyTorch). Call `model.eval()`
# > first (`VAE.sample` and `SampleStrip` do it for you, with `eval_mode`).
#
# Decode the same point $z_0$ twice, once next to 63 random points and once next to 63 others,
# in each mode, on copies of the trained latent-128 model:

# %%
bn = bn_runs[128]["model"]
g = torch.Generator().manual_seed(1)
z = torch.randn(64, 128, generator=g).to(device)
z_other = torch.cat([z[:1], torch.randn(63, 128, generator=g).to(device)])   # same z_0


def decode_copy(z: torch.Tensor, training: bool) -> tuple[torch.Tensor, nn.Module]:
    """Images decoded by a copy of `bn` in training or eval mode, and that copy."""
    copy_ = BatchNormConvVAE(128).to(device)
    copy_.load_state_dict(bn.state_dict())
    with torch.no_grad():
        return torch.sigmoid(copy_.train(training).decode(z)), copy_


# %%
(train_a, used), (train_b, _) = decode_copy(z, True), decode_copy(z_other, True)
(eval_a, _), (eval_b, _) = decode_copy(z, False), decode_copy(z_other, False)

# %% tags=["nbval-ignore-output"]
mean_diff = lambda a, b: (a - b).abs().mean().item()
stats = lambda m: torch.cat([b.running_mean for b in m.modules() if isinstance(b, nn.BatchNorm2d)])
print(f"z_0 decoded next to other points, training mode: pixels differ by {mean_diff(train_a[0], train_b[0]):.4f} on average")
print(f"z_0 decoded next to other points, eval mode:     pixels differ by {mean_diff(eval_a[0], eval_b[0]):.4f}")
print(f"same 64 points, training mode against eval mode: pixels differ by {mean_diff(train_a, eval_a):.4f}")
print(f"running means moved by one training-mode call:   {mean_diff(stats(used), stats(bn)):.4f}")
assert torch.allclose(eval_a[0], eval_b[0], atol=1e-5) and mean_diff(train_a[0], train_b[0]) > 1e-3
assert not torch.equal(stats(used), stats(bn))
before = stats(bn).clone()
bn.train()
bn.sample(64)                               # the package's sampler: eval mode inside, mode kept
kept_mode, kept_stats = bn.training, torch.equal(stats(bn), before)
bn.eval()
assert kept_mode and kept_stats

# %%
show_images(torch.cat([eval_a[:12], train_a[:12]]).cpu(), nrow=12,
            labels=["eval mode", "training mode"], title="the same 12 points z, decoded two ways")
plt.show()

# %% [markdown]
# In eval mode $z_0$ gives the same image whatever it is decoded with; in training mode it
# does not, and the whole batch is decoded differently from eval mode (by eye the difference is
# small, a few hundredths per pixel, but no sample escapes it). One sampling call in training mode also moved the running means, so
# even a later `eval()` would no longer give the trained model. `VAE.sample` switches to eval
# mode inside and restores the mode afterwards: the model stays in training mode and its
# statistics are untouched.

# %% [markdown]
# ## 12. The slides' experiment, run · deeper
#
# The slides train their network with 2 latent dimensions, then show reconstructions, the
# latent map and a morph between two encodings. Here is what this run keeps and what it
# repairs:
#
# * **Kept:** the layers (`BADConvVAE`: BAD blocks with Dropout 0.5, channels 1-32-64-64-64),
#   latent size 2, batches of 32.
# * **Repaired:** no BAD block after the output layer, which returns logits (section 3); the
#   Bernoulli NLL instead of RMSE (section 4); the KL in closed form, per image and summed over
#   the latent coordinates (the slides' code *adds* $\log\sigma^2 + 1$ where the formula
#   subtracts it, and sums over the whole batch next to a per-pixel mean); a fresh
#   $\varepsilon$ for every image (the slides draw one for the whole batch).
# * **Chosen here, not in the slides:** Adam with lr 1e-3 (the slides show no optimizer) and
#   one epoch on section 10's 10 000 images (they do not say how many epochs).

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
bad = BADConvVAE(latent_dim=2).to(device)                 # Dropout 0.5, as in the slides
bad_history = train_or_load(bad, small_train, small_test, epochs=1, lr=1e-3, batch_size=32,
                            seed=0, progress=False)
bad.eval()                                                # Dropout off, BatchNorm's averages
print(f"slides' network, L = 2: test loss {bad_history.test_loss[-1]:6.1f}, "
      f"KL {bad_history.test_kl[-1]:4.1f} nats, {len(small_train) / bad_history.images_per_s[-1]:.0f} s")
assert bad_history.test_kl[-1] > 0
if not settings.fast_mode():
    assert bad_history.test_loss[-1] < 300

# %%
x = small_test.images[:12]
show_pairs(x, bad.reconstruct(x).detach(), title="the slides' network (repaired): reconstructions")
plt.show()
bad_codes = encode_all(bad, small_test)
scatter_latent(bad_codes, small_test.labels, title="the slides' network: test codes (mu), L = 2")
plt.show()

# %% [markdown]
# Two numbers per image give blurry reconstructions that keep the rough shape (a 1 stays a
# stroke, a 0 a ring) but often change the digit. The map has the same overlapping clouds as
# section 10's; the same nearest-neighbour test puts a number on it:

# %% tags=["nbval-ignore-output"]
knn_bad = (knn_classify(bad_codes[half:], bad_codes[:half], labels[:half]) == labels[half:]).float().mean()
print(f"10-nearest-neighbour accuracy of the 2-D codes: {knn_bad:.1%} (Hasktorch network: {knn:.1%})")
assert knn_bad > (0.25 if not settings.fast_mode() else 0.0)   # 2.5x chance

# %% [markdown]
# **Morphing.** The slides encode two images, walk in a straight line from one code to the
# other, and decode each step. With the means $\mu$ as the codes and `lerp` (a straight line
# between two codes; notebook 08 does more with it):

# %%
first = lambda c: int((small_test.labels == c).nonzero()[0])
x_u, x_v = small_test.images[[first(1)]], small_test.images[[first(0)]]
z_u, z_v = bad.code(x_u)[0], bad.code(x_v)[0]
with torch.no_grad():
    frames = torch.sigmoid(bad.decode(lerp(z_u, z_v, torch.linspace(0, 1, 10))))
show_images(torch.cat([x_u, frames, x_v]).cpu(), nrow=12,
            title="from a test 1 (left) to a test 0 (right): 10 decoded steps in between")
plt.show()

# %% tags=["nbval-ignore-output"]
distance = lambda a, b: (a - b).pow(2).flatten(1).sum(1)          # per frame
to_u, to_v = distance(frames, x_u), distance(frames, x_v)
print("squared distance to the 1:", " ".join(f"{d:5.1f}" for d in to_u))
print("squared distance to the 0:", " ".join(f"{d:5.1f}" for d in to_v))
t = torch.linspace(0, 1, 10).view(-1, 1, 1, 1)
cross_fade = (1 - t) * frames[:1] + t * frames[-1:]                  # the pixels, blended
off_fade = distance(frames, cross_fade) / distance(frames[:1], frames[-1:])   # [10]
print("squared distance to the cross-fade, as a fraction of the ends' distance:",
      " ".join(f"{d:4.2f}" for d in off_fade))
if not settings.fast_mode():
    assert (to_u.diff() > 0).all() and (to_v.diff() < 0).all()
    assert off_fade.max() > 0.25 / 4        # a quarter of the halfway blend's distance to an end

# %% [markdown]
# Each frame is further from the 1 and closer to the 0 than the one before. The morph ends in
# a blurry round blob rather than the 0 itself: two numbers per image and one short epoch give
# a vague decoder (compare the reconstructions above). Are the steps shapes the decoder draws,
# or a cross-fade that shows a faint 1 and a faint 0 at once? The last line measures it: the
# squared distance of each frame to the pixel blend $(1 - t)\,\mathrm{dec}(z_u) +
# t\,\mathrm{dec}(z_v)$ at the same $t$, as a fraction of the squared distance between the two
# ends. A cross-fade would give 0 everywhere; the middle frames are off it by more than a
# quarter of what the halfway blend is from either end ($\tfrac14$). So the decoder redraws
# the shape part of the way, and blends the rest.
#
# ### Batches without a `DataLoader`
#
# The slides feed their network through a custom `Dataset` and a `DataLoader`, which builds
# each batch image by image in Python. The course instead keeps a whole dataset in one tensor
# (MNIST's 60 000 images are 188 MB as float32) and cuts each batch out of it with one
# indexing operation on a shuffled order (`companion.data.Batches`). For images that fit in
# memory this is simpler and faster; `bench/pipeline.py` measured how much, training the
# same MLP VAE both ways:

# %% tags=["nbval-ignore-output"]
pipeline = json.loads((settings.REPO_ROOT / "bench" / "results" / "pipeline.json").read_text())
ours, loader = pipeline["pipelines"]["companion"], pipeline["pipelines"]["torchvision"]
print(f"batches alone:     {ours['data_only_images_per_s']:>10,.0f} against "
      f"{loader['data_only_images_per_s']:>8,.0f} images/s ({ours['data_only_speedup']:.0f}x)")
print(f"training included: {ours['images_per_s']:>10,.0f} against "
      f"{loader['images_per_s']:>8,.0f} images/s ({ours['speedup_over_torchvision']:.1f}x)")
print(f"test -ELBO after {pipeline['config']['epochs']} epochs: {ours['final_test_loss']:.1f} "
      f"against {loader['final_test_loss']:.1f}")
assert ours["speedup_over_torchvision"] > 1.5 and ours["data_only_speedup"] > 10
assert abs(ours["final_test_loss"] - loader["final_test_loss"]) < 1


# %% [markdown]
# Building batches by indexing is tens of times faster than the `DataLoader`; once the
# model's own work is included, the whole training still runs about twice as fast, and the
# model ends as good. A `DataLoader` earns its place when the data do not fit in memory or
# need per-image work (decoding files, random augmentation), ideally in worker processes.

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: a decoder without transposed convolutions
#
# Write `make_upsample_decoder(latent_dim)`: a decoder from $z$ `[N, L]` to logits
# `[N, 1, 28, 28]` that grows 7×7 maps to 28×28 the second way of section 5, with
# `nn.Upsample(scale_factor=2)` followed by ordinary `nn.Conv2d` layers (no
# `ConvTranspose2d`), ending in logits (no activation after the last conv).

# %% tags=["solution"]
def make_upsample_decoder(latent_dim: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(latent_dim, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
        nn.Upsample(scale_factor=2), nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),   # 7 -> 14
        nn.Upsample(scale_factor=2), nn.Conv2d(32, 1, 3, padding=1))               # 14 -> 28


# %%
checks.check_upsample_decoder(make_upsample_decoder)

# %% [markdown]
# ## Summary
#
# * Convolutions share a small kernel across the image: a few hundred weights where a dense
#   layer needs millions, and a shifted digit gives a shifted feature map.
# * Printing every layer's output shape makes a conv net readable; the sizes follow
#   $\lfloor(\text{in}+2p-k)/s\rfloor+1$ and, for transposed convs,
#   $(\text{in}-1)s-2p+k+\text{output\_padding}$.
# * The sources' conv VAEs need repairs: logits out of the decoder, nothing after the output
#   layer, a real likelihood instead of RMSE (which collapses the posterior), and no Dropout.
# * A transposed conv whose kernel is not a multiple of its stride paints a checkerboard;
#   upsample + conv avoids it at a higher cost; 4×4 kernels with stride 2 avoid it cheaply.
# * A lean `ConvVAE` (no full-resolution hidden layer, no BatchNorm, no Dropout, lr 3e-3)
#   trains several times faster than the slides' network on a CPU. It ends with a better test
#   ELBO than that network with Dropout and a few nats worse than it without Dropout: a trade of
#   a little quality for a lot of speed. With its own learning rate it also beat the MLP VAE
#   (lr 1e-3) at the same latent size.
# * The sources' own experiments run here on a CPU budget, stated with each: the Hasktorch
#   network's 2-D map and β sweeps (one epoch on 10 000 images instead of 20 epochs; its
#   boldness/width reading did not reproduce at that budget), the R torch book's BatchNorm VAE
#   (3 epochs on 8 000 images), whose samples must be drawn in eval mode, and the slides'
#   repaired network with its morph.
# * Batching by indexing one in-memory tensor beats a `DataLoader` when the data fit in memory.
#
# ## References
#
# * D. P. Kingma, M. Welling. *Auto-Encoding Variational Bayes.* 2013. arXiv:1312.6114.
# * A. Odena, V. Dumoulin, C. Olah. *Deconvolution and Checkerboard Artifacts.* Distill, 2016.
# * V. Dumoulin, F. Visin. *A guide to convolution arithmetic for deep learning.* 2016.
#   arXiv:1603.07285.
# * S. Ioffe, C. Szegedy. *Batch Normalization.* 2015. arXiv:1502.03167.
# * T. Clanuwat et al. *Deep Learning for Classical Japanese Literature* (Kuzushiji-MNIST).
#   2018. arXiv:1812.01718.
# * The conv VAE architectures come from the course's source documents: "10 Days of Grad",
#   day 9, by Bogdan Penkovsky (the three-conv VAE); "Deep Learning and Scientific
#   Computing with R torch" by Sigrid Keydana, ch. 16 (the BatchNorm conv VAE,
#   Kuzushiji-MNIST, latent 2 vs 128, samples every 50 batches, the 8×8 grid over [−8, 8]);
#   and the 2022 slides "Variational Autoencoder" (the BAD blocks, printing layer
#   shapes, transposed conv vs upsampling, and the RMSE loss).
