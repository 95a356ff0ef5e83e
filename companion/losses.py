"""Reconstruction terms, the KL divergence to the prior, the ELBO with beta, the VQ-VAE loss,
the total correlation of the codes (the penalty of beta-TCVAE), and the `Objective` that
weighs these terms for training.

Reductions, stated once: every per-example function **sums** over pixels (or latent
dimensions) and returns one number per example, shape [N]. `elbo_loss` then takes the
**mean over the batch**. Summing inside an example keeps the two ELBO terms on the same
scale -- both are log-densities of the whole image -- so beta = 1 means the real ELBO. A
mean over pixels would shrink the reconstruction term 784-fold against the KL and silently
change beta. The batch mean makes the learning rate independent of the batch size.

The KL term is `companion.gaussians.kl_divergence`, the closed form against N(0, I).

References: Higgins et al. 2017 for beta; Kingma et al. 2016 (arXiv:1606.04934) for free bits.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import NamedTuple

import torch
import torch.nn.functional as F

from companion.gaussians import gaussian_log_density, kl_divergence, kl_per_dimension


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for Bernoulli pixels, from logits; x must lie in [0, 1]. Shape [N]."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def squared_error(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum of squared errors between sigmoid(logits) and x, over the pixels. Shape [N].

    Often called the "MSE" loss; it is a sum, not a mean, so it sits on the scale of a
    log-density: a Gaussian decoder with sigma = 1/sqrt(2), up to a constant."""
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)


def gaussian_nll(logits: torch.Tensor, x: torch.Tensor, sigma: float = 1.0,
                 log_sigma: torch.Tensor | None = None) -> torch.Tensor:
    """-log N(x; sigmoid(logits), sigma^2 I), summed over pixels. Shape [N].

    sigma is fixed; a decoder that learns it passes log_sigma instead, a tensor that
    broadcasts against x (one number, or one per pixel). With a fixed sigma this is the
    squared error / (2 sigma^2) plus the constant (number of pixels) * log(sigma sqrt(2 pi)).
    """
    if log_sigma is None:
        if not sigma > 0:
            raise ValueError(f"sigma is a standard deviation: use a number > 0, not {sigma}")
        log_sigma = torch.tensor(math.log(sigma), device=x.device)
    logvar = (2 * log_sigma).expand_as(x)
    return -gaussian_log_density(x, torch.sigmoid(logits), logvar).flatten(1).sum(1)


def rmse(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Root mean squared error per image (the loss of the conv VAE in the VAE slides). Shape [N]."""
    return (torch.sigmoid(logits) - x).pow(2).flatten(1).mean(1).sqrt()


def label_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-log p(y|x) of a classifier (the cross-entropy), from class logits [N, K]. Shape [N]."""
    return F.cross_entropy(logits, labels, reduction="none")


RECONSTRUCTION = {"bernoulli": bernoulli_nll, "squared_error": squared_error,
                  "gaussian": gaussian_nll}


def check_likelihood(likelihood: str) -> None:
    """A clear ValueError for a likelihood that is not in RECONSTRUCTION."""
    if likelihood not in RECONSTRUCTION:
        raise ValueError(f"likelihood must be one of {list(RECONSTRUCTION)}, not {likelihood!r}")


class LossParts(NamedTuple):
    """Batch means: total = reconstruction + beta * kl (the negative ELBO when beta = 1).

    reconstruction is -log p(x|z) (for a classifier: -log p(y|x)); kl is KL(q(z|x) || p(z)),
    0 for a model without a prior. With free bits or a TC weight, total adds those terms."""
    total: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


@dataclass(frozen=True)
class Objective:
    """How much each term of the loss weighs: what `fit` asks a model to minimise.

    beta           weight of the KL term (Higgins et al. 2017); 1 is the ELBO
    free_bits      floor in nats on each latent dimension's KL (`free_bits_kl`)
    tc_weight      extra weight on the total correlation: beta-TCVAE (Chen et al. 2018)
    warmup_epochs  beta ramps linearly from 0 over this many epochs (KL warm-up)

    A model uses the settings it can honour and refuses the others (`Model.loss`).
    """
    beta: float = 1.0
    free_bits: float = 0.0
    tc_weight: float = 0.0
    warmup_epochs: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value < 0):
                raise ValueError(f"Objective({f.name}=...) takes a finite number >= 0, not "
                                 f"{value!r}.")
            object.__setattr__(self, f.name, float(value))   # beta=4 and beta=4.0 are one key

    def changed(self) -> dict:
        """The settings that differ from the plain ELBO (beta 1, nothing else)."""
        return {k: v for k, v in asdict(self).items() if v != getattr(Objective, k)}

    def at(self, epochs_done: float) -> "Objective":
        """This objective after epochs_done epochs of training: warm-up scales beta."""
        if self.warmup_epochs == 0:
            return self
        return replace(self, beta=self.beta * min(1.0, epochs_done / self.warmup_epochs))

    def refuse(self, model_name: str, unused: tuple[str, ...]) -> None:
        """Raise a ValueError if any of the settings in unused differs from its default."""
        asked = {k: v for k, v in self.changed().items() if k in unused}
        if asked:
            settings = ", ".join(f"{k}={v}" for k, v in asked.items())
            raise ValueError(f"{model_name} cannot honour {settings}: its loss has no such term. "
                             "Train it with the plain Objective() (the default).")


def free_bits_kl(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL term with free bits: sum over dimensions j of max(free_bits, KL_j), a number.

    KL_j is dimension j's KL averaged over the batch (a batch quantity, unlike the per-example
    terms above). Below the floor a dimension pays the floor, a constant, so the KL term gives
    it no gradient (Kingma et al. 2016, arXiv:1606.04934).
    """
    return kl_per_dimension(mu, logvar).mean(0).clamp(min=free_bits).sum()


def elbo(nll: torch.Tensor, z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
         objective: Objective = Objective()) -> LossParts:
    """The loss of a VAE from -log p(x|z) [N] at z ~ q(z|x) [N, L]; batch means.

    total = reconstruction + beta * KL, with the KL floored per dimension when free_bits > 0
    (the kl part stays the true KL, so reconstruction + kl is still the negative ELBO), plus
    tc_weight times the total correlation of the batch's codes z.
    """
    recon, kl = nll.mean(), kl_divergence(mu, logvar).mean()
    penalty = free_bits_kl(mu, logvar, objective.free_bits) if objective.free_bits > 0 else kl
    total = recon + objective.beta * penalty
    if objective.tc_weight:
        total = total + objective.tc_weight * total_correlation(z, mu, logvar).mean()
    return LossParts(total, recon, kl)


def elbo_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              beta: float = 1.0, likelihood: str = "bernoulli") -> LossParts:
    """The beta-weighted negative ELBO and its two parts from a decoder's logits, batch means."""
    check_likelihood(likelihood)
    recon = RECONSTRUCTION[likelihood](logits, x).mean()
    kl = kl_divergence(mu, logvar).mean()
    return LossParts(recon + beta * kl, recon, kl)


def vq_loss(logits: torch.Tensor, x: torch.Tensor, z_e: torch.Tensor, z_q: torch.Tensor,
            commitment: float = 0.25, likelihood: str = "bernoulli",
            codes: int | None = None) -> LossParts:
    """The VQ-VAE loss: reconstruction + codebook + commitment * commit, batch means.

    codebook = |sg[z_e] - z_q|^2 pulls the chosen code vectors toward the encoder's outputs,
    commit = |z_e - sg[z_q]|^2 keeps the encoder near its codes (sg: stop the gradient,
    `.detach()`), each summed over an example's code vectors; `commitment` is the paper's
    beta. The `kl` part is the KL of q(z|x) (one code, certain) to the uniform prior over
    `codes` codes: log K per position, a constant that has no gradient (0 if codes is None).
    Reference: van den Oord et al. 2017 (arXiv:1711.00937), eq. 3.
    """
    check_likelihood(likelihood)
    recon = RECONSTRUCTION[likelihood](logits, x).mean()
    codebook = (z_e.detach() - z_q).pow(2).flatten(1).sum(1).mean()
    commit = (z_e - z_q.detach()).pow(2).flatten(1).sum(1).mean()
    positions = z_e[0, 0].numel()
    kl = torch.tensor(positions * math.log(codes) if codes else 0.0, device=x.device)
    return LossParts(recon + codebook + commitment * commit, recon, kl)


def total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Minibatch estimate of the total correlation of q(z), one term per example. Shape [N].

    TC = KL(q(z) || prod_d q(z_d)), with q(z) the aggregate posterior. Each z_i ~ q(z|x_i);
    the batch's posteriors stand in for the whole dataset's:
    log q(z_i) ~ log (1/M) sum_j q(z_i|x_j), and the same per coordinate d for log q(z_id).
    The mean over the batch is the estimate; it needs batches of many examples. Chen et al.'s
    minibatch-weighted sampling (arXiv:1802.04942) subtracts log(N M) instead of log M (N the
    dataset size): that shifts TC by a constant and leaves its gradient unchanged.
    """
    log_q = gaussian_log_density(z[:, None], mu[None], logvar[None])   # [M, M, L]: log q(z_id | x_j)
    log_m = math.log(len(z))
    joint = log_q.sum(2).logsumexp(1) - log_m                          # [M] log q(z_i)
    product = (log_q.logsumexp(1) - log_m).sum(1)                      # [M] sum_d log q(z_id)
    return joint - product
