"""Plotly figures of training curves (metrics.jsonl lines)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["training_curves"]

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
