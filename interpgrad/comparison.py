"""Side-by-side comparison of models and attribution methods on one image: what the app's Explore grid shows.

    grid = compare(models, image, ["gradient", "guided_backprop", "gradcam"], with_captum=True, image_name="cat.jpg")
    display = DisplayOptions(cmap="jet", alpha=0.5, scale="column", outline=True)
    view = grid.render(display)                        # every panel, scale, A - B row and colorbar, as drawn
    figure = grid.figure(display)                      # the same as one PIL image, with its title and predictions
    archive = grid.zip_bytes(display)                  # raw, display and difference maps as .npy, input, manifest
    scores = score_comparison(models, image, grid, mask=mask)  # (row key, column) -> {metric: value} per map

Each model sees the image resized to its own input (shorter side, centre crop) and normalised with its own
statistics; targets are the predicted class, or a class given per model. Results keep the raw maps, so display
options (``interpgrad.viz.DisplayOptions``) are applied afterwards without recomputing. Per model the grid also keeps
the cosine between the image's standard and guided loss gradients (what the guided regularizer trains), how the image
was resized, and whether the image is from the data the model was trained on; per Captum cell, the Pearson
correlation of its raw attribution with ours.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .data import describe_resize, prepare_image, resize_center_crop
from .errors import ConfigError, InterpgradError
from .explain import Explanation, explain, get_method, reporting_progress
from .metrics.mechanics import pearson
from .modelstate import preserved_model_state
from .reference import captum_explain, has_reference
from .regions import Region, convex_hull_regions, draw_regions, important_pixels, region_complexity
from .regularizers import gradient_alignment
from .training.checkpoint import class_names_of, input_normalisation
from .viz import (
    DisplayOptions,
    FigureLayout,
    GridRow,
    colorbar,
    draw_outline,
    enlarge,
    format_value,
    grid_layout,
    map_scale,
    normalize_map,
    overlay,
    png_bytes,
    shared_scale,
)

__all__ = [
    "ALIGNMENT_HELP",
    "Cell",
    "ComparedModel",
    "Comparison",
    "DifferenceRow",
    "GridView",
    "MapPanel",
    "ModelRow",
    "compare",
    "counted",
    "domain_note",
    "image_digest",
    "method_help",
    "score_comparison",
    "top_predictions",
]

ALIGNMENT_HELP = (
    "cos(standard, guided): the cosine between this image's standard input gradient of the cross-entropy loss for "
    "the target class and its guided-backpropagation gradient, dL/dx and d_G L/dx. It is the quantity the guided "
    "regularizer trains towards 1 (a model's val_alignment is its mean over the validation images): near 1, the "
    "plain gradient already shows what guided backpropagation shows."
)

MAP_KINDS = ("raw", "map", "signed_map")
"""The maps of an explanation the ZIP keeps, as ``<folder>/<column>_<kind>.npy``."""
_DATASET_NAMES = {"shapes": "shapes", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagefolder": "an image folder"}


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``1 model``, ``2 models`` (``plural``: when the plural is not ``noun + "s"``)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def image_digest(image: np.ndarray) -> str:
    """A fingerprint of an image's pixels and shape: two images with the same digest are the same image."""
    digest = hashlib.sha256(f"{image.shape}{image.dtype}".encode())
    digest.update(np.ascontiguousarray(image).data)
    return digest.hexdigest()


def domain_note(image_dataset: str | None, model_dataset: str | None) -> str | None:
    """Why a model's predictions on an image may mean little, or None when the image is from the model's training
    data. ``image_dataset``: where the image comes from (``shapes``, ``cifar10``... or ``upload``, ``photo``); None
    when that is not known, and nothing is said."""
    if image_dataset is None or not model_dataset or model_dataset == image_dataset:
        return None
    trained = _DATASET_NAMES.get(model_dataset, model_dataset)
    if model_dataset == "imagefolder":
        return (f"possibly out of domain: trained on {trained}, and nothing tells whether this image is like its "
                "images")
    return (f"out of domain: trained on {trained} images, and this image is not one of them, so its predictions "
            "may mean little")


def method_help(name: str) -> str:
    """A method's one-line description, formula (the first paragraph of its docstring) and source, from the
    registry, as Markdown."""
    method = get_method(name)
    paragraphs = (method.compute.__doc__ or "").strip().split("\n\n")
    formula = " ".join(paragraphs[0].split()) if paragraphs[0] else ""
    parts = [f"**{name}**: {method.description}.", formula, f"Source: {method.source}." if method.source else ""]
    return "\n\n".join(part for part in parts if part)


@dataclass(frozen=True)
class ComparedModel:
    """A model to compare: a display name, the module (eval mode), its checkpoint metadata, an optional lock held
    while it is explained (shared models in a multi-user app), an optional unique ``key`` (the zoo's
    ``source/name``; default: the name) and, when it was loaded from a file, the file's ``path`` and ``sha256``
    (recorded in the ZIP's manifest). Targets and the ZIP's paths are keyed by ``ident``, so two models that share
    a display name (a shipped model and an upload) never collide."""

    name: str
    model: nn.Module
    metadata: Mapping[str, Any]
    lock: threading.Lock | None = None
    key: str | None = None
    path: str | None = None
    sha256: str | None = None

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

    @property
    def dataset(self) -> str | None:
        """The name of the dataset the model was trained on (``shapes``, ``cifar10``...), when its metadata says."""
        data = self.metadata.get("data")
        name = data.get("name") if isinstance(data, Mapping) else None
        return str(name) if name else None


@dataclass(frozen=True)
class Cell:
    """One method's result for one model: an Explanation, or the readable reason it could not be computed. A Captum
    cell has ``agreement``: the Pearson correlation of its raw attribution with ours (NaN when either is constant,
    None when one of the two is missing)."""

    method: str
    source: str  # "ours" or "captum"
    explanation: Explanation | None
    error: str | None
    seconds: float
    agreement: float | None = None

    @property
    def column(self) -> str:
        return self.method if self.source == "ours" else f"{self.method} (Captum)"

    @property
    def agreement_text(self) -> str:
        """``Pearson r 0.9998 with ours`` under a Captum map; empty when there is nothing to say."""
        if self.agreement is None:
            return ""
        if self.agreement != self.agreement:  # NaN
            return "Pearson r with ours undefined (a constant map)"
        return f"Pearson r {self.agreement:.4f} with ours"


@dataclass
class ModelRow:
    key: str  # the model's ident: unique within a comparison
    name: str
    image: np.ndarray  # the model's view of the input, uint8 RGB at its input size
    target: int
    target_name: str
    top: list[tuple[str, float]]
    cells: list[Cell] = field(default_factory=list)
    resize: str = ""  # how the image became the model's input, in words
    alignment: float | None = None  # cos(standard, guided) of the loss gradient on this image (ALIGNMENT_HELP)
    domain: str | None = None  # why the predictions may mean little (out of domain), or None
    checkpoint: dict[str, Any] | None = None  # path and sha256 of the model's file, when known

    @property
    def image_size(self) -> int:
        return int(self.image.shape[0])

    def predictions(self, k: int = 3) -> str:
        """``target: star · top: star 97.1 %, heart 1.5 %, cross 0.4 % · cos(standard, guided) 0.62``."""
        top = ", ".join(f"{name} {probability:.1%}" for name, probability in self.top[:k])
        alignment = f" · cos(standard, guided) {self.alignment:.2f}" if self.alignment is not None else ""
        return f"target: {self.target_name} · top: {top}{alignment}"


def top_predictions(probabilities: torch.Tensor, class_names: Sequence[str], k: int = 5) -> list[tuple[str, float]]:
    """The k most probable classes of one image as (name, probability)."""
    values, indices = probabilities.topk(min(k, probabilities.numel()))
    return [(class_names[int(i)], float(v)) for v, i in zip(values, indices)]


@dataclass(frozen=True)
class MapPanel:
    """One map as drawn: the picture (uint8 RGB; None when the map could not be computed), ``scale``: the map value
    at the end of the colour scale (its percentile, or the column's; 0 for an all-zero map), and ``note``: what the
    panel's caption says of the map (``all zero``, its scale, or why there is no map)."""

    image: np.ndarray | None
    scale: float
    all_zero: bool
    note: str


@dataclass(frozen=True)
class DifferenceRow:
    """``A - B`` for every method: the maps of model A (``minuend``, a row key) minus those of model B, each first
    normalised as the grid shows it, so the difference is in display units: [-1, 1] for magnitudes, [-2, 2] for
    signed maps (``limit``). Positive (the high end of the colormap) where A's map is higher."""

    minuend: str
    subtrahend: str
    label: str
    panels: dict[str, MapPanel]
    values: dict[str, torch.Tensor] = field(repr=False)
    limit: float


@dataclass(frozen=True)
class GridView:
    """A comparison drawn with one ``DisplayOptions``: the same pictures, numbers and words for the app and the PNG.

    ``panels``: (row key, column) -> MapPanel; ``inputs``: row key -> the model's view (with the mask's outline when
    asked); ``column_scales``: method -> the scale shared by its column (``scale="column"``; empty otherwise);
    ``differences``: the A - B rows; ``difference_note``: why a model has no A - B row, if one has none.
    """

    display: DisplayOptions
    panels: dict[tuple[str, str], MapPanel]
    inputs: dict[str, np.ndarray]
    column_scales: dict[str, float]
    differences: list[DifferenceRow]
    difference_note: str | None

    def scale_labels(self, method: str) -> tuple[str, str | None, str]:
        """The (low, middle, high) labels of ``method``'s colour scale: its column's shared value range, or (one
        scale per map) the ends of every map's own scale, which each panel's caption gives."""
        if method in self.column_scales:
            top = format_value(self.column_scales[method])
            return (f"-{top}", "0", top) if self.display.signed else ("0", None, top)
        return ("-scale", "0", "+scale") if self.display.signed else ("0", None, "scale")

    @property
    def difference_labels(self) -> tuple[str, str, str]:
        """The (low, middle, high) labels of the A - B colour scale: high where A's map is higher."""
        limit = self.differences[0].limit if self.differences else (2.0 if self.display.signed else 1.0)
        return f"-{limit:g}", "0", f"+{limit:g}"

    def colorbar(self, method: str, width: int = 160) -> np.ndarray:
        """``method``'s colour scale as a picture (``scale_labels``)."""
        low, middle, high = self.scale_labels(method)
        return colorbar(width, self.display.colormap, self.display.signed, low, high, middle)

    def difference_colorbar(self, width: int = 160) -> np.ndarray:
        low, middle, high = self.difference_labels
        return colorbar(width, self.display.difference_colormap, True, low, high, middle)


def _ensure_display(display: DisplayOptions | None, options: Mapping[str, Any]) -> DisplayOptions:
    if display is not None and options:
        raise ConfigError("give either display options or their fields, not both")
    return display or DisplayOptions(**options)


@dataclass
class Comparison:
    """The grid: one row per model, one column per (method, ours or Captum), and the input it is of."""

    rows: list[ModelRow]
    methods: list[str]
    seconds: float
    image: np.ndarray | None = field(default=None, repr=False)  # the input as given, uint8 RGB
    image_name: str = "image"
    mask: np.ndarray | None = field(default=None, repr=False)  # its ground-truth mask, bool [H, W], if any
    dataset: str | None = None  # where the input comes from (a dataset, "upload", "photo"; None: not known)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> its resolved parameters

    @property
    def columns(self) -> list[str]:
        seen: list[str] = []
        for row in self.rows:
            for cell in row.cells:
                if cell.column not in seen:
                    seen.append(cell.column)
        return seen

    @property
    def summary(self) -> str:
        """``1 model x 8 methods``."""
        return f"{counted(len(self.rows), 'model')} x {counted(len(self.methods), 'method')}"

    @cached_property
    def digest(self) -> str | None:
        return None if self.image is None else image_digest(self.image)

    def is_of(self, image: np.ndarray | None, digest: str | None = None) -> bool:
        """Whether this grid was computed on ``image`` (or on the image of ``digest``, when it is known)."""
        if image is None or self.image is None:
            return False
        return (digest or image_digest(image)) == self.digest

    def mask_view(self, row: ModelRow) -> np.ndarray | None:
        """The ground-truth mask as ``row``'s model sees the image (resized and cropped alike), or None."""
        return None if self.mask is None else _mask_view(self.mask, row.image_size)

    def _values(self, cell: Cell, display: DisplayOptions) -> torch.Tensor:
        assert cell.explanation is not None
        return (cell.explanation.signed_map if display.signed else cell.explanation.map)[0]

    def _picture(self, row: ModelRow, normalised: torch.Tensor | None, display: DisplayOptions, size: int | None,
                 cmap: str, signed: bool, regions: Sequence[Region] = ()) -> np.ndarray:
        """The model's view with a normalised map over it (or alone), enlarged to ``size``, with the outline and the
        map's convex-hull ``regions``."""
        picture = row.image if normalised is None else overlay(row.image, normalised, display.alpha, cmap, signed)
        picture = enlarge(picture, size) if size else picture
        picture = draw_regions(picture, regions) if regions else picture
        mask = self.mask_view(row) if display.outline else None
        return picture if mask is None else draw_outline(picture, mask)

    def render(self, display: DisplayOptions | None = None, size: int | None = None,
               reference: str | None = None) -> GridView:
        """Every panel drawn with ``display``, enlarged to ``size`` pixels (nearest neighbour, by an integer factor;
        None: the model's input size), and the A - B rows of ``reference`` (a row key; default the first model)
        minus every other model of the same input size."""
        display = display or DisplayOptions()
        column_scales: dict[str, float] = {}
        if display.scale == "column":
            for method in self.methods:
                maps = [self._values(cell, display) for row in self.rows for cell in row.cells
                        if cell.method == method and cell.explanation is not None]
                column_scales[method] = shared_scale(maps, display.percentile)
        panels: dict[tuple[str, str], MapPanel] = {}
        normalised: dict[tuple[str, str], torch.Tensor] = {}
        for row in self.rows:
            for cell in row.cells:
                if cell.explanation is None:
                    panels[(row.key, cell.column)] = MapPanel(None, 0.0, False, cell.error or "no map")
                    continue
                values = self._values(cell, display)
                all_zero = not bool(torch.nan_to_num(values).abs().amax() > 0)
                scale = column_scales.get(cell.method)
                if scale is None:
                    scale = float(map_scale(values, display.percentile))
                shown = normalize_map(values, display.mode, display.percentile, scale=scale)
                normalised[(row.key, cell.column)] = shown
                shared = cell.method in column_scales  # the column's colour scale gives the numbers
                note = "all zero" if all_zero else "" if shared else f"scale {format_value(scale)}"
                regions: list[Region] = []
                if display.regions and not all_zero:
                    regions = convex_hull_regions(important_pixels(cell.explanation.map[0], display.region_q).numpy())
                    count, area = region_complexity(regions, tuple(cell.explanation.map.shape[-2:]))
                    note = ", ".join(part for part in (note, f"{counted(count, 'region')}, {area:.0%} of the image")
                                     if part)
                picture = self._picture(row, shown, display, size, display.colormap, display.signed, regions)
                panels[(row.key, cell.column)] = MapPanel(picture, scale, all_zero, note)
        inputs = {row.key: self._picture(row, None, display, size, display.colormap, False) for row in self.rows}
        differences, note = self._differences(display, size, reference, normalised)
        return GridView(display, panels, inputs, column_scales, differences, note)

    def _differences(self, display: DisplayOptions, size: int | None, reference: str | None,
                     normalised: Mapping[tuple[str, str], torch.Tensor]) -> tuple[list[DifferenceRow], str | None]:
        if len(self.rows) < 2:
            return [], None
        by_key = {row.key: row for row in self.rows}
        if reference is not None and reference not in by_key:
            raise ConfigError(f"no model {reference!r} in this grid; choose one of {', '.join(by_key)}")
        first = by_key[reference] if reference is not None else self.rows[0]
        others = [row for row in self.rows if row is not first]
        misfits = [row for row in others if row.image_size != first.image_size]
        note = None
        if misfits:
            sizes = ", ".join(f"{row.name} ({row.image_size}x{row.image_size})" for row in misfits)
            note = (f"No A - B row for {sizes}: {first.name} takes {first.image_size}x{first.image_size} inputs, so "
                    "their maps are not pixel-aligned.")
        limit = 2.0 if display.signed else 1.0
        rows = []
        for other in (row for row in others if row not in misfits):
            panels, values = {}, {}
            for method in self.methods:
                a, b = normalised.get((first.key, method)), normalised.get((other.key, method))
                if a is None or b is None:
                    continue
                difference = a - b
                values[method] = difference
                largest = float(difference.abs().amax())
                text = "no difference" if largest == 0 else f"largest |A - B| {largest:.2f}"
                picture = self._picture(first, difference / limit, display, size, display.difference_colormap, True)
                panels[method] = MapPanel(picture, limit, largest == 0, text)
            label = (f"A - B: {first.name} - {other.name} (each map normalised as shown above; the high end of the "
                     f"colormap where {first.name}'s map is higher)")
            rows.append(DifferenceRow(first.key, other.key, label, panels, values, limit))
        return rows, note

    def figure(self, display: DisplayOptions | None = None, panel_size: int = 160, reference: str | None = None,
               differences: bool = True, **options: Any):  # type: ignore[no-untyped-def]
        """The grid as one PIL image (``figure_layout``, drawn). ``options``: ``DisplayOptions`` fields, instead of
        ``display``; ``differences=False`` leaves out the A - B rows."""
        return self.figure_layout(_ensure_display(display, options), panel_size, reference, differences).render()

    def figure_layout(self, display: DisplayOptions | None = None, panel_size: int = 160,
                      reference: str | None = None, differences: bool = True) -> FigureLayout:
        """Where everything of the grid's figure goes: a title with the image and the display settings; column
        labels; a colorbar per column; per model a line with its predictions (target, top classes, cos(standard,
        guided), out-of-domain note) over its input (captioned with the target and the resizing) and its maps
        (captioned with their scale, ``all zero`` or Captum's agreement); the A - B rows and their colorbar."""
        display = display or DisplayOptions()
        view = self.render(display, panel_size, reference)
        if not differences:
            view = replace(view, differences=[], difference_note=None)
        columns = self.columns
        methods = [next(cell.method for row in self.rows for cell in row.cells if cell.column == c) for c in columns]
        bars = [view.colorbar(method, panel_size) for method in methods]
        rows = [GridRow([None, *bars], height=bars[0].shape[0])] if bars else []
        for row in self.rows:
            by_column = {cell.column: cell for cell in row.cells}
            panels: list[np.ndarray | None] = [view.inputs[row.key]]
            captions = [f"target: {row.target_name}\n{row.resize}"]
            for column in columns:
                cell = by_column.get(column)
                panel = view.panels.get((row.key, column))
                panels.append(panel.image if panel else None)
                captions.append("\n".join(text for text in (panel.note if panel else "",
                                                              cell.agreement_text if cell else "") if text))
            label = f"{row.name} · {row.predictions()}" + (f" · {row.domain}" if row.domain else "")
            rows.append(GridRow(panels, captions, label))
        for difference in view.differences:
            panels, captions = [view.inputs[difference.minuend]], ["A's input"]
            for column, method in zip(columns, methods):
                panel = difference.panels.get(method) if column == method else None
                panels.append(panel.image if panel else None)
                captions.append(panel.note if panel else "")
            rows.append(GridRow(panels, captions, difference.label))
        if view.differences:
            bar = view.difference_colorbar(panel_size)
            rows.append(GridRow([bar], ["A - B scale: high where A's map is higher, low where B's is"],
                                height=bar.shape[0]))
        title = f"{self.image_name} - {self.summary}\n{display.describe()}"
        if view.difference_note:
            title += f"\n{view.difference_note}"
        return grid_layout(rows, column_labels=["input", *columns], title=title, panel_size=panel_size)

    def png_bytes(self, display: DisplayOptions | None = None, panel_size: int = 160, reference: str | None = None,
                  differences: bool = True, **options: Any) -> bytes:
        return png_bytes(self.figure(display, panel_size, reference, differences, **options))

    def zip_bytes(self, display: DisplayOptions | None = None, reference: str | None = None) -> bytes:
        """Every map as .npy (raw attribution, display map, signed map), the A - B maps, the input image (and its
        mask) as PNG, the grid as PNG, and a manifest.json: the image, every method's resolved parameters, the
        display settings, and per model its checkpoint (path, sha256), target, predictions, cos(standard, guided),
        resizing, domain note and its cells (timings, errors, scales, Captum's agreement, files)."""
        display = display or DisplayOptions()
        view = self.render(display, reference=reference)
        buffer = io.BytesIO()
        manifest: dict[str, Any] = {
            "image": {"name": self.image_name, "file": "input.png" if self.image is not None else None,
                      "width": None if self.image is None else int(self.image.shape[1]),
                      "height": None if self.image is None else int(self.image.shape[0]),
                      "dataset": self.dataset, "mask": "mask.png" if self.mask is not None else None},
            "methods": [{"name": method, "description": get_method(method).description,
                         "params": self.params.get(method, {})} for method in self.methods],
            "display": display.to_dict(),
            "grid": "grid.png",
            "models": [],
            "differences": [],
        }
        folders = _unique_folders([row.key for row in self.rows])
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            if self.image is not None:
                archive.writestr("input.png", png_bytes(self.image))
            if self.mask is not None:
                grey = (self.mask * 255).astype(np.uint8)
                archive.writestr("mask.png", png_bytes(np.repeat(grey[..., None], 3, axis=2)))
            archive.writestr("grid.png", png_bytes(self.figure(display, reference=reference)))
            for row, folder in zip(self.rows, folders):
                entry = {"key": row.key, "name": row.name, "folder": folder, "checkpoint": row.checkpoint,
                         "image_size": row.image_size, "resize": row.resize, "out_of_domain": row.domain,
                         "target": row.target, "target_name": row.target_name, "top": row.top,
                         "cos_standard_guided": row.alignment, "cells": []}
                for cell in row.cells:
                    stem = f"{folder}/{_slug(cell.column)}"
                    panel = view.panels[(row.key, cell.column)]
                    entry["cells"].append({
                        "column": cell.column, "seconds": cell.seconds, "error": cell.error,
                        "params": None if cell.explanation is None else cell.explanation.params,
                        "scale": panel.scale if cell.explanation is not None else None, "all_zero": panel.all_zero,
                        "pearson_with_ours": cell.agreement,
                        "files": [] if cell.explanation is None else [f"{stem}_{k}.npy" for k in MAP_KINDS],
                    })
                    if cell.explanation is not None:
                        for key in MAP_KINDS:
                            archive.writestr(f"{stem}_{key}.npy", _npy(getattr(cell.explanation, key)[0]))
                manifest["models"].append(entry)
            by_key = dict(zip((row.key for row in self.rows), folders))
            for difference in view.differences:
                folder = f"differences/{_slug(by_key[difference.minuend])}-minus-{_slug(by_key[difference.subtrahend])}"
                files = {method: f"{folder}/{_slug(method)}.npy" for method in difference.values}
                for method, name in files.items():
                    archive.writestr(name, _npy(difference.values[method]))
                manifest["differences"].append({"a": difference.minuend, "b": difference.subtrahend,
                                                "range": [-difference.limit, difference.limit], "files": files})
            if view.difference_note:
                manifest["difference_note"] = view.difference_note
            archive.writestr("manifest.json", json.dumps(manifest, indent=2, default=_jsonable))
        return buffer.getvalue()


def _jsonable(value: Any) -> Any:
    """A value of a resolved parameter that JSON does not know: NumPy and torch values as numbers or lists, anything
    else as its text."""
    if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
        return value.tolist()
    return str(value)


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


def _alignment(model: nn.Module, x: torch.Tensor, target: int) -> float | None:
    """cos(dL/dx, d_G L/dx) of the cross-entropy for ``target`` on ``x`` (one forward, two backward passes); None
    when the model does not allow it."""
    try:
        with preserved_model_state(model):
            return float(gradient_alignment(model, x, torch.tensor([target], device=x.device))[0])
    except InterpgradError:
        return None


def _agreement(ours: Cell | None, captum: Explanation | None) -> float | None:
    """Pearson correlation of Captum's raw attribution with ours (both computed, of one shape), else None."""
    if ours is None or ours.explanation is None or captum is None or ours.explanation.raw.shape != captum.raw.shape:
        return None
    return float(pearson(ours.explanation.raw.flatten()[None], captum.raw.flatten()[None])[0])


def compare(
    models: Sequence[ComparedModel],
    image: np.ndarray,
    methods: Sequence[str],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    targets: Mapping[str, int] | None = None,
    with_captum: bool = False,
    progress: Callable[[float, str], None] | None = None,
    image_name: str = "image",
    mask: np.ndarray | None = None,
    dataset: str | None = None,
) -> Comparison:
    """Explain ``image`` (uint8 RGB) with every method for every model.

    ``params``: method -> parameters (declared ones; defaults fill the rest). ``targets``: model ident (its key, or
    its name when it has none) -> class index (missing: the predicted class). ``with_captum``: add Captum's result
    beside ours where Captum has the method. ``progress(fraction, message)`` is called before each cell and as
    methods of many forward passes advance. A method that cannot run on a model (e.g. CAM on a model without a
    GAP + linear head) gives a cell with the reason instead of failing the grid. ``image_name``, ``mask`` (its
    ground truth, bool ``[H, W]``) and ``dataset`` (where it comes from: a dataset such as ``shapes``, or ``upload``,
    ``photo``; None: not known) are kept with the grid: the figure's title, the mask outline, and a note on every
    model trained on other data than the image's (``domain_note``).
    """
    params = params or {}
    resolved: dict[str, dict[str, Any]] = {}
    for method in methods:
        declared = get_method(method)  # an unknown name is refused before any work
        try:
            resolved[method] = declared.resolve(params.get(method, {}))
        except ConfigError:
            pass  # a parameter refused: every cell of the method says why, the others are computed
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
            known = compared.path or compared.sha256
            checkpoint = {"path": compared.path, "sha256": compared.sha256} if known else None
            row = ModelRow(compared.ident, compared.name, view, int(target), compared.class_names[int(target)],
                           top_predictions(probabilities, compared.class_names),
                           resize=describe_resize(image.shape[0], image.shape[1], compared.image_size),
                           alignment=_alignment(compared.model, x, int(target)),
                           domain=domain_note(dataset, compared.dataset), checkpoint=checkpoint)
            for method, source in jobs:
                function = explain if source == "ours" else captum_explain
                message = f"{compared.name}: {method}{' (Captum)' if source == 'captum' else ''}"
                report = _reporter(progress, done, total, message)
                report(0.0)
                with reporting_progress(report):  # methods of many forward passes report as they go
                    explanation, error, seconds = _run(
                        lambda: function(compared.model, x, method, target=row.target, **dict(params.get(method, {})))
                    )
                ours = next((c for c in row.cells if c.method == method and c.source == "ours"), None)
                agreement = _agreement(ours, explanation) if source == "captum" else None
                row.cells.append(Cell(method, source, explanation, error, seconds, agreement))
                done += 1
        if progress is not None:
            progress(done / total, f"{compared.name}: done")
        rows.append(row)
    return Comparison(rows, list(methods), time.perf_counter() - start, np.ascontiguousarray(image), image_name,
                      None if mask is None else np.asarray(mask, dtype=bool), dataset, resolved)


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
