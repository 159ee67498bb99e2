"""Convex-hull regions (``interpgrad.regions``): how many maps per second the whole extraction handles, and what RS
costs against the pure forward passes of its occluded images.

    python benchmarks/regions.py                          # ~2 min on 2 cores
    python benchmarks/regions.py --n 4000 --rounds 7 --rs-n 256 --threads 2

**Extraction** (target: at least 1,000 maps of 64 x 64 per second on 2 cores): ``important_pixels`` of a batch of
maps (top 10 %) then ``convex_hull_regions`` of every mask (min_size 4; merge_distance 0 and 2), everything included,
one process. Three kinds of 64 x 64 maps: ``gradient`` = the starter model's gradient maps (checkpoints/shapes-
resnet18-baseline, a CIFAR ResNet-18 that pools globally, so it runs at 64 x 64) of shapes images drawn at 64 x 64;
``smooth`` = Gaussian-smoothed noise (sigma 1.5 px: many blobs, the most hulls per map); ``speckle`` = |N(0, 1)|
noise (hundreds of tiny components, nearly all dropped).

**RS**: ``region_sensitivity`` of N shapes val images (32 x 32, the starter model) under 3 masks each (the regions
of its gradient map, their complement within the image, a random control: what ``compare_regions`` scores), against
the **floor**: ``model(images[i:i + rows])`` under ``torch.no_grad`` over the same clean and occluded images, built
beforehand, in passes of the same size. Also ``compare_regions`` end to end (the gradient map against its
restriction to a random half of its pixels).

Each figure is the median of ``--rounds`` interleaved rounds (every round runs every variant once, shuffled) after
a warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import interpgrad  # noqa: E402
from interpgrad.data.transforms import normalize, to_float_images  # noqa: E402
from interpgrad.explain.mechanics import rows_per_forward  # noqa: E402
from interpgrad.metrics import evaluation_data  # noqa: E402
from interpgrad.regions import (  # noqa: E402
    compare_regions,
    convex_hull_regions,
    important_pixels,
    occlusion_values,
    random_regions_like,
    region_sensitivity,
    regions_of_maps,
    union_mask,
)
from interpgrad.training.checkpoint import input_normalisation  # noqa: E402

STARTER = Path(__file__).resolve().parents[1] / "checkpoints" / "shapes-resnet18-baseline"


def _median_seconds(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    for run in variants.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    order = random.Random(0)
    for _ in range(rounds):
        for name in order.sample(list(variants), len(variants)):
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _images(n: int, size: int, mean, std) -> tuple[torch.Tensor, np.ndarray]:  # type: ignore[no-untyped-def]
    data = evaluation_data("shapes", "val", n, image_size=size)
    return normalize(to_float_images(torch.from_numpy(np.array(data.images))), mean, std), data.images


def _extraction(model: torch.nn.Module, mean, std, n: int, rounds: int) -> None:  # type: ignore[no-untyped-def]
    generator = np.random.default_rng(0)
    x, _ = _images(min(n, 1000), 64, mean, std)
    gradient = interpgrad.explain(model, x, "gradient").map
    maps = {
        "gradient": gradient.repeat((n + len(gradient) - 1) // len(gradient), 1, 1)[:n].double(),
        "smooth": torch.from_numpy(np.stack([gaussian_filter(generator.random((64, 64)), 1.5) for _ in range(n)])),
        "speckle": torch.from_numpy(np.abs(generator.normal(size=(n, 64, 64)))),
    }

    def extract(values: torch.Tensor, merge_distance: int) -> Callable[[], list]:  # type: ignore[type-arg]
        return lambda: [convex_hull_regions(mask, 4, merge_distance) for mask in important_pixels(values).numpy()]

    variants = {(kind, merge): extract(values, merge) for kind, values in maps.items() for merge in (0, 2)}
    seconds = _median_seconds({f"{kind} {merge}": run for (kind, merge), run in variants.items()}, rounds)
    print(f"\nExtraction of {n} maps of 64 x 64 (top 10 %, min_size 4), median of {rounds} rounds:")
    print(f"{'maps':<10} {'merge':>6} {'maps/s':>9} {'ms/map':>8} {'regions/map':>12}")
    for (kind, merge), run in variants.items():
        regions = np.mean([len(found) for found in run()])
        took = seconds[f"{kind} {merge}"]
        print(f"{kind:<10} {merge:>6} {n / took:>9.0f} {took / n * 1000:>8.3f} {regions:>12.1f}")


def _sensitivity(model: torch.nn.Module, mean, std, n: int, rounds: int) -> None:  # type: ignore[no-untyped-def]
    x, _ = _images(n, 32, mean, std)
    maps = interpgrad.explain(model, x, "gradient").map
    shape = tuple(x.shape[-2:])
    masks = np.zeros((n, 3, *shape), dtype=bool)
    for i, regions in enumerate(regions_of_maps(maps)):
        masks[i, 0] = union_mask(regions, shape)
        masks[i, 1] = ~masks[i, 0]
        masks[i, 2] = random_regions_like(masks[i, 0], i)
    masks_tensor = torch.from_numpy(masks)
    rows = rows_per_forward(0, x[0].numel(), device=x.device)
    filler = occlusion_values(x, "black", mean, std)
    prebuilt = torch.cat([x, torch.where(masks_tensor.unsqueeze(2), filler.unsqueeze(1), x.unsqueeze(1)).flatten(0, 1)])
    half = maps * (torch.rand(maps.shape, generator=torch.Generator().manual_seed(0)) < 0.5)

    def floor() -> None:
        with torch.no_grad():
            for start in range(0, len(prebuilt), rows):
                model(prebuilt[start:start + rows])

    seconds = _median_seconds({
        "RS": lambda: region_sensitivity(model, x, masks_tensor, mean=mean, std=std),
        "floor": floor,
        "compare_regions": lambda: compare_regions(model, x, maps, half, mean=mean, std=std),
    }, rounds)
    images = len(prebuilt)
    print(f"\nRS of {n} images of 32 x 32 under 3 masks each ({images} forward images, {rows} per pass), "
          f"median of {rounds} rounds:")
    print(f"{'variant':<16} {'s':>8} {'images/s':>10} {'vs floor':>9}")
    for name in ("RS", "floor"):
        ratio = seconds[name] / seconds["floor"]
        print(f"{name:<16} {seconds[name]:>8.3f} {images / seconds[name]:>10.0f} {ratio:>8.2f}x")
    took = seconds["compare_regions"]
    print(f"{'compare_regions':<16} {took:>8.3f} {n / took:>10.0f} {took / seconds['floor']:>8.2f}x  "
          f"(images/s of the table: two maps' regions, 3 masks, RS)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="maps per extraction batch")
    parser.add_argument("--rs-n", type=int, default=128, help="images of the RS batch")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, metadata = interpgrad.load_checkpoint(STARTER)
    mean, std = input_normalisation(metadata)
    print(f"interpgrad regions; torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}); OpenCV {__import__('cv2').__version__}")
    _extraction(model, mean, std, args.n, args.rounds)
    _sensitivity(model, mean, std, args.rs_n, args.rounds)


if __name__ == "__main__":
    main()
