"""Plotly figures: training curves (metrics.jsonl lines), and an evaluation's bars and curves."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["metric_curves", "metric_title", "model_colours", "summary_bars", "training_curves"]

_PANELS = (
    ("loss", ("train_loss", "train_classification", "val_loss")),
    ("accuracy", ("train_accuracy", "val_accuracy")),
    ("cosine(standard, guided)", ("train_alignment", "val_alignment")),
)


def training_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], height: int = 320) -> go.Figure:
    """Loss, accuracy and gradient-alignment curves per epoch, one trace per (run, metric)."""
    figure = make_subplots(rows=1, cols=len(_PANELS), subplot_titles=[title for title, _ in _PANELS])
    for column, (_, keys) in enumerate(_PANELS, start=1):
        for name, history in runs.items():
            for key in keys:
                points = [(line["epoch"], line[key]) for line in history if key in line]
                if points:
                    epochs, values = zip(*points)
                    label = f"{name}: {key}" if len(runs) > 1 else key
                    figure.add_trace(go.Scatter(x=epochs, y=values, mode="lines+markers", name=label), row=1, col=column)
    figure.update_xaxes(title_text="epoch")
    figure.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return figure


# ---------------------------------------------------------------------------------------------------- evaluations

_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf")


def model_colours(models: Sequence[str]) -> dict[str, str]:
    """One colour per model, in the evaluation's order (the same in every chart of an evaluation)."""
    return {model: _COLOURS[index % len(_COLOURS)] for index, model in enumerate(models)}


def _rgba(colour: str, alpha: float) -> str:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red}, {green}, {blue}, {alpha})"


def _legend(title: str) -> dict[str, Any]:
    """A legend to the right of the plotting area (never over the data)."""
    return dict(title=dict(text=title), orientation="v", x=1.01, xanchor="left", y=1.0, yanchor="top")


def metric_title(metric: str, info: Mapping[str, Any]) -> str:
    """``insertion ↑`` / ``average_drop ↓ (%)``: the name with the better direction (and the unit)."""
    arrow = "↑" if info.get("direction") == "higher" else "↓"
    unit = f" ({info['unit']})" if info.get("unit") else ""
    return f"{metric} {arrow}{unit}"


def summary_bars(summary: Any, metrics: Mapping[str, Mapping[str, Any]], models: Sequence[str], methods: Sequence[str],
                 columns: int = 3, panel_height: int = 300) -> go.Figure:
    """One panel per metric: the mean of every method (x) for every model (a colour), whiskers = the confidence
    interval. ``summary``: the evaluation's summary DataFrame (model, method, metric, mean, ci_low, ci_high)."""
    names = [name for name in metrics if (summary["metric"] == name).any()]
    columns = max(1, min(columns, len(names)))
    rows = max(1, -(-len(names) // columns))
    height = panel_height * rows + 40
    titles = [metric_title(name, metrics[name]) for name in names]
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=titles,
                           vertical_spacing=90 / height if rows > 1 else 0.0, horizontal_spacing=0.07)
    colours = model_colours(models)
    for index, name in enumerate(names):
        row, column = index // columns + 1, index % columns + 1
        table = summary[summary["metric"] == name].set_index(["model", "method"])
        for model in models:
            present = [method for method in methods if (model, method) in table.index]
            if not present:
                continue
            rows_of = table.loc[[(model, method) for method in present]]
            means = rows_of["mean"].to_numpy(dtype=float)
            figure.add_trace(go.Bar(
                x=present, y=means, name=model, legendgroup=model, showlegend=index == 0, marker_color=colours[model],
                error_y=dict(type="data", symmetric=False, thickness=1.2, width=3,
                             array=(rows_of["ci_high"].to_numpy(dtype=float) - means).clip(min=0),
                             arrayminus=(means - rows_of["ci_low"].to_numpy(dtype=float)).clip(min=0)),
                customdata=rows_of[["ci_low", "ci_high", "n"]].to_numpy(),
                hovertemplate="%{x}<br>mean %{y:.4g}<br>interval [%{customdata[0]:.4g}, %{customdata[1]:.4g}]"
                              "<br>n = %{customdata[2]}<extra>" + model + "</extra>",
            ), row=row, col=column)
        figure.update_yaxes(title_text="mean" + (f" ({metrics[name]['unit']})" if metrics[name].get("unit") else ""),
                            title_standoff=4, row=row, col=column)
        if row == rows or index + columns >= len(names):
            figure.update_xaxes(title_text="method", row=row, col=column)
    figure.update_layout(barmode="group", height=height, margin=dict(l=10, r=10, t=40, b=10),
                         legend=_legend("model (whiskers: confidence interval)"), bargap=0.25)
    figure.update_annotations(font_size=13)
    return figure


def metric_curves(curves: Any, metric: str, info: Mapping[str, Any], models: Sequence[str], methods: Sequence[str],
                  columns: int = 3, panel_height: int = 300) -> go.Figure:
    """One panel per method: the mean curve of every model over the images with its band (the confidence interval
    of the mean at every point). Pixel perturbation has a log x axis; randomisation names its layers on the x axis."""
    table = curves[curves["metric"] == metric]
    present = [method for method in methods if (table["method"] == method).any()]
    columns = max(1, min(columns, len(present)))
    rows = max(1, -(-len(present) // columns))
    gap = 150 if metric == "randomisation" else 90  # layer names under the x axis need room
    height = (panel_height + gap - 90) * rows + 80
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=present, shared_yaxes=True,
                           vertical_spacing=gap / height if rows > 1 else 0.0, horizontal_spacing=0.04)
    colours = model_colours(models)
    for index, method in enumerate(present):
        row, column = index // columns + 1, index % columns + 1
        labels: list[str] = []
        ticks: list[float] = []
        for model in models:
            line = table[(table["method"] == method) & (table["model"] == model)].sort_values("point")
            if line.empty:
                continue
            x = line["x"].to_numpy(dtype=float)
            if not labels and line["label"].astype(str).str.len().gt(0).all() and metric == "randomisation":
                labels, ticks = [str(label) for label in line["label"]], list(x)
            hover = line["label"].astype(str) if metric == "randomisation" else None
            figure.add_trace(go.Scatter(x=x, y=line["ci_high"], mode="lines", line=dict(width=0), hoverinfo="skip",
                                        showlegend=False, legendgroup=model), row=row, col=column)
            figure.add_trace(go.Scatter(x=x, y=line["ci_low"], mode="lines", line=dict(width=0), fill="tonexty",
                                        fillcolor=_rgba(colours[model], 0.2), hoverinfo="skip", showlegend=False,
                                        legendgroup=model), row=row, col=column)
            figure.add_trace(go.Scatter(x=x, y=line["mean"], mode="lines", name=model, legendgroup=model,
                                        line=dict(color=colours[model], width=2), showlegend=index == 0,
                                        text=hover, hovertemplate=("%{text}" if hover is not None else "%{x:.3g}")
                                        + "<br>mean %{y:.3g}<extra>" + model + "</extra>"), row=row, col=column)
        if metric == "pixel_perturbation":
            figure.update_xaxes(type="log", row=row, col=column)
        if labels:
            figure.update_xaxes(tickvals=ticks, ticktext=labels, tickangle=-60, tickfont=dict(size=10), row=row,
                                col=column)
        if row == rows or index + columns >= len(present):
            figure.update_xaxes(title_text=str(info.get("curve_axis") or "x"), row=row, col=column)
        if column == 1:
            figure.update_yaxes(title_text=str(info.get("curve_value") or metric), row=row, col=column)
    figure.update_layout(height=height,
                         margin=dict(l=10, r=10, t=60, b=10), legend=_legend("model (band: confidence interval)"),
                         title=dict(text=f"{metric_title(metric, info)} — mean over the images", font=dict(size=15)))
    figure.update_annotations(font_size=13)
    return figure
