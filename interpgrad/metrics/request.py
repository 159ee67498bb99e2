"""What an evaluation asks for, checked before any work: names, parameters, protocol options and the device. The
CLI, ``evaluate`` and the app's launcher share this check, so every front end refuses the same requests with the same
message (and the app refuses them before it starts a background process)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from ..data import has_masks
from ..errors import ConfigError
from ..explain import get_method
from ..explain import methods as method_registry
from .core import get_metric
from .core import metrics as metric_registry
from .presets import apply_preset

__all__ = ["Request", "check_request", "parse_names", "resolve_device"]


@dataclass(frozen=True)
class Request:
    """The checked request: every method and metric with its resolved parameters, the target and the device."""

    methods: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    target: str
    device: torch.device


def resolve_device(name: str) -> torch.device:
    """``auto`` (a GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``; a ConfigError when it is not available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {name}: only cpu and cuda are supported")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name}: no CUDA GPU is available; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name}: there are only {torch.cuda.device_count()} GPUs")
    return device


def parse_names(names: Sequence[str] | str, kind: str, every: Sequence[str]) -> list[str]:
    """A list or comma-separated string of names (duplicates dropped; ``all`` = every one of ``every``)."""
    if isinstance(names, str):
        names = [part.strip() for part in names.split(",") if part.strip()]
    names = list(dict.fromkeys(names))
    if names == ["all"]:
        return list(every)
    if not names:
        raise ConfigError(f"choose at least one {kind}")
    return names


def _whole(value: Any, what: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < low:
        raise ConfigError(f"{what} must be a whole number >= {low}, got {value!r}")
    return int(value)


def check_masks(metrics: Sequence[str], dataset: str) -> None:
    """A ConfigError when some of ``metrics`` need ground-truth masks and ``dataset`` has none."""
    needs_masks = [name for name in metrics if get_metric(name).needs_masks]
    if needs_masks and not has_masks(dataset):
        raise ConfigError(f"{', '.join(needs_masks)} need{'s' if len(needs_masks) == 1 else ''} ground-truth masks, and "
                          f"{dataset} has none: remove them, or evaluate on shapes or shapes-hard, which have masks")


def check_request(
    methods: Sequence[str] | str,
    metrics: Sequence[str] | str,
    dataset: str = "shapes",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    preset: str | None = None,
    target: str | None = None,
    batch_size: int = 32,
    max_batch: int = 0,
    confidence: float = 0.95,
    resamples: int = 2000,
    device: str = "auto",
) -> Request:
    """Check an evaluation request without loading anything; a ConfigError names the first problem. ``all`` methods
    are those that run on their defaults (not ``gad``, which needs its run: name it, with ``gad.support``)."""
    every = [name for name, method in method_registry().items() if not method.requires]
    method_names = parse_names(methods, "method", every)
    for name in method_names:
        get_method(name)
    metric_names = parse_names(metrics, "metric", list(metric_registry()))
    for name in metric_names:
        get_metric(name)
    for name in method_params or {}:
        if name not in method_names:
            raise ConfigError(f"parameters given for the method {name!r}, which is not among the methods "
                              f"({', '.join(method_names)})")
    for name in params or {}:
        if name not in metric_names:
            raise ConfigError(f"parameters given for the metric {name!r}, which is not among the metrics "
                              f"({', '.join(metric_names)})")
    merged, resolved_target = apply_preset(preset, params, target)
    resolved_methods = {name: get_method(name).resolve((method_params or {}).get(name, {})) for name in method_names}
    for name in method_names:
        missing = [param for param in get_method(name).requires if resolved_methods[name][param] in ("", None)]
        if missing:
            raise ConfigError(f"the method {name!r} needs its parameter {missing[0]!r} (e.g. {name}.{missing[0]}=...)")
    resolved_metrics = {name: get_metric(name).resolve(merged.get(name, {})) for name in metric_names}
    _whole(batch_size, "the batch size", 1)
    _whole(max_batch, "max_batch (0 = automatic)", 0)
    if not isinstance(confidence, (int, float)) or not 0.5 <= confidence < 1.0:
        raise ConfigError(f"the confidence level must be in [0.5, 1), got {confidence!r}")
    if not 100 <= _whole(resamples, "resamples", 1) <= 100_000:
        raise ConfigError(f"resamples must be in 100..100000, got {resamples}")
    check_masks(metric_names, dataset)
    return Request(resolved_methods, resolved_metrics, resolved_target, resolve_device(device))
