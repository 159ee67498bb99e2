"""Side-by-side comparison of models and attribution methods on one image: what the app's Explore grid shows.

    grid = compare(models, image, ["gradient", "guided_backprop", "gradcam"], with_captum=True)
    figure = grid.figure(cmap="jet", alpha=0.5)      # rows = models, columns = input + methods (+ Captum's)
    archive = grid.zip_bytes()                         # raw and display maps as .npy, with a manifest
    scores = score_comparison(models, image, grid, mask=mask)  # (row key, column) -> {metric: value} per map

Each model sees the image resized to its own input (shorter side, centre crop) and normalised with its own
statistics; targets are the predicted class, or a class given per model. Results keep the raw maps, so display
options (colormap, opacity, signed or absolute, percentile clipping) are applied afterwards without recomputing.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .data import prepare_image, resize_center_crop
from .errors import ConfigError, InterpgradError
from .explain import Explanation, explain, get_method, reporting_progress
from .reference import captum_explain, has_reference
from .training.checkpoint import class_names_of, input_normalisation
from .viz import grid_figure, normalize_map, overlay, png_bytes

__all__ = ["Cell", "ComparedModel", "Comparison", "ModelRow", "compare", "score_comparison", "top_predictions"]


@dataclass(frozen=True)
class ComparedModel:
    """A model to compare: a display name, the module (eval mode), its checkpoint metadata, an optional lock held
    while it is explained (shared models in a multi-user app) and an optional unique ``key`` (the zoo's
    ``source/name``; default: the name). Targets and the ZIP's paths are keyed by ``ident``, so two models that share
    a display name (a shipped model and an upload) never collide."""

    name: str
    model: nn.Module
    metadata: Mapping[str, Any]
    lock: threading.Lock | None = None
    key: str | None = None

    @property
    def ident(self) -> str:
        return self.key or self.name

    @property
    def image_size(self) -> int:
        return int(self.metadata["model"]["image_size"])

    @property
    def class_names(self) -> list[str]:
        """A name per class (``interpgrad.training.checkpoint.class_names_of``)."""
        return class_names_of(self.metadata)

    @property
    def normalisation(self) -> tuple[Sequence[float], Sequence[float]]:
        return input_normalisation(self.metadata)


@dataclass(frozen=True)
class Cell:
    """One method's result for one model: an Explanation, or the readable reason it could not be computed."""

    method: str
    source: str  # "ours" or "captum"
    explanation: Explanation | None
    error: str | None
    seconds: float

    @property
    def column(self) -> str:
        return self.method if self.source == "ours" else f"{self.method} (Captum)"


@dataclass
class ModelRow:
    key: str  # the model's ident: unique within a comparison
    name: str
    image: np.ndarray  # the model's view of the input, uint8 RGB at its input size
    target: int
    target_name: str
    top: list[tuple[str, float]]
    cells: list[Cell] = field(default_factory=list)


def top_predictions(probabilities: torch.Tensor, class_names: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The k most probable classes of one image as (name, probability)."""
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    return [(class_names[int(i)], float(v)) for v, i in zip(values, indices)]


@dataclass
class Comparison:
    """The grid: one row per model, one column per (method, ours or Captum)."""

    rows: list[ModelRow]
    methods: list[str]
    seconds: float

    @property
    def columns(self) -> list[str]:
        seen: list[str] = []
        for row in self.rows:
            for cell in row.cells:
                if cell.column not in seen:
                    seen.append(cell.column)
        return seen

    def panel(self, row: ModelRow, cell: Cell, cmap: str | None, alpha: float, signed: bool, percentile: float) -> np.ndarray | None:
        if cell.explanation is None:
            return None
        values = cell.explanation.signed_map[0] if signed else cell.explanation.map[0]
        normalised = normalize_map(values, "signed" if signed else "absolute", percentile)
        return overlay(row.image, normalised, alpha=alpha, cmap=cmap, signed=signed)

    def figure(self, cmap: str | None = None, alpha: float = 0.5, signed: bool = False, percentile: float = 99.5,
               panel_size: int = 160):  # type: ignore[no-untyped-def]
        """The grid as one PIL image: the input, then every column, for every model."""
        columns = self.columns
        panels, captions = [], []
        for row in self.rows:
            by_column = {cell.column: cell for cell in row.cells}
            panels.append([row.image] + [self.panel(row, by_column[c], cmap, alpha, signed, percentile) if c in by_column else None
                                         for c in columns])
            captions.append([f"{row.target_name}"] + [by_column[c].error or "" if c in by_column else "" for c in columns])
        return grid_figure(panels, column_labels=["input", *columns], row_labels=[row.name for row in self.rows],
                           captions=captions, panel_size=panel_size)

    def png_bytes(self, **options: Any) -> bytes:
        return png_bytes(self.figure(**options))

    def zip_bytes(self) -> bytes:
        """Every map as .npy (raw attribution, display map, signed map) and a manifest.json of targets and timings."""
        buffer = io.BytesIO()
        manifest: dict[str, Any] = {"methods": self.methods, "models": []}
        folders = _unique_folders([row.key for row in self.rows])
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for row, folder in zip(self.rows, folders):
                entry = {"key": row.key, "name": row.name, "folder": folder, "target": row.target,
                         "target_name": row.target_name, "top": row.top, "cells": []}
                for cell in row.cells:
                    stem = f"{folder}/{_slug(cell.column)}"
                    entry["cells"].append({"column": cell.column, "seconds": cell.seconds, "error": cell.error,
                                           "files": [] if cell.explanation is None else [f"{stem}_{k}.npy" for k in ("raw", "map", "signed_map")]})
                    if cell.explanation is not None:
                        for key in ("raw", "map", "signed_map"):
                            archive.writestr(f"{stem}_{key}.npy", _npy(getattr(cell.explanation, key)[0]))
                manifest["models"].append(entry)
            archive.writestr("manifest.json", json.dumps(manifest, indent=2))
        return buffer.getvalue()


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-+" else "_" for c in text)


def _unique_folders(keys: Sequence[str]) -> list[str]:
    """A ZIP folder per model key (``shipped/name`` -> ``shipped/name``, each part slugged); two keys that slug alike
    get ``-2``, ``-3``... so that no model's files overwrite another's."""
    folders: list[str] = []
    for key in keys:
        base = "/".join(_slug(part) or "_" for part in key.split("/"))
        folder, number = base, 2
        while folder in folders:
            folder, number = f"{base}-{number}", number + 1
        folders.append(folder)
    return folders


def _npy(tensor: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, tensor.detach().cpu().numpy())
    return buffer.getvalue()


def _run(function: Callable[[], Explanation]) -> tuple[Explanation | None, str | None, float]:
    start = time.perf_counter()
    try:
        return function(), None, time.perf_counter() - start
    except InterpgradError as error:
        return None, str(error), time.perf_counter() - start


def _reporter(progress: Callable[[float, str], None] | None, done: int, total: int, message: str) -> Callable[[float], None]:
    """The progress callback of one cell: its own fraction mapped into the whole grid's."""
    if progress is None:
        return lambda fraction: None
    return lambda fraction: progress((done + fraction) / total, message)


def compare(
    models: Sequence[ComparedModel],
    image: np.ndarray,
    methods: Sequence[str],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    targets: Mapping[str, int] | None = None,
    with_captum: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> Comparison:
    """Explain ``image`` (uint8 RGB) with every method for every model.

    ``params``: method -> parameters (declared ones; defaults fill the rest). ``targets``: model ident (its key, or
    its name when it has none) -> class index (missing: the predicted class). ``with_captum``: add Captum's result beside ours where Captum has the method.
    ``progress(fraction, message)`` is called before each cell and as methods of many forward passes advance. A
    method that cannot run on a model (e.g. CAM on a model without a GAP + linear head) gives a cell with the reason
    instead of failing the grid.
    """
    for method in methods:
        get_method(method)
    params = params or {}
    jobs = [(method, source) for method in methods for source in ("ours", "captum")
            if source == "ours" or (with_captum and has_reference(method))]
    total, done, start = max(1, len(models) * len(jobs)), 0, time.perf_counter()
    rows = []
    for compared in models:
        mean, std = compared.normalisation
        view = resize_center_crop(image, compared.image_size)
        x = prepare_image(image, compared.image_size, mean, std)
        with compared.lock or nullcontext():
            with torch.no_grad():
                probabilities = torch.softmax(compared.model(x), dim=1)[0]
            target = (targets or {}).get(compared.ident)
            if target is None:
                target = int(probabilities.argmax())
            if not 0 <= int(target) < len(compared.class_names):
                count = len(compared.class_names)
                raise ConfigError(f"target class {target} of {compared.name} is out of range: it has {count} classes")
            row = ModelRow(compared.ident, compared.name, view, int(target), compared.class_names[int(target)],
                           top_predictions(probabilities, compared.class_names))
            for method, source in jobs:
                function = explain if source == "ours" else captum_explain
                message = f"{compared.name}: {method}{' (Captum)' if source == 'captum' else ''}"
                report = _reporter(progress, done, total, message)
                report(0.0)
                with reporting_progress(report):  # methods of many forward passes report as they go
                    explanation, error, seconds = _run(
                        lambda: function(compared.model, x, method, target=row.target, **dict(params.get(method, {})))
                    )
                row.cells.append(Cell(method, source, explanation, error, seconds))
                done += 1
        if progress is not None:
            progress(done / total, f"{compared.name}: done")
        rows.append(row)
    return Comparison(rows, list(methods), time.perf_counter() - start)


def _mask_view(mask: np.ndarray, image_size: int) -> np.ndarray:
    """A ground-truth mask ``[H, W]`` (bool) seen as a model sees its image: shorter side resized to ``image_size``,
    centre crop (the same geometry as ``resize_center_crop``), thresholded at one half."""
    grey = np.repeat((np.asarray(mask, dtype=bool).astype(np.uint8) * 255)[..., None], 3, axis=2)
    return resize_center_crop(grey, image_size)[..., 0] >= 128


def score_comparison(
    models: Sequence[ComparedModel],
    image: np.ndarray,
    comparison: Comparison,
    *,
    mask: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[tuple[str, str], dict[str, float]]:
    """Per-image scores of every map of a grid (``compare(models, image, ...)``), for showing under the maps.

    ``names``: metric names (default ``interpgrad.metrics.scores.EXPLORE_METRICS``: insertion, deletion, energy
    pointing game); a metric that needs ground truth is left out when ``mask`` (bool ``[H, W]`` at the image's
    resolution) is None. Each model scores its own view of the image (resized and normalised as in ``compare``) with
    its lock held. Returns (row key, cell column) -> {metric: value} for every cell with a map; rows whose model is
    not among ``models`` are skipped. A value is NaN where the metric is undefined (an empty mask after the crop).
    """
    from .metrics.scores import EXPLORE_METRICS, score_explanation

    by_ident = {model.ident: model for model in models}
    scores: dict[tuple[str, str], dict[str, float]] = {}
    for row in comparison.rows:
        compared = by_ident.get(row.key)
        if compared is None:
            continue
        mean, std = compared.normalisation
        x = prepare_image(image, compared.image_size, mean, std)
        masks = None if mask is None else torch.from_numpy(_mask_view(mask, compared.image_size))[None]
        with compared.lock or nullcontext():
            for cell in row.cells:
                if cell.explanation is None:
                    continue
                results = score_explanation(compared.model, x, cell.explanation, tuple(names or EXPLORE_METRICS),
                                            mean=mean, std=std, masks=masks, params=params)
                scores[(row.key, cell.column)] = {name: float(result.values[0]) for name, result in results.items()}
    return scores
