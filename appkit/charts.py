"""Plotly figures: training curves (metrics.jsonl lines), and an evaluation's bars and curves."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["SPLITS", "curve_quantities", "metric_curves", "metric_title", "model_colours", "summary_bars", "training_curves"]

# Training curves: a metrics.jsonl key is "<split>_<quantity>"; each quantity gets a panel, each split a line style
# and a marker (which tell the splits apart where a run has one epoch, a point and no line).
SPLITS = {"train": ("train", "solid", "circle"), "val": ("validation", "dash", "circle-open")}
# Known quantities, in this order. The gradient cosines say which one they are, so that nobody compares one with the
# other: as the regularizer sees it (training batch, its batch-norm mode and gradient_of) and as explanations see it
# (eval mode, per image, validation), of the loss and of the target logit; "alignment" is the name of runs before
# issue 9 (train: the regularizer's view; val: eval mode, loss).
_QUANTITIES = {
    "loss": "loss",
    "accuracy": "accuracy",
    "alignment_eval": "cos(std, guided) of the loss · eval mode",
    "alignment_logit_eval": "cos(std, guided) of the logit · eval mode",
    "alignment_batch": "cos(std, guided) as regularized · train batch",
    "alignment": "cosine(standard, guided)",
}
_LOSS_PARTS = ("classification", "regularization")  # the two terms of the loss: its panel already shows their sum
_LEGEND_LINE = 21  # px per legend line (entry or title) at the default font


def curve_quantities(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """The quantities the runs recorded per split, one panel each: loss, accuracy and cosine(standard, guided) first,
    then any other ``train_X`` / ``val_X`` key in the order met (the loss's two terms and bookkeeping such as ``lr``
    and ``epoch_time_s`` are left out)."""
    found: list[str] = []
    for history in runs.values():
        for line in history:
            for key, value in line.items():
                split, _, quantity = key.partition("_")
                if (split in SPLITS and quantity and quantity not in _LOSS_PARTS and quantity not in found
                        and isinstance(value, (int, float)) and not isinstance(value, bool)):
                    found.append(quantity)
    return [q for q in _QUANTITIES if q in found] + [q for q in found if q not in _QUANTITIES]


def training_curves(runs: Mapping[str, Sequence[Mapping[str, Any]]], height: int = 320) -> go.Figure:
    """One panel per quantity (``curve_quantities``), one colour per run, one line style per split (train solid,
    validation dashed). The legend sits to the right of the panels: the runs (when there are several), then the
    line styles; the figure is tall enough for every entry to show."""
    quantities = curve_quantities(runs)
    columns = max(1, min(3, len(quantities)))
    rows = max(1, -(-len(quantities) // columns))
    entries = (len(runs) + 1 if len(runs) > 1 else 0) + len(SPLITS) + 1  # legend lines, with the titles
    height = max(height * rows, 80 + _LEGEND_LINE * entries)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=[_QUANTITIES.get(q, q.replace("_", " ")) for q in quantities],
                           horizontal_spacing=0.07, vertical_spacing=min(0.3, 90 / height) if rows > 1 else 0.0)
    colours = model_colours(list(runs))
    last_epoch = 1
    for index, quantity in enumerate(quantities):
        row, column = index // columns + 1, index % columns + 1
        for name, history in runs.items():
            for prefix, (split, dash, symbol) in SPLITS.items():
                points = [(line["epoch"], line[f"{prefix}_{quantity}"]) for line in history
                          if isinstance(line.get(f"{prefix}_{quantity}"), (int, float)) and "epoch" in line]
                if not points:
                    continue
                epochs, values = zip(*points)
                last_epoch = max(last_epoch, *epochs)
                if quantity == "accuracy":  # in percent, so that the axis picks as many decimals as its ticks need
                    values = tuple(100 * value for value in values)
                figure.add_trace(go.Scatter(
                    x=epochs, y=values, mode="lines+markers", name=f"{name} · {split}", legendgroup=name,
                    showlegend=False, line=dict(color=colours[name], dash=dash, width=2), marker=dict(size=6, symbol=symbol),
                    hovertemplate=f"epoch %{{x}}<br>{_QUANTITIES.get(quantity, quantity)} %{{y:.4g}}"
                                  f"{'%' if quantity == 'accuracy' else ''}<extra>{name} · {split}</extra>",
                ), row=row, col=column)
        if quantity == "accuracy":
            figure.update_yaxes(ticksuffix="%", row=row, col=column)
    model_lines = len(runs) if len(runs) > 1 else 0
    _curve_legend(figure, colours if model_lines else {})
    pad = max(0.3, 0.03 * last_epoch)  # no epoch 0 on the axis, and a lone first epoch in the middle
    figure.update_xaxes(title_text="epoch", title_standoff=4, dtick=max(1, -(-last_epoch // 8)), tick0=1,
                        range=[1 - pad, last_epoch + pad])
    margin = dict(l=10, r=10, t=40, b=10)
    # The runs' legend at the top right, the line styles' under it: legend lines are ~20 px (plus a title line).
    below = (_LEGEND_LINE * (model_lines + 1) + 12) / (height - margin["t"] - margin["b"]) if model_lines else 0.0
    figure.update_layout(
        height=height, margin=margin, hovermode="closest",
        legend=dict(title=dict(text="model"), x=1.02, xanchor="left", y=1.0, yanchor="top", tracegroupgap=0),
        legend2=dict(title=dict(text="line"), x=1.02, xanchor="left", y=1.0 - below, yanchor="top", tracegroupgap=0),
    )
    figure.update_annotations(font_size=13)
    return figure


def _curve_legend(figure: go.Figure, colours: Mapping[str, str]) -> None:
    """The legends' entries, drawn by traces without points: a line in each run's colour (a click hides or shows
    that run's curves) in the first legend, the line style of each split in the second."""
    for name, colour in colours.items():
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, legendgroup=name, showlegend=True,
                                    line=dict(color=colour, width=3), hoverinfo="skip", legend="legend"))
    for split, dash, symbol in SPLITS.values():
        figure.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name=split, legendgroup=f"split {split}",
                                    showlegend=True, line=dict(color="#555555", dash=dash, width=2),
                                    marker=dict(size=6, symbol=symbol), hoverinfo="skip", legend="legend2"))


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
