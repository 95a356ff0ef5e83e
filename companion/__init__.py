"""Companion package of the course "Variational Autoencoders, from first principles".

Notebooks start with ``companion.setup(seed, datasets)``: it seeds every random number
generator and prints one line with the mode (fast/full), the device and the data sources.
``python -m companion doctor`` checks a machine the day before a workshop.
"""
from __future__ import annotations

__version__ = "0.1.0"


def setup(seed: int = 0, datasets: list[str] | tuple[str, ...] = ()) -> None:
    """Seed everything, stage the datasets, and print mode, device and data sources."""
    # imported here, not above, so that `python -m companion doctor` starts without torch
    import torch

    from companion import settings
    from companion.data import fetch

    settings.seed_everything(seed)
    parts = [f"mode={'fast' if settings.fast_mode() else 'full'}", f"device={settings.device()}",
             f"torch={torch.__version__}", f"seed={seed}"]
    parts += [f"{name} from {fetch(name, quiet=True)}" for name in datasets]
    print(" | ".join(parts))
