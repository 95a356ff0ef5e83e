"""Where the gap between log p(x) and the ELBO goes (Cremer, Li & Duvenaud 2018).

    log p(x) - ELBO(q_encoder)  =  [log p(x) - ELBO(q*)]  +  [ELBO(q*) - ELBO(q_encoder)]
                                    approximation gap         amortisation gap

q* is the best posterior of the family for one image (here a diagonal Gaussian), found by
optimising its mean and log-variance directly, image by image, from the encoder's output
(per-example stochastic variational inference). The family gives up the first gap; the encoder,
one network that must serve every image, gives up the second.

    mu, logvar = refine(model, x)                          # q* for each image of x
    log_weights(model, x, k, q=(mu, logvar))               # then score it like the encoder's q
"""
from __future__ import annotations

import torch

from companion.arguments import check_counts
from companion.evaluation.likelihood import diagonal_log_weights
from companion.gaussians import draw_eps
from companion.models import eval_mode


def elbo_per_image(model, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                   eps: torch.Tensor) -> torch.Tensor:
    """The ELBO of each image x [N, ...] under q = N(mu, diag(exp(logvar))) [N, L], averaged
    over the standard-normal draws eps [S, N, L]: the mean log importance weight, [N]."""
    return diagonal_log_weights(model, x, mu, logvar, eps).mean(0)


def refine(model, x: torch.Tensor, steps: int = 200, lr: float = 0.01, samples: int = 16,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The best diagonal Gaussian q(z|x) of each image [N, L] (mu, logvar): Adam on the
    encoder's (mu, logvar), maximising the ELBO on `samples` draws fixed for all steps. Each
    image keeps its best step, so on those draws it never scores below the encoder's q. The
    model's weights are left as they are."""
    check_counts("refine", steps=steps, samples=samples)
    if hasattr(model, "sample_posterior"):
        raise ValueError(f"refine optimises a diagonal Gaussian q(z|x); {type(model).__name__}'s "
                         "posterior is not one (a flow, or two stochastic layers).")
    flags = [p.requires_grad for p in model.parameters()]
    with eval_mode(model), torch.enable_grad():
        try:
            model.requires_grad_(False)                   # the model is fixed: only q moves
            start = [t.detach().float() for t in model.encode(x)]
            eps = draw_eps((samples, *start[0].shape), start[0], generator)  # [S, N, L]
            mu, logvar = (t.clone().requires_grad_() for t in start)
            best = [t.clone() for t in start]
            best_elbo = torch.full((len(x),), -torch.inf, device=x.device)
            optimizer = torch.optim.Adam([mu, logvar], lr=lr)
            for _ in range(steps + 1):                    # the last pass only scores
                elbo = elbo_per_image(model, x, mu, logvar, eps)
                better = elbo.detach() > best_elbo
                best_elbo = torch.where(better, elbo.detach(), best_elbo)
                for kept, now in zip(best, (mu, logvar)):
                    kept[better] = now.detach()[better]
                optimizer.zero_grad()
                (-elbo.sum()).backward()
                optimizer.step()
        finally:
            for p, flag in zip(model.parameters(), flags):
                p.requires_grad_(flag)
    return best[0], best[1]
