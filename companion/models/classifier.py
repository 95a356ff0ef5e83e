"""A small convolutional classifier: the judge that scores generated images.

Two 3x3 convs with max-pooling (28 -> 14 -> 7), a hidden layer of `features` units, and a
linear layer to one logit per class. `features(x)` returns that hidden layer, the
"penultimate features" on which `companion.evaluation.samples` computes a Frechet distance.

It trains with the same `fit` and `train_or_load` as the VAEs: its `loss` is the
cross-entropy -log p(y|x) (its History's `reconstruction` column holds that number and `kl`
stays 0: there is no latent variable). It refuses any `Objective` setting but the default.

Reference: LeCun et al. 1998 for convolutional digit classifiers.
"""
from __future__ import annotations

import torch
from torch import nn

from companion.arguments import check_counts
from companion.losses import LossParts, Objective, label_nll
from companion.models.base import Model, check_images


class DigitClassifier(Model):
    """Conv 1 -> c1 -> c2 (3x3, ReLU, max-pool 2), then c2*7*7 -> features -> classes."""
    likelihood = "categorical"   # it predicts labels, not pixels

    def __init__(self, num_classes: int = 10, channels: tuple[int, int] = (16, 32),
                 features: int = 128):
        super().__init__()
        check_counts("DigitClassifier", num_classes=num_classes, channels=channels,
                    features=features)
        c1, c2 = channels
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 28 -> 14
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 14 -> 7
            nn.Flatten(),                                                  # c2*49
            nn.Linear(c2 * 7 * 7, features), nn.ReLU())                    # -> features
        self.head = nn.Linear(features, num_classes)                       # -> logits

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer for each image, [N, features]."""
        check_images(self, x)
        return self.body(x.view(-1, 1, 28, 28))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, [N, num_classes]."""
        return self.head(self.features(x))

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None,
             objective: Objective = Objective()) -> LossParts:
        self.check_objective(objective)
        if y is None:
            raise ValueError("DigitClassifier learns from labels: pass each batch's labels y "
                             "(fit and evaluate do so for every (x, y) batch).")
        nll = label_nll(self(x).float(), y).mean()
        return LossParts(nll, nll, torch.zeros((), device=x.device))
