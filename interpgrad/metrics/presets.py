"""Named protocols: parameter values (and the explained class) that reproduce a paper's evaluation. A preset is applied
first; a user's own ``--param`` and ``--target`` override it. The results record the resolved values of every
parameter, so a number is never separated from the protocol that produced it.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import ConfigError

__all__ = ["PRESETS", "TARGETS", "apply_preset"]

TARGETS = ("predicted", "label")
"""Which class every map explains and every metric scores: the model's prediction or the ground truth."""

PRESETS: dict[str, dict[str, Any]] = {
    "rise": {
        "description": "RISE (Petsiuk et al. 2018): the predicted class; deletion into zeros in normalised space (the "
        "dataset's mean colour), insertion from a Gaussian blur (kernel 11, sigma 5, their values at 224 px), one "
        "image row per step (224 pixels at 224 x 224)",
        "target": "predicted",
        "params": {
            "insertion": {"substrate": "blur", "blur_kernel": 11, "blur_sigma": 5.0, "step_rows": 1.0, "score": "probability"},
            "deletion": {"substrate": "zeros", "step_rows": 1.0, "score": "probability"},
        },
    },
    "interpretable-gradients": {
        "description": "the interpretable-gradients authors' protocol, our reading of their first author's code: the "
        "ground-truth class for every metric; insertion from a Gaussian blur (kernel 5, sigma 5), 8 image rows per "
        "step (224 x 8 pixels at 224 px); deletion as RISE (their substrate is not known to us)",
        "target": "label",
        "params": {
            "insertion": {"substrate": "blur", "blur_kernel": 5, "blur_sigma": 5.0, "step_rows": 8.0, "score": "probability"},
            "deletion": {"substrate": "zeros", "step_rows": 8.0, "score": "probability"},
        },
    },
    "srinivas-fleuret": {
        "description": "Srinivas & Fleuret's official code: pixel perturbation replaces the removed pixels by 0.5 (the "
        "paper says the image mean), orders pixels by the standard deviation of the gradient over the channels, and "
        "scores top-1 accuracy against the ground truth",
        "params": {
            "pixel_perturbation": {"replacement": "constant", "constant": 0.5, "saliency": "channel_std", "score": "accuracy"},
        },
    },
}


def apply_preset(
    preset: str | None, params: Mapping[str, Mapping[str, Any]] | None, target: str | None
) -> tuple[dict[str, dict[str, Any]], str]:
    """The metric parameters and the target of ``preset`` (None: the metrics' own defaults and the predicted class),
    overridden by the user's ``params`` (metric -> {name: value}) and ``target``."""
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS.get(preset or "", {})
    merged: dict[str, dict[str, Any]] = {metric: dict(values) for metric, values in chosen.get("params", {}).items()}
    for metric, values in (params or {}).items():
        merged.setdefault(metric, {}).update(values)
    resolved_target = target or chosen.get("target", "predicted")
    if resolved_target not in TARGETS:
        raise ConfigError(f"unknown target {resolved_target!r}; choose one of {', '.join(TARGETS)}")
    return merged, resolved_target
