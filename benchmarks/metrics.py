"""Evaluation metrics, timed against the pure forward-pass cost of their perturbed images and against the same metric
in Quantus 0.6.0, torch-cam 0.5.0 and pytorch-grad-cam 1.5.7 (same model, same images, same maps).

    python benchmarks/metrics.py                                # both models on the CPU (~4 min on 2 cores)
    python benchmarks/metrics.py --models starter --n 32 --repeats 7
    python benchmarks/metrics.py --device cuda --n 256,32       # one --n per model, in --models order

Models: ``starter`` is the shipped starter model (checkpoints/shapes-resnet18-baseline: CIFAR-style ResNet-18 of width
0.25, 32x32) on the first N images of the shapes val split (``interpgrad.metrics.evaluation_data``); ``imagenet`` is
torchvision's ResNet-18 with random weights (10 classes, no download) on N shapes images drawn at 224x224. Maps:
Grad-CAM (``interpgrad.explain(model, x, "gradcam")``), explaining the predicted class.

What is timed, each the median of interleaved rounds (every round runs every variant once, in a shuffled order, so
that a slow moment of the machine hits all of them alike; one warm-up call first, whose output is the agreement check):

- **ours**: ``get_metric(name)(MetricBatch.from_explanation(model, x, explanation, ...), **params)``, everything
  included (building the batch, ranks, substrate, every forward pass, scores, areas). Forward passes of the automatic
  size (``rows_per_forward``: ~4M input values, at most 128 rows on a CPU) and, beside it, ``max_batch`` = the
  floor's best batch size.
- **floor**: the pure forward-pass cost of the same perturbed images: ``model(images[i:i + rows])`` under
  ``torch.no_grad`` over the metric's own perturbed images, built beforehand (contiguous NCHW, as ours builds them).
  ``rows`` is the best of several batch sizes (powers of two from 8 to 1024 below the image count, the count itself
  and ours' automatic size), found in a search before the timed rounds and timed again among them. Target
  (DESIGN.md): ours within 1.3x of it.
- **references**, configured to do the same work as closely as their APIs allow; what still differs is in the
  notes ([1]..[6]) printed under the tables and spelled out in ``NOTES`` below. Target: ours faster than each.

Agreement: where a reference computes the same quantity as ours, the warm-up outputs are compared (largest absolute
difference) and printed beside the time, so that nobody compares unequal work. Every library is handed the same pixel
order: references that rank pixels get our map's rank order (most salient first, ties in raster order as ours) coded
as distinct values, so that all of them flip the same pixels at every step.

Layout: all variants of a model share one model in one memory layout, ``--layout`` (``auto``: channels-last on a CPU,
as ``interpgrad.evaluate`` converts CPU models; unchanged on a GPU). A separate check times the floor and our insertion
with the model in both layouts, interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.metadata
import math
import os
import platform
import random
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpgrad  # noqa: E402
from interpgrad.data import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from interpgrad.data.shapes import generate_shapes, split_seed  # noqa: E402
from interpgrad.data.transforms import normalize, to_float_images  # noqa: E402
from interpgrad.explain.mechanics import rows_per_forward  # noqa: E402
from interpgrad.metrics import MetricBatch, evaluation_data, get_metric  # noqa: E402
from interpgrad.metrics.causal import step_counts, substrate  # noqa: E402
from interpgrad.metrics.faithfulness import explanation_images, masking_fractions, min_max  # noqa: E402
from interpgrad.metrics.mechanics import pixel_ranks  # noqa: E402
from interpgrad.training.checkpoint import input_normalisation  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
STARTER = PROJECT / "checkpoints" / "shapes-resnet18-baseline"

NOTES = {
    1: "floor: forward passes only (model(images[i:i+rows]) under no_grad) over the metric's own perturbed images, "
       "prebuilt (insertion's stand for deletion's: same count and shape; AD/AI: the images and their explanation "
       "images); rows = the best batch size found in the search (printed above the table). Same model, same layout. The "
       "floor forwards every point of the protocol, B (n + 1) images per curve; ours forwards B n, taking the clean "
       "image's score from the explanation's logits (AD/AI: B of 2B).",
    2: "Quantus PixelFlipping = deletion (most relevant first) into zeros of normalised space (perturb_baseline=0.0: "
       "our deletion substrate), features_in_step = 3 x step: Quantus broadcasts the map over the 3 channels and flips "
       "values of the flattened C*H*W array, so 3 x step values are `step` whole pixels. Quantus asserts that "
       "features_in_step divides H*W (not C*H*W), which 3 x step never does when 3 does not divide H*W (32x32, "
       "224x224): a subclass checks it against C*H*W instead, nothing else changed. Differences: it scores no "
       "unperturbed image (n forwards per image, as ours, which takes it from the explanation's logits); it forwards the B images once per step "
       "(batch_size = B, the most it batches), through numpy copies and a float32 softmax. Its map is ours as a rank "
       "order, so both flip the same pixels; agreement = its n curve points against ours after each step (its "
       "'AUC' is np.trapz with dx=1, another scale).",
    3: "Quantus RegionPerturbation: most relevant p x p patch first (p divides H and (H/p)^2 >= n), zeros "
       "(perturb_baseline=0.0), regions_evaluation = n: 1 + n forwards per image, as ours. Differences: it removes "
       "p*p pixels per step in square patches (ours: `step` pixels in map order), so the images differ and only "
       "their count matches. Its map: the Grad-CAM map summed over its patches, rank-coded so that no two patches "
       "tie. Agreement: ours deletion on that same patch map with step = p*p pixels (run untimed) against its "
       "drops y - y_k.",
    4: "torch-cam DeletionInsertionMetric: steps = n, baseline None (zeros: our zeros substrate, for both curves), "
       "softmax scores, batch_size = ours' automatic rows. Its CAM extractor is an adapter that returns our map (as a "
       "rank order), so no map is computed on either side. It computes deletion and insertion in one call, sharing "
       "the clean image's score and the all-baseline image: 2n forwards per image, the B clean ones with autograd on (a "
       "real CAM extractor needs the graph). Ours: deletion and insertion with substrate=zeros on one MetricBatch, as "
       "in an evaluation: 2n - 1 per image (the clean image's score from the explanation's logits, the all-zeros image "
       "scored once for both curves); agreement = the mean areas (both trapezoid over the same uniform grid).",
    5: "grad-cam has no insertion/deletion; the closest is the perturbation_confidence machinery behind its ROAD "
       "(RemoveMostRelevantFirst: keep the pixels below a percentile of the map) with a zero imputer instead of "
       "ROAD's noisy linear one: one PerturbationConfidenceMetric per deletion step, percentile chosen to delete "
       "exactly that step's pixel count, return_diff=False (ROAD's averager re-scores the clean images at every "
       "threshold, which would double its forwards). It masks image by image on the CPU and forwards the B images "
       "once per step: n forwards per image (no unperturbed score), as ours. Agreement = its n curve "
       "points against ours. ROAD itself (a sparse linear solve per image and threshold) is another substrate: not "
       "timed.",
    6: "Average Drop / Increase in Confidence. Ours: average_drop + average_increase on one MetricBatch (one forward "
       "of the B explanation images, shared, Y from the explanation's logits; Average Gain would come free). torch-cam "
       "ClassificationMetric (logits_fn = softmax, the adapter's min-max scaled map): a forward of B with autograd "
       "and one of B in inference mode. grad-cam CamMultImageConfidenceChange (ClassifierOutputSoftmaxTarget): two "
       "forwards of B, explanation images built image by image on the CPU; it returns O - Y (Y is not returned: "
       "for the AD agreement it comes from a separate forward). Both references multiply the map with the "
       "normalised input (E = S x), ours in pixel space (E = normalise(S denormalise(x))): the timed ours uses the "
       "model's normalisation, the agreement check runs ours with mean 0, std 1 (E = S x, as theirs).",
    7: "pixel_perturbation (Srinivas & Fleuret: least salient first at log-spaced fractions, the image's mean colour, "
       "top-1 accuracy of the ground truth) has no counterpart in the references (Quantus' PixelFlipping has fixed "
       "steps and scores probabilities): only the floor.",
}


# ---------------------------------------------------------------------------------------------------- timing

DEVICE = torch.device("cpu")


def _synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def _timed(function: Callable[[], Any]) -> tuple[float, Any]:
    _synchronize()
    start = time.perf_counter()
    output = function()
    _synchronize()
    return time.perf_counter() - start, output


def _interleaved_medians(functions: dict[str, Callable[[], Any]], repeats: int, seed: int = 0) -> dict[str, float]:
    """Median seconds of each function over ``repeats`` rounds; every round runs each function once, in a shuffled
    order (seeded), so that drift of the machine and the order within a round favour none of them."""
    order = random.Random(seed)
    keys = list(functions)
    times: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(repeats):
        for key in order.sample(keys, len(keys)):
            times[key].append(_timed(functions[key])[0])
    return {key: statistics.median(values) for key, values in times.items()}


# ---------------------------------------------------------------------------------------------------- models and data


@dataclass
class Setup:
    """A model and the images it is benchmarked on, with the causal metrics' protocol at its resolution."""

    key: str
    label: str
    n_default: int
    step_rows: float  # insertion/deletion: pixels per step, in image rows
    blur_kernel: int  # insertion's blur substrate
    blur_sigma: float
    load: Callable[[int], tuple[nn.Module, torch.Tensor, torch.Tensor, tuple, tuple, str]] = field(repr=False)


def _load_starter(n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, tuple, tuple, str]:
    model, metadata = interpgrad.load_checkpoint(STARTER)
    mean, std = input_normalisation(metadata)
    data = evaluation_data("shapes", "val", n)
    x = data.inputs(0, n, mean, std, torch.device("cpu"))
    return model, x, torch.as_tensor(np.array(data.labels), dtype=torch.long), mean, std, f"first {n} shapes val images"


def _load_imagenet(n: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor, tuple, tuple, str]:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    # n shapes images drawn at 224 px with the val split's seed (the first n of evaluation_data("shapes", "val", n,
    # 224) would draw the whole split, ~9 s); a random-weight model, so what they show does not matter, only the size.
    arrays = generate_shapes(n, 224, split_seed(0, "val"))
    x = normalize(to_float_images(torch.from_numpy(np.array(arrays.images))), IMAGENET_MEAN, IMAGENET_STD)
    labels = torch.as_tensor(np.array(arrays.labels), dtype=torch.long)
    return model, x, labels, tuple(IMAGENET_MEAN), tuple(IMAGENET_STD), f"{n} shapes images at 224 px"


SETUPS = {
    # 32x32: one image row (32 px) per step, 32 steps; blur kernel 5, sigma 2 (ours' defaults; PAPERS.md section 4).
    "starter": Setup("starter", "starter CIFAR ResNet-18 w0.25 (shapes-resnet18-baseline), 32x32", 32, 1.0, 5, 2.0,
                     _load_starter),
    # 224x224: 8 rows (1792 px) per step, 28 steps (the interpretable-gradients authors' step); RISE's blur 11 / 5.
    "imagenet": Setup("imagenet", "torchvision ResNet-18, random weights, 224x224", 2, 8.0, 11, 5.0, _load_imagenet),
}


# ---------------------------------------------------------------------------------------------------- helpers


def perturbed_images(start: torch.Tensor, end: torch.Tensor, ranks: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Every image a perturbation curve scores, ``[B * T, C, H, W]`` in (image, step) order: image i at step t shows
    ``end`` at its ``counts[t]`` first pixels and ``start`` elsewhere (what ``perturbation_curves`` builds chunk by
    chunk), prebuilt for the floor."""
    batch, steps = start.shape[0], len(counts)
    height, width = start.shape[-2:]
    thresholds = torch.as_tensor(counts, device=start.device).view(1, -1, 1)
    switched = (ranks.to(start.device).unsqueeze(1) < thresholds).view(batch * steps, 1, height, width)
    image = torch.arange(batch, device=start.device).repeat_interleave(steps)
    return torch.where(switched, end[image], start[image]).contiguous()


def forward_all(model: nn.Module, images: torch.Tensor, rows: int) -> Callable[[], None]:
    """The floor: forward passes of ``rows`` images over ``images``, nothing else."""

    def run() -> None:
        with torch.no_grad():
            for first in range(0, images.shape[0], rows):
                model(images[first:first + rows])

    return run


def candidate_rows(total: int, automatic: int) -> list[int]:
    """Batch sizes the floor tries: powers of two from 8 to 1024 below ``total``, ``total`` itself when it is at most
    1024, and ours' automatic size."""
    rows = {2 ** k for k in range(3, 11) if 2 ** k < total}
    if total <= 1024:
        rows.add(total)
    rows.add(min(automatic, total))
    return sorted(rows)


def best_rows(model: nn.Module, images: torch.Tensor, automatic: int, rounds: int) -> tuple[int, dict[int, float]]:
    """The batch size with the fastest forward passes over ``images`` (median of ``rounds`` interleaved rounds, after
    one warm-up pass per batch shape)."""
    candidates = candidate_rows(images.shape[0], automatic)
    with torch.no_grad():  # warm-up: one pass of each shape the candidates will run (full chunks and the remainder)
        for rows in candidates:
            for size in {rows, images.shape[0] % rows} - {0}:
                model(images[:size])
    medians = _interleaved_medians({str(rows): forward_all(model, images, rows) for rows in candidates},
                                   max(1, rounds), seed=1)
    times = {int(key): value for key, value in medians.items()}
    return min(times, key=times.__getitem__), times


def rank_map(maps: torch.Tensor) -> torch.Tensor:
    """Our pixel order (most salient first, ties in raster order) coded as distinct values in (0, 1], ``[B, H, W]``
    float32: the first pixel 1, the last 1/P. Any library that sorts it flips the pixels ours flips."""
    batch, height, width = maps.shape
    pixels = height * width
    ranks = pixel_ranks(maps.double(), descending=True)
    return ((pixels - ranks).double() / pixels).float().view(batch, height, width)


def patch_map(maps: torch.Tensor, patch: int) -> torch.Tensor:
    """The map summed over ``patch`` x ``patch`` squares (Quantus RegionPerturbation's patches), each square holding
    its rank among the squares as a distinct integer (the largest sum highest; ties in raster order)."""
    batch, height, width = maps.shape
    rows, columns = height // patch, width // patch
    sums = maps.double().reshape(batch, rows, patch, columns, patch).sum(dim=(2, 4))
    ranks = pixel_ranks(sums, descending=True)
    values = (rows * columns - ranks).float().view(batch, rows, columns)
    return values.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)


def region_patch(size: int, steps: int) -> int:
    """RegionPerturbation's patch side: a divisor of the image side (no padding) with at least ``steps`` patches,
    the largest such."""
    sides = [p for p in range(1, size + 1) if size % p == 0 and (size // p) ** 2 >= steps]
    return max(sides)


def deletion_percentiles(pixels: int, counts: list[int]) -> list[float]:
    """grad-cam's RemoveMostRelevantFirst keeps the pixels whose map value lies below ``np.percentile(map, q)``. On a
    rank map (P distinct values) the q that deletes exactly ``c`` pixels puts the threshold half-way between the
    (P - c)-th and (P - c + 1)-th smallest values: q = 100 (P - c - 0.5) / (P - 1); all of them: q = 0."""
    return [0.0 if count >= pixels else 100.0 * (pixels - count - 0.5) / (pixels - 1) for count in counts]


def _largest(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ---------------------------------------------------------------------------------------------------- references


class FixedCams:
    """torch-cam's CAM-extractor interface (``model``, ``__call__``, ``fuse_cams``, ``_hooks_off``) returning fixed maps
    ``[B, H, W]``, so that its metrics score our maps and their time includes no CAM computation."""

    def __init__(self, model: nn.Module, cams: torch.Tensor) -> None:
        self.model, self.cams = model, cams

    def __call__(self, class_idx: Any = None, scores: Any = None, normalized: bool = True, **kwargs: Any) -> list:
        return [self.cams]

    def fuse_cams(self, cams: list[torch.Tensor]) -> torch.Tensor:
        return cams[0]

    @contextlib.contextmanager
    def _hooks_off(self):  # type: ignore[no-untyped-def]
        yield


def _quantus_pixel_flipping_class():  # type: ignore[no-untyped-def]
    import quantus
    from quantus.helpers import asserts

    class PixelFlippingWholePixels(quantus.PixelFlipping):
        """Quantus' PixelFlipping with its features_in_step check made against the C*H*W values it flips (the map
        broadcast over the channels) instead of H*W, so that a step can flip whole pixels: note [2]."""

        def custom_preprocess(self, x_batch: np.ndarray, **kwargs: Any) -> None:  # type: ignore[override]
            asserts.assert_features_in_step(features_in_step=self.features_in_step, input_shape=x_batch.shape[1:])

    return PixelFlippingWholePixels


# ---------------------------------------------------------------------------------------------------- one model


@dataclass
class Row:
    metric: str
    ours: tuple[str, ...]  # ours' variant keys (times added)
    other: str  # the variant compared with
    note: int
    agreement: str = ""


def benchmark_model(setup: Setup, n: int, args: argparse.Namespace, layout: torch.memory_format) -> None:
    model, x, labels, mean, std, images_text = setup.load(n)
    model = model.eval().to(DEVICE).to(memory_format=layout)
    x, labels = x.to(DEVICE), labels.to(DEVICE)
    explanation = interpgrad.explain(model, x, "gradcam")
    targets = explanation.target.to(DEVICE)
    batch_size, channels, height, width = x.shape
    pixels = height * width
    step_rows = args.step_rows if args.step_rows else setup.step_rows
    counts = step_counts(pixels, width, step_rows)
    steps = len(counts) - 1
    step = counts[1]
    automatic = rows_per_forward(0, x[0].numel(), device=x.device)
    insertion_params = {"substrate": "blur", "blur_kernel": setup.blur_kernel, "blur_sigma": setup.blur_sigma,
                        "step_rows": step_rows}
    deletion_params = {"substrate": "zeros", "step_rows": step_rows}
    points = 25
    pp_counts = [int(round(f * pixels)) for f in masking_fractions(points)]

    def batch_of(max_batch: int = 0, normalisation: tuple[tuple, tuple] = (mean, std)) -> MetricBatch:
        return MetricBatch.from_explanation(model, x, explanation, mean=normalisation[0], std=normalisation[1],
                                            labels=labels, max_batch=max_batch)

    def ours(name: str, max_batch: int = 0, **params: Any) -> Callable[[], Any]:
        return lambda: get_metric(name)(batch_of(max_batch), **params)

    def ours_drop_increase(normalisation: tuple[tuple, tuple] = (mean, std)) -> Callable[[], Any]:
        def run() -> tuple[Any, Any]:
            batch = batch_of(0, normalisation)  # a fresh batch: AD and AI share its one forward pass (memo)
            return get_metric("average_drop")(batch), get_metric("average_increase")(batch)

        return run

    # ---- the floor's images and its best batch sizes
    ranks_desc = pixel_ranks(explanation.map.double(), descending=True)
    causal_images = perturbed_images(substrate(batch_of(), "blur", setup.blur_kernel, setup.blur_sigma, 0.0), x,
                                     ranks_desc, counts)
    filler = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    pp_images = perturbed_images(x, filler, pixel_ranks(explanation.map.double(), descending=False), pp_counts)
    drop_images = torch.cat([x, explanation_images(batch_of())]).contiguous()
    searches = {}
    for name, images in (("causal", causal_images), ("pp", pp_images), ("drop", drop_images)):
        searches[name] = best_rows(model, images, automatic, args.search_repeats)
    best_causal, best_pp, best_drop = (searches[name][0] for name in ("causal", "pp", "drop"))

    variants: dict[str, Callable[[], Any]] = {
        "floor_causal": forward_all(model, causal_images, best_causal),
        "ours_insertion": ours("insertion", **insertion_params),
        "ours_deletion": ours("deletion", **deletion_params),
        "floor_pp": forward_all(model, pp_images, best_pp),
        "ours_pp": ours("pixel_perturbation", points=points),
        "floor_drop": forward_all(model, drop_images, best_drop),
        "ours_drop_increase": ours_drop_increase(),
    }
    if best_causal != automatic:
        variants["ours_insertion_best"] = ours("insertion", best_causal, **insertion_params)
        variants["ours_deletion_best"] = ours("deletion", best_causal, **deletion_params)
    if best_pp != automatic:
        variants["ours_pp_best"] = ours("pixel_perturbation", best_pp, points=points)
    rows = [
        Row("insertion", ("ours_insertion",), "floor_causal", 1),
        Row("deletion", ("ours_deletion",), "floor_causal", 1),
        Row("pixel_perturbation", ("ours_pp",), "floor_pp", 7),
        Row("AD + AI", ("ours_drop_increase",), "floor_drop", 1),
    ]
    if "ours_insertion_best" in variants:
        rows.insert(1, Row(f"insertion, max_batch={best_causal}", ("ours_insertion_best",), "floor_causal", 1))
        rows.insert(3, Row(f"deletion, max_batch={best_causal}", ("ours_deletion_best",), "floor_causal", 1))
    if "ours_pp_best" in variants:
        rows.insert(rows.index(next(r for r in rows if r.ours == ("ours_pp",))) + 1,
                    Row(f"pixel_perturbation, max_batch={best_pp}", ("ours_pp_best",), "floor_pp", 7))
    # Ours takes the clean image's score from the explanation's logits (insertion's last point, deletion's first,
    # AD's Y) and scores the substrate alone in a pass of its own: B n images per curve against the floor's B (n + 1).
    curve_images = batch_size * steps
    interior = batch_size * (steps - 1)

    def curve_passes(rows: int) -> int:
        return math.ceil(interior / rows) + math.ceil(batch_size / rows)

    images = {"floor_causal": len(causal_images), "ours_insertion": curve_images, "ours_deletion": curve_images,
              "ours_insertion_best": curve_images, "ours_deletion_best": curve_images, "floor_pp": len(pp_images),
              "ours_pp": len(pp_images), "ours_pp_best": len(pp_images), "floor_drop": 2 * batch_size,
              "ours_drop_increase": batch_size}
    passes = {"floor_causal": math.ceil(len(causal_images) / best_causal),
              "ours_insertion": curve_passes(automatic), "ours_deletion": curve_passes(automatic),
              "ours_insertion_best": curve_passes(best_causal), "ours_deletion_best": curve_passes(best_causal),
              "floor_pp": math.ceil(len(pp_images) / best_pp), "ours_pp": math.ceil(len(pp_images) / automatic),
              "ours_pp_best": math.ceil(len(pp_images) / best_pp), "floor_drop": math.ceil(2 * batch_size / best_drop),
              "ours_drop_increase": math.ceil(batch_size / automatic)}
    checks: dict[str, Callable[[dict[str, Any]], str]] = {}
    skipped: list[str] = []

    ranked = rank_map(explanation.map).to(DEVICE)  # our pixel order, for every library that sorts a map
    scaled = min_max(explanation.map.float()).to(DEVICE)  # S in [0, 1], for the AD / AI references
    x_numpy, targets_numpy = x.detach().cpu().numpy(), targets.cpu().numpy()
    patch = region_patch(height, steps)

    # ---- Quantus 0.6.0: PixelFlipping and RegionPerturbation (deletion-like) [2] [3]
    try:
        import quantus

        pixel_flipping = _quantus_pixel_flipping_class()(
            features_in_step=channels * step, perturb_baseline=0.0, disable_warnings=True, display_progressbar=False)
        region = quantus.RegionPerturbation(patch_size=patch, order="morf", regions_evaluation=steps,
                                            perturb_baseline=0.0, disable_warnings=True, display_progressbar=False)
        ranked_numpy = ranked.unsqueeze(1).cpu().numpy()
        patches = patch_map(explanation.map, patch)
        patches_numpy = patches.unsqueeze(1).cpu().numpy()
        quantus_device = str(DEVICE)
        variants["quantus_pixel_flipping"] = lambda: pixel_flipping(
            model=model, x_batch=x_numpy, y_batch=targets_numpy, a_batch=ranked_numpy, channel_first=True,
            softmax=True, device=quantus_device, batch_size=batch_size)
        variants["quantus_region"] = lambda: region(
            model=model, x_batch=x_numpy, y_batch=targets_numpy, a_batch=patches_numpy, channel_first=True,
            softmax=True, device=quantus_device, batch_size=batch_size)
        images["quantus_pixel_flipping"], passes["quantus_pixel_flipping"] = batch_size * steps, steps
        images["quantus_region"], passes["quantus_region"] = batch_size * (steps + 1), steps + 1
        rows.append(Row("deletion", ("ours_deletion",), "quantus_pixel_flipping", 2))
        rows.append(Row("deletion", ("ours_deletion",), "quantus_region", 3))

        def check_pixel_flipping(outputs: dict[str, Any]) -> str:
            theirs = np.asarray(outputs["quantus_pixel_flipping"], dtype=np.float64)
            return f"curve max |diff| {_largest(theirs, outputs['ours_deletion'].curve[:, 1:].numpy()):.1e}"

        def check_region(outputs: dict[str, Any]) -> str:
            theirs = np.asarray(outputs["quantus_region"], dtype=np.float64)  # y - y_k, k = 1..n
            batch = MetricBatch(model=model, x=x, maps=patches.to(DEVICE), signed_maps=patches.to(DEVICE), raw=None,
                                targets=targets, mean=mean, std=std)
            curve = get_metric("deletion")(batch, substrate="zeros", step_rows=patch * patch / width).curve.numpy()
            drops = curve[:, :1] - curve[:, 1:steps + 1]
            return f"drops max |diff| {_largest(theirs, drops):.1e} (patch map)"

        checks["quantus_pixel_flipping"] = check_pixel_flipping
        checks["quantus_region"] = check_region
    except ImportError as error:
        skipped.append(f"Quantus: {error}")

    # ---- torch-cam 0.5.0: DeletionInsertionMetric [4] and ClassificationMetric [6]
    try:
        from torchcam.metrics import ClassificationMetric, DeletionInsertionMetric

        softmax = lambda logits: torch.softmax(logits, dim=-1)  # noqa: E731
        target_list = [int(t) for t in targets.tolist()]
        deletion_insertion = DeletionInsertionMetric(FixedCams(model, ranked), softmax, steps=steps,
                                                     baseline=None, batch_size=automatic)
        classification = ClassificationMetric(FixedCams(model, scaled), softmax)

        def torchcam_run(metric: Any) -> Callable[[], dict[str, float]]:
            def run() -> dict[str, float]:
                metric.reset()
                metric.update(x, class_idx=target_list)
                return metric.summary()

            return run

        def ours_deletion_insertion() -> tuple[Any, Any]:
            batch = batch_of()  # one batch, as in an evaluation: the two curves share the all-zeros image (memo)
            return (get_metric("deletion")(batch, **deletion_params),
                    get_metric("insertion")(batch, **{**insertion_params, "substrate": "zeros"}))

        variants["ours_deletion_insertion_zeros"] = ours_deletion_insertion
        images["ours_deletion_insertion_zeros"] = 2 * curve_images - batch_size
        passes["ours_deletion_insertion_zeros"] = 2 * math.ceil(interior / automatic) + math.ceil(batch_size / automatic)
        variants["torchcam_deletion_insertion"] = torchcam_run(deletion_insertion)
        torchcam_interior = batch_size * (2 * steps - 1)
        images["torchcam_deletion_insertion"] = batch_size + torchcam_interior
        passes["torchcam_deletion_insertion"] = 1 + math.ceil(torchcam_interior / automatic)
        variants["torchcam_classification"] = torchcam_run(classification)
        images["torchcam_classification"], passes["torchcam_classification"] = 2 * batch_size, 2
        rows.append(Row("deletion + insertion (zeros), one batch", ("ours_deletion_insertion_zeros",),
                        "torchcam_deletion_insertion", 4))
        rows.append(Row("AD + AI", ("ours_drop_increase",), "torchcam_classification", 6))

        def check_deletion_insertion(outputs: dict[str, Any]) -> str:
            theirs = outputs["torchcam_deletion_insertion"]
            ours_deletion, ours_insertion = outputs["ours_deletion_insertion_zeros"]
            deletion = abs(theirs["deletion_auc"] - ours_deletion.values.mean().item())
            insertion = abs(theirs["insertion_auc"] - ours_insertion.values.mean().item())
            return f"mean AUC |diff| del {deletion:.1e}, ins {insertion:.1e}"

        def check_classification(outputs: dict[str, Any]) -> str:
            theirs = outputs["torchcam_classification"]
            drop, increase = outputs["ours_identity_drop_increase"]
            return (f"AD |diff| {abs(100 * theirs['avg_drop'] - drop.values.mean().item()):.1e} %, "
                    f"AI |diff| {abs(100 * theirs['conf_increase'] - increase.values.mean().item()):.1e} %")

        checks["torchcam_deletion_insertion"] = check_deletion_insertion
        checks["torchcam_classification"] = check_classification
    except ImportError as error:
        skipped.append(f"torch-cam: {error}")

    # ---- pytorch-grad-cam 1.5.7: perturbation_confidence as a deletion [5], CamMultImageConfidenceChange [6]
    try:
        from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
        from pytorch_grad_cam.metrics.perturbation_confidence import (
            PerturbationConfidenceMetric,
            RemoveMostRelevantFirst,
        )
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

        def zero_imputer(image: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            return image * keep  # deleted pixels (keep = 0) become 0 in normalised space: our zeros substrate

        thresholds = [PerturbationConfidenceMetric(RemoveMostRelevantFirst(q, zero_imputer))
                      for q in deletion_percentiles(pixels, counts[1:])]
        gradcam_targets = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets.tolist()]
        ranked_cams, scaled_cams = ranked.cpu().numpy(), scaled.cpu().numpy()
        confidence_change = CamMultImageConfidenceChange()

        def gradcam_deletion() -> np.ndarray:
            return np.stack([metric(x, ranked_cams, gradcam_targets, model, return_diff=False)
                             for metric in thresholds], axis=1)

        variants["gradcam_deletion"] = gradcam_deletion
        images["gradcam_deletion"], passes["gradcam_deletion"] = batch_size * steps, steps
        variants["gradcam_confidence_change"] = lambda: confidence_change(x, scaled_cams, gradcam_targets, model)
        images["gradcam_confidence_change"], passes["gradcam_confidence_change"] = 2 * batch_size, 2
        rows.append(Row("deletion", ("ours_deletion",), "gradcam_deletion", 5))
        rows.append(Row("AD + AI", ("ours_drop_increase",), "gradcam_confidence_change", 6))

        def check_gradcam_deletion(outputs: dict[str, Any]) -> str:
            ours_curve = outputs["ours_deletion"].curve[:, 1:].numpy()
            return f"curve max |diff| {_largest(outputs['gradcam_deletion'], ours_curve):.1e}"

        def check_confidence_change(outputs: dict[str, Any]) -> str:
            change = np.asarray(outputs["gradcam_confidence_change"], dtype=np.float64)  # O - Y per image
            with torch.no_grad():
                original = torch.softmax(model(x).double(), dim=1).gather(1, targets.view(-1, 1)).squeeze(1)
            drop_theirs = 100 * np.maximum(0.0, -change) / (original.cpu().numpy() + 1e-8)
            drop, increase = outputs["ours_identity_drop_increase"]
            return (f"AD max |diff| {_largest(drop_theirs, drop.values.numpy()):.1e} %, "
                    f"AI differs on {int((100 * (change > 0) != increase.values.numpy()).sum())} of {batch_size}")

        checks["gradcam_deletion"] = check_gradcam_deletion
        checks["gradcam_confidence_change"] = check_confidence_change
    except ImportError as error:
        skipped.append(f"grad-cam: {error}")

    # ---- warm-up (its outputs are the agreement check), then the interleaved rounds
    outputs = {key: _timed(function)[1] for key, function in variants.items()}
    outputs["ours_identity_drop_increase"] = ours_drop_increase(((0.0,) * channels, (1.0,) * channels))()
    for row in rows:
        if row.other in checks:
            try:
                row.agreement = checks[row.other](outputs)
            except Exception as error:  # an agreement that cannot be computed is reported, not fatal
                row.agreement = f"check failed: {type(error).__name__}: {error}"
    del outputs
    medians = _interleaved_medians(variants, args.repeats)

    # ---- report
    layout_name = "channels_last" if layout == torch.channels_last else "contiguous (NCHW)"
    print(f"\n## {setup.key}: {setup.label}")
    print(f"{images_text}, Grad-CAM maps of the predicted class; model layout {layout_name}; "
          f"median of {args.repeats} interleaved rounds")
    rows_text = f"{step_rows:g} image row{'s' if step_rows != 1 else ''}"
    print(f"insertion/deletion: step {step} px ({rows_text}), n = {steps} steps, {steps + 1} scores per image "
          f"-> {len(causal_images)} perturbed images; insertion blur {setup.blur_kernel}/{setup.blur_sigma:g}, "
          f"deletion zeros; pixel_perturbation: {points} fractions -> {len(pp_images)} images; "
          f"ours' automatic forward size {automatic} rows; RegionPerturbation patch {patch}x{patch}")
    for name, label in (("causal", "insertion/deletion images"), ("pp", "pixel_perturbation images"),
                        ("drop", "AD/AI images (x and E)")):
        best, times = searches[name]
        tried = ", ".join(f"{rows_}: {seconds * 1e3:.1f}" for rows_, seconds in times.items())
        print(f"floor search, {label}: best {best} rows (ms per candidate: {tried})")
    for best, metric in ((best_causal, "insertion/deletion"), (best_pp, "pixel_perturbation")):
        if best == automatic:
            print(f"{metric}: the floor's best batch size is ours' automatic one (ours with max_batch={best} = ours)")
    print()
    print("| metric | ours ms | compared with | its ms | ours / it | images scored (ours / it) "
          "| forward passes (ours / it) | agreement with ours | note |")
    print("|---|---:|---|---:|---:|---:|---:|---|---:|")
    labels_of = {
        "floor_causal": f"floor, {best_causal} rows", "floor_pp": f"floor, {best_pp} rows",
        "floor_drop": f"floor, {best_drop} rows", "quantus_pixel_flipping": "Quantus PixelFlipping",
        "quantus_region": "Quantus RegionPerturbation", "torchcam_deletion_insertion": "torch-cam DeletionInsertion",
        "torchcam_classification": "torch-cam ClassificationMetric", "gradcam_deletion": "grad-cam thresholds (zeros)",
        "gradcam_confidence_change": "grad-cam CamMultImageConfidenceChange",
    }
    for row in rows:
        ours_time = sum(medians[key] for key in row.ours)
        ours_images = sum(images[key] for key in row.ours)
        ours_passes = sum(passes[key] for key in row.ours)
        other = medians[row.other]
        print(f"| {row.metric} | {ours_time * 1e3:.1f} | {labels_of[row.other]} | {other * 1e3:.1f} | "
              f"**{ours_time / other:.2f}** | {ours_images} / {images[row.other]} | "
              f"{ours_passes} / {passes[row.other]} | {row.agreement or '—'} | [{row.note}] |")
    for line in skipped:
        print(f"not compared ({line})")

    if args.layout_check:
        layout_check(model, layout, causal_images, best_causal, ours_layout_variant(model, x, explanation, mean, std,
                                                                                     labels, insertion_params), args)


def ours_layout_variant(model: nn.Module, x: torch.Tensor, explanation: Any, mean: tuple, std: tuple,
                        labels: torch.Tensor, params: dict[str, Any]) -> Callable[[nn.Module], Callable[[], Any]]:
    """Ours insertion on ``model`` (another copy of the same weights, in another layout)."""

    def make(network: nn.Module) -> Callable[[], Any]:
        return lambda: get_metric("insertion")(
            MetricBatch.from_explanation(network, x, explanation, mean=mean, std=std, labels=labels), **params)

    return make


def layout_check(model: nn.Module, layout: torch.memory_format, images: torch.Tensor, rows: int,
                 ours_on: Callable[[nn.Module], Callable[[], Any]], args: argparse.Namespace) -> None:
    """The floor and our insertion with the model in both layouts (inputs in NCHW, as ours builds them; giving the
    floor channels-last inputs as well measured no faster on a CPU, so it is not repeated here)."""
    models = {"contiguous": model if layout == torch.contiguous_format else copy.deepcopy(model).to(
                  memory_format=torch.contiguous_format),
              "channels_last": model if layout == torch.channels_last else copy.deepcopy(model).to(
                  memory_format=torch.channels_last)}
    variants = {
        "floor, model contiguous": forward_all(models["contiguous"], images, rows),
        "floor, model channels_last": forward_all(models["channels_last"], images, rows),
        "ours insertion, model contiguous": ours_on(models["contiguous"]),
        "ours insertion, model channels_last": ours_on(models["channels_last"]),
    }
    for function in variants.values():
        function()
    medians = _interleaved_medians(variants, args.layout_repeats, seed=2)
    print(f"\nlayout check ({len(images)} insertion images, floor at {rows} rows, median of {args.layout_repeats} "
          f"interleaved rounds; input NCHW):")
    print("| variant | ms | contiguous / channels_last |")
    print("|---|---:|---:|")
    pairs = {"floor, model contiguous": "floor, model channels_last",
             "ours insertion, model contiguous": "ours insertion, model channels_last"}
    for key, seconds in medians.items():
        ratio = f"{seconds / medians[pairs[key]]:.2f}" if key in pairs else ""
        print(f"| {key} | {seconds * 1e3:.1f} | {ratio} |")


# ---------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="starter,imagenet", help="comma-separated: starter, imagenet")
    parser.add_argument("--n", default="", help="images per model: one number for all, or one per model in --models "
                        "order (default: 32 for starter, 2 for imagenet)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed rounds (default 3)")
    parser.add_argument("--search-repeats", type=int, default=2, help="rounds of the floor's batch-size search")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--layout", default="auto", choices=("auto", "channels_last", "contiguous"),
                        help="the models' memory layout (auto: channels_last on a CPU, as interpgrad.evaluate)")
    parser.add_argument("--step-rows", type=float, default=0.0,
                        help="insertion/deletion pixels per step in image rows (default: 1 at 32 px, 8 at 224 px)")
    parser.add_argument("--layout-check", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the floor and our insertion with the model in both layouts")
    parser.add_argument("--layout-repeats", type=int, default=3, help="rounds of the layout check")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")  # Quantus' and torch-cam's advice; nothing here depends on it
    keys = [key.strip() for key in args.models.split(",") if key.strip()]
    counts = [int(value) for value in args.n.split(",") if value.strip()] if args.n else []
    if len(counts) not in (0, 1, len(keys)):
        parser.error("--n takes one number, or one per model")
    if args.layout == "auto":
        layout = torch.channels_last if DEVICE.type == "cpu" else torch.contiguous_format
    else:
        layout = torch.channels_last if args.layout == "channels_last" else torch.contiguous_format
    where = (torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda"
             else f"CPU {_cpu_name()}, {os.cpu_count()} cores")
    print(f"{where}; torch {torch.__version__}, {torch.get_num_threads()} threads; Python {platform.python_version()}; "
          f"quantus {_version('quantus')}, torchcam {_version('torchcam')}, grad-cam {_version('grad-cam')}")
    print("times in ms; ours / it < 1: ours is faster; targets: ours / floor <= 1.3, ours / each reference < 1")
    began = time.perf_counter()
    for index, key in enumerate(keys):
        setup = SETUPS[key]
        n = counts[index] if len(counts) == len(keys) else counts[0] if counts else setup.n_default
        benchmark_model(setup, n, args, layout)
    print("\nnotes:")
    for number, text in NOTES.items():
        print(f"[{number}] {text}")
    print(f"\n(total {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
