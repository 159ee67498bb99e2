"""``interpgrad.viz``: normalisation ranges and percentile clipping, shared scales, signed maps keep sign and zero,
colours, overlays, outlines, colorbars, display options, de-normalisation, and grids whose text never overlaps
(measured on the layout and on the drawn pixels)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from interpgrad import ConfigError
from interpgrad.viz import (
    DIVERGING_CMAPS,
    DisplayOptions,
    GridRow,
    colorbar,
    colorize,
    denormalize_image,
    draw_outline,
    enlarge,
    grid_figure,
    grid_layout,
    map_scale,
    normalize_map,
    overlay,
    png_bytes,
    save_grid,
    shared_scale,
    wrap_text,
)


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


def test_a_shared_scale_makes_a_weaker_map_look_weaker() -> None:
    strong = torch.rand(16, 16) + 0.5
    weak = strong * 0.1
    each = [normalize_map(m, percentile=100) for m in (strong, weak)]
    torch.testing.assert_close(each[0], each[1])  # on its own scale, a map 10x weaker looks the same
    scale = shared_scale([strong, weak], percentile=100)
    assert scale == pytest.approx(float(strong.max()))
    shared = [normalize_map(m, percentile=100, scale=scale) for m in (strong, weak)]
    torch.testing.assert_close(shared[1], shared[0] * 0.1)
    pooled = torch.cat([strong.flatten(), torch.zeros(100), weak.flatten()])  # maps of any sizes are pooled
    assert shared_scale([strong, torch.zeros(10, 10), weak], 90) == pytest.approx(float(torch.quantile(pooled, 0.9)))
    assert map_scale(strong, 100) == pytest.approx(float(strong.max()))
    torch.testing.assert_close(map_scale(torch.stack([strong, weak]), 100), torch.stack([strong.max(), weak.max()]))
    assert shared_scale([torch.zeros(4, 4)]) == 0.0 and shared_scale([]) == 0.0
    assert torch.equal(normalize_map(strong, scale=0.0), torch.zeros(16, 16))  # a scale of 0: nothing to show


def test_display_options_check_themselves_and_say_what_they_are() -> None:
    assert DisplayOptions().colormap == "jet" and DisplayOptions(signed=True).colormap == "RdBu_r"
    assert DisplayOptions(cmap="jet", signed=True).colormap == "jet"  # honoured, never swapped
    assert DisplayOptions(cmap="PiYG", signed=True).difference_colormap == "PiYG"
    assert DisplayOptions(cmap="viridis").difference_colormap == "RdBu_r"  # differences are signed
    assert all(DisplayOptions(cmap=name, signed=True) for name in DIVERGING_CMAPS)
    text = DisplayOptions("magma", 0.3, True, 98.0, "column", True).describe()
    assert text == ("signed maps, colormap magma, opacity 0.30, clipped at the 98th percentile of |map|, one scale "
                    "per column, mask outline")
    assert DisplayOptions().to_dict() == {"cmap": "jet", "alpha": 0.5, "signed": False, "percentile": 99.5,
                                          "scale": "map", "outline": False, "regions": False, "region_q": 10.0}
    for bad, match in [({"scale": "row"}, "scale"), ({"alpha": 1.5}, "alpha"), ({"percentile": 0}, "percentile"),
                       ({"cmap": "nope"}, "colormap"), ({"region_q": 0}, "region_q"), ({"region_q": 101}, "region_q")]:
        with pytest.raises(ConfigError, match=match):
            DisplayOptions(**bad)


def test_enlarge_by_an_integer_factor() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = enlarge(image, 10)
    assert big.shape == (6, 9, 3) and np.array_equal(big[::3, ::3], image)
    assert enlarge(image, 5) is image  # no integer factor above 1 fits


def test_the_outline_is_white_inside_and_black_outside_the_mask_and_leaves_the_rest() -> None:
    image = np.full((40, 40, 3), 120, dtype=np.uint8)
    mask = np.zeros((10, 10), dtype=bool)
    mask[3:7, 3:7] = True  # at a quarter of the image's resolution: 12..27 at 40 px
    drawn = draw_outline(image, mask, thickness=2)
    white, black = (drawn == 255).all(axis=2), (drawn == 0).all(axis=2)
    big = np.zeros((40, 40), dtype=bool)
    big[12:28, 12:28] = True
    ring_inside = big & ~np.pad(big[2:-2, 2:-2] & big[:-4, 2:-2] & big[4:, 2:-2] & big[2:-2, :-4] & big[2:-2, 4:], 2)
    assert white[12:14, 12:28].all() and white[14:26, 14:26].sum() == 0 and not white[~big].any()
    assert black[10:12, 14:26].all() and not black[big].any() and not black[:9].any()
    assert white.sum() == ring_inside.sum()
    untouched = ~(white | black)
    assert (drawn[untouched] == 120).all() and untouched.sum() > 1000
    assert draw_outline(image, np.zeros((40, 40), bool)).tolist() == image.tolist()


def test_a_colorbar_shows_the_colormap_end_to_end_with_its_labels() -> None:
    bar = colorbar(200, "viridis", low="0", high="0.031")
    assert bar.shape[1] == 200 and bar.dtype == np.uint8
    ends = colorize(torch.tensor([0.0, 1.0]), "viridis")
    assert np.abs(bar[5, 1].astype(int) - ends[0]).max() <= 3 and np.abs(bar[5, 198].astype(int) - ends[1]).max() <= 3
    labels = bar[14:] < 100
    assert labels[:, :30].any() and labels[:, -40:].any() and not labels[:, 60:140].any()  # no middle label
    signed = colorbar(200, "RdBu_r", signed=True, low="-1", high="+1")
    middle = colorize(torch.tensor([0.0]), "RdBu_r", signed=True)[0]
    assert np.abs(signed[5, 100].astype(int) - middle).max() <= 6
    assert (signed[14:, 90:110] < 100).any()  # "0" under the middle
    crowded = colorbar(100, low="-0.00123", high="+0.00123", signed=True)
    ink = (crowded[14:] < 100).any(axis=0)
    assert ink[:20].any() and ink[-20:].any() and not ink[46:54].any()  # no room for "0": the ends stay readable


LABELS = ["input", "guided_backprop (Captum)", "integrated_gradients (Captum)", "smooth_gradcam++", "gradcam++",
          "guided_gradcam (Captum)", "scorecam", "a_label_far_too_long_for_any_column_at_all", "layercam", "xgradcam",
          "ablationcam", "smoothgrad (Captum)"]


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("panel_size", [48, 160])
def test_grid_text_never_overlaps_at_any_number_of_columns(panel_size: int) -> None:
    """The layout's boxes of every text and panel are disjoint, labels stay inside their columns, and the drawn
    pixels of the labels lie inside their boxes (measured on the rendered image)."""
    panel = np.full((32, 32, 3), 200, dtype=np.uint8)
    for columns in range(1, 13):
        rows = [GridRow([panel] * columns, [f"scale 0.00{i}31 · Pearson r 0.9999 with ours" for i in range(columns)],
                        label="shapes-resnet18-baseline (shipped) · target: star · top: star 97.1 %, heart 1.5 %")]
        layout = grid_layout(rows * 2, column_labels=LABELS[:columns], title="an image - 2 models x 11 methods\n"
                             "magnitudes, colormap jet, opacity 0.50", panel_size=panel_size)
        items = layout.items
        for i, first in enumerate(items):
            left, top, right, bottom = first.box
            assert 0 <= left < right <= layout.size[0] and 0 <= top < bottom <= layout.size[1]
            for second in items[i + 1:]:
                assert not _overlap(first.box, second.box), (columns, first, second)
        labels = layout.texts("column")
        assert len(labels) == columns
        for number, label in enumerate(labels):
            left = 6 + number * (panel_size + 6)
            assert label.column == number and left == label.box[0] and label.box[2] <= left + panel_size
            assert "".join(label.lines).replace(" ", "") == LABELS[number].replace(" ", "")  # all of it, in order
        picture = np.asarray(layout.render())
        ink = (picture < 128).all(axis=2)
        inside = np.zeros_like(ink)
        for text in layout.texts():
            left, top, right, bottom = text.box
            assert ink[top:bottom, left:right].any(), text  # every text is drawn where its box says
            inside[top:bottom, left:right] = True
        panels = np.zeros_like(ink)
        for item in items:
            if item.image is not None:
                left, top, right, bottom = item.box
                panels[top:bottom, left:right] = True
        assert not (ink & ~inside & ~panels).any()  # and nowhere else


def test_wrap_text_keeps_lines_within_the_width() -> None:
    from interpgrad.viz import _font, _width

    font = _font(13)
    lines = wrap_text("integrated_gradients (Captum) with a_very_long_identifier_without_spaces", font, 80)
    assert all(_width(line, font) <= 80 for line in lines) and len(lines) > 3
    assert "".join(lines).replace(" ", "") == "integrated_gradients(Captum)witha_very_long_identifier_without_spaces"
    assert lines[0] == "integrated_"  # broken after an underscore, where it can
    assert wrap_text("", font, 60) == [] and wrap_text("a\nb", font, 60) == ["a", "b"]
