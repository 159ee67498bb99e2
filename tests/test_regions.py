"""Convex-hull regions and their metrics (``interpgrad.regions``): hulls of pixel sets worked out by hand and checked
against ``scipy.spatial.ConvexHull``, the important pixels' counts and ties, dropping and merging components, RS
against hand-computed probabilities (empty region: 0; whole image: the fully occluded image's drop) and against one
image at a time, the random control, ``compare_regions`` on a case small enough to add up, and the drawing.

Hand cases use ``GreyLinear``: the model undoes the normalisation, averages the channels into a grey level and gives
class 0 the logit ``W · grey`` and class 1 the constant ``b``, so p_0 = sigmoid(W · grey - b) and occluding pixels
with black removes their terms from the sum.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage
from scipy.spatial import ConvexHull
from torch import nn

from interpgrad import ConfigError
from interpgrad.data.transforms import denormalize, normalize
from interpgrad.explain.mechanics import content_seed
from interpgrad.metrics.mechanics import blurred
from interpgrad.metrics.statistics import bootstrap_mean
from interpgrad.regions import (
    COLUMNS,
    Region,
    compare_regions,
    convex_hull_regions,
    draw_regions,
    important_pixels,
    occlusion_values,
    random_regions_like,
    region_complexity,
    region_sensitivity,
    regions_of_maps,
    summarise_regions,
    union_mask,
)

sys.path.insert(0, str(Path(__file__).parent))
import small_models  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN = (0.5, 0.25, 0.125)
STD = (0.25, 0.5, 2.0)


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


class GreyLinear(nn.Module):
    """Class 0: ``W · grey``, class 1: ``b``; grey = the channel mean of the pixels ``x * STD + MEAN``."""

    def __init__(self, weight: torch.Tensor, bias: float) -> None:
        super().__init__()
        self.register_buffer("weight", weight.double())
        self.bias = bias
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        grey = denormalize(x.double(), MEAN, STD).mean(dim=1)
        first = (grey * self.weight).flatten(1).sum(dim=1)
        return torch.stack([first, torch.full_like(first, self.bias)], dim=1)


def grey_images(grey: torch.Tensor) -> torch.Tensor:
    """Grey images ``[B, H, W]`` in pixel space as normalised RGB ``[B, 3, H, W]`` (float64)."""
    return normalize(grey.double().unsqueeze(1).expand(-1, 3, -1, -1), MEAN, STD)


def mask_of(shape: tuple[int, int], pixels: list[tuple[int, int]]) -> np.ndarray:
    """A bool mask with the given (x, y) pixels set."""
    mask = np.zeros(shape, dtype=bool)
    for x, y in pixels:
        mask[y, x] = True
    return mask


def vertex_set(region: Region) -> set[tuple[int, int]]:
    return {(int(x), int(y)) for x, y in region.polygon}


# ---------------------------------------------------------------------------------------------- important pixels


def test_the_top_q_percent_is_exactly_that_many_of_the_largest_pixels() -> None:
    values = torch.rand(3, 10, 10, dtype=torch.float64) + 0.01
    masks = important_pixels(values, q=10.0)
    assert masks.shape == (3, 10, 10) and masks.dtype == torch.bool
    for value, mask in zip(values, masks):
        assert int(mask.sum()) == 10
        assert float(value[mask].min()) > float(value[~mask].max())
    # floor(q / 100 * H * W + 0.5): 12.5 % of 16 = 2, 15.625 % of 16 = 2.5 -> 3, 0 % -> none, 100 % -> all
    small = torch.arange(1.0, 17.0).view(4, 4)
    assert [int(important_pixels(small, q).sum()) for q in (12.5, 15.625, 0.0, 100.0)] == [2, 3, 0, 16]
    assert important_pixels(small, 12.5).flatten().nonzero().flatten().tolist() == [14, 15]


def test_ties_are_broken_in_raster_order() -> None:
    flat = torch.full((4, 4), 2.0)
    assert important_pixels(flat, 25.0).flatten().nonzero().flatten().tolist() == [0, 1, 2, 3]
    ties = torch.tensor([[1.0, 3.0, 2.0, 2.0], [2.0, 0.5, 2.0, 3.0]])
    # 4 of 8: the two 3s, then the first two 2s in raster order of the four
    assert important_pixels(ties, 50.0).flatten().nonzero().flatten().tolist() == [1, 2, 3, 7]


def test_only_positive_pixels_qualify_and_an_all_zero_map_gives_an_empty_mask() -> None:
    sparse = torch.zeros(10, 10)
    sparse[2, 3], sparse[5, 5], sparse[9, 0] = 1.0, 2.0, 0.5
    assert int(important_pixels(sparse, 50.0).sum()) == 3
    assert not important_pixels(torch.zeros(6, 6), 50.0).any()
    signed = torch.tensor([[-5.0, 1.0], [0.0, -1.0]])
    assert important_pixels(signed, 100.0).tolist() == [[False, True], [False, False]]
    assert important_pixels(signed.abs(), 50.0).tolist() == [[True, True], [False, False]]
    with_nan = torch.tensor([[math.nan, 1.0], [2.0, 0.0]])
    assert important_pixels(with_nan, 75.0).tolist() == [[False, True], [True, False]]


def test_a_threshold_a_batch_and_channel_reduction() -> None:
    values = torch.tensor([[0.1, 0.5], [0.7, 0.5]])
    assert important_pixels(values, threshold=0.5).tolist() == [[False, True], [True, True]]
    batch = torch.rand(4, 8, 8)
    assert torch.equal(important_pixels(batch, 20.0), torch.stack([important_pixels(m, 20.0) for m in batch]))
    raw = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert torch.equal(important_pixels(raw, 20.0), important_pixels(raw.abs().sum(dim=1), 20.0))
    assert torch.equal(important_pixels(raw.numpy(), 20.0), important_pixels(raw, 20.0))
    with pytest.raises(ConfigError, match="percentage"):
        important_pixels(batch, 120.0)
    with pytest.raises(ConfigError, match="expected maps"):
        important_pixels(torch.rand(8))


# ---------------------------------------------------------------------------------------------------- hulls


def test_the_hull_of_a_square_is_its_four_corners() -> None:
    mask = np.zeros((12, 12), dtype=bool)
    mask[3:8, 2:7] = True  # x 2..6, y 3..7
    (region,) = convex_hull_regions(mask, min_size=1)
    assert region.polygon.dtype == np.int32 and region.polygon.shape == (4, 2)
    assert vertex_set(region) == {(2, 3), (6, 3), (6, 7), (2, 7)}
    assert region.area == region.pixels == 25
    assert np.array_equal(region.mask, mask)


def test_the_hull_of_an_l_shape_and_its_area_by_picks_theorem() -> None:
    # A vertical bar x 1..2, y 1..6 and a foot x 1..6, y 5..6. The hull cuts the corner with the diagonal
    # (2, 1) -> (6, 5): the pixels with x - y <= 1, i.e. 2 + 3 + 4 + 5 + 6 + 6 = 26 of them; by Pick's theorem,
    # area 17 (the 5 x 5 square less the triangle of area 8) + 16 boundary points / 2 + 1 = 26.
    mask = np.zeros((9, 9), dtype=bool)
    mask[1:7, 1:3] = True
    mask[5:7, 1:7] = True
    (region,) = convex_hull_regions(mask, min_size=1)
    assert vertex_set(region) == {(1, 1), (2, 1), (6, 5), (6, 6), (1, 6)}
    assert region.pixels == 20 and region.area == 26
    ys, xs = np.mgrid[0:9, 0:9]
    assert np.array_equal(region.mask, (xs >= 1) & (xs <= 6) & (ys >= 1) & (ys <= 6) & (xs - ys <= 1))


def test_two_far_blobs_are_two_regions_in_raster_order() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[12:15, 1:4] = True  # lower left, first pixel (1, 12)
    mask[2:4, 15:19] = True  # upper right, first pixel (15, 2)
    first, second = convex_hull_regions(mask, min_size=1)
    assert vertex_set(first) == {(15, 2), (18, 2), (18, 3), (15, 3)} and first.area == 8
    assert vertex_set(second) == {(1, 12), (3, 12), (3, 14), (1, 14)} and second.area == 9
    assert not (first.mask & second.mask).any()
    assert region_complexity([first, second], mask.shape) == (2, 17 / 400)
    assert convex_hull_regions(np.zeros((5, 5), dtype=bool)) == []


def lattice_points_of(hull: ConvexHull, shape: tuple[int, int], slack: float) -> np.ndarray:
    """Bool ``[H, W]``: pixel centres within ``slack`` of the hull (0: inside or on it)."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    points = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)
    distances = points @ hull.equations[:, :2].T + hull.equations[:, 2]
    return (distances <= slack + 1e-9).all(axis=1).reshape(shape)


def boundary_points(vertices: np.ndarray) -> int:
    """Lattice points on a closed polygon: the sum of gcd(|dx|, |dy|) over its edges."""
    edges = np.roll(vertices, -1, axis=0) - vertices
    return int(sum(math.gcd(int(abs(dx)), int(abs(dy))) for dx, dy in edges))


def test_hulls_agree_with_scipy_on_random_blobs() -> None:
    """Components: scipy.ndimage's 8-connected labels of at least min_size pixels, in the same order. Vertices: the
    same set as scipy's hull. Area: the fill holds every pixel centre inside or on scipy's hull (their number is Pick's
    area + boundary / 2 + 1) and nothing farther than half a pixel outside it (the hull's digital edges)."""
    generator = np.random.default_rng(0)
    shape = (24, 24)
    checked = 0
    for _ in range(40):
        mask = np.zeros(shape, dtype=bool)
        centre = generator.integers(6, 18, size=2)
        points = np.clip(centre + np.rint(generator.normal(scale=3.0, size=(25, 2))).astype(int), 0, 23)
        mask[points[:, 1], points[:, 0]] = True
        labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
        components = [np.argwhere(labels == label)[:, ::-1] for label in range(1, count + 1)]
        components = [component for component in components if len(component) >= 3]
        regions = convex_hull_regions(mask, min_size=3)
        assert len(regions) == len(components)
        for region, component in zip(regions, components):
            assert region.pixels == len(component) and region.mask[component[:, 1], component[:, 0]].all()
            if np.linalg.matrix_rank(component - component[0]) < 2:
                continue  # collinear: scipy has no 2-D hull (see the degenerate test)
            hull = ConvexHull(component)
            vertices = component[hull.vertices]
            assert vertex_set(region) == {(int(x), int(y)) for x, y in vertices}
            exact = lattice_points_of(hull, shape, 0.0)
            assert int(exact.sum()) == round(hull.volume + boundary_points(vertices) / 2 + 1)
            assert (exact <= region.mask).all()
            assert (region.mask <= lattice_points_of(hull, shape, 0.5)).all()
            assert region.area == int(region.mask.sum()) >= int(exact.sum())
            checked += 1
    assert checked >= 30


def test_degenerate_hulls_fill_the_pixel_or_the_digital_segment() -> None:
    dot, = convex_hull_regions(mask_of((9, 9), [(4, 2)]), min_size=1)
    assert dot.polygon.tolist() == [[4, 2]] and dot.area == dot.pixels == 1 and dot.mask[2, 4]
    row, = convex_hull_regions(mask_of((9, 9), [(x, 6) for x in range(1, 7)]), min_size=1)
    assert vertex_set(row) == {(1, 6), (6, 6)} and row.area == row.pixels == 6
    diagonal_pixels = [(k, 8 - k) for k in range(2, 8)]
    diagonal, = convex_hull_regions(mask_of((9, 9), diagonal_pixels), min_size=1)
    assert vertex_set(diagonal) == {(2, 6), (7, 1)}
    assert np.array_equal(diagonal.mask, mask_of((9, 9), diagonal_pixels)) and diagonal.area == 6


def test_components_under_min_size_are_dropped() -> None:
    mask = mask_of((16, 16), [(0, 0)] + [(5, y) for y in range(3)] + [(10, y) for y in range(4)])
    mask[10:13, 10:14] = True  # 12 pixels
    assert [region.pixels for region in convex_hull_regions(mask, min_size=1)] == [1, 3, 4, 12]
    assert [region.pixels for region in convex_hull_regions(mask, min_size=4)] == [4, 12]
    assert [region.pixels for region in convex_hull_regions(mask, min_size=5)] == [12]
    assert convex_hull_regions(mask, min_size=13) == []
    with pytest.raises(ConfigError, match="must be >= 0"):
        convex_hull_regions(mask, merge_distance=-1)


def test_merging_joins_components_up_to_the_gap_and_not_beyond() -> None:
    for gap in (1, 2, 5):
        # along a row: x 0..2 and x (3 + gap)..(5 + gap), separated by `gap` background pixels
        row = np.zeros((6, 20), dtype=bool)
        row[1:4, 0:3] = True
        row[1:4, 3 + gap:6 + gap] = True
        assert len(convex_hull_regions(row, min_size=1, merge_distance=gap - 1)) == 2
        merged, = convex_hull_regions(row, min_size=1, merge_distance=gap)
        assert merged.pixels == 18 and merged.area == 3 * (6 + gap)
        # along a diagonal: the same gap in Chebyshev distance
        diagonal = np.zeros((20, 20), dtype=bool)
        diagonal[0:2, 0:2] = True
        diagonal[2 + gap:4 + gap, 2 + gap:4 + gap] = True
        assert len(convex_hull_regions(diagonal, min_size=1, merge_distance=gap - 1)) == 2
        assert len(convex_hull_regions(diagonal, min_size=1, merge_distance=gap)) == 1


def test_merging_is_transitive_and_small_components_never_bridge() -> None:
    chain = np.zeros((5, 30), dtype=bool)
    chain[1:4, 0:3] = chain[1:4, 6:9] = chain[1:4, 12:15] = True  # gaps of 3; first to last: 9 apart
    assert [region.pixels for region in convex_hull_regions(chain, min_size=1, merge_distance=3)] == [27]
    bridged = np.zeros((5, 30), dtype=bool)
    bridged[1:4, 0:3] = bridged[1:4, 8:11] = True
    bridged[2, 5] = True  # a single pixel in the middle of the gap of 5
    assert len(convex_hull_regions(bridged, min_size=1, merge_distance=2)) == 1
    assert len(convex_hull_regions(bridged, min_size=2, merge_distance=2)) == 2


def test_overlapping_hulls_count_once_in_the_area() -> None:
    ring = np.zeros((9, 9), dtype=bool)
    ring[1, 1:8] = ring[7, 1:8] = ring[1:8, 1] = ring[1:8, 7] = True  # 24 pixels, hull = the 7 x 7 square
    ring[4, 4] = True  # a dot inside the ring's hull
    outer, inner = convex_hull_regions(ring, min_size=1)
    assert (outer.area, inner.area) == (49, 1)
    assert int(union_mask([outer, inner], ring.shape).sum()) == 49
    assert region_complexity([outer, inner], ring.shape) == (2, 49 / 81)
    assert region_complexity([], ring.shape) == (0, 0.0)


# ------------------------------------------------------------------------------------------------ random control


def pieces(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected pieces of a mask, each cropped to its bounding box, in raster order."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    return [(labels == label)[box] for label, box in zip(range(1, count + 1), ndimage.find_objects(labels))]


def test_the_random_control_moves_the_same_shapes_and_is_reproducible() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[0:6, 0:2] = mask[4:6, 0:5] = True  # an L on the border (no wrapping: it must stay whole)
    mask[10:13, 12:15] = True
    control = random_regions_like(mask, 3)
    assert control.shape == mask.shape and control.dtype == bool and int(control.sum()) == int(mask.sum())
    moved = sorted(pieces(control), key=lambda piece: -int(piece.sum()))
    assert [piece.tolist() for piece in moved] == [piece.tolist() for piece in sorted(
        pieces(mask), key=lambda piece: -int(piece.sum()))]
    assert np.array_equal(random_regions_like(mask, 3), control)
    assert np.array_equal(random_regions_like(mask, np.random.default_rng(3)), control)
    assert any(not np.array_equal(random_regions_like(mask, seed), control) for seed in range(4, 8))
    assert not random_regions_like(np.zeros((6, 6), dtype=bool), 0).any()
    assert random_regions_like(np.ones((6, 6), dtype=bool), 0).all()


def test_the_random_control_falls_back_to_random_pixels_when_a_shape_no_longer_fits() -> None:
    # Two 3 x 3 blocks in a 7 x 3 image: when the first lands on rows 2..4, no 3 rows are left for the second,
    # whose 9 pixels are then drawn among the free ones. The area is kept whatever happens.
    mask = np.zeros((7, 3), dtype=bool)
    mask[0:3] = mask[4:7] = True
    blocks = 0
    for seed in range(30):
        control = random_regions_like(mask, seed)
        assert int(control.sum()) == 18
        blocks += all(piece.shape == (3, 3) and piece.all() for piece in pieces(control))
    assert 0 < blocks < 30


def test_the_random_control_of_regions_has_the_area_of_their_hulls() -> None:
    mask = np.zeros((16, 16), dtype=bool)
    mask[1:7, 1:3] = mask[5:7, 1:7] = True  # an L: hull area 26
    mask[10:12, 10:15] = True
    regions = convex_hull_regions(mask, min_size=1)
    control = random_regions_like(regions, 0)
    assert int(control.sum()) == 26 + 10 == int(union_mask(regions, mask.shape).sum())
    assert np.array_equal(control, random_regions_like(union_mask(regions, mask.shape), 0))
    assert not random_regions_like([], 0, shape=(4, 4)).any()
    with pytest.raises(ConfigError, match="image shape"):
        random_regions_like([], 0)


# -------------------------------------------------------------------------------------------- region sensitivity


def hand_model() -> tuple[GreyLinear, torch.Tensor]:
    """A 4 x 4 grey image and weights in powers of two: class 0's logit is 1.5 on the image, class 1's is 0.25."""
    weight = torch.zeros(4, 4, dtype=torch.float64)
    weight[0, 0], weight[0, 1], weight[3, 3] = 2.0, 1.0, -0.5
    grey = torch.zeros(1, 4, 4, dtype=torch.float64)
    grey[0, 0, 0], grey[0, 0, 1], grey[0, 3, 3] = 0.5, 0.75, 0.5
    return GreyLinear(weight, 0.25), grey_images(grey)  # 2 * 0.5 + 1 * 0.75 - 0.5 * 0.5 = 1.5


def test_an_empty_region_gives_exactly_zero_and_no_forward_pass() -> None:
    model, x = hand_model()
    empty = torch.zeros(1, 4, 4, dtype=torch.bool)
    rs = region_sensitivity(model, x, empty, mean=MEAN, std=STD)
    assert rs.dtype == torch.float64 and rs.tolist() == [0.0]
    assert model.calls == 1  # the clean image only


def test_occluding_the_whole_image_gives_the_drop_of_the_fully_occluded_image() -> None:
    model, x = hand_model()
    before = sigmoid(1.5 - 0.25)
    whole = torch.ones(1, 4, 4, dtype=torch.bool)
    # black: every grey level 0, class 0's logit 0
    assert region_sensitivity(model, x, whole, mean=MEAN, std=STD).item() == pytest.approx(
        (before - sigmoid(-0.25)) / before, abs=1e-12)
    # mean: every pixel the image's mean grey, 1.75 / 16 (2 + 1 - 0.5 = 2.5 times it)
    assert region_sensitivity(model, x, whole, occlusion="mean", mean=MEAN, std=STD).item() == pytest.approx(
        (before - sigmoid(2.5 * 1.75 / 16 - 0.25)) / before, abs=1e-12)
    # computed with the model on the fully occluded image, for each occlusion
    for occlusion in ("black", "mean", "blur"):
        filled = occlusion_values(x, occlusion, MEAN, STD)
        after = torch.softmax(model(filled), dim=1)[0, 0].item()
        assert region_sensitivity(model, x, whole, occlusion=occlusion, mean=MEAN, std=STD).item() == pytest.approx(
            (before - after) / before, abs=1e-12)


def test_a_partial_region_and_an_explicit_target() -> None:
    model, x = hand_model()
    region = torch.zeros(1, 4, 4, dtype=torch.bool)
    region[0, 0, 0] = True  # removes 2 * 0.5 from class 0's logit: 1.5 -> 0.5
    p0, p0_after = sigmoid(1.25), sigmoid(0.25)
    assert region_sensitivity(model, x, region, mean=MEAN, std=STD).item() == pytest.approx(
        (p0 - p0_after) / p0, abs=1e-12)
    p1, p1_after = 1 - p0, 1 - p0_after  # class 1 gains when class 0 loses: RS < 0
    assert region_sensitivity(model, x, region, target=1, mean=MEAN, std=STD).item() == pytest.approx(
        (p1 - p1_after) / p1, abs=1e-12)
    region[0, 3, 3] = True  # a negative weight too: 1.5 - 1 + 0.25 = 0.75
    assert region_sensitivity(model, x, region, mean=MEAN, std=STD).item() == pytest.approx(
        (p0 - sigmoid(0.5)) / p0, abs=1e-12)


def test_occlusion_values_in_pixel_space() -> None:
    x = normalize(torch.rand(2, 3, 8, 8, dtype=torch.float64), MEAN, STD)
    black = denormalize(occlusion_values(x, "black", MEAN, STD), MEAN, STD)
    assert torch.allclose(black, torch.zeros_like(black), atol=1e-12)
    average = denormalize(occlusion_values(x, "mean", MEAN, STD), MEAN, STD)
    expected = denormalize(x, MEAN, STD).mean(dim=(2, 3), keepdim=True).expand_as(x)
    assert torch.allclose(average, expected, atol=1e-12)
    assert torch.equal(occlusion_values(x, "blur", MEAN, STD, 5, 2.0), blurred(x, 5, 2.0))
    with pytest.raises(ConfigError, match="unknown occlusion"):
        occlusion_values(x, "white", MEAN, STD)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return small_models.cifar_resnet18()


@pytest.mark.parametrize("occlusion", ["black", "mean", "blur"])
def test_batched_rs_equals_one_image_and_one_mask_at_a_time(resnet: nn.Module, occlusion: str) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 32, 32, generator=generator)
    masks = torch.rand(3, 4, 32, 32, generator=generator) < 0.2
    masks[1, 2] = False  # an empty mask among them
    masks[2, 0] = True  # the whole image
    batched = region_sensitivity(resnet, x, masks, occlusion=occlusion, mean=MEAN, std=STD, max_batch=5)
    assert batched.shape == (3, 4) and batched[1, 2].item() == 0.0
    with torch.no_grad():
        probabilities = torch.softmax(resnet(x).double(), dim=1)
    predicted = probabilities.argmax(dim=1)
    filler = occlusion_values(x, occlusion, MEAN, STD)
    for i in range(3):
        for m in range(4):
            single = region_sensitivity(resnet, x[i:i + 1], masks[i, m][None], occlusion=occlusion, mean=MEAN, std=STD)
            assert single.item() == pytest.approx(batched[i, m].item(), abs=1e-5)
            with torch.no_grad():
                occluded = torch.where(masks[i, m], filler[i], x[i])[None]
                after = torch.softmax(resnet(occluded).double(), dim=1)[0, predicted[i]]
            before = probabilities[i, predicted[i]]
            assert batched[i, m].item() == pytest.approx(((before - after) / before).item(), abs=1e-5)


def test_rs_scores_everything_in_as_few_forward_passes_as_max_batch_allows() -> None:
    model, x = hand_model()
    x = x.expand(4, -1, -1, -1)
    masks = torch.rand(4, 3, 4, 4) < 0.5
    masks[0, 0] = masks[3, 2] = False
    masks[1, 1] = True
    for max_batch, passes in ((5, 3), (14, 1), (1, 14)):  # 4 clean images + 10 non-empty masks
        model.calls = 0
        region_sensitivity(model, x, masks, mean=MEAN, std=STD, max_batch=max_batch)
        assert model.calls == passes
    with pytest.raises(ConfigError, match="do not fit"):
        region_sensitivity(model, x, masks[:2], mean=MEAN, std=STD)


# -------------------------------------------------------------------------------------------- compare_regions


def comparison_case() -> tuple[GreyLinear, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 8 x 8 images. Image 0: a 2 x 2 blob top left (grey 0.5, weight 1) and one bottom right (grey 0.125,
    weight 2): class 0's logit 2 + 1 = 3 against class 1's 0.5. Its original map marks both blobs, its GAD map only
    the top-left one. Image 1: all-zero maps."""
    weight = torch.zeros(8, 8, dtype=torch.float64)
    weight[0:2, 0:2], weight[6:8, 6:8] = 1.0, 2.0
    grey = torch.zeros(2, 8, 8, dtype=torch.float64)
    grey[:, 0:2, 0:2], grey[:, 6:8, 6:8] = 0.5, 0.125
    original = torch.zeros(2, 8, 8)
    original[0, 0:2, 0:2], original[0, 6:8, 6:8] = 4.0, 3.0
    gad = torch.zeros(2, 8, 8)
    gad[0, 0:2, 0:2] = 4.0
    return GreyLinear(weight, 0.5), grey_images(grey), original, gad


def test_regions_of_maps_are_the_hulls_of_each_maps_important_pixels() -> None:
    maps = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(2))
    found = regions_of_maps(maps, q=20.0, min_size=2, merge_distance=1)
    assert len(found) == 3
    for values, regions in zip(maps, found):
        expected = convex_hull_regions(important_pixels(values, 20.0), min_size=2, merge_distance=1)
        assert [r.polygon.tolist() for r in regions] == [r.polygon.tolist() for r in expected] and regions
    assert len(regions_of_maps(maps[0], threshold=0.9)) == 1


def test_compare_regions_on_a_case_added_up_by_hand() -> None:
    model, x, original, gad = comparison_case()
    table = compare_regions(model, x, original, gad, q=12.5, min_size=1, mean=MEAN, std=STD, seed=5)
    assert isinstance(table, pd.DataFrame) and tuple(table.columns) == COLUMNS and len(table) == 2
    first = table.iloc[0]
    assert (first.regions_original, first.regions_gad) == (2, 1)
    assert (first.area_original, first.area_gad, first.rc) == (8 / 64, 4 / 64, 0.5)
    p0 = sigmoid(2.5)
    assert first.rs_gad == pytest.approx((p0 - sigmoid(0.5)) / p0, abs=1e-12)  # the top-left blob: 3 -> 1
    assert first.rs_removed == pytest.approx((p0 - sigmoid(1.5)) / p0, abs=1e-12)  # the bottom-right one: 3 -> 2
    control = random_regions_like(gad[0] > 0, content_seed(5, x[0]))
    assert int(control.sum()) == 4
    grey = denormalize(x[0], MEAN, STD).mean(dim=0)
    lost = float((torch.from_numpy(control) * model.weight * grey).sum())  # class 0's logit loses what is occluded
    assert first.rs_random == pytest.approx((p0 - sigmoid(2.5 - lost)) / p0, abs=1e-12)
    second = table.iloc[1]
    assert (second.regions_original, second.regions_gad, second.area_original, second.area_gad) == (0, 0, 0.0, 0.0)
    assert math.isnan(second.rc) and (second.rs_gad, second.rs_removed, second.rs_random) == (0.0, 0.0, 0.0)


def test_compare_regions_is_reproducible_and_each_row_depends_on_its_image_only(resnet: nn.Module) -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, 32, 32, generator=generator)
    original = torch.rand(4, 32, 32, generator=generator)
    gad = original * (torch.rand(4, 32, 32, generator=generator) < 0.3)
    table = compare_regions(resnet, x, original, gad, mean=MEAN, std=STD, merge_distance=1)
    assert table.equals(compare_regions(resnet, x, original, gad, mean=MEAN, std=STD, merge_distance=1))
    order = [2, 0, 3, 1]
    shuffled = compare_regions(resnet, x[order], original[order], gad[order], mean=MEAN, std=STD, merge_distance=1)
    pd.testing.assert_frame_equal(shuffled, table.iloc[order].reset_index(drop=True), atol=1e-6)
    assert (table.regions_original > 0).all() and table.rc.notna().all()
    with pytest.raises(ConfigError, match="do not fit"):
        compare_regions(resnet, x, original[:, :16], gad, mean=MEAN, std=STD)


def test_summarise_regions_gives_means_intervals_and_shares() -> None:
    table = pd.DataFrame({
        "regions_original": [2, 3, 1, 0], "regions_gad": [1, 1, 1, 0],
        "area_original": [0.2, 0.3, 0.1, 0.0], "area_gad": [0.1, 0.1, 0.1, 0.0], "rc": [0.5, 1 / 3, 1.0, math.nan],
        "rs_gad": [0.5, 0.1, 0.3, 0.0], "rs_removed": [0.2, 0.2, 0.3, 0.0], "rs_random": [0.1, 0.0, 0.1, 0.0],
    })
    summary = summarise_regions(table).set_index("quantity")
    assert list(summary.columns) == ["mean", "ci_low", "ci_high", "n", "excluded"]
    assert list(summary.index) == [*COLUMNS, "rs_gad > rs_removed", "rs_gad > rs_random"]
    assert summary.loc["rc", "mean"] == pytest.approx((0.5 + 1 / 3 + 1.0) / 3)
    assert (summary.loc["rc", "n"], summary.loc["rc", "excluded"]) == (3, 1)
    reference = bootstrap_mean(table.rs_gad.to_numpy())
    assert tuple(summary.loc["rs_gad", ["mean", "ci_low", "ci_high"]]) == (reference.mean, reference.ci_low,
                                                                         reference.ci_high)
    assert summary.loc["rs_gad > rs_removed", "mean"] == 0.25  # 0.5 > 0.2 only; ties are not more
    assert summary.loc["rs_gad > rs_random", "mean"] == 0.75
    assert list(summarise_regions(table[["rc"]]).quantity) == ["rc"]


# ------------------------------------------------------------------------------------------------------ drawing


def drawing_case() -> tuple[np.ndarray, list[Region]]:
    mask = np.zeros((16, 16), dtype=bool)
    mask[0:6, 0:2] = mask[4:6, 0:6] = True  # an L on the image's border (a slanted hull edge)
    mask[9:15, 10:12] = True
    mask[12, 8:10] = True  # touches the second bar: one region, a triangle-ish hull
    image = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    return image, convex_hull_regions(mask, min_size=1)


def test_drawing_changes_only_pixels_inside_the_hulls() -> None:
    image, regions = drawing_case()
    inside = union_mask(regions, (16, 16))
    drawn = draw_regions(image, regions, colour=(255, 0, 255), alpha=0.3, outline=1)
    assert drawn.dtype == np.uint8 and drawn.shape == image.shape
    assert np.array_equal(drawn[~inside], image[~inside])
    assert (drawn[inside] != image[inside]).any(axis=1).mean() > 0.9
    for region in regions:  # every vertex lies on the border: drawn in the colour itself
        for x, y in region.polygon:
            assert drawn[y, x].tolist() == [255, 0, 255]
    fill_only = draw_regions(image, regions, colour=(0, 0, 0), alpha=0.5, outline=0)
    assert np.array_equal(fill_only[inside], np.rint(image[inside] * 0.5).astype(np.uint8))
    assert np.array_equal(draw_regions(image, regions, alpha=0.0, outline=0), image)
    assert np.array_equal(draw_regions(image, [], outline=3), image)


def test_drawing_over_an_enlarged_image_follows_the_enlarged_hulls() -> None:
    image, regions = drawing_case()
    large = np.repeat(np.repeat(image, 4, axis=0), 4, axis=1)
    inside = np.repeat(np.repeat(union_mask(regions, (16, 16)), 4, axis=0), 4, axis=1)
    drawn = draw_regions(large, regions, alpha=0.0, outline=2)
    changed = (drawn != large).any(axis=2)
    assert not (changed & ~inside).any()
    assert changed.sum() < inside.sum() / 2  # a border 2 pixels thick, not the fill
    with pytest.raises(ConfigError, match="alpha"):
        draw_regions(large, regions, alpha=2.0)
    with pytest.raises(ConfigError, match="RGB image"):
        draw_regions(large[..., 0], regions)
