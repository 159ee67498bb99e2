"""Metrics: measure saliency maps and models — a registry of metrics, statistics, and ``evaluate``.

    interpgrad.metrics()          # name -> Metric(name, category, direction, params, protocol, source, ...)
    result = interpgrad.evaluate(models, methods, metrics, dataset="shapes", n=200, out="evaluations/mine")
    result.summary                # means with 95 % bootstrap intervals; result.comparisons: paired, with verdicts

Categories: faithfulness (average_drop, average_increase, average_gain, pixel_perturbation), causality (insertion,
deletion), localisation (pointing_game, energy_pointing_game, relevance_rank_accuracy, topk_iou, roc_auc), sanity
(randomisation, random_logit), complexity (sparseness, top10_energy). Control maps ``random`` and ``edge`` are methods
(``interpgrad.methods()``) to evaluate beside the real ones.
"""

from __future__ import annotations

import importlib
import sys
import types

# Importing the metric modules registers their metrics, in this order.
from . import faithfulness  # noqa: F401  isort: skip
from . import causal  # noqa: F401  isort: skip
from . import localisation  # noqa: F401  isort: skip
from . import sanity  # noqa: F401  isort: skip
from . import complexity  # noqa: F401  isort: skip
from .core import CATEGORIES, DIRECTIONS, Metric, MetricBatch, MetricResult, get_metric, metrics, register
from .datasets import SPLITS, EvaluationData, evaluation_data
from .presets import PRESETS, TARGETS
from .request import Request, check_request, resolve_device
from .scores import score_explanation
from .statistics import PairedComparison, Summary, bootstrap_mean, paired_comparison

# The evaluation and its folder need pandas and matplotlib: imported when first used, so that ``import interpgrad``
# (every training process, every CLI command) does not pay for them.
_LAZY = {
    "Evaluation": "evaluation",
    "EvaluatedModel": "evaluation",
    "Stopped": "evaluation",
    "evaluate": "evaluation",
    "load_evaluation": "evaluation",
    "write_plots": "evaluation",
    "EvaluationDir": "folder",
    "list_evaluations": "folder",
    "launch_evaluation": "launcher",
    "resume_evaluation": "launcher",
    "stop_evaluation": "launcher",
}

__all__ = [
    "CATEGORIES",
    "DIRECTIONS",
    "Evaluation",
    "EvaluatedModel",
    "EvaluationData",
    "EvaluationDir",
    "Metric",
    "MetricBatch",
    "MetricResult",
    "PRESETS",
    "PairedComparison",
    "Request",
    "SPLITS",
    "Stopped",
    "Summary",
    "TARGETS",
    "bootstrap_mean",
    "check_request",
    "evaluate",
    "evaluation_data",
    "get_metric",
    "launch_evaluation",
    "list_evaluations",
    "load_evaluation",
    "metrics",
    "paired_comparison",
    "register",
    "resolve_device",
    "resume_evaluation",
    "score_explanation",
    "stop_evaluation",
    "write_plots",
]


class _MetricsPackage(types.ModuleType):
    """``interpgrad.metrics`` is this package and, called, the registry: ``interpgrad.metrics()`` (the contract)
    returns ``metrics()``, while ``import interpgrad.metrics`` and ``from interpgrad.metrics import ...`` work as for
    any package."""

    def __call__(self) -> dict[str, Metric]:
        return metrics()

    def __getattr__(self, name: str) -> object:
        if name in _LAZY:
            module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
            return getattr(module, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.modules[__name__].__class__ = _MetricsPackage
