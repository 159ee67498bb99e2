"""The synthetic ``shapes`` dataset: 10 shape classes on cluttered backgrounds, with the exact mask of every object.

Each image is a smooth colour gradient plus a low-contrast sinusoidal texture, a few thin line segments and tiny dots
(distractors, drawn first), then one filled object of the labelled class with a random colour far from the local
background, a random size (enclosing radius 0.2-0.4 of the image side), rotation and position (never cut by the border),
then Gaussian pixel noise. The mask is exactly the object's pixels, so saliency maps can be scored against it.

``difficulty="hard"`` (the dataset ``shapes-hard``) makes the task harder while keeping exact masks: smaller objects
(radius 0.18-0.36), lower contrast (object colour at an RGB distance of 0.35-0.6 from the local background, where
shapes picks the first random colour at least 0.45 away), more lines and dots, two small filled shapes of random classes as distractors, an occluding bar across 30 % of
the objects (its pixels are removed from the mask: the mask is the object's visible pixels) and stronger noise.

Rendering is vectorised with numpy: every shape is an implicit function of pixel coordinates in the object's own frame
(the unit disc), evaluated for all images of a class at once; distractors are scattered with one indexed write.
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .base import ArrayDataset, check_count
from .info import DEFAULT_AUGMENT, IDENTITY_MEAN, IDENTITY_STD, DataInfo

__all__ = [
    "GENERATOR_VERSION",
    "MAX_RADIUS_FRACTION",
    "MIN_IMAGE_SIZE",
    "MIN_RADIUS_FRACTION",
    "SHAPES_HARD_MEAN",
    "SHAPES_HARD_STD",
    "SHAPES_MEAN",
    "SHAPES_STD",
    "SHAPE_CLASSES",
    "SPLIT_SIZES",
    "DIFFICULTIES",
    "ShapesArrays",
    "ShapesDataset",
    "clear_shapes_cache",
    "generate_shapes",
    "shapes_cache_path",
    "shapes_dataset_name",
    "shapes_info",
    "split_seed",
]

GENERATOR_VERSION = 1
"""Bumped whenever the rendering changes, so cached files of an older generator are never loaded."""

SHAPE_CLASSES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross", "ring", "crescent", "heart", "arrow", "ellipse",
)
SHAPES_MEAN: tuple[float, float, float] = (0.5001, 0.5013, 0.5014)
SHAPES_STD: tuple[float, float, float] = (0.2447, 0.2454, 0.2437)
"""Per-channel mean/std of the generator's images (measured on 20,000 32x32 images of seed 0, rounded to 4 places)."""
SHAPES_HARD_MEAN: tuple[float, float, float] = (0.5007, 0.5008, 0.4998)
SHAPES_HARD_STD: tuple[float, float, float] = (0.2412, 0.2408, 0.241)
"""The same for difficulty "hard"."""

MIN_IMAGE_SIZE = 16
MIN_RADIUS_FRACTION = 0.2
MAX_RADIUS_FRACTION = 0.4
SPLIT_SIZES: dict[str, int] = {"train": 10_000, "val": 2_000, "test": 2_000}
_SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 1, "test": 2}

DIFFICULTIES: tuple[str, ...] = ("standard", "hard")
"""``standard`` is the dataset ``shapes``; ``hard`` is ``shapes-hard``."""

_CHUNK_PIXELS = 1 << 22  # pixels rendered per chunk (bounds the float32 working memory to ~50 MB)
_TEXTURE_WAVES = 3
_COLOR_CANDIDATES = 12
_OBJECT_MIN_DISTANCE = 0.45  # Euclidean RGB distance in [0, 1] units from the mean background under the object
_DISTRACTOR_MIN_DISTANCE = 0.3  # ... and of every distractor from the object colour
_MAX_LINES = 3
_MAX_DOTS = 6
_NOISE_STD = 4.0  # pixel noise, in 0..255 units


@dataclass(frozen=True)
class _Profile:
    """The knobs of one difficulty. ``standard`` reproduces the original generator bit for bit (the same draws in the
    same order); the hard-only draws (contrast, distractor shapes, occluders) come after all of them."""

    min_radius: float = MIN_RADIUS_FRACTION
    max_radius: float = MAX_RADIUS_FRACTION
    wave_amp: tuple[float, float] = (0.01, 0.035)
    lines: int = _MAX_LINES
    dots: int = _MAX_DOTS
    noise_std: float = _NOISE_STD
    contrast: tuple[float, float] | None = None  # RGB distance of the object from its local background (None: >= 0.45)
    distractor_shapes: int = 0
    distractor_radius: tuple[float, float] = (0.08, 0.14)
    occluder_probability: float = 0.0


_PROFILES: dict[str, _Profile] = {
    "standard": _Profile(),
    "hard": _Profile(min_radius=0.18, max_radius=0.36, wave_amp=(0.01, 0.035), lines=4, dots=8, noise_std=5.0,
                     contrast=(0.35, 0.6), distractor_shapes=2, distractor_radius=(0.05, 0.09),
                     occluder_probability=0.3),
}


# ---------------------------------------------------------------------------------------------------- shape tests
# Each takes local coordinates (u, v) of pixel centres, in units of the object radius (the object lies in the unit
# disc), and returns the boolean inside-test.


def _circle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * u + v * v <= 0.92**2


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    half = 0.97 / math.sqrt(2.0)
    return np.maximum(np.abs(u), np.abs(v)) <= half


def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Equilateral triangle with circumradius 0.97: three half-planes at distance 0.97 * cos(60 deg)."""
    apothem = 0.97 * 0.5
    inside = v <= apothem
    for angle in (math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3):
        inside &= u * math.cos(angle) + v * math.sin(angle) <= apothem
    return inside


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Five-pointed star (outer radius 1, inner 0.42): fold the angle into one half-sector, test against its edge."""
    sector = 2 * math.pi / 5
    psi = np.abs(np.mod(np.arctan2(v, u), sector) - sector / 2)
    rho = np.sqrt(u * u + v * v)
    px, py = rho * np.cos(psi), rho * np.sin(psi)
    inner = 0.42
    ox, oy = math.cos(sector / 2), math.sin(sector / 2)
    return oy * (px - inner) + (inner - ox) * py <= 0


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    au, av = np.abs(u), np.abs(v)
    arm, half_width = 0.95, 0.27
    return ((au <= arm) & (av <= half_width)) | ((av <= arm) & (au <= half_width))


def _ring(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rho2 = u * u + v * v
    return (rho2 <= 0.95**2) & (rho2 >= 0.52**2)


def _crescent(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A disc of radius 0.95 minus a disc of radius 0.78 centred at (0.42, 0)."""
    return (u * u + v * v <= 0.95**2) & ((u - 0.42) ** 2 + v * v > 0.78**2)


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0; its smallest enclosing disc (centre (0, 0.25), radius 1.25)
    is mapped onto the disc of radius 0.97."""
    scale = 1.25 / 0.97
    x = u * scale
    y = v * scale + 0.25
    x2 = x * x
    base = x2 + y * y - 1.0
    return base * base * base <= x2 * y * y * y


def _arrow(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A shaft (u in [-0.92, 0.15], |v| <= 0.16) and a triangular head from u = 0.1 (half-width 0.52) to u = 0.95."""
    av = np.abs(v)
    shaft = (u >= -0.92) & (u <= 0.15) & (av <= 0.16)
    head = (u >= 0.1) & (av <= 0.52 * (0.95 - u) / 0.85)
    return shaft | head


def _ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u / 0.97) ** 2 + (v / 0.52) ** 2 <= 1.0


_SHAPE_TESTS: tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], ...] = (
    _circle, _square, _triangle, _star, _cross, _ring, _crescent, _heart, _arrow, _ellipse,
)


# ---------------------------------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ShapesArrays:
    """A generated set: images uint8 [n, H, W, 3], masks bool [n, H, W] (exactly the object's pixels), labels int64 [n],
    centers float32 [n, 2] (x, y in pixels; pixel (row i, col j) has its centre at (j + 0.5, i + 0.5)), radii float32
    [n] (radius in pixels of the disc enclosing the object) and colors uint8 [n, 3] (object colour before noise)."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    centers: np.ndarray
    radii: np.ndarray
    colors: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class _Draws:
    """All per-image random parameters (drawn up front, so chunked rendering is deterministic)."""

    labels: np.ndarray  # [n]
    center: np.ndarray  # [n, 2] x, y in pixels
    radius: np.ndarray  # [n] pixels
    rotation: np.ndarray  # [n, 2] cos, sin
    bg_base: np.ndarray  # [n, 3] background colour at the image centre
    bg_delta: np.ndarray  # [n, 3] colour change across the image along the gradient direction
    bg_direction: np.ndarray  # [n, 2] cos, sin of the gradient direction
    wave_freq: np.ndarray  # [n, K, 2] texture frequencies (cycles per image) along x and y
    wave_phase: np.ndarray  # [n, K]
    wave_amp: np.ndarray  # [n, K]
    texture_tint: np.ndarray  # [n, 3]
    object_colors: np.ndarray  # [n, C, 3] candidates
    line_start: np.ndarray  # [n, L, 2] x, y
    line_vector: np.ndarray  # [n, L, 2] end - start
    line_active: np.ndarray  # [n, L]
    dot_position: np.ndarray  # [n, D, 2] x, y
    dot_size: np.ndarray  # [n, D] side in pixels
    dot_active: np.ndarray  # [n, D]
    clutter_colors: np.ndarray  # [n, L + D, C, 3] candidates
    contrast: np.ndarray  # [n] target object contrast (hard only; empty profile: zeros)
    distractor_labels: np.ndarray  # [n, K] classes of the small distractor shapes
    distractor_center: np.ndarray  # [n, K, 2]
    distractor_radius: np.ndarray  # [n, K]
    distractor_rotation: np.ndarray  # [n, K, 2]
    distractor_colors: np.ndarray  # [n, K, C, 3] candidates
    occluder_start: np.ndarray  # [n, 2]
    occluder_vector: np.ndarray  # [n, 2]
    occluder_active: np.ndarray  # [n]
    occluder_colors: np.ndarray  # [n, C, 3] candidates

    def rows(self, start: int, stop: int) -> _Draws:
        """The draws of images ``start:stop``."""
        return _Draws(**{field.name: getattr(self, field.name)[start:stop] for field in fields(self)})


def _draw(rng: np.random.Generator, n: int, size: int, profile: _Profile) -> _Draws:
    """Draw every per-image parameter for ``n`` images of side ``size``."""
    f32 = np.float32
    lines, dots = profile.lines, profile.dots
    labels = rng.permutation(np.arange(n, dtype=np.int64) % len(SHAPE_CLASSES))
    radius = rng.uniform(profile.min_radius, profile.max_radius, n) * size
    center = rng.uniform(radius[:, None], size - radius[:, None], (n, 2))
    rotation = rng.uniform(0.0, 2 * math.pi, n)
    bg_angle = rng.uniform(0.0, 2 * math.pi, n)
    wave_angle = rng.uniform(0.0, 2 * math.pi, (n, _TEXTURE_WAVES))
    wave_cycles = rng.uniform(1.0, 4.0, (n, _TEXTURE_WAVES))
    line_angle = rng.uniform(0.0, 2 * math.pi, (n, lines))
    line_length = rng.uniform(0.25, 0.6, (n, lines)) * size
    thickness = _line_thickness(size)
    draws = dict(
        labels=labels,
        center=center.astype(f32),
        radius=radius.astype(f32),
        rotation=np.stack([np.cos(rotation), np.sin(rotation)], axis=1).astype(f32),
        bg_base=rng.uniform(0.1, 0.9, (n, 3)).astype(f32),
        bg_delta=rng.uniform(-0.2, 0.2, (n, 3)).astype(f32),
        bg_direction=np.stack([np.cos(bg_angle), np.sin(bg_angle)], axis=1).astype(f32),
        wave_freq=(wave_cycles[..., None] * np.stack([np.cos(wave_angle), np.sin(wave_angle)], -1)).astype(f32),
        wave_phase=rng.uniform(0.0, 2 * math.pi, (n, _TEXTURE_WAVES)).astype(f32),
        wave_amp=rng.uniform(*profile.wave_amp, (n, _TEXTURE_WAVES)).astype(f32),
        texture_tint=rng.uniform(0.5, 1.0, (n, 3)).astype(f32),
        object_colors=rng.uniform(0.04, 0.96, (n, _COLOR_CANDIDATES, 3)).astype(f32),
        line_start=rng.uniform(0.0, size, (n, lines, 2)).astype(f32),
        line_vector=(line_length[..., None] * np.stack([np.cos(line_angle), np.sin(line_angle)], -1)).astype(f32),
        line_active=rng.random((n, lines)) < 0.75,
        dot_position=rng.uniform(0.0, size, (n, dots, 2)).astype(f32),
        dot_size=rng.integers(1, 2 * thickness + 1, (n, dots)),
        dot_active=rng.random((n, dots)) < 0.6,
        clutter_colors=rng.uniform(0.0, 1.0, (n, lines + dots, _COLOR_CANDIDATES, 3)).astype(f32),
    )
    draws.update(_draw_hard(rng, n, size, profile, center, radius))
    return _Draws(**draws)


def _draw_hard(
    rng: np.random.Generator, n: int, size: int, profile: _Profile, center: np.ndarray, radius: np.ndarray
) -> dict[str, np.ndarray]:
    """The hard-only draws (none at all for the standard profile, so its images stay as they were)."""
    f32 = np.float32
    k = profile.distractor_shapes
    if profile.contrast is None:
        contrast = np.zeros(n, dtype=f32)
    else:
        contrast = rng.uniform(*profile.contrast, n).astype(f32)
    d_radius = rng.uniform(*profile.distractor_radius, (n, k)) * size
    d_center = rng.uniform(0.0, size, (n, k, 2))
    d_rotation = rng.uniform(0.0, 2 * math.pi, (n, k))
    d_labels = rng.integers(0, len(SHAPE_CLASSES), (n, k))
    d_colors = rng.uniform(0.0, 1.0, (n, k, _COLOR_CANDIDATES, 3)).astype(f32)
    if profile.occluder_probability > 0:
        through = center + rng.uniform(-0.4, 0.4, (n, 2)) * radius[:, None]
        angle = rng.uniform(0.0, 2 * math.pi, n)
        direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        half = 1.2 * radius[:, None]
        start, vector = through - half * direction, 2 * half * direction
        active = rng.random(n) < profile.occluder_probability
        occluder_colors = rng.uniform(0.0, 1.0, (n, _COLOR_CANDIDATES, 3)).astype(f32)
    else:
        start, vector = np.zeros((n, 2)), np.zeros((n, 2))
        active = np.zeros(n, dtype=bool)
        occluder_colors = np.zeros((n, _COLOR_CANDIDATES, 3), dtype=f32)
    return dict(
        contrast=contrast,
        distractor_labels=d_labels.astype(np.int64),
        distractor_center=d_center.astype(f32),
        distractor_radius=d_radius.astype(f32),
        distractor_rotation=np.stack([np.cos(d_rotation), np.sin(d_rotation)], axis=-1).astype(f32),
        distractor_colors=d_colors,
        occluder_start=start.astype(f32),
        occluder_vector=vector.astype(f32),
        occluder_active=active,
        occluder_colors=occluder_colors,
    )


def _line_thickness(size: int) -> int:
    """Distractor line width in pixels: 1 at 32x32, scaling with the image side."""
    return max(1, size // 32)


def _pick_distinct(candidates: np.ndarray, reference: np.ndarray, min_distance: float) -> np.ndarray:
    """Per row, the first candidate colour at least ``min_distance`` from ``reference`` (else the farthest one).

    candidates [..., C, 3], reference [..., 3] -> [..., 3].
    """
    distance = np.linalg.norm(candidates - reference[..., None, :], axis=-1)
    far_enough = distance >= min_distance
    choice = np.where(far_enough.any(axis=-1), far_enough.argmax(axis=-1), distance.argmax(axis=-1))
    return np.take_along_axis(candidates, choice[..., None, None], axis=-2)[..., 0, :]


# ---------------------------------------------------------------------------------------------------- rendering


def _background(d: _Draws, size: int) -> np.ndarray:
    """Smooth colour gradient plus a low-contrast tinted texture (sum of sinusoids), float32 [m, S, S, 3] in ~[0, 1].

    Each wave sin(2 pi (fx x + fy y) + phase) is expanded as sin(a)cos(b) + cos(a)sin(b) with a depending on x only and
    b on y only, so the whole texture is one small batched matrix product.
    """
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5  # [S], image centre at 0
    gradient = (d.bg_direction[:, 1, None] * grid)[:, :, None] + (d.bg_direction[:, 0, None] * grid)[:, None, :]
    two_pi = np.float32(2 * math.pi)
    ax = two_pi * d.wave_freq[:, :, 0, None] * grid + d.wave_phase[:, :, None]  # [m, K, S] along x
    by = two_pi * d.wave_freq[:, :, 1, None] * grid  # [m, K, S] along y
    amp = d.wave_amp[:, :, None]
    left = np.concatenate([amp * np.cos(by), amp * np.sin(by)], axis=1).transpose(0, 2, 1)  # [m, S(y), 2K]
    right = np.concatenate([np.sin(ax), np.cos(ax)], axis=1)  # [m, 2K, S(x)]
    texture = np.matmul(left, right)  # [m, S, S]
    image = gradient[..., None] * d.bg_delta[:, None, None, :]
    image += texture[..., None] * d.texture_tint[:, None, None, :]
    image += d.bg_base[:, None, None, :]
    return image


def _shape_masks(labels: np.ndarray, center: np.ndarray, radius: np.ndarray, rotation: np.ndarray,
                 size: int) -> np.ndarray:
    """The mask of one shape per row, bool [m, S, S], evaluating each class's test on all its rows at once."""
    pixels = np.arange(size, dtype=np.float32) + 0.5
    masks = np.empty((labels.shape[0], size, size), dtype=bool)
    for label, inside in enumerate(_SHAPE_TESTS):
        rows = np.flatnonzero(labels == label)
        if rows.size == 0:
            continue
        inverse = (1.0 / radius[rows])[:, None]
        dx = (pixels - center[rows, 0, None]) * inverse  # [mc, S] along x
        dy = (pixels - center[rows, 1, None]) * inverse  # [mc, S] along y
        cos, sin = rotation[rows, 0, None], rotation[rows, 1, None]
        u = (dx * cos)[:, None, :] + (dy * sin)[:, :, None]
        v = (dy * cos)[:, :, None] - (dx * sin)[:, None, :]
        masks[rows] = inside(u, v)
    return masks


def _object_masks(d: _Draws, size: int) -> np.ndarray:
    """The object mask of every image, bool [m, S, S]."""
    return _shape_masks(d.labels, d.center, d.radius, d.rotation, size)


def _object_colors(d: _Draws, background: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Object colours (8-bit steps), each far from the mean background under its mask; float32 [m, 3] in [0, 1]."""
    m = masks.shape[0]
    weights = masks.reshape(m, 1, -1).astype(np.float32)
    area = weights.sum(axis=2)
    local = np.matmul(weights, background.reshape(m, -1, 3))[:, 0, :] / np.maximum(area, 1.0)
    if d.contrast.any():
        distance = np.linalg.norm(d.object_colors - local[:, None, :], axis=-1)
        choice = np.abs(distance - d.contrast[:, None]).argmin(axis=1)
        chosen = np.take_along_axis(d.object_colors, choice[:, None, None], axis=1)[:, 0, :]
    else:
        chosen = _pick_distinct(d.object_colors, local, _OBJECT_MIN_DISTANCE)
    return np.rint(chosen * 255.0).astype(np.float32) / 255.0


def _scatter_points(image: np.ndarray, x: np.ndarray, y: np.ndarray, keep: np.ndarray, colors: np.ndarray) -> None:
    """Paint pixels (x, y) (float pixel coordinates, [m, ...]) where ``keep``, each with ``colors`` [m, ..., 3]."""
    m, size = image.shape[0], image.shape[1]
    col = np.floor(x).astype(np.int64)
    row = np.floor(y).astype(np.int64)
    keep = keep & (col >= 0) & (col < size) & (row >= 0) & (row < size)
    owner = np.arange(m, dtype=np.int64).reshape((m,) + (1,) * (x.ndim - 1))
    flat = (owner * size + row) * size + col
    image.reshape(-1, 3)[flat[keep]] = np.broadcast_to(colors, x.shape + (3,))[keep]


def _draw_clutter(image: np.ndarray, d: _Draws, colors: np.ndarray) -> None:
    """Thin line segments and tiny square dots, colours [m, L + D, 3], painted into ``image`` in place."""
    size = image.shape[1]
    thickness = _line_thickness(size)
    steps = 2 * math.ceil(0.6 * size) + 1  # <= 0.5 px between samples along the longest segment
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    offsets = np.arange(thickness, dtype=np.float32)
    # lines: [m, L, steps, thickness(y), thickness(x)]
    x = d.line_start[:, :, 0, None] + d.line_vector[:, :, 0, None] * t
    y = d.line_start[:, :, 1, None] + d.line_vector[:, :, 1, None] * t
    shape = x.shape + (thickness, thickness)
    lx = np.broadcast_to(x[..., None, None] + offsets, shape)
    ly = np.broadcast_to(y[..., None, None] + offsets[:, None], shape)
    keep = np.broadcast_to(d.line_active[:, :, None, None, None], shape)
    lines = d.line_active.shape[1]
    line_colors = colors[:, :lines, None, None, None, :]
    _scatter_points(image, lx, ly, keep, line_colors)
    # dots: [m, D, side(y), side(x)] with offsets clamped to each dot's own size
    side = 2 * thickness
    grid = np.arange(side, dtype=np.float32)
    limit = (d.dot_size - 1).astype(np.float32)[:, :, None]
    step = np.minimum(grid, limit)  # [m, D, side]
    dx = d.dot_position[:, :, 0, None, None] + step[:, :, None, :]
    dy = d.dot_position[:, :, 1, None, None] + step[:, :, :, None]
    shape = dx.shape[:2] + (side, side)
    keep = np.broadcast_to(d.dot_active[:, :, None, None], shape)
    dot_colors = colors[:, lines:, None, None, :]
    _scatter_points(image, np.broadcast_to(dx, shape), np.broadcast_to(dy, shape), keep, dot_colors)


@functools.cache
def _noise_table(std: float = _NOISE_STD) -> np.ndarray:
    """256 quantiles of N(0, std^2), indexed by a random byte: Gaussian pixel noise at one lookup per value."""
    normal = statistics.NormalDist(0.0, std)
    return np.array([normal.inv_cdf((k + 0.5) / 256) for k in range(256)], dtype=np.float32)


def _draw_distractor_shapes(image: np.ndarray, d: _Draws, object_colors: np.ndarray) -> None:
    """Small filled shapes of random classes (hard only), each in a colour far from the object's, painted in place."""
    size = image.shape[1]
    colors = _pick_distinct(d.distractor_colors, object_colors[:, None, :], _DISTRACTOR_MIN_DISTANCE)  # [m, K, 3]
    for k in range(d.distractor_labels.shape[1]):
        mask = _shape_masks(d.distractor_labels[:, k], d.distractor_center[:, k], d.distractor_radius[:, k],
                            d.distractor_rotation[:, k], size)
        image[mask] = np.repeat(colors[:, k], mask.sum(axis=(1, 2)), axis=0)


def _draw_occluders(image: np.ndarray, masks: np.ndarray, d: _Draws, object_colors: np.ndarray) -> None:
    """A bar across the object (hard only, where active), painted over it; its pixels leave the object's mask."""
    if not d.occluder_active.any():
        return
    m, size = image.shape[0], image.shape[1]
    thickness = 2 * _line_thickness(size)
    steps = 4 * size + 1
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    offsets = np.arange(thickness, dtype=np.float32) - (thickness - 1) / 2
    x = d.occluder_start[:, 0, None] + d.occluder_vector[:, 0, None] * t  # [m, steps]
    y = d.occluder_start[:, 1, None] + d.occluder_vector[:, 1, None] * t
    shape = x.shape + (thickness, thickness)
    bx = np.broadcast_to(x[..., None, None] + offsets, shape)
    by = np.broadcast_to(y[..., None, None] + offsets[:, None], shape)
    col, row = np.floor(bx).astype(np.int64), np.floor(by).astype(np.int64)
    keep = d.occluder_active[:, None, None, None] & (col >= 0) & (col < size) & (row >= 0) & (row < size)
    owner = np.broadcast_to(np.arange(m, dtype=np.int64)[:, None, None, None], shape)
    bar = np.zeros((m, size, size), dtype=bool)
    bar[owner[keep], row[keep], col[keep]] = True
    colors = _pick_distinct(d.occluder_colors, object_colors, _DISTRACTOR_MIN_DISTANCE)
    image[bar] = np.repeat(colors, bar.sum(axis=(1, 2)), axis=0)
    masks &= ~bar


def _render_chunk(
    d: _Draws, size: int, rng: np.random.Generator, profile: _Profile
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the images of ``d``: (images uint8 [m, S, S, 3], masks bool [m, S, S], object colours uint8 [m, 3])."""
    image = _background(d, size)
    masks = _object_masks(d, size)
    colors = _object_colors(d, image, masks)
    clutter = _pick_distinct(d.clutter_colors, colors[:, None, :], _DISTRACTOR_MIN_DISTANCE)
    _draw_clutter(image, d, clutter)
    _draw_distractor_shapes(image, d, colors)
    image[masks] = np.repeat(colors, masks.sum(axis=(1, 2)), axis=0)
    _draw_occluders(image, masks, d, colors)
    image *= 255.0
    noise = np.frombuffer(rng.bytes(image.size), dtype=np.uint8).reshape(image.shape)
    image += _noise_table(profile.noise_std)[noise]
    np.clip(image, 0.0, 255.0, out=image)
    image += 0.5
    return image.astype(np.uint8), masks, np.rint(colors * 255.0).astype(np.uint8)


def _render(n: int, size: int, seed: int, difficulty: str = "standard") -> ShapesArrays:
    """Generate ``n`` images of side ``size`` from ``seed`` (in chunks of at most ``_CHUNK_PIXELS`` pixels)."""
    rng = np.random.default_rng(seed)
    profile = _PROFILES[difficulty]
    draws = _draw(rng, n, size, profile)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=bool)
    colors = np.empty((n, 3), dtype=np.uint8)
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        images[start:stop], masks[start:stop], colors[start:stop] = _render_chunk(draws.rows(start, stop), size, rng, profile)
    return ShapesArrays(images, masks, draws.labels, draws.center, draws.radius, colors)


# ---------------------------------------------------------------------------------------------------- caching

_ARRAY_SPECS: dict[str, tuple[np.dtype, Callable[[int, int], tuple[int, ...]]]] = {
    "images": (np.dtype(np.uint8), lambda n, s: (n, s, s, 3)),
    "masks": (np.dtype(bool), lambda n, s: (n, s, s)),
    "labels": (np.dtype(np.int64), lambda n, s: (n,)),
    "centers": (np.dtype(np.float32), lambda n, s: (n, 2)),
    "radii": (np.dtype(np.float32), lambda n, s: (n,)),
    "colors": (np.dtype(np.uint8), lambda n, s: (n, 3)),
}


def shapes_cache_path(
    cache_dir: str | os.PathLike[str], n: int, image_size: int, seed: int, difficulty: str = "standard"
) -> Path:
    """The ``.npz`` file that caches ``generate_shapes(n, image_size, seed, difficulty=...)`` for this generator
    version."""
    prefix = "shapes" if difficulty == "standard" else f"shapes-{difficulty}"
    return Path(cache_dir) / f"{prefix}-v{GENERATOR_VERSION}-n{n}-size{image_size}-seed{seed}.npz"


def _load_npz(path: Path, n: int, size: int) -> ShapesArrays | None:
    """The arrays cached at ``path``, or None when the file is missing, unreadable or not what was asked for."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in _ARRAY_SPECS}
    except (OSError, KeyError, ValueError, EOFError):
        return None
    for name, (dtype, shape) in _ARRAY_SPECS.items():
        if arrays[name].dtype != dtype or arrays[name].shape != shape(n, size):
            return None
    return ShapesArrays(**arrays)


def _save_npz(path: Path, arrays: ShapesArrays) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, **{name: getattr(arrays, name) for name in _ARRAY_SPECS})
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        warnings.warn(f"could not cache the shapes dataset at {path}: {error}", RuntimeWarning, stacklevel=4)


@functools.lru_cache(maxsize=4)
def _generate_cached(n: int, size: int, seed: int, cache_dir: str | None, difficulty: str) -> ShapesArrays:
    """Generated (or loaded) arrays, kept for the process; read-only so no caller can alter the shared copy."""
    path = shapes_cache_path(cache_dir, n, size, seed, difficulty) if cache_dir is not None else None
    arrays = _load_npz(path, n, size) if path is not None and path.is_file() else None
    if arrays is None:
        arrays = _render(n, size, seed, difficulty)
        if path is not None:
            _save_npz(path, arrays)
    for name in _ARRAY_SPECS:
        getattr(arrays, name).flags.writeable = False
    return arrays


def clear_shapes_cache() -> None:
    """Forget the generated sets kept in this process (files in a ``cache_dir`` stay)."""
    _generate_cached.cache_clear()


def _check_size(image_size: int) -> int:
    """``image_size`` as an int, or a DataError when it is too small for the shapes to be drawn."""
    if isinstance(image_size, bool) or int(image_size) != image_size or image_size < MIN_IMAGE_SIZE:
        raise DataError(f"shapes image_size must be a whole number >= {MIN_IMAGE_SIZE}, got {image_size!r}")
    return int(image_size)


def _check_difficulty(difficulty: str) -> str:
    """``difficulty`` when it is one of DIFFICULTIES, else a DataError listing them."""
    if difficulty not in _PROFILES:
        raise DataError(f"unknown shapes difficulty {difficulty!r}; valid: {', '.join(DIFFICULTIES)}")
    return difficulty


def _check_seed(seed: int) -> int:
    """``seed`` as an int, or a DataError when it is not a non-negative whole number."""
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise DataError(f"seed must be a non-negative whole number, got {seed!r}")
    return int(seed)


def generate_shapes(
    n: int, image_size: int = 32, seed: int = 0, cache_dir: str | os.PathLike[str] | None = None,
    difficulty: str = "standard",
) -> ShapesArrays:
    """``n`` shapes images (labels exactly balanced over the 10 classes), bit-identical for the same (n, size, seed,
    difficulty). ``difficulty``: "standard" (the dataset ``shapes``) or "hard" (``shapes-hard``, see the module).

    Results are kept in this process; with ``cache_dir`` they are also stored as / loaded from an ``.npz`` file named
    from the parameters and the generator version. The returned arrays are read-only (copy them to modify).
    """
    count = check_count(n, "n")
    if count is None:
        raise DataError("generate_shapes needs the number of images n")
    cache = None if cache_dir is None else str(Path(cache_dir).expanduser().resolve())
    return _generate_cached(count, _check_size(image_size), _check_seed(seed), cache, _check_difficulty(difficulty))


# ---------------------------------------------------------------------------------------------------- dataset


def split_seed(seed: int, split: str) -> int:
    """The generator seed of a split: ``seed * 1000 + {train: 0, val: 1, test: 2}`` (splits never share images)."""
    if split not in _SPLIT_OFFSETS:
        raise DataError(f"unknown shapes split {split!r}; valid splits: {', '.join(_SPLIT_OFFSETS)}")
    return _check_seed(seed) * 1000 + _SPLIT_OFFSETS[split]


def shapes_dataset_name(difficulty: str = "standard") -> str:
    """The dataset name of a difficulty: "shapes" or "shapes-hard"."""
    return "shapes" if _check_difficulty(difficulty) == "standard" else f"shapes-{difficulty}"


def shapes_info(image_size: int = 32, normalize: bool = True, difficulty: str = "standard") -> DataInfo:
    """The DataInfo of the shapes dataset (``difficulty``: standard = ``shapes``, hard = ``shapes-hard``)."""
    hard = _check_difficulty(difficulty) == "hard"
    return DataInfo(
        name=shapes_dataset_name(difficulty),
        num_classes=len(SHAPE_CLASSES),
        class_names=SHAPE_CLASSES,
        image_size=_check_size(image_size),
        mean=(SHAPES_HARD_MEAN if hard else SHAPES_MEAN) if normalize else IDENTITY_MEAN,
        std=(SHAPES_HARD_STD if hard else SHAPES_STD) if normalize else IDENTITY_STD,
        augment=DEFAULT_AUGMENT,
    )


class ShapesDataset(ArrayDataset):
    """One split ("train", "val" or "test") of the shapes dataset, with the ground-truth object masks
    (``difficulty="hard"``: the ``shapes-hard`` variant).

    Default sizes: train 10,000, val 2,000, test 2,000. ``.images`` uint8 [N, H, W, 3], ``.masks`` bool [N, H, W],
    ``.labels`` int64 [N], ``.arrays`` (the :class:`ShapesArrays`, with centres, radii and colours).
    """

    def __init__(
        self,
        split: str = "train",
        n: int | None = None,
        image_size: int = 32,
        seed: int = 0,
        normalize: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        difficulty: str = "standard",
    ) -> None:
        derived = split_seed(seed, split)
        count = check_count(n, f"the number of {split} images") or SPLIT_SIZES[split]
        arrays = generate_shapes(count, image_size, derived, cache_dir=cache_dir, difficulty=difficulty)
        super().__init__(arrays.images, arrays.labels, shapes_info(image_size, normalize, difficulty))
        self.difficulty = difficulty
        self.arrays = arrays
        self.masks = arrays.masks
        self.split = split
        self.seed = int(seed)

    def mask(self, index: int) -> torch.Tensor:
        """The ground-truth object mask of item ``index``, bool [H, W]."""
        return torch.tensor(self.masks[index])

    def masks_tensor(self) -> torch.Tensor:
        """All ground-truth masks, bool [N, H, W]."""
        return torch.tensor(self.masks)
