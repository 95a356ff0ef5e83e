"""An interactive explorer of a VAE's latent space, built from ipywidgets.

Three panels, each a slider (or several) and the picture it decodes:

    LatentSliders(model)                         one slider per latent dimension
    InterpolationSlider(model, x0, x1)           a point on the path between two encodings
    AttributeSlider(model, x, direction, name)   an image moved along an attribute direction
    explorer(model, x0, x1, direction, name)     the three panels in tabs

Sliders use ``continuous_update=False``, so the model decodes once when you let go, not
for every pixel the slider moves. Pictures are PNG bytes drawn with PIL into a
``widgets.Image``: no matplotlib figure is opened, so nothing leaks into the notebook's
plots. Each panel's `update()` is what a slider calls, which is how the tests drive them
without a browser.
"""
from __future__ import annotations

import io
from typing import Callable

import ipywidgets as widgets
import torch
from PIL import Image as PILImage

from companion.latent_arithmetic import lerp, slerp, traverse
from companion.models import eval_mode
from companion.plots import image_grid


def to_png(images: torch.Tensor, nrow: int | None = None, scale: int = 4) -> bytes:
    """PNG bytes of images [N, 1, H, W] in [0, 1], tiled in one row (dark ink on white)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"to_png expects images shaped [N, 1, H, W], got {list(images.shape)}")
    grid = image_grid(images, nrow=nrow or len(images))                  # [rows*H, cols*W]
    pixels = ((1 - grid) * 255).round().to(torch.uint8).numpy()          # ink dark, like gray_r
    picture = PILImage.fromarray(pixels)                        # uint8 [H, W]: greyscale
    picture = picture.resize((picture.width * scale, picture.height * scale), PILImage.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@torch.no_grad()
def decode_images(model, z: torch.Tensor) -> torch.Tensor:
    """Pixel means decoded from codes z [N, L] -> [N, 1, 28, 28], in eval mode, on the CPU."""
    device = next(model.parameters()).device
    with eval_mode(model):
        return torch.sigmoid(model.decode(z.to(device))).cpu()


@torch.no_grad()
def encode_mean(model, x: torch.Tensor) -> torch.Tensor:
    """The code of one image [1, 28, 28] (posterior mean for a VAE), on the CPU; shape [L]."""
    device = next(model.parameters()).device
    with eval_mode(model):
        return model.code(x.reshape(1, 1, 28, 28).to(device))[0].cpu()


def _slider(description: str, low: float, high: float, value: float = 0.0,
            step: float = 0.05) -> widgets.FloatSlider:
    return widgets.FloatSlider(value=value, min=low, max=high, step=step,
                               description=description, continuous_update=False,
                               readout_format=".2f")


class Panel:
    """A picture (`image`), a caption (`label`) and the controls that change them (`widget`)."""

    def __init__(self, controls: list[widgets.Widget]):
        # flex-start: in the panel's column a picture would otherwise be stretched to full width
        self.image = widgets.Image(format="png", layout=widgets.Layout(align_self="flex-start"))
        self.label = widgets.Label()
        self.widget = widgets.VBox([*controls, self.image, self.label])
        for control in controls:
            control.observe(lambda change: self.update(), names="value")

    def show(self, images: torch.Tensor, text: str) -> None:
        self.image.value = to_png(images)
        self.label.value = text

    def update(self) -> None:
        raise NotImplementedError


class LatentSliders(Panel):
    """One slider per latent dimension; shows the decoded image of the chosen code."""

    def __init__(self, model, z: torch.Tensor | None = None, limit: float = 3.0):
        self.model = model
        start = torch.zeros(model.latent_dim) if z is None else z.detach().cpu()
        start = start.clamp(-limit, limit)                                  # [L]
        self.sliders = [_slider(f"z{i + 1}", -limit, limit, float(v)) for i, v in enumerate(start)]
        super().__init__(self.sliders)
        self.update()

    @property
    def z(self) -> torch.Tensor:
        return torch.tensor([s.value for s in self.sliders])                # [L]

    def update(self) -> None:
        z = self.z
        self.show(decode_images(self.model, z[None]),
                  f"z = ({', '.join(f'{v:+.2f}' for v in z[:4].tolist())}"
                  f"{', ...' if len(z) > 4 else ''}), |z| = {z.norm():.2f}")


class InterpolationSlider(Panel):
    """A slider t in [0, 1] along the path between the encodings of two images x0, x1."""

    def __init__(self, model, x0: torch.Tensor, x1: torch.Tensor):
        self.model = model
        self.x0 = x0.detach().cpu().reshape(1, 1, 28, 28)
        self.x1 = x1.detach().cpu().reshape(1, 1, 28, 28)
        self.z0, self.z1 = encode_mean(model, x0), encode_mean(model, x1)
        self.slider = _slider("t", 0.0, 1.0, 0.5)
        self.method = widgets.ToggleButtons(options=["linear", "spherical"], value="linear",
                                            description="path")
        super().__init__([self.slider, self.method])
        self.update()

    def update(self) -> None:
        t, path = self.slider.value, lerp if self.method.value == "linear" else slerp
        z = path(self.z0, self.z1, torch.tensor([t]))                        # [1, L]
        self.show(torch.cat([self.x0, decode_images(self.model, z), self.x1]),
                  f"first image | {self.method.value} path at t = {t:.2f} | second image")


class AttributeSlider(Panel):
    """A slider a: the image's code moved by a times an attribute direction, then decoded."""

    def __init__(self, model, x: torch.Tensor, direction: torch.Tensor, name: str,
                 measure: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 limit: float = 3.0):
        self.model, self.name, self.measure = model, name, measure
        self.x = x.detach().cpu().reshape(1, 1, 28, 28)
        self.z, self.direction = encode_mean(model, x), direction.detach().cpu()
        self.slider = _slider(name, -limit, limit, 0.0)
        super().__init__([self.slider])
        self.update()

    def update(self) -> None:
        a = self.slider.value
        image = decode_images(self.model, traverse(self.z, self.direction, [a]))   # [1, 1, 28, 28]
        text = f"original | code + {a:+.2f} x {self.name} direction"
        if self.measure is not None:
            text += f" | measured {self.name} {self.measure(image).item():+.3f}"
        self.show(torch.cat([self.x, image]), text)


def explorer(model, x0: torch.Tensor, x1: torch.Tensor, direction: torch.Tensor, name: str,
             measure: Callable[[torch.Tensor], torch.Tensor] | None = None) -> widgets.Tab:
    """The three panels in tabs: latent sliders (from x0's code), interpolation, attribute."""
    panels = [LatentSliders(model, encode_mean(model, x0)), InterpolationSlider(model, x0, x1),
              AttributeSlider(model, x0, direction, name, measure)]
    tab = widgets.Tab(children=[p.widget for p in panels])
    for i, title in enumerate(["latent sliders", "interpolation", name]):
        tab.set_title(i, title)
    tab.panels = panels   # kept so the panels (and their callbacks) can be reached later
    return tab
