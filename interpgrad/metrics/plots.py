"""Static figures of an evaluation (PNG, for the result folder and the README): bars with confidence-interval
whiskers, and mean curves with their bands. The app draws the same views interactively with plotly.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no global backend).
"""

from __future__ import annotations

import io
import math
from typing import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["curves_figure", "figure_png", "summary_figure"]

_COLUMNS = 3


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def _title(metric: str, info: Mapping[str, object]) -> str:
    arrow = "↑" if info.get("direction") == "higher" else "↓"
    unit = f" ({info['unit']})" if info.get("unit") else ""
    return f"{metric} {arrow}{unit}"


def summary_figure(summary: pd.DataFrame, metrics: Mapping[str, Mapping[str, object]]) -> Figure:
    """One panel per metric: the mean of every method (groups) for every model (bars), whiskers = 95 % interval."""
    names = list(dict.fromkeys(summary["metric"]))
    models = list(dict.fromkeys(summary["model"]))
    methods = list(dict.fromkeys(summary["method"]))
    rows = math.ceil(len(names) / _COLUMNS)
    width = max(10.0, 0.45 * len(methods) * _COLUMNS * max(1, len(models)) / 2)
    figure = Figure(figsize=(width, 3.2 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, _COLUMNS, squeeze=False)
    bar = 0.8 / max(1, len(models))
    positions = np.arange(len(methods))
    colours = [f"C{index % 10}" for index in range(len(models))]
    for panel, metric in zip(axes.flat, names):
        table = summary[summary["metric"] == metric].set_index(["model", "method"])
        for index, model in enumerate(models):
            rows_of = [table.loc[(model, method)] if (model, method) in table.index else None for method in methods]
            means = np.array([row["mean"] if row is not None else np.nan for row in rows_of], dtype=float)
            low = np.array([row["ci_low"] if row is not None else np.nan for row in rows_of], dtype=float)
            high = np.array([row["ci_high"] if row is not None else np.nan for row in rows_of], dtype=float)
            errors = np.nan_to_num(np.vstack([means - low, high - means]), nan=0.0).clip(min=0)
            panel.bar(positions + (index - (len(models) - 1) / 2) * bar, means, bar, yerr=errors, capsize=2,
                      color=colours[index], label=model, error_kw={"elinewidth": 0.8})
        panel.set_title(_title(metric, metrics.get(metric, {})), fontsize=10)
        panel.set_xticks(positions, methods, rotation=60, ha="right", fontsize=7)
        panel.tick_params(axis="y", labelsize=8)
        panel.grid(axis="y", alpha=0.3)
    for panel in list(axes.flat)[len(names):]:
        panel.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncols=min(4, len(models)), fontsize=9,
                  title="model (whiskers: 95 % bootstrap interval)", title_fontsize=9)
    return figure


def curves_figure(curves: pd.DataFrame, metric: str, info: Mapping[str, object]) -> Figure:
    """One panel per method: the mean curve of every model with its 95 % band."""
    table = curves[curves["metric"] == metric]
    methods = list(dict.fromkeys(table["method"]))
    models = list(dict.fromkeys(table["model"]))
    rows = math.ceil(len(methods) / _COLUMNS)
    figure = Figure(figsize=(12, 2.8 * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, _COLUMNS, squeeze=False, sharey=True)
    for panel, method in zip(axes.flat, methods):
        for index, model in enumerate(models):
            line = table[(table["method"] == method) & (table["model"] == model)].sort_values("point")
            if line.empty:
                continue
            panel.plot(line["x"], line["mean"], color=f"C{index % 10}", label=model, linewidth=1.2)
            panel.fill_between(line["x"], line["ci_low"], line["ci_high"], color=f"C{index % 10}", alpha=0.2, linewidth=0)
        panel.set_title(method, fontsize=9)
        if metric == "pixel_perturbation":
            panel.set_xscale("log")
        labels = [label for label in table[table["method"] == method].sort_values("point")["label"].drop_duplicates()
                  if isinstance(label, str) and label]
        if labels:
            panel.set_xticks(range(1, len(labels) + 1), labels, rotation=70, ha="right", fontsize=6)
        panel.tick_params(labelsize=7)
        panel.grid(alpha=0.3)
    for panel in list(axes.flat)[len(methods):]:
        panel.set_visible(False)
    figure.supxlabel(str(info.get("curve_axis") or "x"), fontsize=9)
    figure.supylabel(str(info.get("curve_value") or metric), fontsize=9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside upper center", ncols=min(4, len(models)) or 1, fontsize=9,
                  title=f"{_title(metric, info)} — mean over images, band: 95 % bootstrap interval", title_fontsize=9)
    return figure
