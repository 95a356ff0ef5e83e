"""Looking inside a model: parameter counts, the shape after every layer, training speed.

    parameter_count(model)                 trainable numbers
    summary(model, x)                      print each leaf layer's output shape
    layer_shapes(model, x, kinds)          the same as lines, encoder then decoder
    images_per_second(model, x)            full training steps (forward, backward, Adam) per second

This module sits after `training` in the flow of the package, because timing a model means
running its training step.
"""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch import nn

from companion import settings
from companion.models import VAE, eval_mode
from companion.training import Guard, make_optimizer, train_step


def parameter_count(model: nn.Module) -> int:
    """Number of trainable numbers in model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_outputs(model: nn.Module, run: Callable[[], object]) -> list[tuple[str, nn.Module, tuple]]:
    """(name, layer, output shape) of every leaf layer, in the order run() calls them."""
    rows, hooks = [], []
    for name, module in model.named_modules():
        if not list(module.children()):
            def hook(mod, inputs, out, name=name):
                out = out[0] if isinstance(out, tuple) else out
                rows.append((name or type(mod).__name__, mod, tuple(out.shape)))
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
    return rows


def summary(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Print and return the output shape of every leaf layer when model runs on x."""
    rows = [(name, shape) for name, _, shape in layer_outputs(model, lambda: model(x))]
    width = max(len(n) for n, _ in rows)
    for name, shape in rows:
        print(f"{name:<{width}}  {list(shape)}")
    print(f"{'parameters':<{width}}  {parameter_count(model):,}")
    return rows


def layer_shapes(model: nn.Module, x: torch.Tensor, kinds: tuple[type, ...] = (nn.Module,)
                 ) -> list[str]:
    """One line per leaf layer of the given kinds, encoder then decoder: type and output shape."""
    def code_then_decode():
        model.decode(model.code(x))

    return [f"{type(layer).__name__} {'x'.join(str(s) for s in shape[1:])}"
            for _, layer, shape in layer_outputs(model, code_then_decode)
            if layer is not model and isinstance(layer, kinds)]


def side_by_side(columns: dict[str, list[str]], width: int = 26) -> str:
    """Lay out several lists of lines as columns under their titles."""
    depth = max(len(lines) for lines in columns.values())
    padded = [[title, "-" * len(title)] + lines + [""] * (depth - len(lines))
              for title, lines in columns.items()]
    return "\n".join("".join(f"{cell:<{width}}" for cell in row).rstrip()
                     for row in zip(*padded))


def images_per_second(model: VAE, x: torch.Tensor, steps: int = 10, warmup: int = 2,
                      precision: str = "fp32") -> float:
    """Training speed of model on batch x: full steps (forward, backward, Adam) per second.

    The weights and the train/eval mode are put back afterwards: timing changes nothing.
    """
    state = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = make_optimizer(model)
    guard = Guard(optimizer, x.device)   # checked once at the end, as fit checks once an epoch
    with eval_mode(model):      # restores the caller's mode on the way out
        model.train()
        for i in range(warmup + steps):
            if i == warmup:
                settings.synchronize(x.device)   # the clock starts when the warm-up is done
                start = time.perf_counter()
            train_step(model, optimizer, x, precision=precision, guard=guard)
        settings.synchronize(x.device)
        seconds = time.perf_counter() - start
    model.load_state_dict(state)
    guard.check()
    return steps * len(x) / seconds
