"""The latent explorer's widgets, driven without a browser: set a slider, read the picture."""
import io

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch
from PIL import Image as PILImage

from companion.latent_arithmetic import slant
from companion.models import MLPVAE
from companion.widgets import (AttributeSlider, InterpolationSlider, LatentSliders, explorer,
                               to_png)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MLPVAE(latent_dim=2, hidden=32).eval()


@pytest.fixture
def images():
    return torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def test_to_png_draws_dark_ink_on_white_at_the_requested_scale():
    images = torch.zeros(2, 1, 28, 28)
    images[0, 0, 10, 10] = 1.0
    png = to_png(images, scale=3)
    assert png.startswith(PNG_SIGNATURE)
    picture = PILImage.open(io.BytesIO(png))
    assert picture.size == ((2 * 29 + 1) * 3, 30 * 3)         # one row of two, 1-pixel padding
    assert picture.getpixel((3 * 11, 3 * 11)) == 0             # the ink pixel is black
    assert picture.getpixel((3 * 20, 3 * 20)) == 255           # the background is white


def test_to_png_refuses_images_without_a_channel_axis():
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        to_png(torch.rand(28, 28))


def test_every_slider_decodes_only_when_released(model, images):
    tab = explorer(model, images[0], images[1], torch.tensor([1.0, 0.0]), "slant", slant)
    sliders = [w for p in tab.panels for w in p.widget.children
               if isinstance(w, widgets.FloatSlider)]
    assert len(sliders) == 2 + 1 + 1
    assert all(s.continuous_update is False for s in sliders)


def test_latent_sliders_one_per_dimension_and_the_image_follows_them(model):
    panel = LatentSliders(model)
    assert [s.description for s in panel.sliders] == ["z1", "z2"]
    before_png, before_text = panel.image.value, panel.label.value
    assert bytes(before_png).startswith(PNG_SIGNATURE) and "+0.00" in before_text
    panel.sliders[0].value = 2.5                             # what a user's drag does
    assert panel.image.value != before_png
    assert panel.label.value != before_text and "+2.50" in panel.label.value
    torch.testing.assert_close(panel.z, torch.tensor([2.5, 0.0]))


def test_latent_sliders_start_at_a_given_code_clamped_to_the_range():
    torch.manual_seed(1)
    panel = LatentSliders(MLPVAE(latent_dim=5, hidden=8), z=torch.tensor([0.5, -9, 0, 0, 1]))
    assert [s.value for s in panel.sliders] == [0.5, -3.0, 0.0, 0.0, 1.0]
    assert "..." in panel.label.value                        # only the first four are printed


def test_interpolation_slider_and_path_buttons_change_the_middle_image(model, images):
    panel = InterpolationSlider(model, images[0], images[1])
    first = panel.image.value
    panel.slider.value = 0.9
    second = panel.image.value
    assert second != first and "t = 0.90" in panel.label.value
    panel.method.value = "spherical"
    assert "spherical" in panel.label.value
    assert PILImage.open(io.BytesIO(second)).size[0] == (3 * 29 + 1) * 4   # three images in a row


def test_interpolation_endpoints_decode_the_two_encodings(model, images):
    panel = InterpolationSlider(model, images[0], images[1])
    panel.slider.value = 0.0
    at_start = panel.image.value
    with torch.no_grad():
        want = torch.sigmoid(model.decode(model.encode(images[:1])[0]))
    assert at_start == to_png(torch.cat([images[:1], want, images[1:]]))


def test_attribute_slider_moves_along_the_direction_and_reports_the_measure(model, images):
    panel = AttributeSlider(model, images[0], torch.tensor([0.0, 1.0]), "slant", slant)
    first_png, first_text = panel.image.value, panel.label.value
    assert "measured slant" in first_text
    panel.slider.value = -2.0
    assert panel.image.value != first_png
    assert "-2.00 x slant direction" in panel.label.value and panel.label.value != first_text


def test_explorer_has_three_titled_tabs_and_opens_no_matplotlib_figure(model, images):
    figures = plt.get_fignums()
    tab = explorer(model, images[0], images[1], torch.tensor([1.0, 0.0]), "slant")
    tab.panels[0].sliders[1].value = -1.0
    assert [tab.get_title(i) for i in range(3)] == ["latent sliders", "interpolation", "slant"]
    assert plt.get_fignums() == figures
