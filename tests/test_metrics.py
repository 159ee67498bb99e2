"""The metrics of ``interpgrad.metrics``, each against numbers worked out by hand on a tiny case, the batched
perturbation metrics against a naive one-image-one-step loop, and the properties each metric promises (ties, empty
masks, constant maps, seeds, independence of the batch and of ``max_batch``).

Most hand cases use ``PixelLinear``: the model undoes the normalisation, averages the three channels into a grey level
and returns ``logits = W · flatten(grey) + b``, so a score is a sum of pixel values that a comment can add up. Images,
normalisation constants and weights are dyadic (multiples of powers of 2) and everything runs in float64, so the
expected numbers hold to ~1e-12 and ties (O == Y) are exact.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import interpgrad
from interpgrad import ConfigError
from interpgrad.data.transforms import denormalize, normalize
from interpgrad.metrics import MetricBatch, get_metric, metrics
from interpgrad.metrics.faithfulness import EPSILON
from interpgrad.metrics.sanity import model_stages, ssim

sys.path.insert(0, str(Path(__file__).parent))
import small_models  # noqa: E402

MEAN = (0.5, 0.25, 0.125)
STD = (0.25, 0.5, 2.0)


pytestmark = pytest.mark.usefixtures("one_thread")


def sigmoid(value: float) -> float:
    return 1.0 / (1.0 + math.exp(-value))


class PixelLinear(nn.Module):
    """``logits = W · flatten(grey) + b`` where grey is the channel mean of the pixels ``x * STD + MEAN``."""

    def __init__(self, weight: torch.Tensor, bias: list[float]) -> None:
        super().__init__()
        self.register_buffer("weight", weight.double())  # [K, H, W]
        self.register_buffer("bias", torch.tensor(bias, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = denormalize(x, MEAN, STD).mean(dim=1)
        return grey.flatten(1) @ self.weight.flatten(1).T + self.bias


def two_class(weight0: torch.Tensor, bias1: float = 0.0) -> PixelLinear:
    """Class 0's logit is ``weight0 · grey``, class 1's is the constant ``bias1``."""
    return PixelLinear(torch.stack([weight0.double(), torch.zeros_like(weight0, dtype=torch.float64)]), [0.0, bias1])


def make_batch(model: nn.Module, grey: torch.Tensor, maps: torch.Tensor, targets, **kwargs) -> MetricBatch:
    """A float64 batch of grey images ``[B, H, W]`` (the same value on every channel) in pixel space."""
    pixels = grey.double().unsqueeze(1).expand(-1, 3, -1, -1)
    maps = maps.double()
    kwargs.setdefault("signed_maps", maps)
    kwargs.setdefault("raw", None)
    return MetricBatch(model=model, x=normalize(pixels, MEAN, STD), maps=maps, targets=torch.as_tensor(targets),
                       mean=MEAN, std=STD, **kwargs)


def test_the_registry_lists_the_fifteen_metrics_with_their_directions() -> None:
    registry = metrics()
    assert list(registry) == ["average_drop", "average_increase", "average_gain", "pixel_perturbation", "insertion",
                              "deletion", "pointing_game", "energy_pointing_game", "relevance_rank_accuracy",
                              "topk_iou", "roc_auc", "randomisation", "random_logit", "sparseness", "top10_energy"]
    lower = {name for name, metric in registry.items() if metric.direction == "lower"}
    assert lower == {"average_drop", "deletion", "randomisation", "random_logit"}
    assert interpgrad.metrics() == registry  # the package called is the registry
    with pytest.raises(ConfigError, match="unknown metric 'nope'"):
        get_metric("nope")


# ---------------------------------------------------------------------------------------------------------------------
# Average Drop, Average Increase, Average Gain


def test_average_drop_increase_gain_by_hand() -> None:
    """One 2x2 image, grey [[0.25, 0.5], [0.75, 1]]; class 0's logit is the sum of the three pixels other than the
    top-left one (2.25), class 1's is 0, so Y = sigmoid(+-2.25).

    - image 0, map [[1, 3], [5, 9]]: min-max [[0, .25], [.5, 1]], E = [[0, .125], [.375, 1]], logit 1.5; target 0.
    - image 1: the same, target 1 (Y = sigmoid(-2.25), O = sigmoid(-1.5): an increase).
    - image 2, map 7 x [[0, 1], [1, 1]]: E keeps every weighted pixel, so O == Y exactly: no increase, no drop.
    - image 3, constant map: E is black, logit 0, O = 0.5.
    """
    grey = torch.tensor([[0.25, 0.5], [0.75, 1.0]]).expand(4, 2, 2)
    maps = torch.tensor([[[1.0, 3.0], [5.0, 9.0]], [[1.0, 3.0], [5.0, 9.0]], [[0.0, 7.0], [7.0, 7.0]],
                         [[2.0, 2.0], [2.0, 2.0]]])
    model = two_class(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    batch = make_batch(model, grey, maps, [0, 1, 0, 0])
    y, o = sigmoid(2.25), sigmoid(1.5)
    drop = get_metric("average_drop")(batch).values.tolist()
    increase = get_metric("average_increase")(batch).values.tolist()
    gain = get_metric("average_gain")(batch).values.tolist()
    expected_drop = [100 * (y - o) / (y + EPSILON), 0.0, 0.0, 100 * (y - 0.5) / (y + EPSILON)]
    expected_gain = [0.0, 100 * (sigmoid(-1.5) - sigmoid(-2.25)) / (1 - sigmoid(-2.25) + EPSILON), 0.0, 0.0]
    assert drop == pytest.approx(expected_drop, rel=1e-12, abs=1e-12)
    assert increase == [0.0, 100.0, 0.0, 0.0]  # image 2 is an exact tie: no increase
    assert gain == pytest.approx(expected_gain, rel=1e-12, abs=1e-12)


def test_the_explanation_image_is_built_in_pixel_space() -> None:
    """E = normalise(S x denormalise(x)): with a map that is 1 on one pixel and 0 elsewhere, E keeps exactly that
    pixel's colour and turns every other pixel black (pixel value 0, which is -MEAN/STD once normalised). A model that
    reads only the black pixels in normalised space checks the normalisation: its class-0 logit is the sum of
    x[c, 0, 0] over channels = -(0.5/0.25 + 0.25/0.5 + 0.125/2) = -2.5625 on E."""

    class ReadsTopLeft(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x[:, :, 0, 0].sum(dim=1), torch.zeros(x.shape[0], dtype=x.dtype)], dim=1)

    grey = torch.tensor([[[0.75, 0.5], [0.25, 1.0]]])
    batch = make_batch(ReadsTopLeft(), grey, torch.tensor([[[0.0, 0.0], [0.0, 1.0]]]), [0])
    y = sigmoid(sum((0.75 - m) / s for m, s in zip(MEAN, STD)))
    o = sigmoid(-(0.5 / 0.25 + 0.25 / 0.5 + 0.125 / 2))
    assert get_metric("average_drop")(batch).values.item() == pytest.approx(100 * (y - o) / (y + EPSILON), rel=1e-12)


def test_saturated_probabilities_stay_finite() -> None:
    """Y = 1 (AG's headroom 0) and Y = 0 (AD's denominator 0) give finite values thanks to eps."""
    grey = torch.ones(2, 2, 2)
    model = two_class(torch.full((2, 2), 1000.0))  # logit 4000 vs 0: Y = 1 for class 0, exactly 0 for class 1
    batch = make_batch(model, grey, torch.rand(2, 2, 2), [0, 1])
    for name in ("average_drop", "average_increase", "average_gain"):
        assert torch.isfinite(get_metric(name)(batch).values).all(), name
    assert get_metric("average_drop")(batch).values[1].item() == 0.0


# ---------------------------------------------------------------------------------------------------------------------
# Insertion and deletion

# 4x4 images, class 0's logit = sum_p w_p grey_p / 32 with w_p = p + 1 (raster order), class 1's = 0. The map is w
# itself, so the most salient pixels are the last ones: 16, 15, 14, ...; the total is 136 / 32.
WEIGHTS = torch.arange(1, 17, dtype=torch.float64).view(4, 4) / 32


def linear_batch(grey: torch.Tensor, maps: torch.Tensor | None = None, targets=(0,), **kwargs) -> MetricBatch:
    maps = WEIGHTS.expand(len(targets), 4, 4) if maps is None else maps
    return make_batch(two_class(WEIGHTS), grey.expand(len(targets), 4, 4), maps, list(targets), **kwargs)


def test_deletion_and_insertion_by_hand() -> None:
    """White image, constant black substrate, 4 pixels per step (one row): deletion removes 16+15+14+13 = 58, then 42,
    26 and 10; insertion puts them back in the same order."""
    batch = linear_batch(torch.ones(4, 4))
    common = {"substrate": "constant", "constant": 0.0, "score": "logit"}
    deletion = get_metric("deletion")(batch, **common)
    insertion = get_metric("insertion")(batch, **common)
    assert deletion.curve[0].tolist() == pytest.approx([136 / 32, 78 / 32, 36 / 32, 10 / 32, 0.0], abs=1e-12)
    assert insertion.curve[0].tolist() == pytest.approx([0.0, 58 / 32, 100 / 32, 126 / 32, 136 / 32], abs=1e-12)
    # trapezoid on [0, 1/4, 1/2, 3/4, 1]: (136/2 + 78 + 36 + 10 + 0/2) / 4 / 32 and
    # (0 + 58 + 100 + 126 + 136/2) / 4 / 32
    assert deletion.values.item() == pytest.approx(48 / 32, abs=1e-12)
    assert insertion.values.item() == pytest.approx(88 / 32, abs=1e-12)
    assert list(deletion.curve_x) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_deletion_scores_the_softmax_probability_of_each_images_target() -> None:
    batch = linear_batch(torch.ones(4, 4), targets=(0, 1))
    curve = get_metric("deletion")(batch, substrate="constant", constant=0.0).curve  # score = probability (default)
    logits = [136 / 32, 78 / 32, 36 / 32, 10 / 32, 0.0]
    assert curve[0].tolist() == pytest.approx([sigmoid(v) for v in logits], abs=1e-12)
    assert curve[1].tolist() == pytest.approx([sigmoid(-v) for v in logits], abs=1e-12)


def test_ties_are_broken_in_raster_order() -> None:
    """A constant map deletes the pixels in raster order: weights 1+2+3+4 = 10 first."""
    batch = linear_batch(torch.ones(4, 4), maps=torch.zeros(1, 4, 4))
    curve = get_metric("deletion")(batch, substrate="constant", constant=0.0, score="logit").curve
    assert curve[0].tolist() == pytest.approx([136 / 32, 126 / 32, 100 / 32, 58 / 32, 0.0], abs=1e-12)


@pytest.mark.parametrize(("step_rows", "expected"), [
    (0.75, [136, 91, 55, 28, 10, 1, 0]),  # step 3: ceil(16 / 3) = 6 steps; the last one deletes a single pixel
    (2.0, [136, 36, 0]),  # step 8: 16+15+...+9 = 100 first
    (0.25, [136 - sum(range(16, 16 - k, -1)) for k in range(17)]),  # one pixel per step
])
def test_step_rows_sets_the_pixels_per_step(step_rows: float, expected: list[int]) -> None:
    batch = linear_batch(torch.ones(4, 4))
    result = get_metric("deletion")(batch, substrate="constant", constant=0.0, score="logit", step_rows=step_rows)
    assert result.curve[0].tolist() == pytest.approx([value / 32 for value in expected], abs=1e-12)
    assert list(result.curve_x) == pytest.approx(np.linspace(0, 1, len(expected)).tolist())
    grid = np.linspace(0, 1, len(expected))
    assert result.values.item() == pytest.approx(np.trapezoid(np.array(expected) / 32, grid))


def expected_linear_curve(grey: np.ndarray, filler: np.ndarray, counts: list[int], insert: bool) -> list[float]:
    """Class 0's logit of the 4x4 linear case, pixel by pixel: the ``count`` most salient pixels (16, 15, ...) show
    the image (insertion) or the filler (deletion), the others the opposite."""
    weights = WEIGHTS.numpy().reshape(-1)
    order = np.argsort(-weights, kind="stable")
    grey, filler = grey.astype(np.float64).reshape(-1), filler.astype(np.float64).reshape(-1)
    start, end = (filler, grey) if insert else (grey, filler)
    values = []
    for count in counts:
        image = start.copy()
        image[order[:count]] = end[order[:count]]
        values.append(float(weights @ image))
    return values


def test_substrates_zeros_mean_and_constant() -> None:
    """zeros = 0 in normalised space = the dataset's mean colour (grey = mean(MEAN)); mean = the image's own mean
    colour (0.75 here: half the pixels 1, half 0.5); constant = that pixel value."""
    grey = torch.cat([torch.ones(2, 4), torch.full((2, 4), 0.5)])
    batch = linear_batch(grey)
    counts = [0, 4, 8, 12, 16]
    cases = {"zeros": np.full((4, 4), sum(MEAN) / 3), "mean": np.full((4, 4), 0.75),
             "constant": np.full((4, 4), 0.625)}
    for substrate, filler in cases.items():
        for name in ("deletion", "insertion"):
            curve = get_metric(name)(batch, substrate=substrate, constant=0.625, score="logit").curve[0]
            expected = expected_linear_curve(grey.numpy(), filler, counts, insert=name == "insertion")
            assert curve.tolist() == pytest.approx(expected, abs=1e-12), (substrate, name)


def gaussian_blur_by_hand(image: np.ndarray, size: int, sigma: float) -> np.ndarray:
    """A separable Gaussian of ``size`` x ``size`` (centred, normalised) over reflected borders (no edge repeat)."""
    offsets = np.arange(size) - (size - 1) / 2
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    kernel /= kernel.sum()
    half = size // 2
    padded = np.pad(image, half, mode="reflect")
    rows = np.array([[padded[i, j:j + size] @ kernel for j in range(image.shape[1])] for i in range(padded.shape[0])])
    return np.array([[rows[i:i + size, j] @ kernel for j in range(image.shape[1])] for i in range(image.shape[0])])


def test_the_blur_substrate_is_a_gaussian_narrowed_to_the_image() -> None:
    """Insertion from a blur: kernel 5 fits a 4x4 image; kernels 7 and 11 are narrowed to 7 = 2 x 4 - 1, the widest a
    reflected border allows, and so give the same curve."""
    grey = torch.tensor([[1.0, 0.0, 0.5, 0.25], [0.0, 0.75, 1.0, 0.5], [0.25, 1.0, 0.0, 0.5], [0.5, 0.5, 0.75, 0.0]])
    batch = linear_batch(grey)
    counts = [0, 4, 8, 12, 16]
    for kernel, effective in ((5, 5), (7, 7), (11, 7)):
        blur = gaussian_blur_by_hand(grey.numpy().astype(np.float64), effective, 1.5)
        expected = expected_linear_curve(grey.numpy(), blur, counts, insert=True)
        curve = get_metric("insertion")(batch, blur_kernel=kernel, blur_sigma=1.5, score="logit").curve[0]
        assert curve.tolist() == pytest.approx(expected, abs=1e-12), kernel


# ---------------------------------------------------------------------------------------------------------------------
# Batched perturbations against a naive loop


class TinyNet(nn.Sequential):
    def __init__(self, classes: int = 5) -> None:
        super().__init__(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 8, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))


@pytest.fixture(scope="module")
def tiny() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small CNN, three 8x8 images, random maps without ties and targets."""
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    model = TinyNet().eval()
    x = torch.randn(3, 3, 8, 8, generator=generator)
    maps = torch.rand(3, 8, 8, generator=generator)
    return model, x, maps, torch.tensor([1, 4, 2])


def naive_curves(model: nn.Module, x: torch.Tensor, filler: torch.Tensor, orders: list[np.ndarray],
                 counts: list[int], classes: torch.Tensor, insert: bool) -> np.ndarray:
    """For each image, for each step: build the image pixel by pixel and score it alone (softmax probability)."""
    curves = np.zeros((len(x), len(counts)))
    for i in range(len(x)):
        for t, count in enumerate(counts):
            image = (filler[i] if insert else x[i]).clone()
            source = x[i] if insert else filler[i]
            for pixel in orders[i][:count]:
                row, column = divmod(int(pixel), x.shape[-1])
                image[:, row, column] = source[:, row, column]
            with torch.no_grad():
                curves[i, t] = torch.softmax(model(image[None]).double(), dim=1)[0, classes[i]].item()
    return curves


@pytest.mark.parametrize("name", ["deletion", "insertion"])
@pytest.mark.parametrize("substrate", ["zeros", "mean", "constant"])
def test_batched_insertion_and_deletion_equal_a_naive_loop(tiny, name: str, substrate: str) -> None:
    model, x, maps, targets = tiny
    batch = MetricBatch(model=model, x=x, maps=maps, signed_maps=maps, raw=None, targets=targets, mean=MEAN, std=STD)
    filler = {"zeros": torch.zeros_like(x), "mean": x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone(),
              "constant": normalize(torch.full_like(x, 0.3), MEAN, STD)}[substrate]
    orders = [np.argsort(-m.reshape(-1).numpy(), kind="stable") for m in maps]
    counts = [min(64, 8 * k) for k in range(9)]  # one row of 8 pixels per step
    expected = naive_curves(model, x, filler, orders, counts, targets, insert=name == "insertion")
    results = []
    for max_batch in (1, 7, 0):
        batch.max_batch = max_batch
        result = get_metric(name)(batch, substrate=substrate, constant=0.3)
        np.testing.assert_allclose(result.curve.numpy(), expected, rtol=0, atol=1e-6)
        results.append(result)
    curve = results[-1].curve.numpy()
    areas = np.trapezoid(curve, np.linspace(0, 1, 9), axis=1)
    np.testing.assert_allclose(results[-1].values.numpy(), areas, atol=1e-12)
    for other in results[:-1]:
        np.testing.assert_allclose(other.values.numpy(), results[-1].values.numpy(), atol=1e-6)


@pytest.mark.parametrize("replacement", ["mean", "constant"])
def test_batched_pixel_perturbation_equals_a_naive_loop(tiny, replacement: str) -> None:
    model, x, maps, labels = tiny
    generator = torch.Generator().manual_seed(4)
    raw = torch.randn(3, 3, 8, 8, generator=generator)
    judge = TinyNet(5).eval()
    batch = MetricBatch(model=model, x=x, maps=maps, signed_maps=maps, raw=raw,
                        targets=torch.zeros(3, dtype=torch.long), mean=MEAN, std=STD, labels=labels, judge=judge)
    spread = np.std(raw.numpy().astype(np.float64), axis=1, ddof=1).reshape(3, -1)
    orders = [np.argsort(row, kind="stable") for row in spread]  # least salient first
    points = 7
    counts = [int(round(f * 64)) for f in np.logspace(-2, 0, points)]
    assert counts == [1, 1, 3, 6, 14, 30, 64]
    filler = (x.mean(dim=(2, 3), keepdim=True).expand_as(x).clone() if replacement == "mean"
              else normalize(torch.full_like(x, 0.5), MEAN, STD))
    expected = naive_curves(judge, x, filler, orders, counts, labels, insert=False)  # the judge scores the labels
    values = []
    for max_batch in (1, 7, 0):
        batch.max_batch = max_batch
        result = get_metric("pixel_perturbation")(batch, replacement=replacement, points=points, score="probability")
        np.testing.assert_allclose(result.curve.numpy(), expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(result.values.numpy(),
                                   np.trapezoid(result.curve.numpy(), np.linspace(0, 1, points), axis=1), atol=1e-12)
        values.append(result.values)
    assert result.curve_x == pytest.approx(np.logspace(-2, 0, points).tolist())
    torch.testing.assert_close(values[0], values[2], rtol=0, atol=1e-6)
    torch.testing.assert_close(values[1], values[2], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# Pixel perturbation by hand

# raw[c, p] = 100 (16 - p) + c (p + 1): its standard deviation over the channels is p + 1 (least salient: pixel 0
# first), its display map max |raw| = 100 (16 - p) + 2 (p + 1) ranks the other way (pixel 15 first).
RAW = torch.stack([100 * (16 - torch.arange(16.0)) + c * (torch.arange(16.0) + 1) for c in range(3)]).view(1, 3, 4, 4)
# points = 5 on 16 pixels: fractions 0.01, 0.0316, 0.1, 0.316, 1 -> round(f x 16) = 0, 1, 2, 5, 16 pixels removed.
# Removing pixel p (weight (p + 1) / 32) from a white image into black: by std, 0, 1, 1+2, 1+..+5, 136; by map 0, 16,
# 16+15, 16+...+12, 136.
BY_STD = [136 / 32, 135 / 32, 133 / 32, 121 / 32, 0.0]
BY_MAP = [136 / 32, 120 / 32, 105 / 32, 66 / 32, 0.0]


def perturbation_batch(bias1: float, raw: torch.Tensor | None = RAW, **kwargs) -> MetricBatch:
    model = two_class(WEIGHTS, bias1)
    maps = RAW.abs().amax(dim=1).double()
    return make_batch(model, torch.ones(1, 4, 4), maps, [1], raw=None if raw is None else raw.double(),
                      labels=torch.tensor([0]), **kwargs)


def test_pixel_perturbation_by_hand() -> None:
    """Class 1's logit is 3.5: the image is classified 0 while class 0's logit stays above 3.5. Every score is of the
    label (0), not of the explained target (1)."""
    batch = perturbation_batch(3.5)
    common = {"replacement": "constant", "constant": 0.0, "points": 5}
    probability = get_metric("pixel_perturbation")(batch, score="probability", **common)
    assert probability.curve[0].tolist() == pytest.approx([sigmoid(v - 3.5) for v in BY_STD], abs=1e-12)
    assert probability.curve_x == pytest.approx([0.01, 10**-1.5, 0.1, 10**-0.5, 1.0])
    accuracy = get_metric("pixel_perturbation")(batch, **common)  # the default score: accuracy
    assert accuracy.curve[0].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0]
    assert accuracy.values.item() == pytest.approx((0.5 + 1 + 1 + 1 + 0) / 4)  # trapezoid over 5 uniform points
    by_map = get_metric("pixel_perturbation")(batch, saliency="map", **common)
    assert by_map.curve[0].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]  # logits 136, 120, 105, 66, 0 (/32) against 3.5
    probability_by_map = get_metric("pixel_perturbation")(batch, saliency="map", score="probability", **common)
    assert probability_by_map.curve[0].tolist() == pytest.approx([sigmoid(v - 3.5) for v in BY_MAP], abs=1e-12)


def test_pixel_perturbation_mean_replacement_and_the_judge() -> None:
    # mean replacement on a white image changes nothing: the accuracy stays 1
    assert get_metric("pixel_perturbation")(perturbation_batch(3.5), points=5).curve[0].tolist() == [1.0] * 5
    # a judge whose class 1 logit is 4 instead: 136, 135, 133 / 32 are above it, 121 / 32 is not
    judge = two_class(WEIGHTS, 4.0)
    batch = perturbation_batch(3.5, judge=judge)
    result = get_metric("pixel_perturbation")(batch, replacement="constant", constant=0.0, points=5)
    assert result.curve[0].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_pixel_perturbation_uses_the_map_without_channels() -> None:
    """A CAM (no raw map at input resolution) is ranked by its display map, whatever the saliency parameter."""
    batch = perturbation_batch(3.5, raw=None)
    result = get_metric("pixel_perturbation")(batch, replacement="constant", constant=0.0, points=5)
    assert result.curve[0].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_pixel_perturbation_ranks_the_random_control_by_its_map() -> None:
    """The random control repeats its map on every channel: their spread is 0 everywhere, which would remove the pixels
    in raster order (the top rows first) instead of in the map's random order. It is ranked by its map instead."""
    torch.manual_seed(0)
    model = TinyNet().eval()
    x = torch.randn(2, 3, 8, 8)
    labels = torch.tensor([0, 3])
    explanation = interpgrad.explain(model, x, "random")
    assert torch.equal(explanation.raw.std(dim=1), torch.zeros(2, 8, 8))
    batch = MetricBatch.from_explanation(model, x, explanation, labels=labels)
    metric = get_metric("pixel_perturbation")
    default = metric(batch, score="probability", points=9)
    by_map = metric(batch, score="probability", points=9, saliency="map")
    torch.testing.assert_close(default.curve, by_map.curve, rtol=0, atol=0)
    raster = MetricBatch(model=model, x=x, maps=torch.zeros(2, 8, 8), signed_maps=torch.zeros(2, 8, 8), raw=None,
                         targets=explanation.target, labels=labels)
    assert not torch.allclose(default.curve, metric(raster, score="probability", points=9).curve)


# ---------------------------------------------------------------------------------------------------------------------
# Localisation


def mask_batch(maps: torch.Tensor, masks: torch.Tensor, signed: torch.Tensor | None = None) -> MetricBatch:
    """Localisation metrics read only the maps and masks (no model call)."""
    size = maps.shape[0]
    return MetricBatch(model=nn.Identity(), x=torch.zeros(size, 3, *maps.shape[1:]), maps=maps.double(),
                       signed_maps=(maps if signed is None else signed).double(), raw=None,
                       targets=torch.zeros(size, dtype=torch.long), masks=masks.bool())


def peak_at(row: int, column: int, size: int = 7) -> torch.Tensor:
    values = torch.rand(size, size) * 0.5
    values[row, column] = 1.0
    return values


def test_pointing_game_by_hand() -> None:
    """A 2x2 object at rows and columns 1-2 of a 7x7 image. Peaks: inside (hit); at (1, 4), 2 pixels right of the
    object (hit with tolerance 2, miss with 1); at (4, 4), sqrt(8) = 2.83 pixels from the object's corner (2, 2) (miss
    with tolerance 2, hit with 3); a constant map (a miss, whatever the tolerance); an empty mask (NaN)."""
    mask = torch.zeros(7, 7, dtype=torch.bool)
    mask[1:3, 1:3] = True
    maps = torch.stack([peak_at(2, 2), peak_at(1, 4), peak_at(4, 4), torch.full((7, 7), 0.3), peak_at(2, 2)])
    masks = torch.stack([mask, mask, mask, mask, torch.zeros(7, 7, dtype=torch.bool)])
    batch = mask_batch(maps, masks)
    metric = get_metric("pointing_game")
    expected = {0: [1, 0, 0, 0, math.nan], 1: [1, 0, 0, 0, math.nan], 2: [1, 1, 0, 0, math.nan],
                3: [1, 1, 1, 0, math.nan]}
    for tolerance, values in expected.items():
        result = metric(batch, tolerance=tolerance).values.tolist()
        np.testing.assert_array_equal(result, values, err_msg=f"tolerance {tolerance}")


def test_pointing_game_reads_the_chosen_attribution_and_breaks_ties_in_raster_order() -> None:
    mask = torch.zeros(1, 3, 3, dtype=torch.bool)
    mask[0, 2, 2] = True
    signed = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -2.0]]])
    batch = mask_batch(signed.clamp(min=0), mask, signed)
    assert get_metric("pointing_game")(batch).values.tolist() == [0.0]  # the map's peak is (0, 0)
    assert get_metric("pointing_game")(batch, attribution="absolute").values.tolist() == [1.0]  # |-2| at (2, 2)
    ties = mask_batch(torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]), mask)
    assert get_metric("pointing_game")(ties).values.tolist() == [0.0]  # the first of the tied peaks


def test_energy_pointing_game_by_hand() -> None:
    """Map [[1, 2], [3, 4]], object = top row: (1 + 2) / 10. The signed map [[1, -2], [3, -4]]: positive part 1 / 4,
    absolute value 3 / 10. An all-zero map holds no energy: 0. An empty mask: NaN."""
    top = torch.tensor([[[True, True], [False, False]]])
    maps = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    signed = torch.tensor([[[1.0, -2.0], [3.0, -4.0]]])
    metric = get_metric("energy_pointing_game")
    assert metric(mask_batch(maps, top)).values.tolist() == [pytest.approx(0.3)]
    assert metric(mask_batch(maps, top, signed), attribution="positive").values.tolist() == [pytest.approx(0.25)]
    assert metric(mask_batch(maps, top, signed), attribution="absolute").values.tolist() == [pytest.approx(0.3)]
    assert metric(mask_batch(torch.zeros(1, 2, 2), top)).values.tolist() == [0.0]
    assert math.isnan(metric(mask_batch(maps, torch.zeros(1, 2, 2))).values.item())


def test_relevance_rank_accuracy_and_topk_iou_by_hand() -> None:
    """4x4 map with values 1..16 in raster order; the object is 4 pixels: {15, 16 (the top 2), 1, 2}.
    Relevance rank accuracy: top-4 = {13..16} holds 2 of the object's pixels: 2 / 4.
    Top-k IoU with k = |s| = 4: 2 / (4 + 4 - 2) = 1 / 3; with fraction 0.5 (k = 8, top-8 = 9..16): 2 / (8 + 4 - 2).
    A constant map scores 0 on both; an empty mask gives NaN."""
    maps = torch.arange(1.0, 17.0).view(1, 4, 4)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    mask[0, [0, 1, 14, 15]] = True
    mask = mask.view(1, 4, 4)
    batch = mask_batch(torch.cat([maps, torch.full((1, 4, 4), 2.0), maps]),
                       torch.cat([mask, mask, torch.zeros(1, 4, 4, dtype=torch.bool)]))
    np.testing.assert_allclose(get_metric("relevance_rank_accuracy")(batch).values.numpy(), [0.5, 0.0, np.nan])
    np.testing.assert_allclose(get_metric("topk_iou")(batch).values.numpy(), [1 / 3, 0.0, np.nan])
    np.testing.assert_allclose(get_metric("topk_iou")(batch, fraction=0.5).values.numpy(), [0.2, 0.0, np.nan])


def test_roc_auc_equals_sklearn() -> None:
    from sklearn.metrics import roc_auc_score

    generator = torch.Generator().manual_seed(7)
    maps = torch.randint(0, 6, (6, 8, 8), generator=generator).double()  # many ties
    maps[:3] = torch.rand(3, 8, 8, generator=generator, dtype=torch.float64)
    masks = torch.rand(6, 8, 8, generator=generator) < 0.3
    values = get_metric("roc_auc")(mask_batch(maps, masks)).values.numpy()
    expected = [roc_auc_score(mask.reshape(-1).numpy(), m.reshape(-1).numpy()) for m, mask in zip(maps, masks)]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)


def test_roc_auc_of_a_constant_map_is_chance_and_empty_or_full_masks_are_undefined() -> None:
    half = torch.zeros(1, 4, 4, dtype=torch.bool)
    half[0, :2] = True
    batch = mask_batch(torch.stack([torch.ones(4, 4), torch.rand(4, 4), torch.rand(4, 4)]),
                       torch.cat([half, torch.zeros(1, 4, 4, dtype=torch.bool), torch.ones(1, 4, 4, dtype=torch.bool)]))
    np.testing.assert_array_equal(get_metric("roc_auc")(batch).values.numpy(), [0.5, np.nan, np.nan])


def test_localisation_metrics_need_masks() -> None:
    batch = mask_batch(torch.rand(1, 4, 4), torch.ones(1, 4, 4))
    batch.masks = None
    for name in ("pointing_game", "energy_pointing_game", "relevance_rank_accuracy", "topk_iou", "roc_auc"):
        with pytest.raises(ConfigError, match=f"{name} needs ground-truth masks"):
            get_metric(name)(batch)


# ---------------------------------------------------------------------------------------------------------------------
# Sanity checks


def test_model_stages_of_the_cifar_resnet18() -> None:
    model = small_models.cifar_resnet18()
    assert [name for name, _ in model_stages(model, "block")] == [
        "fc", "layer4.1", "layer4.0", "layer3.1", "layer3.0", "layer2.1", "layer2.0", "layer1.1", "layer1.0", "bn1",
        "conv1"]
    assert [name for name, _ in model_stages(model, "stage")] == [
        "fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    modules = [name for name, _ in model_stages(model, "module")]
    assert modules[:3] == ["fc", "layer4.1.bn2", "layer4.1.conv2"] and modules[-2:] == ["bn1", "conv1"]
    assert len(modules) == sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.Linear)))


def explainer_of(method: str):  # type: ignore[no-untyped-def]
    return lambda network, inputs, classes: interpgrad.explain(network, inputs, method, target=classes)


@pytest.fixture(scope="module")
def resnet_images() -> tuple[nn.Module, torch.Tensor]:
    generator = torch.Generator().manual_seed(11)
    return small_models.cifar_resnet18(), torch.rand(2, 3, 16, 16, generator=generator)


def sanity_batch(model: nn.Module, x: torch.Tensor, method: str, **kwargs) -> MetricBatch:
    explanation = interpgrad.explain(model, x, method)
    return MetricBatch.from_explanation(model, x, explanation, explainer=explainer_of(method), **kwargs)


def test_randomisation_separates_the_gradient_from_the_edge_control(resnet_images) -> None:
    """The edge map ignores the model: correlation 1 after every stage. The gradient's does not survive. The value is
    the mean over the 11 randomised stages only (no point for the unrandomised model's correlation with itself)."""
    model, x = resnet_images
    stages = [name for name, _ in model_stages(model, "block")]
    state = {key: value.clone() for key, value in model.state_dict().items()}
    rng = torch.random.get_rng_state()
    edge = get_metric("randomisation")(sanity_batch(model, x, "edge"))
    assert edge.curve.shape == (2, 11) and list(edge.curve_labels) == stages
    assert list(edge.curve_x) == [float(i) for i in range(1, 12)]
    np.testing.assert_allclose(edge.curve.numpy(), 1.0, rtol=0, atol=1e-12)
    gradient = get_metric("randomisation")(sanity_batch(model, x, "gradient"))
    assert gradient.curve.shape == (2, 11)
    assert (gradient.curve < 0.9).all() and (gradient.values < 0.7).all()
    torch.testing.assert_close(gradient.values, gradient.curve.mean(dim=1), rtol=0, atol=1e-15)
    # the model the batch explains and the global random state are untouched
    assert all(torch.equal(value, state[key]) for key, value in model.state_dict().items())
    assert torch.equal(torch.random.get_rng_state(), rng)
    # seeded: the same seed gives the same stages, another seed others
    again = get_metric("randomisation")(sanity_batch(model, x, "gradient"))
    torch.testing.assert_close(again.curve, gradient.curve, rtol=0, atol=0)
    other = get_metric("randomisation")(sanity_batch(model, x, "gradient"), seed=1)
    assert not torch.allclose(other.curve, gradient.curve)


def test_randomisation_stage_granularity(resnet_images) -> None:
    model, x = resnet_images
    result = get_metric("randomisation")(sanity_batch(model, x, "edge"), granularity="stage")
    assert list(result.curve_labels) == ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    np.testing.assert_allclose(result.values.numpy(), 1.0, rtol=0, atol=1e-12)


class RecordingExplainer:
    """The edge map, recording every class it is asked to explain."""

    def __init__(self) -> None:
        self.classes: list[torch.Tensor] = []

    def __call__(self, network: nn.Module, inputs: torch.Tensor, classes: torch.Tensor):  # type: ignore[no-untyped-def]
        self.classes.append(classes.clone())
        return interpgrad.explain(network, inputs, "edge", target=classes)


def other_classes_of(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, **kwargs) -> torch.Tensor:
    recorder = RecordingExplainer()
    maps = interpgrad.explain(model, x, "edge", target=targets).map
    batch = MetricBatch(model=model, x=x, maps=maps, signed_maps=maps, raw=None, targets=targets, explainer=recorder,
                        **kwargs)
    values = get_metric("random_logit")(batch).values
    assert len(recorder.classes) == 1
    np.testing.assert_allclose(values.numpy(), 1.0, atol=1e-12)  # the edge map does not depend on the class
    return recorder.classes[0]


def test_random_logit_draws_another_class_per_image_whatever_the_batch() -> None:
    torch.manual_seed(0)
    model = TinyNet(classes=7).eval()
    x = torch.randn(40, 3, 6, 6)
    targets = torch.randint(0, 7, (40,))
    others = other_classes_of(model, x, targets, num_classes=7)
    assert (others != targets).all() and ((0 <= others) & (others < 7)).all()
    assert len(set(((others - targets) % 7).tolist())) == 6  # every other class is drawn
    order = torch.randperm(40)
    torch.testing.assert_close(other_classes_of(model, x[order], targets[order], num_classes=7), others[order])
    for i in (0, 17):
        assert other_classes_of(model, x[i:i + 1], targets[i:i + 1]).item() == others[i].item()  # classes from logits


def test_random_logit_with_one_class_is_undefined() -> None:
    model = TinyNet(classes=1).eval()
    x = torch.randn(2, 3, 6, 6)
    batch = MetricBatch(model=model, x=x, maps=torch.rand(2, 6, 6), signed_maps=torch.rand(2, 6, 6), raw=None,
                        targets=torch.zeros(2, dtype=torch.long), explainer=RecordingExplainer())
    assert torch.isnan(get_metric("random_logit")(batch).values).all()


def test_sanity_checks_need_the_explainer() -> None:
    batch = mask_batch(torch.rand(1, 4, 4), torch.ones(1, 4, 4))
    for name in ("randomisation", "random_logit"):
        with pytest.raises(ConfigError, match=f"{name} needs the attribution method itself"):
            get_metric(name)(batch)


def test_ssim_equals_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    generator = torch.Generator().manual_seed(5)
    a = torch.rand(3, 20, 24, generator=generator, dtype=torch.float64)
    b = (a + 0.3 * torch.rand(3, 20, 24, generator=generator, dtype=torch.float64)).clamp(max=1)
    expected = [structural_similarity(p.numpy(), q.numpy(), gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False, data_range=1.0) for p, q in zip(a, b)]
    np.testing.assert_allclose(ssim(a, b).numpy(), expected, rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------------------------------
# Complexity


def test_sparseness_gini_by_hand() -> None:
    """Gini = sum_i (2 i - n - 1) a_(i) / (n sum a), i = 1..n over the sorted values; weights -3, -1, 1, 3 for n = 4.
    [0, 0, 0, 1]: 3 / 4; [1, 2, 3, 4]: (-3 - 2 + 3 + 12) / 40 = 1 / 4; constant and all-zero: 0; negative values are
    clipped: [-1, 0, 0, 1] is [0, 0, 0, 1]."""
    maps = torch.tensor([[[0.0, 0.0], [0.0, 1.0]], [[4.0, 2.0], [3.0, 1.0]], [[2.0, 2.0], [2.0, 2.0]],
                         [[0.0, 0.0], [0.0, 0.0]], [[-1.0, 0.0], [1.0, 0.0]]])
    values = get_metric("sparseness")(mask_batch(maps, torch.ones(5, 2, 2))).values.tolist()
    assert values == pytest.approx([0.75, 0.25, 0.0, 0.0, 0.75], abs=1e-15)


def test_top10_energy_by_hand() -> None:
    """Values 1..16: ceil(0.1 x 16) = 2 pixels hold (16 + 15) / 136; fraction 0.25: (16 + 15 + 14 + 13) / 136.
    Values 1..100 on 10x10: exactly 10 pixels (not 11), (91 + ... + 100) / 5050. All-zero: 0."""
    small = torch.arange(1.0, 17.0).view(1, 4, 4)
    metric = get_metric("top10_energy")
    batch = mask_batch(torch.cat([small, torch.zeros(1, 4, 4)]), torch.ones(2, 4, 4))
    assert metric(batch).values.tolist() == pytest.approx([31 / 136, 0.0])
    assert metric(batch, fraction=0.25).values.tolist() == pytest.approx([58 / 136, 0.0])
    large = mask_batch(torch.arange(1.0, 101.0).view(1, 10, 10), torch.ones(1, 10, 10))
    assert metric(large).values.item() == pytest.approx(955 / 5050)


# ---------------------------------------------------------------------------------------------------------------------
# Scores beside one explanation (the app's Explore grid)


def test_score_explanation_computes_the_metrics_that_apply() -> None:
    from interpgrad.metrics import score_explanation

    torch.manual_seed(0)
    model = TinyNet().eval()
    x = torch.randn(2, 3, 8, 8)
    explanation = interpgrad.explain(model, x, "gradient")
    assert list(score_explanation(model, x, explanation, mean=MEAN, std=STD)) == ["insertion", "deletion"]  # no masks
    masks = torch.zeros(2, 8, 8, dtype=torch.bool)
    masks[:, 2:5, 3:6] = True
    names = ("insertion", "energy_pointing_game", "randomisation", "pixel_perturbation")
    results = score_explanation(model, x, explanation, names, mean=MEAN, std=STD, masks=masks,
                                params={"insertion": {"step_rows": 2}})
    assert list(results) == ["insertion", "energy_pointing_game"]  # no explainer, no labels
    batch = MetricBatch.from_explanation(model, x, explanation, mean=MEAN, std=STD, masks=masks)
    torch.testing.assert_close(results["insertion"].values, get_metric("insertion")(batch, step_rows=2).values)
    assert results["insertion"].curve.shape == (2, 5)
    described = get_metric("insertion").describe({"step_rows": 2})
    assert described.startswith("insertion from the substrate") and "step_rows=2," in described
