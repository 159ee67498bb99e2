"""The lab's experiments on checkpoints (``LabModel``), cached on disk (``interpgrad.lab.cache``): what the page and
the CLI call. Each takes ``cache_dir``: ``"auto"`` (default: ``lab/`` beside the first model's checkpoint), a folder,
or None (compute, keep nothing)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

from ..metrics.statistics import RESAMPLES, Summary
from .cache import CacheEntry, cached, lab_cache_dir
from .density import DEFAULT_STDS, DensityProfile, density_ratio_profile
from .gan_test import GanTest, gan_test
from .images import LabImages
from .perturbation import PerturbationCurves, pixel_perturbation_curves
from .pixel_space import LabModel, class_indices
from .sampling import DEFAULT_KEEP, ClassSamples, class_samples

__all__ = ["cached_class_samples", "cached_density_profile", "cached_gan_test", "cached_perturbation"]

CacheDir = str | os.PathLike[str] | None
Progress = Callable[[int, int], None] | None


def _folder(cache_dir: CacheDir, model: LabModel) -> Path | None:
    if cache_dir is None:
        return None
    return lab_cache_dir(model.path) if str(cache_dir) == "auto" else Path(cache_dir)


def cached_class_samples(
    model: LabModel, classes: Sequence[int | str] | str | None = None, *, per_class: int = 1, steps: int = 500,
    lr: float = 0.1, wd: float = 0.01, noise: float = 0.0, keep: Sequence[int] = DEFAULT_KEEP, seed: int = 0,
    batch_size: int = 64, cache_dir: CacheDir = "auto", progress: Progress = None,
) -> ClassSamples:
    """``class_samples`` of ``model`` for ``classes`` (names or indices; None: all), cached. A cached trajectory is
    stored as 8-bit images (for display); the final samples and the logits exactly."""
    indices = class_indices(classes, model.class_names)
    params = {"classes": indices, "per_class": per_class, "steps": steps, "lr": lr, "wd": wd, "noise": noise,
              "keep": sorted(set(int(k) for k in keep)), "seed": seed, "image_size": model.image_size}

    def compute() -> CacheEntry:
        result = class_samples(model.model, indices, per_class=per_class, steps=steps, lr=lr, wd=wd, noise=noise,
                               keep=keep, seed=seed, image_size=model.image_size, batch_size=batch_size,
                               progress=progress)
        table = pd.DataFrame({"sample": range(len(result.classes)), "class": result.classes.numpy(),
                              "replicate": result.replicates.numpy(),
                              "name": [model.class_names[c] for c in result.classes.tolist()],
                              "final_logit": result.target_logits[-1].numpy()})
        arrays = {"samples": result.samples.numpy(), "steps": np.asarray(result.steps),
                  "trajectory": (result.trajectory * 255).round().to(torch.uint8).numpy(),
                  "target_logits": result.target_logits.numpy()}
        return CacheEntry(table, arrays, {"settings": result.settings})

    entry, _ = cached(_folder(cache_dir, model), "samples", [model.sha256], params, compute)
    arrays = entry.arrays
    return ClassSamples(torch.tensor(arrays["samples"]), torch.tensor(entry.table["class"].to_numpy()),
                        torch.tensor(entry.table["replicate"].to_numpy()), tuple(int(s) for s in arrays["steps"]),
                        torch.tensor(arrays["trajectory"]).float() / 255, torch.tensor(arrays["target_logits"]),
                        dict(entry.info.get("settings", {})))


def cached_gan_test(
    generator: LabModel, judge: LabModel, classes: Sequence[int | str] | str | None = None, *, per_class: int = 1,
    steps: int = 500, lr: float = 0.1, wd: float = 0.01, noise: float = 0.0, seed: int = 0,
    resamples: int = RESAMPLES, batch_size: int = 64, cache_dir: CacheDir = "auto", progress: Progress = None,
) -> GanTest:
    """The GAN-test of ``generator``'s class samples (``cached_class_samples``, same cache) judged by ``judge``."""
    indices = class_indices(classes, generator.class_names)
    if len(judge.class_names) != len(generator.class_names):
        from ..errors import ConfigError

        raise ConfigError(f"the judge {judge.name} has {len(judge.class_names)} classes, the generator "
                          f"{generator.name} {len(generator.class_names)}")
    sampling = {"per_class": per_class, "steps": steps, "lr": lr, "wd": wd, "noise": noise, "seed": seed}
    params = {"classes": indices, **sampling, "resamples": resamples}

    def compute() -> CacheEntry:
        samples = cached_class_samples(generator, indices, batch_size=batch_size, cache_dir=cache_dir,
                                       progress=progress, **sampling)
        result = gan_test(judge.model, samples.samples, samples.classes, resamples=resamples, seed=seed,
                          class_names=generator.class_names)
        return CacheEntry(result.per_class, {"predictions": result.predictions.numpy()},
                          {"accuracy": result.accuracy.to_dict()})

    entry, _ = cached(_folder(cache_dir, generator), "gan-test", [generator.sha256, judge.sha256], params, compute)
    return GanTest(Summary(**entry.info["accuracy"]), entry.table, torch.tensor(entry.arrays["predictions"]))


def cached_density_profile(
    model: LabModel, data: LabImages, *, stds: Sequence[float] = DEFAULT_STDS, noise_samples: int = 4, seed: int = 0,
    clamp: bool = False, resamples: int = RESAMPLES, batch_size: int = 64, cache_dir: CacheDir = "auto",
    progress: Progress = None,
) -> DensityProfile:
    """``density_ratio_profile`` of ``model`` on ``data`` (true labels), cached."""
    params = {"data": data.description, "stds": [float(s) for s in stds], "noise_samples": noise_samples,
              "seed": seed, "clamp": clamp, "resamples": resamples}

    def compute() -> CacheEntry:
        result = density_ratio_profile(model.model, data.images, data.labels, stds=stds, noise_samples=noise_samples,
                                       seed=seed, clamp=clamp, batch_size=batch_size, resamples=resamples,
                                       progress=progress)
        return CacheEntry(result.table, {"stds": result.stds, "differences": result.differences,
                                         "ratios": result.ratios}, {"settings": result.settings})

    entry, _ = cached(_folder(cache_dir, model), "density", [model.sha256], params, compute)
    return DensityProfile(entry.arrays["stds"], entry.arrays["differences"], entry.arrays["ratios"], entry.table,
                          dict(entry.info.get("settings", {})))


def cached_perturbation(
    model: LabModel, data: LabImages, *, saliency_model: LabModel | None = None,
    fractions: Sequence[float] | None = None, constant: float = 0.5, seed: int = 0, resamples: int = RESAMPLES,
    batch_size: int = 32, cache_dir: CacheDir = "auto", progress: Progress = None,
) -> PerturbationCurves:
    """``pixel_perturbation_curves``: ``model`` judges, ``saliency_model`` (default: ``model``) orders the pixels;
    cached beside ``model``'s checkpoint (the judge's)."""
    explainer = saliency_model or model
    params: dict[str, Any] = {"data": data.description, "fractions": None if fractions is None else list(fractions),
                              "constant": constant, "seed": seed, "resamples": resamples}

    def compute() -> CacheEntry:
        result = pixel_perturbation_curves(model.model, data.images, data.labels, saliency_model=explainer.model,
                                           fractions=fractions, constant=constant, batch_size=batch_size, seed=seed,
                                           resamples=resamples, progress=progress)
        return CacheEntry(result.table, {"fractions": result.fractions, "correct": result.correct},
                          {"settings": result.settings})

    entry, _ = cached(_folder(cache_dir, model), "perturbation", [model.sha256, explainer.sha256], params, compute)
    return PerturbationCurves(entry.arrays["fractions"], entry.arrays["correct"], entry.table,
                              dict(entry.info.get("settings", {})))
