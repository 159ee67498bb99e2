"""``interpgrad.viz``: normalisation ranges and percentile clipping, signed maps keep sign and zero, colours, overlays,
de-normalisation and grids."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from interpgrad import ConfigError
from interpgrad.viz import colorize, denormalize_image, grid_figure, normalize_map, overlay, png_bytes, save_grid


def test_absolute_normalisation_is_in_unit_range_per_image() -> None:
    maps = torch.randn(3, 16, 16) * torch.tensor([1.0, 100.0, 1e-6]).view(3, 1, 1)
    normalised = normalize_map(maps, percentile=100)
    assert normalised.shape == maps.shape
    assert normalised.min() >= 0 and normalised.max() <= 1
    torch.testing.assert_close(normalised.amax(dim=(1, 2)), torch.ones(3))  # each image on its own scale
    torch.testing.assert_close(normalised, maps.abs() / maps.abs().amax(dim=(1, 2), keepdim=True))


def test_signed_normalisation_keeps_sign_and_zero() -> None:
    maps = torch.tensor([[[-4.0, -1.0, 0.0], [0.0, 2.0, 1.0]]])
    normalised = normalize_map(maps, mode="signed", percentile=100)
    assert torch.equal(torch.sign(normalised), torch.sign(maps))
    assert torch.equal(normalised[maps == 0], torch.zeros(2))
    torch.testing.assert_close(normalised, maps / 4.0)
    assert normalised.min() == -1 and normalised.max() <= 1


def test_percentile_clips_outliers() -> None:
    values = torch.ones(100, 100)
    values[0, 0] = 1000.0  # one extreme pixel
    clipped = normalize_map(values, percentile=99.5)
    unclipped = normalize_map(values, percentile=100)
    assert clipped[0, 0] == 1 and torch.equal(clipped[1:], torch.ones(99, 100))  # the rest is visible
    assert unclipped[5, 5] == pytest.approx(1e-3)  # without clipping, one pixel washes out the rest
    ramp = torch.arange(1000.0).view(10, 100)
    scale = float(torch.quantile(ramp.flatten(), 0.9))  # values above the 90th percentile saturate at 1
    normalised = normalize_map(ramp, percentile=90).flatten()
    assert normalised[500] == pytest.approx(500 / scale) and torch.equal(normalised[900:], torch.ones(100))


def test_zero_and_non_finite_maps_give_zeros() -> None:
    assert torch.equal(normalize_map(torch.zeros(8, 8)), torch.zeros(8, 8))
    assert torch.equal(normalize_map(torch.zeros(2, 8, 8), mode="signed"), torch.zeros(2, 8, 8))
    with_nan = torch.tensor([[float("nan"), 2.0], [float("inf"), 1.0]])
    assert torch.isfinite(normalize_map(with_nan, percentile=100)).all()


@pytest.mark.parametrize("mode", ["absolute", "signed"])
def test_a_sparse_map_falls_back_to_the_maximum_instead_of_going_blank(mode: str) -> None:
    """5 non-zero pixels of 100: the 90th percentile of |m| is 0 (the Explore slider's minimum), the maximum is used."""
    sparse = torch.zeros(2, 10, 10)
    sparse[0, 0, :5] = torch.tensor([1.0, -2.0, 3.0, 4.0, -8.0])
    sparse[1, 3, 3] = 0.5
    normalised = normalize_map(sparse, mode=mode, percentile=90)
    expected = sparse / torch.tensor([8.0, 0.5]).view(2, 1, 1)
    torch.testing.assert_close(normalised, expected.abs() if mode == "absolute" else expected)
    dense = torch.arange(100.0).view(1, 10, 10)  # a non-zero percentile is still used as it is
    assert normalize_map(dense, mode=mode, percentile=90)[0, 9, 9] == 1 and normalize_map(dense, percentile=90)[0, 5, 0] < 1


def test_numpy_maps_are_accepted() -> None:
    assert normalize_map(np.ones((4, 4)) * 3).max() == 1


@pytest.mark.parametrize(("kwargs", "match"), [({"mode": "minmax"}, "normalisation mode"), ({"percentile": 0}, "percentile")])
def test_bad_normalisation_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        normalize_map(torch.ones(4, 4), **kwargs)


def test_colorize_unsigned_and_signed() -> None:
    unsigned = colorize(torch.linspace(0, 1, 10).view(2, 5))
    assert unsigned.shape == (2, 5, 3) and unsigned.dtype == np.uint8
    assert not np.array_equal(unsigned[0, 0], unsigned[1, 4])
    signed = colorize(torch.tensor([[-1.0, 0.0, 1.0]]), signed=True)
    assert signed[0, 0, 2] > signed[0, 0, 0]  # negative: blue
    assert signed[0, 2, 0] > signed[0, 2, 2]  # positive: red
    assert signed[0, 1].min() > 230  # zero: near white
    with pytest.raises(ConfigError, match="colormap"):
        colorize(torch.zeros(2, 2), cmap="no_such_map")


def test_overlay_shape_dtype_and_blend() -> None:
    image = np.full((40, 30, 3), 100, dtype=np.uint8)
    blended = overlay(image, torch.rand(10, 10), alpha=0.4)  # the map is resized to the image
    assert blended.shape == (40, 30, 3) and blended.dtype == np.uint8
    assert np.array_equal(overlay(image, torch.rand(5, 5), alpha=0.0), image)
    colours = colorize(torch.ones(40, 30))
    assert np.array_equal(overlay(image, torch.ones(40, 30), alpha=1.0), colours)
    with pytest.raises(ConfigError, match="alpha"):
        overlay(image, torch.rand(5, 5), alpha=2.0)
    with pytest.raises(ConfigError, match="uint8"):
        overlay(image.astype(np.float32), torch.rand(5, 5))


def test_denormalize_image_inverts_normalisation() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(2, 6, 7, 3), dtype=np.uint8)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    x = (torch.from_numpy(rgb).permute(0, 3, 1, 2) / 255.0 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert np.array_equal(denormalize_image(x, mean, std), rgb)
    assert np.array_equal(denormalize_image(x[0], mean, std), rgb[0])
    assert denormalize_image(torch.full((3, 2, 2), 10.0), mean, std).max() == 255  # clipped


def test_grid_figure_and_png(tmp_path) -> None:  # type: ignore[no-untyped-def]
    panel = np.zeros((32, 32, 3), dtype=np.uint8)
    figure = grid_figure(
        [[panel, panel, None], [panel, None, panel]],
        column_labels=["image", "gradient", "gradcam"],
        row_labels=["baseline", "guided"],
        captions=[["a", "b", ""], ["c", "", "d"]],
        panel_size=64,
    )
    assert figure.mode == "RGB" and figure.width > 3 * 64 and figure.height > 2 * 64
    decoded = Image.open(io.BytesIO(png_bytes(figure)))
    assert decoded.format == "PNG" and decoded.size == figure.size
    path = save_grid(tmp_path / "out" / "grid.png", [[panel]], column_labels=["x"])
    assert Image.open(path).format == "PNG"
    with pytest.raises(ConfigError, match="at least one panel"):
        grid_figure([])
