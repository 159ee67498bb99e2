"""The Evaluate page's helpers: the evaluation folders (the user's and the shipped ones), reading a finished one back
(cached), the checks made before launching one, and the views of its tables — the protocol in words, the summary,
the verdicts read as sentences, and the maps of one image recomputed from what the evaluation recorded.

Every number derives from the folder's tables; the only things recomputed are the maps of the image being looked at.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import streamlit as st

import interpgrad
from appkit.charts import metric_title
from appkit.models import load_checkpoint_file
from interpgrad.data import canonical_dataset_name, check_dataset
from interpgrad.data.shapes import SPLIT_SIZES
from interpgrad.errors import ConfigError, InterpgradError
from interpgrad.explain import explain
from interpgrad.explain import methods as method_registry
from interpgrad.metrics import EvaluationDir, evaluation_data, list_evaluations, load_evaluation
from interpgrad.metrics import metrics as metric_registry
from interpgrad.metrics.presets import apply_preset
from interpgrad.metrics.request import check_masks
from interpgrad.training.checkpoint import class_names_of, file_sha256, input_normalisation
from interpgrad.viz import normalize_map, overlay
from interpgrad.zoo import ModelEntry, default_directories

__all__ = [
    "CONTROLS",
    "Listed",
    "VERDICT_COLOURS",
    "check_choices",
    "comparison_table",
    "control_sentences",
    "control_table",
    "default_open",
    "effective_metric_defaults",
    "folder_zip",
    "headline_sentences",
    "image_maps",
    "image_scores",
    "list_all",
    "load",
    "method_comparison_table",
    "model_path",
    "protocol_lines",
    "ranked_images",
    "style_verdicts",
    "summary_table",
]

PROJECT = Path(interpgrad.__file__).resolve().parent.parent
SHIPPED_DEFAULT = "shapes-starter"
CONTROLS = tuple(name for name, method in method_registry().items() if method.family == "control")
VERDICT_COLOURS = {"better": "rgba(33, 195, 84, 0.28)", "worse": "rgba(255, 75, 75, 0.28)",
                   "no clear difference": "rgba(128, 128, 128, 0.18)"}
_DATASET_CLASSES = {"shapes": 10, "shapes-hard": 10, "cifar10": 10, "cifar100": 100}


# ---------------------------------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class Listed:
    """An evaluation folder and where it lives: ``yours`` (INTERPGRAD_EVALUATIONS) or ``shipped`` (with the
    checkpoints; read-only for the page)."""

    folder: EvaluationDir
    source: str

    @property
    def key(self) -> str:
        return str(self.folder.path)

    @property
    def label(self) -> str:
        return f"{self.folder.name} ({self.source})" if self.source == "shipped" else self.folder.name


def list_all() -> list[Listed]:
    """Every evaluation folder: the user's (newest first), then the shipped ones."""
    directories = default_directories()
    yours = [Listed(folder, "yours") for folder in list_evaluations(directories["evaluation"])]
    shipped = [Listed(folder, "shipped") for folder in list_evaluations(directories["shipped_evaluation"])]
    return yours + shipped


def default_open(listed: Sequence[Listed], shipped: str = SHIPPED_DEFAULT) -> str | None:
    """The evaluation a new session opens on: the shipped evaluation ``shipped`` (the starter evaluation unless
    told) when it is there, else the newest finished one."""
    finished = [item for item in listed if item.folder.finished()]
    starter = [item for item in finished if item.source == "shipped" and item.folder.name == shipped]
    chosen = (starter or finished or [None])[0]
    return chosen.key if chosen is not None else None


@st.cache_data(max_entries=8, show_spinner="reading the evaluation...")
def _load(path: str, mtime: float) -> interpgrad.metrics.Evaluation:  # mtime: part of the cache key
    return load_evaluation(path)


def load(folder: EvaluationDir) -> interpgrad.metrics.Evaluation:
    """The finished evaluation in ``folder``, read once per version of its results.json."""
    try:
        mtime = folder.json_path.stat().st_mtime
    except OSError:
        raise ConfigError(f"{folder.name} holds no finished evaluation (no results.json)") from None
    return _load(str(folder.path), mtime)


def folder_zip(folder: EvaluationDir) -> bytes:
    """The evaluation's result files (tables, results.json, plots, config, log) as one ZIP."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.path.rglob("*")):
            if path.is_file() and path.name != "units.jsonl":
                archive.write(path, f"{folder.name}/{path.relative_to(folder.path)}")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- launching


def effective_metric_defaults(preset: str | None) -> dict[str, dict[str, Any]]:
    """Every metric's parameter values under ``preset`` before the user changes any: what the widgets start from."""
    preset_params, _ = apply_preset(preset, None, None)
    return {name: metric.resolve(preset_params.get(name, {})) for name, metric in metric_registry().items()}


def check_choices(entries: Sequence[ModelEntry], methods: Sequence[str], metrics: Sequence[str], dataset: str,
                  data_root: str | None, split: str, n: int) -> None:
    """A ConfigError (or DataError) naming the first problem with what the page is about to launch, found without
    loading a model or an image; ``launch_evaluation`` then checks the names and parameters."""
    if not entries:
        raise ConfigError("choose at least one model")
    if not methods:
        raise ConfigError("choose at least one method")
    if not metrics:
        raise ConfigError("choose at least one metric")
    check_masks(metrics, dataset)
    name = canonical_dataset_name(dataset)
    sizes = {int(entry.section("model").get("image_size", 0)) for entry in entries}
    if len(sizes) > 1:
        listed = ", ".join(f"{entry.short_label}: {entry.section('model').get('image_size')} px" for entry in entries)
        raise ConfigError(f"the models expect different input sizes ({listed}); evaluate them separately")
    classes = _DATASET_CLASSES.get(name)
    for entry in entries:
        count = entry.section("model").get("num_classes")
        if classes is not None and count != classes:
            raise ConfigError(f"{entry.short_label} has {count} classes but {name} has {classes}")
    if name in ("shapes", "shapes-hard") and n > SPLIT_SIZES[split]:
        raise ConfigError(f"N = {n} is larger than the {split} split of shapes ({SPLIT_SIZES[split]} images)")
    check_dataset(name, data_root or None)


# ---------------------------------------------------------------------------------------------------- the protocol


def _is_control(evaluation: Any, method: str) -> bool:
    return (evaluation.protocol.get("methods", {}).get(method) or {}).get("family") == "control"


def _settings(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in params.items())


def protocol_lines(evaluation: Any) -> list[str]:
    """The protocol in words (markdown), one line each: data, target, preset, models, methods, statistics, run."""
    protocol = evaluation.protocol
    data = protocol.get("data", {})
    masks = "with ground-truth masks" if data.get("has_masks") else "no masks"
    lines = [f"**Images**: the first {data.get('n')} of the {data.get('split')} split of {data.get('dataset')} "
             f"({data.get('image_size')} px, {masks})."]
    target = protocol.get("target")
    target_words = "the model's predicted class" if target == "predicted" else "the ground-truth class (label)"
    lines.append(f"**Target**: every map explains, and every metric scores, {target_words}.")
    preset = protocol.get("preset")
    lines.append(f"**Preset**: {preset} — {protocol.get('preset_description')}." if preset
                 else "**Preset**: none (each metric's own defaults, and any parameter changed below).")
    models = []
    recorded = protocol.get("models", [])
    for index, model in enumerate(recorded):
        regularizer = (model.get("regularizer") or {}).get("name") or "none"
        role = ("baseline; " if index == 0 else "compared with the baseline; " if index == 1
                else "compared with the models before it; ") if len(recorded) > 1 else ""
        sha = (model.get("sha256") or "")[:12]
        models.append(f"{model['name']} ({role}regularizer {regularizer}; `{model.get('path')}`"
                      + (f", sha256 {sha}…" if sha else "") + ")")
    lines.append("**Models**: " + "; ".join(models) + ".")
    methods = []
    for name, info in protocol.get("methods", {}).items():
        settings = _settings(info.get("params") or {})
        methods.append(f"{name} ({info.get('family')}{'; ' + settings if settings else ''})")
    lines.append("**Methods**: " + ", ".join(methods) + ".")
    statistics = protocol.get("statistics", {})
    if statistics:
        lines.append(f"**Statistics**: {statistics.get('confidence', 0.95):.0%} confidence intervals from "
                     f"{statistics.get('resamples')} resamples (seed {statistics.get('seed')}), alpha "
                     f"{statistics.get('alpha')}: {statistics.get('bootstrap')}.")
    judge = protocol.get("judge")
    if judge:
        lines.append(f"**Judge of pixel perturbation**: {judge.get('name')} (`{judge.get('path')}`).")
    seconds = protocol.get("seconds")
    if isinstance(seconds, (int, float)):
        lines.append(f"**Run**: {seconds:.1f} s on {protocol.get('device')}, interpgrad "
                     f"{(protocol.get('versions') or {}).get('interpgrad', '?')}.")
    return lines


# ---------------------------------------------------------------------------------------------------- tables


def _interval(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"[{low:.4g}, {high:.4g}]"


def _metric_label(evaluation: Any, metric: str) -> str:
    return metric_title(metric, evaluation.metrics.get(metric, {}))


def _order(evaluation: Any, table: pd.DataFrame, method_column: str = "method") -> pd.DataFrame:
    """Rows in the evaluation's order of metrics, methods and models (the CSVs' order is by model first)."""
    metric_rank = {name: index for index, name in enumerate(evaluation.metrics)}
    method_rank = {name: index for index, name in enumerate(evaluation.methods)}
    model_rank = {name: index for index, name in enumerate(evaluation.models)}
    keys = [table["metric"].map(metric_rank), table[method_column].map(method_rank)]
    for column in ("model", "model_a"):
        if column in table:
            keys.append(table[column].map(model_rank))
    ordered = table.assign(**{f"_key{i}": key for i, key in enumerate(keys)})
    return ordered.sort_values([f"_key{i}" for i in range(len(keys))], kind="stable").drop(
        columns=[f"_key{i}" for i in range(len(keys))])


def summary_table(evaluation: Any) -> pd.DataFrame:
    """metric (with its arrow), method, model, mean, the confidence interval, n and excluded (images with no value)."""
    summary = _order(evaluation, evaluation.summary)
    return pd.DataFrame({
        "metric": [_metric_label(evaluation, name) for name in summary["metric"]],
        "method": summary["method"].to_numpy(),
        "model": summary["model"].to_numpy(),
        "mean": summary["mean"].to_numpy(dtype=float),
        "interval": [_interval(low, high) for low, high in zip(summary["ci_low"], summary["ci_high"])],
        "n": summary["n"].to_numpy(),
        "excluded": summary["excluded"].to_numpy(),
    })


def comparison_table(evaluation: Any) -> pd.DataFrame:
    """The paired model comparisons: model, against, method, metric (arrow), difference, interval, p-value, verdict."""
    table = _order(evaluation, evaluation.comparisons)
    return pd.DataFrame({
        "model": table["model_a"].to_numpy(), "against": table["model_b"].to_numpy(),
        "method": table["method"].to_numpy(),
        "metric": [_metric_label(evaluation, name) for name in table["metric"]],
        "difference": table["difference"].to_numpy(dtype=float),
        "interval": [_interval(low, high) for low, high in zip(table["ci_low"], table["ci_high"])],
        "p-value": table["p_value"].to_numpy(dtype=float),
        "verdict": table["verdict"].to_numpy(),
    })


def method_comparison_table(evaluation: Any) -> pd.DataFrame:
    """Every paired method comparison on each model (method against every method listed after it)."""
    table = _order(evaluation, evaluation.method_comparisons, "method_a")
    return pd.DataFrame({
        "model": table["model"].to_numpy(), "method": table["method_a"].to_numpy(),
        "against": table["method_b"].to_numpy(),
        "metric": [_metric_label(evaluation, name) for name in table["metric"]],
        "difference": table["difference"].to_numpy(dtype=float),
        "interval": [_interval(low, high) for low, high in zip(table["ci_low"], table["ci_high"])],
        "p-value": table["p_value"].to_numpy(dtype=float),
        "verdict": table["verdict"].to_numpy(),
    })


def style_verdicts(table: pd.DataFrame, columns: Sequence[str] | None = None) -> Any:
    """The table with its verdict cells coloured: better green, worse red, no clear difference grey."""
    columns = [column for column in (columns or ["verdict"]) if column in table]

    def colour(value: Any) -> str:
        return f"background-color: {VERDICT_COLOURS[value]}" if value in VERDICT_COLOURS else ""

    return table.style.map(colour, subset=columns).format(precision=4, na_rep="—")


def _pairs_text(rows: pd.DataFrame) -> str:
    items = [f"{method} · {metric}" for method, metric in zip(rows["method"], rows["metric"])]
    return ", ".join(items[:6]) + (f" and {len(items) - 6} more" if len(items) > 6 else "")


def headline_sentences(evaluation: Any) -> list[str]:
    """For every compared pair of models: on how many (method, metric) pairs the later model is better, worse, or
    not clearly different (control maps left out: they say nothing about a model's own explanations)."""
    comparisons = evaluation.comparisons
    if comparisons.empty:
        return []
    controls = [method for method in evaluation.methods if _is_control(evaluation, method)]
    real = comparisons[~comparisons["method"].isin(controls)]
    counted = real if not real.empty else comparisons
    plural = "s" if len(controls) > 1 else ""
    note = f" (the control{plural} {', '.join(controls)} left out)" if controls and not real.empty else ""
    sentences = []
    for (model_a, model_b), rows in counted.groupby(["model_a", "model_b"], sort=False):
        verdicts = rows["verdict"].value_counts()
        better, worse = int(verdicts.get("better", 0)), int(verdicts.get("worse", 0))
        unclear = int(verdicts.get("no clear difference", 0))
        sentence = (f"**{model_a} vs {model_b}**: better on {better} of {len(rows)} (method, metric) pairs, worse on "
                    f"{worse}, no clear difference on {unclear}{note}.")
        if better:
            sentence += f" Better: {_pairs_text(rows[rows['verdict'] == 'better'])}."
        if worse:
            sentence += f" Worse: {_pairs_text(rows[rows['verdict'] == 'worse'])}."
        sentences.append(sentence)
    return sentences


def _against_controls(evaluation: Any) -> pd.DataFrame:
    """Method comparisons of each real method against each control, read for the real method (a comparison listed
    the other way round is mirrored)."""
    controls = {method for method in evaluation.methods if _is_control(evaluation, method)}
    table = evaluation.method_comparisons
    if table.empty or not controls:
        return table.iloc[0:0]
    forward = table[~table["method_a"].isin(controls) & table["method_b"].isin(controls)]
    backward = table[table["method_a"].isin(controls) & ~table["method_b"].isin(controls)]
    flip = {"better": "worse", "worse": "better"}
    mirrored = backward.assign(method_a=backward["method_b"], method_b=backward["method_a"],
                               difference=-backward["difference"], ci_low=-backward["ci_high"],
                               ci_high=-backward["ci_low"], verdict=backward["verdict"].map(lambda v: flip.get(v, v)))
    return pd.concat([forward, mirrored], ignore_index=True)


def control_table(evaluation: Any) -> pd.DataFrame:
    """One row per (model, method vs control), one column per metric (with its arrow): the verdict for the method."""
    table = _against_controls(evaluation)
    rows = []
    for model in evaluation.models:
        for method in evaluation.methods:
            for control in evaluation.methods:
                group = table[(table["model"] == model) & (table["method_a"] == method)
                              & (table["method_b"] == control)]
                if group.empty:
                    continue
                verdicts = dict(zip(group["metric"], group["verdict"]))
                rows.append({"model": model, "method": method, "against": control,
                             **{_metric_label(evaluation, name): verdicts.get(name, "")
                                for name in evaluation.metrics}})
    return pd.DataFrame(rows)


def control_sentences(evaluation: Any) -> list[str]:
    """Per model: on how many metrics each method beats each control (random, edge)."""
    table = _against_controls(evaluation)
    sentences = []
    for model in evaluation.models:
        rows = table[table["model"] == model]
        if rows.empty:
            continue
        parts = []
        for method in [m for m in evaluation.methods if (rows["method_a"] == m).any()]:
            against = []
            for control in evaluation.methods:
                group = rows[(rows["method_a"] == method) & (rows["method_b"] == control)]
                if group.empty:
                    continue
                better, worse = int((group["verdict"] == "better").sum()), int((group["verdict"] == "worse").sum())
                worse_text = f" (worse on {worse})" if worse else ""
                against.append(f"{control} on {better} of {len(group)} metrics{worse_text}")
            parts.append(f"{method} beats " + " and ".join(against))
        sentences.append(f"**{model}**: " + "; ".join(parts) + ".")
    return sentences


# ---------------------------------------------------------------------------------------------------- one image


def ranked_images(evaluation: Any, model: str, method: str, metric: str,
                  count: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``count`` best and worst images of (model, method, metric) by the metric's direction: image, value."""
    results = evaluation.results
    rows = results[(results["model"] == model) & (results["method"] == method) & (results["metric"] == metric)]
    rows = rows[np.isfinite(rows["value"].to_numpy(dtype=float))]
    higher = evaluation.metrics.get(metric, {}).get("direction") == "higher"
    ordered = rows.sort_values("value", ascending=not higher, kind="stable")
    return ordered.head(count)[["image", "value"]], ordered.iloc[::-1].head(count)[["image", "value"]]


def image_scores(evaluation: Any, image: str) -> pd.DataFrame:
    """The scores of one image: a row per (model, method), a column per metric (with its arrow)."""
    results = evaluation.results
    rows = results[results["image"] == str(image)]
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(index=["model", "method"], columns="metric", values="value", aggfunc="first", dropna=False)
    pairs = [(model, method) for model in evaluation.models for method in evaluation.methods
             if (model, method) in table.index]
    table = table.reindex(index=pd.MultiIndex.from_tuples(pairs),
                          columns=[name for name in evaluation.metrics if name in table.columns])
    table.columns = [_metric_label(evaluation, name) for name in table.columns]
    return table.reset_index(names=["model", "method"])


def model_path(recorded: str | None) -> Path | None:
    """A checkpoint path as results.json records it (relative to the project when inside it)."""
    if not recorded:
        return None
    path = Path(recorded)
    return path if path.is_absolute() else PROJECT / path


@st.cache_data(max_entries=4, show_spinner="generating the evaluation's images...")
def _images(dataset: str, split: str, n: int, image_size: int, root: str | None) -> interpgrad.metrics.EvaluationData:
    return evaluation_data(dataset, split, n, image_size, root)


def evaluation_images(evaluation: Any) -> interpgrad.metrics.EvaluationData:
    """The evaluation's images (the same ones, regenerated or read again from its data root)."""
    data = evaluation.protocol["data"]
    config = evaluation.folder.read_config() if evaluation.folder is not None else None
    return _images(data["dataset"], data["split"], int(data["n"]), int(data["image_size"]),
                   (config or {}).get("data_root"))


@dataclass
class ImageRow:
    """One model's maps of one image: its input view, the explained class, a map per method (or the reason there
    is none), and a problem with the model as a whole (its file gone or changed since the evaluation)."""

    model: str
    target: str
    prediction: str
    maps: dict[str, np.ndarray | None]
    errors: dict[str, str]
    warning: str | None = None


@st.cache_data(max_entries=16, show_spinner="explaining the image with every model and method...")
def _image_maps(path: str, mtime: float, position: int,
                checkpoints: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray | None, str, list[ImageRow]]:
    # mtime and checkpoints (the models' files' modification times): part of the cache key only
    evaluation = _load(path, mtime)
    data = evaluation_images(evaluation)
    protocol = evaluation.protocol
    image, label = data.images[position], int(data.labels[position])
    mask = data.masks[position] if data.masks is not None else None
    rows = []
    for model in protocol.get("models", []):
        checkpoint = model_path(model.get("path"))
        if checkpoint is None or not checkpoint.is_file():
            rows.append(ImageRow(model["name"], "", "", {}, {}, f"its checkpoint is gone ({model.get('path')}): the "
                                 "scores stay, the maps cannot be recomputed"))
            continue
        warning = None
        if model.get("sha256") and file_sha256(checkpoint) != model["sha256"]:
            warning = (f"{model.get('path')} changed since the evaluation: these maps are of the current file, the "
                       "scores of the evaluated one")
        loaded = load_checkpoint_file(checkpoint)
        mean, std = input_normalisation(loaded.metadata)
        names = class_names_of(loaded.metadata)
        x = data.inputs(position, position + 1, mean, std, next(loaded.model.parameters()).device)
        target = label if protocol.get("target") == "label" else None
        maps: dict[str, np.ndarray | None] = {}
        errors: dict[str, str] = {}
        prediction = target_name = ""
        with loaded.lock:
            for method, info in protocol.get("methods", {}).items():
                try:
                    explanation = explain(loaded.model, x, method, target=target, **(info.get("params") or {}))
                except InterpgradError as error:
                    maps[method], errors[method] = None, str(error)
                    continue
                shown = normalize_map(explanation.map[0], "absolute", 99.5)
                maps[method] = overlay(image, shown, alpha=0.5, cmap="jet")
                probabilities = explanation.probabilities[0]
                top = int(probabilities.argmax())
                prediction = f"{names[top]} {float(probabilities[top]):.0%}"
                target_name = names[int(explanation.target[0])]
        rows.append(ImageRow(model["name"], target_name, prediction, maps, errors, warning))
    return np.asarray(image), None if mask is None else np.asarray(mask), data.class_names[label], rows


def image_maps(evaluation: Any, position: int) -> tuple[np.ndarray, np.ndarray | None, str, list[ImageRow]]:
    """Image ``position`` of the evaluation (uint8 RGB), its mask (or None), its class, and every model's maps of it
    with every method, recomputed with the recorded parameters and target (cached per evaluation and image)."""
    folder = evaluation.folder
    paths = [model_path(model.get("path")) for model in evaluation.protocol.get("models", [])]
    versions = tuple(path.stat().st_mtime if path is not None and path.is_file() else 0.0 for path in paths)
    return _image_maps(str(folder.path), folder.json_path.stat().st_mtime, int(position), versions)
