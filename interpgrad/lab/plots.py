"""Static figures of the lab (PNG for the CLI's output folder and the README), in the house style of
``interpgrad.metrics.plots`` (``matplotlib.figure.Figure`` directly, no pyplot)."""

from __future__ import annotations

from typing import Mapping, Sequence

from matplotlib.figure import Figure

from ..metrics.plots import figure_png
from .density import DensityProfile
from .perturbation import PerturbationCurves
from .sampling import ClassSamples

__all__ = ["density_figure", "figure_png", "perturbation_figure", "samples_figure"]


def samples_figure(samples: Mapping[str, ClassSamples], class_names: Sequence[str], step: int | None = None) -> Figure:
    """A grid of class samples: one row per model, one column per sample (its class above it); ``step``: the kept
    step to show (default: the last)."""
    names = list(samples)
    columns = max(len(result.classes) for result in samples.values())
    figure = Figure(figsize=(1.1 * columns + 1.2, 1.2 * len(names) + 0.6), layout="constrained")
    axes = figure.subplots(len(names), columns, squeeze=False)
    for row, name in enumerate(names):
        result = samples[name]
        index = result.steps.index(step) if step is not None and step in result.steps else len(result.steps) - 1
        for column, panel in enumerate(axes[row]):
            panel.set_xticks([]), panel.set_yticks([])
            if column >= len(result.classes):
                panel.set_visible(False)
                continue
            image = result.trajectory[index, column].clamp(0, 1).permute(1, 2, 0).numpy()
            panel.imshow(image, interpolation="nearest")
            if row == 0 or len(set(len(r.classes) for r in samples.values())) > 1:
                panel.set_title(class_names[int(result.classes[column])], fontsize=8)
            if column == 0:
                panel.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    shown = step if step is not None else "last"
    figure.suptitle(f"class samples by gradient ascent on the class logit (step {shown})", fontsize=10)
    return figure


def density_figure(profiles: Mapping[str, DensityProfile]) -> Figure:
    """Mean f_y(x + eta) - f_y(x) against the noise std (log axis), one line per model, 95 % band."""
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    panel = figure.subplots()
    for index, (name, profile) in enumerate(profiles.items()):
        table = profile.table[profile.table["std"] > 0]
        panel.plot(table["std"], table["mean"], marker="o", markersize=3, color=f"C{index % 10}", label=name)
        panel.fill_between(table["std"], table["ci_low"], table["ci_high"], color=f"C{index % 10}", alpha=0.2,
                           linewidth=0)
    panel.set_xscale("log")
    panel.axhline(0, color="black", linewidth=0.6)
    panel.set_xlabel("noise std sigma (pixel units, x in [0, 1])")
    panel.set_ylabel("mean f_y(x + eta) - f_y(x)  (log density ratio)")
    panel.grid(alpha=0.3)
    panel.legend(fontsize=8, title="model (band: 95 % bootstrap interval)", title_fontsize=8)
    return figure


def perturbation_figure(curves: Mapping[str, PerturbationCurves], title: str = "pixel perturbation") -> Figure:
    """Top-1 accuracy against the fraction of least salient pixels removed (log axis), one line per model."""
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    panel = figure.subplots()
    for index, (name, result) in enumerate(curves.items()):
        table = result.table
        panel.plot(table["fraction"], table["accuracy"], marker="o", markersize=3, color=f"C{index % 10}", label=name)
        panel.fill_between(table["fraction"], table["ci_low"], table["ci_high"], color=f"C{index % 10}", alpha=0.2,
                           linewidth=0)
    panel.set_xscale("log")
    panel.set_ylim(-0.02, 1.02)
    panel.set_xlabel("fraction of least salient pixels replaced by 0.5 (log scale)")
    panel.set_ylabel("top-1 accuracy")
    panel.set_title(f"{title} (higher is better)", fontsize=10)
    panel.grid(alpha=0.3)
    panel.legend(fontsize=8, title="judge / saliency (band: 95 % bootstrap interval)", title_fontsize=8)
    return figure

