"""M2, the semi-supervised VAE: a conditional VAE that also learns from images without a label.

    classify(x) -> logits [N, K]   the classifier q(y|x), an MLP 784 -> hidden -> K
    encode(x, y), decode(z, y)     q(z|x, y) and p(x|z, y), as in `ConditionalVAE`
    loss(x, y, objective)          labels y [N] (int64), UNLABELLED = -1 where there is none

The per-image loss, with -ELBO(x, y) = -log p(x|z, y) + beta KL(q(z|x, y) || N(0, I)):

    labelled x:    -ELBO(x, y) + alpha * (-log q(y|x))
    unlabelled x:  sum_y q(y|x) (-ELBO(x, y)) - H(q(y|x))      (the label enumerated)

and `total` is the mean over the batch of these terms. The prior term -log p(y) = log K of a
uniform p(y) is left out for every image alike (a constant, no gradient).

alpha weighs the classifier. Kingma et al. add alpha * E[-log q(y|x)] over the labelled data
to a *sum* of ELBO terms over all N images and use alpha = 0.1 * N. With per-image terms
averaged over batches drawn from the whole set, that weight becomes
`paper_alpha(N, N_labelled)` = 0.1 * N / N_labelled on each labelled image's cross-entropy
(50 for MNIST's 50 000 training images with 100 labels, the default).

The parts: `reconstruction` and `kl` are -log p(x|z, y) and the KL of z, averaged over the
batch, for an unlabelled image in expectation under q(y|x); so total = reconstruction +
beta * kl + the label terms (alpha times the cross-entropy, minus the entropy), which appear
in total only.

The noise: one eps [N, L] is drawn per batch (`torch.randn`, before anything else), and every
label an image is scored under uses that same eps: z = mu(x, y) + sigma(x, y) * eps. Every
image is scored under every label in one pass of N * K rows (no data-dependent shapes, so no
wait for an accelerator); a labelled image keeps its own label's column.

Reference: Kingma, Rezende, Mohamed & Welling 2014, "Semi-Supervised Learning with Deep
Generative Models" (NeurIPS; arXiv:1406.5298), the M2 model, eqs. 6-9.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from companion.arguments import check_counts
from companion.gaussians import kl_divergence
from companion.losses import LossParts, Objective, bernoulli_nll, label_nll
from companion.models.base import check_images
from companion.models.conditional import ConditionalVAE
from companion.models.mlp import mlp

UNLABELLED = -1   # the label of an image without one


def paper_alpha(n_images: int, n_labelled: int) -> float:
    """Kingma et al.'s alpha = 0.1 * N, as a weight on each labelled image's cross-entropy."""
    check_counts("paper_alpha", n_images=n_images, n_labelled=n_labelled)
    return 0.1 * n_images / n_labelled


class SemiSupervisedVAE(ConditionalVAE):
    """The ConditionalVAE with a classifier q(y|x) [784 -> hidden -> K]; labels -1 are missing."""
    refuses = ("free_bits", "tc_weight")   # beta (and its warm-up) weighs the KL of z

    def __init__(self, latent_dim: int = 8, hidden: int = 400, num_classes: int = 10,
                 alpha: float = 50.0):
        check_counts("SemiSupervisedVAE", latent_dim=latent_dim, hidden=hidden,
                     num_classes=num_classes)
        if (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                or not math.isfinite(alpha) or alpha < 0):
            raise ValueError(f"SemiSupervisedVAE(alpha={alpha!r}): alpha takes a finite number "
                             ">= 0, e.g. paper_alpha(n_images, n_labelled).")
        super().__init__(latent_dim, hidden, num_classes)
        self.alpha = float(alpha)
        self.classifier = mlp([784, hidden, num_classes])   # 784 -> hidden -> K logits

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The logits of q(y|x), [N, K]."""
        check_images(self, x)
        return self.classifier(x.flatten(1))

    def check_labels(self, y: torch.Tensor | None, n: int) -> None:
        """A clear ValueError unless y is an int64 tensor [n] of -1 (unlabelled) or 0..K-1."""
        if y is None:
            raise ValueError("SemiSupervisedVAE learns from labels: pass each batch's labels y, "
                             f"with {UNLABELLED} for an image without one "
                             f"(torch.full((N,), {UNLABELLED}) for a batch without labels).")
        # the range is checked on the CPU only: on an accelerator it would wait for the device
        if (not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.shape != (n,)
                or (n and y.device.type == "cpu"
                    and not UNLABELLED <= int(y.min()) <= int(y.max()) < self.num_classes)):
            got = (f"{y.dtype} {list(y.shape)} with values {y.min().item()}..{y.max().item()}"
                   if isinstance(y, torch.Tensor) and y.numel() else
                   f"{y.dtype} {list(y.shape)}" if isinstance(y, torch.Tensor)
                   else type(y).__name__)
            raise ValueError(
                f"SemiSupervisedVAE needs one label per image: an int64 tensor [{n}] of class "
                f"indices 0..{self.num_classes - 1}, or {UNLABELLED} for an unlabelled image; "
                f"got {got}.")

    def label_terms(self, x: torch.Tensor, eps: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-log p(x|z, y) and KL(q(z|x, y) || N(0, I)) of every image under every label, each
        [N, K], with z = mu + sigma * eps for the same eps [N, L] under every label."""
        n, k = len(x), self.num_classes
        xs = x.flatten(1).repeat(k, 1)                                     # [K N, 784]
        ys = torch.arange(k, device=x.device).repeat_interleave(n)         # [K N]: 0.., 1.., ..
        mu, logvar = (t.float() for t in self.encode(xs, ys))              # [K N, L]
        z = mu + torch.exp(0.5 * logvar) * eps.repeat(k, 1)                # [K N, L]
        logits = self.decode(z, ys).float()                                # [K N, 1, 28, 28]
        nll = bernoulli_nll(logits, xs.view_as(logits))
        kl = kl_divergence(mu, logvar)
        return nll.view(k, n).T, kl.view(k, n).T                           # [N, K] each

    def per_image_loss(self, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor,
                       objective: Objective = Objective()
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss of each image, its -log p(x|z, y) and its KL of z, each [N], for labels y
        [N] (-1: unlabelled) and the noise eps [N, L] (see the module docstring)."""
        self.check_objective(objective)
        self.check_labels(y, len(x))
        nll, kl = self.label_terms(x, eps)                                 # [N, K] each
        logits = self.classify(x).float()                                  # [N, K]
        q, log_q = F.softmax(logits, dim=1), F.log_softmax(logits, dim=1)
        labelled, known = y != UNLABELLED, y.clamp(min=0)                  # [N]
        weights = torch.where(labelled[:, None], F.one_hot(known, self.num_classes).float(), q)
        recon, kl = (weights * nll).sum(1), (weights * kl).sum(1)          # [N] each
        label = torch.where(labelled, self.alpha * label_nll(logits, known),
                            (q * log_q).sum(1))                            # alpha CE, or -H
        return recon + objective.beta * kl + label, recon, kl

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None,
             objective: Objective = Objective()) -> LossParts:
        """The M2 loss on a batch, batch means: LossParts(total, reconstruction, kl)."""
        eps = torch.randn(len(x), self.latent_dim, device=x.device)      # one eps per image
        return LossParts(*(t.mean() for t in self.per_image_loss(x, y, eps, objective)))
