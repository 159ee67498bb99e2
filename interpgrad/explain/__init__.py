"""Attribution methods: one small unit per method, a registry with declared parameters, one entry point.

    explanation = interpgrad.explain(model, x, "gradcam", target=None, layer=None, **params)
    explanation.map          # [B, H, W] display map at input resolution (not normalised)
    interpgrad.methods()     # name -> Method(name, family, description, params, uses_layer, captum, source)

Gradient family: gradient, guided_backprop, smoothgrad, integrated_gradients.
CAM family: cam, gradcam, gradcam++, smooth_gradcam++, scorecam, guided_gradcam, layercam, xgradcam, ablationcam.
Controls (maps that ignore the model, the chance level of evaluation tables): random, edge.
GAD (``gad``, registered by ``interpgrad.gad`` when ``interpgrad`` is imported): a base gradient method of the original fused with its support
models'; it needs a GAD run (``support=RUN``).
"""

from __future__ import annotations

# Importing the method modules registers their methods, gradient family first.
from . import gradient_methods  # noqa: F401  isort: skip
from . import cam_methods  # noqa: F401  isort: skip
from . import control_methods  # noqa: F401  isort: skip
from .api import check_input, explain
from .core import FAMILIES, Attribution, Method, Request, get_method, methods, register
from .explanation import Explanation, build_explanation
from .layers import resolve_layer
from .mechanics import reporting_progress

__all__ = [
    "FAMILIES",
    "Attribution",
    "Explanation",
    "Method",
    "Request",
    "build_explanation",
    "check_input",
    "explain",
    "get_method",
    "methods",
    "register",
    "reporting_progress",
    "resolve_layer",
]
