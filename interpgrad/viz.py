"""Showing attribution maps: normalisation, colouring and overlays as separate steps, colorbars, mask outlines, and
labelled grids of panels whose text never overlaps.

    display = normalize_map(explanation.map)                        # [0, 1], per image, 99.5th percentile -> 1
    rgb = overlay(image_uint8, display[0], alpha=0.5)               # uint8 [H, W, 3]
    signed = normalize_map(explanation.signed_map, mode="signed")   # [-1, 1], 0 stays 0
    save_grid("grid.png", [[rgb, colorize(signed[0], signed=True)]], column_labels=["map", "signed"])

Maps are never normalised inside the methods; these functions are where raw values become pixels. ``DisplayOptions``
gathers every choice of that step (colormap, opacity, signed, percentile, scale per map or per column, mask outline),
so that everything drawn with one value (the app's panels, an exported PNG) agrees.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .errors import ConfigError

__all__ = [
    "DEFAULT_CMAP",
    "DEFAULT_SIGNED_CMAP",
    "DIVERGING_CMAPS",
    "NORMALIZATION_MODES",
    "SCALES",
    "SEQUENTIAL_CMAPS",
    "DisplayOptions",
    "FigureLayout",
    "GridRow",
    "Placed",
    "colorbar",
    "colorize",
    "denormalize_image",
    "draw_outline",
    "enlarge",
    "format_value",
    "grid_figure",
    "grid_layout",
    "map_scale",
    "normalize_map",
    "overlay",
    "png_bytes",
    "save_grid",
    "shared_scale",
    "wrap_text",
]

NORMALIZATION_MODES = ("absolute", "signed")
DEFAULT_CMAP = "jet"
DEFAULT_SIGNED_CMAP = "RdBu_r"  # diverging: blue negative, white zero, red positive
SEQUENTIAL_CMAPS = ("jet", "inferno", "viridis", "magma", "plasma", "turbo", "gray")
"""Colormaps for magnitudes in [0, 1] (low to high)."""
DIVERGING_CMAPS = ("RdBu_r", "coolwarm", "bwr", "seismic", "PiYG", "PuOr", "BrBG")
"""Colormaps for signed values in [-1, 1]: a light middle at 0 between two hues."""
SCALES = ("map", "column")
"""``map``: every map on its own scale; ``column``: one scale per column (method) shared by every model."""

MapLike = torch.Tensor | np.ndarray


def _as_tensor(values: MapLike) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(values) if not isinstance(values, torch.Tensor) else values)
    return tensor.detach().to("cpu", torch.float32)


def _check_percentile(percentile: float) -> None:
    if not 0.0 < percentile <= 100.0:
        raise ConfigError(f"percentile must be in (0, 100], got {percentile}")


def _as_maps(values: MapLike) -> tuple[torch.Tensor, bool]:
    """Maps ``[B, H, W]`` from a map ``[H, W]`` or maps, and whether a single map was given."""
    maps = _as_tensor(values)
    if maps.dim() not in (2, 3):
        raise ConfigError(f"expected a map [H, W] or maps [B, H, W], got shape {tuple(maps.shape)}")
    return (maps.unsqueeze(0), True) if maps.dim() == 2 else (maps, False)


def _magnitudes(maps: torch.Tensor) -> torch.Tensor:
    """``|m|`` of maps ``[B, ...]`` flattened to ``[B, P]``, non-finite values as 0."""
    return torch.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0).abs().flatten(1)


def _percentile_scale(magnitude: torch.Tensor, percentile: float) -> torch.Tensor:
    """The ``percentile``-th percentile of every row of ``magnitude`` ``[B, P]``, or its maximum where that is 0."""
    scale = torch.quantile(magnitude, percentile / 100.0, dim=1)
    return torch.where(scale > 0, scale, magnitude.amax(dim=1))


def map_scale(values: MapLike, percentile: float = 99.5) -> torch.Tensor:
    """The value a map is divided by for display: the ``percentile``-th percentile of ``|m|`` over the map (100 = the
    maximum), or the maximum where that percentile is 0 (a sparse map); 0 for an all-zero map. A map ``[H, W]``
    gives a scalar tensor, maps ``[B, H, W]`` one value each."""
    _check_percentile(percentile)
    maps, single = _as_maps(values)
    scale = _percentile_scale(_magnitudes(maps), percentile)
    return scale[0] if single else scale


def shared_scale(maps: Sequence[MapLike], percentile: float = 99.5) -> float:
    """One scale for several maps (of any sizes) shown side by side: ``map_scale`` of all their values pooled, so that
    a map with smaller values than the others looks weaker. 0 when every map is all zero (or there is none)."""
    _check_percentile(percentile)
    pooled = [_magnitudes(_as_tensor(values).reshape(1, -1)) for values in maps]
    if not pooled:
        return 0.0
    return float(_percentile_scale(torch.cat(pooled, dim=1), percentile)[0])


def normalize_map(
    values: MapLike, mode: str = "absolute", percentile: float = 99.5, scale: float | torch.Tensor | None = None
) -> torch.Tensor:
    """Scale a map ``[H, W]`` or maps ``[B, H, W]`` for display, each image on its own.

    ``absolute``: ``|m| / q`` clipped to [0, 1]; ``signed``: ``m / q`` clipped to [-1, 1] (sign kept, 0 stays 0);
    ``q`` is ``scale`` when given (e.g. ``shared_scale`` of a column), else ``map_scale(values, percentile)``: the
    ``percentile``-th percentile of ``|m|`` over the image (100 = the maximum), so a few extreme pixels do not wash
    out the rest; where that percentile is 0 (a sparse map) the maximum, so the map is shown instead of blank. An
    all-zero (or non-finite) map, or a scale of 0, gives zeros.
    """
    if mode not in NORMALIZATION_MODES:
        raise ConfigError(f"unknown normalisation mode {mode!r}; choose one of {', '.join(NORMALIZATION_MODES)}")
    _check_percentile(percentile)
    maps, single = _as_maps(values)
    maps = torch.nan_to_num(maps, nan=0.0, posinf=0.0, neginf=0.0)
    if scale is None:
        q = _percentile_scale(maps.abs().flatten(1), percentile)
    else:
        q = torch.as_tensor(scale, dtype=torch.float32).reshape(-1).expand(maps.shape[0])
    q = q.view(-1, 1, 1)
    scaled = torch.where(q > 0, maps / torch.where(q > 0, q, torch.ones_like(q)), 0.0)
    result = scaled.abs().clamp(max=1.0) if mode == "absolute" else scaled.clamp(-1.0, 1.0)
    return result[0] if single else result


def _colormap(name: str):  # type: ignore[no-untyped-def]
    import matplotlib

    try:
        return matplotlib.colormaps[name]
    except KeyError:
        raise ConfigError(f"unknown colormap {name!r} (any matplotlib colormap name, e.g. jet, inferno, RdBu_r)") from None


def colorize(values: MapLike, cmap: str | None = None, signed: bool = False) -> np.ndarray:
    """A normalised map as colours, uint8 ``[..., H, W, 3]``.

    Unsigned maps are read in [0, 1]; signed maps in [-1, 1], with 0 at the middle of the colormap (a diverging one
    shows the sign; any colormap given is used as it is). Values outside are clipped. Default colormaps: ``jet``
    (unsigned), ``RdBu_r`` (signed).
    """
    maps = _as_tensor(values).numpy()
    position = (np.clip(maps, -1.0, 1.0) + 1.0) / 2.0 if signed else np.clip(maps, 0.0, 1.0)
    colormap = _colormap(cmap or (DEFAULT_SIGNED_CMAP if signed else DEFAULT_CMAP))
    rgba = colormap(np.nan_to_num(position, nan=0.5 if signed else 0.0), bytes=True)
    return np.ascontiguousarray(rgba[..., :3])


@dataclass(frozen=True)
class DisplayOptions:
    """How maps become pixels, as one value: the app's panels and the exported PNG are drawn from the same one.

    ``cmap``: a matplotlib colormap (None: ``jet``, or ``RdBu_r`` when signed); ``alpha``: the map's opacity over the
    image; ``signed``: show the signed map in [-1, 1] instead of magnitudes in [0, 1]; ``percentile``: ``|m|`` at this
    percentile is the end of the colour scale; ``scale``: ``map`` (each map on its own) or ``column`` (one scale per
    method across the models, so a weaker map looks weaker); ``outline``: draw the ground-truth mask's outline;
    ``regions``: draw the convex-hull regions of every map's top ``region_q`` % pixels (``interpgrad.regions``).
    """

    cmap: str | None = None
    alpha: float = 0.5
    signed: bool = False
    percentile: float = 99.5
    scale: str = "map"
    outline: bool = False
    regions: bool = False
    region_q: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 < self.region_q <= 100.0:
            raise ConfigError(f"region_q (the share of a map's pixels its regions enclose) must be in (0, 100], got "
                              f"{self.region_q}")
        _check_percentile(self.percentile)
        if self.scale not in SCALES:
            raise ConfigError(f"unknown scale {self.scale!r}; choose one of {', '.join(SCALES)}")
        _colormap(self.colormap)

    @property
    def colormap(self) -> str:
        return self.cmap or (DEFAULT_SIGNED_CMAP if self.signed else DEFAULT_CMAP)

    @property
    def difference_colormap(self) -> str:
        """Differences are signed: the chosen colormap when the maps are signed too, else ``RdBu_r``."""
        return self.colormap if self.signed else DEFAULT_SIGNED_CMAP

    @property
    def mode(self) -> str:
        """The ``normalize_map`` mode: ``signed`` or ``absolute``."""
        return "signed" if self.signed else "absolute"

    def describe(self) -> str:
        """The settings in words, e.g. for a figure's title."""
        values = "signed maps" if self.signed else "magnitudes"
        scale = "one scale per map" if self.scale == "map" else "one scale per column"
        text = (f"{values}, colormap {self.colormap}, opacity {self.alpha:.2f}, "
                f"clipped at the {self.percentile:g}th percentile of |map|, {scale}")
        text += ", mask outline" if self.outline else ""
        return text + (f", convex-hull regions of each map's top {self.region_q:g} %" if self.regions else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cmap": self.colormap}


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ConfigError(f"expected an RGB image as uint8 [H, W, 3], got {got}")


def _resize_map(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(maps.shape[-2:]) == size:
        return maps
    return F.interpolate(maps[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def overlay(
    image: np.ndarray, values: MapLike, alpha: float = 0.5, cmap: str | None = None, signed: bool = False
) -> np.ndarray:
    """The coloured map blended over an RGB image: ``(1 - alpha) * image + alpha * colorize(map)``, uint8 [H, W, 3].

    ``values`` is a normalised map ``[h, w]`` (``normalize_map``); it is resized bilinearly to the image's size.
    """
    _check_image(image)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
    maps = _as_tensor(values)
    if maps.dim() != 2:
        raise ConfigError(f"overlay takes one map [H, W], got shape {tuple(maps.shape)}")
    colours = colorize(_resize_map(maps, image.shape[:2]), cmap, signed).astype(np.float32)
    blended = (1.0 - alpha) * image.astype(np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def enlarge(image: np.ndarray, size: int) -> np.ndarray:
    """An image whose longer side is under ``size`` enlarged by the largest integer factor that fits, nearest
    neighbour (a browser or a viewer would blur a 32x32 model input shown at 160 px); larger images as they are."""
    factor = size // max(image.shape[:2])
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def _grow(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` dilated ``steps`` times with the 4-neighbourhood."""
    grown = mask.copy()
    for _ in range(steps):
        padded = np.pad(grown, 1)
        grown = grown | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
    return grown


def draw_outline(image: np.ndarray, mask: np.ndarray, thickness: int | None = None) -> np.ndarray:
    """``image`` (uint8 RGB) with the outline of ``mask`` (bool, any size: resized nearest to the image) drawn on it:
    a white line just inside the mask and a black one just outside, visible on any colormap. ``thickness`` (each
    line, pixels; default: 1 per 80 pixels of the shorter side, at least 1)."""
    _check_image(image)
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ConfigError(f"expected a mask [H, W], got shape {mask.shape}")
    height, width = image.shape[:2]
    if mask.shape != (height, width):
        rows = (np.arange(height) * mask.shape[0] // height).clip(max=mask.shape[0] - 1)
        columns = (np.arange(width) * mask.shape[1] // width).clip(max=mask.shape[1] - 1)
        mask = mask[rows][:, columns]
    thickness = thickness or max(1, min(height, width) // 80)
    inner = mask & _grow(~mask, thickness)
    outer = ~mask & _grow(mask, thickness)
    drawn = image.copy()
    drawn[inner] = 255
    drawn[outer] = 0
    return drawn


def denormalize_image(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised image ``[3, H, W]`` (or batch ``[B, 3, H, W]``) back to uint8 RGB ``[H, W, 3]`` (``[B, H, W, 3]``):
    ``x * std + mean`` per channel, clipped to [0, 1], times 255, rounded."""
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ConfigError(f"expected an image [3, H, W] or a batch [B, 3, H, W], got shape {tuple(x.shape)}")
    stats = [torch.as_tensor(values, dtype=torch.float32).view(3, 1, 1) for values in (std, mean)]
    pixels = (x.detach().to("cpu", torch.float32) * stats[0] + stats[1]).clamp(0.0, 1.0)
    return np.ascontiguousarray((pixels * 255.0).round().to(torch.uint8).movedim(-3, -1).numpy())


def format_value(value: float) -> str:
    """A map value in three significant digits (``0.0312``, ``3.12e-05``), ``0`` for zero."""
    return "0" if value == 0 else f"{value:.3g}"


# --- text and figures -------------------------------------------------------------------------------------------------

FontType = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _font(size: int) -> FontType:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


_MEASURE = ImageDraw.Draw(Image.new("RGB", (1, 1)))
_BREAK_AFTER = "_-+/.,)"


def _width(text: str, font: FontType) -> int:
    return math.ceil(_MEASURE.textlength(text, font=font))


def _break_word(word: str, font: FontType, width: int) -> tuple[str, str]:
    """``word`` (wider than ``width``) cut in two: the longest head that fits, moved back to just after a ``_``,
    ``-``, ``+``... or before a ``(`` when there is one in its second half; at least one character."""
    fits = 1
    while fits < len(word) and _width(word[: fits + 1], font) <= width:
        fits += 1
    for cut in range(fits, fits // 2, -1):
        if word[cut - 1] in _BREAK_AFTER or word[cut : cut + 1] == "(":
            return word[:cut], word[cut:]
    return word[:fits], word[fits:]


def wrap_text(text: str, font: FontType, width: int) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels in ``font``: words are kept whole where they fit, a word
    wider than a line is broken (after ``_``, ``-``... where it can); ``\\n`` starts a new line. No lines for an
    empty text."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if _width(candidate, font) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            while _width(word, font) > width and len(word) > 1:
                head, word = _break_word(word, font, width)
                lines.append(head)
            current = word
        if current:
            lines.append(current)
    return lines


@dataclass(frozen=True)
class Placed:
    """Something placed on a figure: a block of text lines or an image, in ``box`` (left, top, right, bottom;
    right and bottom exclusive). ``role``: ``title``, ``column`` (a column label), ``row`` (a row's label),
    ``caption`` (under a panel) or ``panel``."""

    box: tuple[int, int, int, int]
    role: str
    lines: tuple[str, ...] = ()
    image: np.ndarray | None = field(default=None, repr=False)
    row: int = -1
    column: int = -1


@dataclass(frozen=True)
class FigureLayout:
    """Where everything of a figure goes (``grid_layout``); ``render`` draws it."""

    size: tuple[int, int]
    items: tuple[Placed, ...]
    font_size: int
    line_height: int

    def texts(self, role: str | None = None) -> list[Placed]:
        return [item for item in self.items if item.image is None and (role is None or item.role == role)]

    def render(self, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
        figure = Image.new("RGB", self.size, background)
        draw = ImageDraw.Draw(figure)
        font = _font(self.font_size)
        for item in self.items:
            left, top = item.box[:2]
            if item.image is not None:
                figure.paste(Image.fromarray(item.image), (left, top))
            for number, line in enumerate(item.lines):
                draw.text((left, top + number * self.line_height), line, fill=(0, 0, 0), font=font)
        return figure


@dataclass(frozen=True)
class GridRow:
    """A row of a grid figure: its panels (uint8 RGB, ``None`` = an empty cell), a caption under each, and a label
    written above the row across the figure (e.g. a model's name and predictions). ``height``: the panels' height
    (default: square panels); a panel is fitted into ``panel_size x height``, keeping its aspect ratio."""

    panels: Sequence[np.ndarray | None]
    captions: Sequence[str] = ()
    label: str = ""
    height: int | None = None


def _fit(image: np.ndarray, width: int, height: int, background: tuple[int, int, int]) -> np.ndarray:
    """``image`` scaled to fit ``width x height`` (nearest neighbour when enlarging keeps small model inputs crisp,
    Lanczos when shrinking), centred on the background."""
    _check_image(image)
    picture = Image.fromarray(image)
    scale = min(width / picture.width, height / picture.height)
    shape = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    if shape != picture.size:
        picture = picture.resize(shape, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height), background)
    canvas.paste(picture, ((width - shape[0]) // 2, (height - shape[1]) // 2))
    return np.asarray(canvas)


def grid_layout(
    rows: Sequence[GridRow],
    column_labels: Sequence[str] | None = None,
    title: str | None = None,
    panel_size: int = 160,
    padding: int = 6,
    font_size: int = 13,
    background: tuple[int, int, int] = (255, 255, 255),
) -> FigureLayout:
    """Where the title, the column labels, every row's label, panels and captions go.

    Columns are ``panel_size`` wide with ``padding`` between them; every text is wrapped to the width it may use (a
    column label or a caption: its column; the title and row labels: the figure), measured in the font, so no two
    texts overlap whatever the number of columns or the length of the labels. Each band (title, labels, a row's
    captions) is as tall as its longest text.
    """
    if not rows or not any(len(row.panels) for row in rows):
        raise ConfigError("a grid figure needs at least one panel")
    font, line = _font(font_size), font_size + 5
    columns = max(len(row.panels) for row in rows)
    step = panel_size + padding
    width = padding + columns * step
    items: list[Placed] = []

    def text_block(text: str, left: int, top: int, room: int, role: str, row: int = -1, column: int = -1) -> int:
        """Place ``text`` wrapped to ``room`` pixels; returns its height."""
        lines = wrap_text(text, font, room)
        if lines:
            right = left + max(_width(text_line, font) for text_line in lines)
            box = (left, top, right, top + len(lines) * line)
            items.append(Placed(box, role, tuple(lines), row=row, column=column))
        return len(lines) * line

    y = padding
    if title:
        y += text_block(title, padding, y, width - 2 * padding, "title") + padding
    if column_labels:
        heights = [text_block(str(label), padding + index * step, y, panel_size, "column", column=index)
                   for index, label in enumerate(column_labels)]
        y += max(heights, default=0) + padding // 2
    for number, row in enumerate(rows):
        if row.label:
            y += text_block(row.label, padding, y, width - 2 * padding, "row", row=number) + 2
        height = row.height or panel_size
        for index, image in enumerate(row.panels):
            if image is not None:
                left = padding + index * step
                items.append(Placed((left, y, left + panel_size, y + height), "panel",
                                    image=_fit(image, panel_size, height, background), row=number, column=index))
        y += height + 2
        captions = [text_block(str(caption), padding + index * step, y, panel_size, "caption", number, index)
                    for index, caption in enumerate(row.captions)]
        y += max(captions, default=0) + padding
    return FigureLayout((width, y + padding // 2), tuple(items), font_size, line)


def grid_figure(
    panels: Sequence[Sequence[np.ndarray | None]],
    column_labels: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    captions: Sequence[Sequence[str]] | None = None,
    panel_size: int = 160,
    padding: int = 6,
    font_size: int = 13,
    background: tuple[int, int, int] = (255, 255, 255),
    title: str | None = None,
) -> Image.Image:
    """Rows x columns of uint8 RGB panels (``None`` = empty cell) composed into one image, with an optional title,
    column labels above, a label above each row and a caption under each panel (``grid_layout``)."""
    rows = [GridRow(images, captions[number] if captions and number < len(captions) else (),
                    str(row_labels[number]) if row_labels and number < len(row_labels) else "")
            for number, images in enumerate(panels)]
    return grid_layout(rows, column_labels, title, panel_size, padding, font_size, background).render(background)


def colorbar(
    width: int,
    cmap: str | None = None,
    signed: bool = False,
    low: str = "0",
    high: str = "1",
    middle: str | None = None,
    font_size: int = 11,
) -> np.ndarray:
    """A horizontal colour scale ``width`` pixels wide, uint8 RGB: the colormap from its low end (left) to its high
    end (right) as ``colorize`` uses it (signed: [-1, 1], 0 in the middle), with tick labels ``low`` under its left
    end, ``high`` under its right end and ``middle`` (default: ``0`` when signed) under its centre."""
    font = _font(font_size)
    strip = 10
    height = strip + 4 + font_size + 5
    positions = torch.linspace(-1.0 if signed else 0.0, 1.0, max(2, width - 2))
    picture = Image.new("RGB", (width, height), (255, 255, 255))
    picture.paste(Image.fromarray(np.repeat(colorize(positions[None], cmap, signed), strip, axis=0)), (1, 0))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 0, width - 1, strip), outline=(90, 90, 90))
    middle = middle if middle is not None else ("0" if signed else None)
    placed: list[tuple[int, int]] = []
    for text, where in [(low, 0.0), (high, 1.0), (middle or "", 0.5)]:
        tick = round(where * (width - 1))
        length = _width(text, font)
        left = min(max(0, tick - length // 2), width - length)
        if not text or any(left < right + 4 and other < left + length + 4 for other, right in placed):
            continue  # no room: the middle label is left out rather than drawn over the ends
        placed.append((left, left + length))
        draw.line((tick, strip, tick, strip + 3), fill=(90, 90, 90))
        draw.text((left, strip + 3), text, fill=(0, 0, 0), font=font)
    return np.asarray(picture)


def png_bytes(figure: Image.Image | np.ndarray) -> bytes:
    """A figure (PIL image or uint8 RGB array) encoded as PNG, e.g. for a download button."""
    picture = figure if isinstance(figure, Image.Image) else Image.fromarray(figure)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(path: str | os.PathLike[str], panels: Sequence[Sequence[np.ndarray | None]], **layout: Any) -> Path:
    """``grid_figure(panels, **layout)`` written to ``path`` as PNG (parent folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(grid_figure(panels, **layout)))
    return path
