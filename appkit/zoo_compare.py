"""The Models page's comparison of the zoo: one table of accuracy, eval-mode cosine and the headline metrics (mean and
confidence interval) per model and method, read from an evaluation folder, and the paired verdicts between two models.

The numbers are the evaluation's own summary and comparisons tables (``interpgrad.metrics.load_evaluation``); this
module only selects, orients and labels them. Verdicts reuse the Evaluate page's table and colours
(``appkit.evaluation.comparison_table`` / ``style_verdicts``).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import pandas as pd
import streamlit as st

from appkit.charts import metric_title
from appkit.evaluation import comparison_table, model_path
from interpgrad.zoo import ModelEntry, as_number

__all__ = ["DEFAULT_METHODS", "HEADLINE_METRICS", "EVALUATE_HINT", "headline_metrics", "models_without_evaluation",
           "entry_for", "recorded_models", "training_metric",
           "oriented_comparisons", "pair_counts", "pair_verdicts", "zoo_table"]

HEADLINE_METRICS: tuple[str, ...] = (
    "insertion", "deletion", "energy_pointing_game", "pointing_game", "pixel_perturbation", "average_drop",
    "average_increase",
)
"""The metrics the zoo table shows when the evaluation has them, in this order."""

DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "gradient")

EVALUATE_HINT = ("evaluate it on the Evaluate page, or run `python -m interpgrad evaluate --checkpoint PATH "
                 "[--checkpoint PATH ...] --dataset shapes --n 200 --out DIR`")

_FLIPPED = {"better": "worse", "worse": "better"}


def headline_metrics(evaluation: Any) -> list[str]:
    """The headline metrics that ``evaluation`` measured (all its metrics when it has none of them)."""
    measured = list(evaluation.metrics)
    chosen = [name for name in HEADLINE_METRICS if name in measured]
    return chosen or measured


def recorded_models(evaluation: Any) -> dict[str, dict[str, Any]]:
    """{model name: what results.json records of it (path, metadata, final training metrics)}."""
    return {model["name"]: model for model in evaluation.protocol.get("models", []) if "name" in model}


def _same_file(entry: ModelEntry, recorded: dict[str, Any]) -> bool:
    path = model_path(recorded.get("path"))
    try:
        return path is not None and Path(entry.path).resolve() == path.resolve()
    except OSError:
        return False


def entry_for(name: str, recorded: dict[str, Any], entries: Sequence[ModelEntry]) -> ModelEntry | None:
    """The zoo entry an evaluated model is: the same checkpoint file, else the same name."""
    for entry in entries:
        if _same_file(entry, recorded):
            return entry
    named = [entry for entry in entries if entry.name == name]
    return named[0] if named else None


def models_without_evaluation(evaluation: Any, entries: Sequence[ModelEntry]) -> list[ModelEntry]:
    """The zoo entries that ``evaluation`` did not measure."""
    matched = {id(entry_for(name, recorded, entries)) for name, recorded in recorded_models(evaluation).items()}
    return [entry for entry in entries if id(entry) not in matched]


def training_metric(entry: ModelEntry | None, recorded: dict[str, Any], name: str) -> float | None:
    """A final training metric of the model: from the zoo entry when it is there, else as results.json recorded it."""
    if entry is not None:
        value = entry.metric(name)
        if value is not None:
            return value
    metrics = recorded.get("metrics") or {}
    value = as_number(metrics.get(name))
    if value is None and name == "val_alignment":
        value = as_number(metrics.get("val_alignment_eval"))
    return None if value is None else float(value)


def _interval(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"[{low:.4g}, {high:.4g}]"


def zoo_table(evaluation: Any, entries: Sequence[ModelEntry], methods: Sequence[str],
              metrics: Sequence[str] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per (evaluated model, method): accuracy, val cosine (eval mode), and per headline metric its mean (a
    numeric column, so it sorts) and its confidence interval; with the column configuration.

    The means and intervals are the evaluation's summary table, unchanged.
    """
    metrics = list(metrics if metrics is not None else headline_metrics(evaluation))
    summary = evaluation.summary.set_index(["model", "method", "metric"])
    confidence = (evaluation.protocol.get("statistics") or {}).get("confidence", 0.95)
    rows = []
    for name, recorded in recorded_models(evaluation).items():
        entry = entry_for(name, recorded, entries)
        for method in methods:
            row: dict[str, Any] = {
                "model": name, "method": method,
                "accuracy": training_metric(entry, recorded, "val_accuracy"),
                "val cosine": training_metric(entry, recorded, "val_alignment"),
            }
            for metric in metrics:
                title = metric_title(metric, evaluation.metrics.get(metric, {}))
                key = (name, method, metric)
                if key in summary.index:
                    found = summary.loc[key]
                    row[title] = float(found["mean"])
                    row[f"{title} CI"] = _interval(float(found["ci_low"]), float(found["ci_high"]))
                else:
                    row[title], row[f"{title} CI"] = None, "—"
            rows.append(row)
    table = pd.DataFrame(rows)
    percent = f"{confidence:.0%}"
    config: dict[str, Any] = {
        "model": st.column_config.TextColumn(pinned=True),
        "accuracy": st.column_config.NumberColumn(format="percent", help="validation accuracy after training"),
        "val cosine": st.column_config.NumberColumn(
            format="%.3f", help="mean cosine between the standard and the guided input gradient on validation images, "
                                "in eval mode (as explanations see the model), after the last epoch"),
    }
    for metric in metrics:
        info = evaluation.metrics.get(metric, {})
        title = metric_title(metric, info)
        better = "higher" if info.get("direction") == "higher" else "lower"
        config[title] = st.column_config.NumberColumn(
            format="%.4g", help=f"{metric}: mean over the evaluation's images ({better} is better)")
        config[f"{title} CI"] = st.column_config.TextColumn(
            "CI", help=f"{metric}: {percent} bootstrap confidence interval of the mean")
    return table, config


def oriented_comparisons(evaluation: Any, model_a: str, model_b: str,
                         methods: Sequence[str] | None = None) -> pd.DataFrame:
    """The evaluation's paired comparisons between ``model_a`` and ``model_b``, read for ``model_a`` (a row stored
    the other way round has its difference and interval negated and better/worse swapped); columns as in
    comparisons.csv, in the evaluation's order."""
    table = evaluation.comparisons
    forward = table[(table["model_a"] == model_a) & (table["model_b"] == model_b)]
    backward = table[(table["model_a"] == model_b) & (table["model_b"] == model_a)].copy()
    if not backward.empty:
        backward = backward.assign(
            model_a=model_a, model_b=model_b, difference=-backward["difference"],
            ci_low=-backward["ci_high"], ci_high=-backward["ci_low"],
            verdict=backward["verdict"].map(lambda verdict: _FLIPPED.get(verdict, verdict)))
    both = pd.concat([forward, backward], ignore_index=True)
    if methods is not None:
        both = both[both["method"].isin(list(methods))]
    return both.reset_index(drop=True)


def pair_verdicts(evaluation: Any, model_a: str, model_b: str,
                  methods: Sequence[str] | None = None) -> pd.DataFrame:
    """The verdicts of ``model_a`` against ``model_b`` per (method, metric), as the Evaluate page shows them (the
    difference A - B, its interval, the p-value and the verdict for A), plus a ``result`` column in words:
    "A better", "B better" or "no clear difference" with the models' names."""
    oriented = oriented_comparisons(evaluation, model_a, model_b, methods)
    table = comparison_table(dataclasses.replace(evaluation, comparisons=oriented))
    words = {"better": f"{model_a} better", "worse": f"{model_b} better"}
    table.insert(len(table.columns) - 1, "result", [words.get(verdict, verdict) for verdict in table["verdict"]])
    method_rank = {name: index for index, name in enumerate(methods or evaluation.methods)}
    table = table.sort_values("method", key=lambda column: column.map(method_rank), kind="stable")
    return table.drop(columns=["model", "against"]).reset_index(drop=True)


def pair_counts(table: pd.DataFrame) -> dict[str, int]:
    """{verdict: how many (method, metric) pairs} of a :func:`pair_verdicts` table."""
    counts = table["verdict"].value_counts()
    return {verdict: int(counts.get(verdict, 0)) for verdict in ("better", "worse", "no clear difference")}
