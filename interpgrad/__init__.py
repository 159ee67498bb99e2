"""interpgrad: train CNN classifiers with and without gradient regularizers, then see and measure their saliency maps.

The stable entry points::

    interpgrad.input_gradient(model, x, target, rule="standard" | "guided", create_graph=False)
    interpgrad.save_checkpoint(path, model, config, data=..., ...)
    model, metadata = interpgrad.load_checkpoint(path)
    interpgrad.explain(model, x, "gradcam", target=None)       interpgrad.methods()
    interpgrad.evaluate(models, methods, metrics, dataset, n)  interpgrad.metrics()
"""

from __future__ import annotations

from ._version import __version__
from .errors import CheckpointError, ConfigError, DataError, InterpgradError, ModelError
from .explain import Explanation, explain, methods
from .gradients import RULES, input_gradient, rectifier_hooks
from .models import ModelConfig, architectures, build_model, default_target_layer, get_layer
from . import metrics
from .modelstate import preserved_model_state
from .regularizers import REGULARIZERS, LossParts, build_regularizer
from .training.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from . import gad  # noqa: E402  isort: skip  (registers the method "gad", built on the ones above)

__all__ = [
    "__version__",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Explanation",
    "InterpgradError",
    "LossParts",
    "ModelConfig",
    "ModelError",
    "REGULARIZERS",
    "RULES",
    "architectures",
    "build_model",
    "build_regularizer",
    "default_target_layer",
    "evaluate",
    "explain",
    "gad",
    "get_layer",
    "input_gradient",
    "load_checkpoint",
    "methods",
    "metrics",
    "preserved_model_state",
    "read_checkpoint_metadata",
    "rectifier_hooks",
    "save_checkpoint",
]


def __getattr__(name: str) -> object:
    if name == "evaluate":  # imported on first use: it needs pandas and matplotlib
        from .metrics.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
