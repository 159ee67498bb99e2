"""Captum's implementation of every method Captum has, configured to compute what interpgrad's method computes: the
reference the tests compare against and the benchmarks time.

==================== ===================================================================================
interpgrad           Captum
==================== ===================================================================================
gradient             ``Saliency(abs=False)``
guided_backprop      ``GuidedBackprop``
gradcam              ``LayerGradCam`` (``relu_attributions=False``: the raw CAM; ``explain`` applies the ReLU
                     and then ``LayerAttribution.interpolate``'s bilinear upsampling, as Captum would)
guided_gradcam       ``GuidedGradCam(interpolate_mode="bilinear")``
integrated_gradients ``IntegratedGradients`` with the same baseline, steps and rule (``gausslegendre``; for
                     ``riemann_trapezoid`` Captum's weights sum to ``(n-1)/n``: its result is rescaled by
                     ``n/(n-1)`` to the exact trapezoid rule)
smoothgrad           ``NoiseTunnel(nt_type="smoothgrad")`` over the same base method, one image at a time with
                     ``stdevs`` = that image's sigma, after ``torch.manual_seed(seed)`` (same noise as ours;
                     one process-wide lock around the seeded draws, so concurrent calls keep their seeds)
==================== ===================================================================================

Captum leaves hooks behind when it fails half-way; every call here runs inside ``preserved_model_state``.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import torch
from torch import nn

from .errors import ConfigError
from .explain.api import check_input
from .explain.core import Attribution, TargetSpec, get_method, methods
from .explain.explanation import Explanation, build_explanation
from .explain.gradient_methods import baseline_for
from .explain.layers import resolve_layer
from .explain.mechanics import noise_scale, rows_per_forward
from .gradients import resolve_target
from .modelstate import preserved_model_state

__all__ = ["captum_attribute", "captum_explain", "has_reference", "reference_methods"]


_GLOBAL_RNG = threading.Lock()
"""Held while Captum draws its noise from torch's process-wide generator after seeding it. Two sessions explaining
different models hold different model locks; without this one their seeded draws interleave and both get noise of
neither seed."""


def reference_methods() -> dict[str, str]:
    """Method name -> the Captum class that computes it."""
    return {name: spec.captum for name, spec in methods().items() if spec.captum}


def has_reference(method: str) -> bool:
    """Whether Captum implements ``method``."""
    return method in reference_methods()


def _integrated_gradients(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, params: dict[str, Any]
) -> torch.Tensor:
    from captum.attr import IntegratedGradients

    steps, rule = params["steps"], params["integration"]
    rows = rows_per_forward(params["batch_size"], x[0].numel(), device=x.device)
    attribution = IntegratedGradients(model).attribute(
        x,
        baselines=baseline_for(x, params["baseline"], params["blur_sigma"]),
        target=target,
        n_steps=steps,
        method="gausslegendre" if rule == "gauss_legendre" else rule,
        internal_batch_size=max(x.shape[0], rows // x.shape[0] * x.shape[0]),
    )
    return attribution * (steps / (steps - 1)) if rule == "riemann_trapezoid" else attribution


def _smoothgrad(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, params: dict[str, Any], noise_per_image: bool
) -> torch.Tensor:
    from captum.attr import GuidedBackprop, IntegratedGradients, NoiseTunnel, Saliency

    base = params["base"]
    if base == "gradient":
        tunnel, extra = NoiseTunnel(Saliency(model)), {"abs": False}
    elif base == "guided_backprop":
        tunnel, extra = NoiseTunnel(GuidedBackprop(model)), {}
    else:
        tunnel = NoiseTunnel(IntegratedGradients(model))
        extra = {"baselines": 0.0, "n_steps": params["steps"], "method": "gausslegendre"}
    sigma = noise_scale(x, params["noise"])
    per_sample = params["steps"] if base == "integrated_gradients" else 1
    options = {"nt_type": "smoothgrad", "nt_samples": params["samples"], **extra}
    if not noise_per_image:  # one batched call with one stdev: the same work (and memory bound), other noise
        rows = rows_per_forward(params["batch_size"], x[0].numel(), device=x.device)
        samples_per_pass = max(1, rows // (x.shape[0] * per_sample))
        stdev = float(sigma.mean())
        return tunnel.attribute(x, target=target, stdevs=stdev, nt_samples_batch_size=samples_per_pass, **options)
    per_image = []
    for index in range(x.shape[0]):
        with _GLOBAL_RNG, torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(params["seed"])
            image, stdev = x[index : index + 1], float(sigma[index])
            per_image.append(tunnel.attribute(image, target=target[index : index + 1], stdevs=stdev, **options))
    return torch.cat(per_image)


def captum_attribute(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    target: torch.Tensor,
    layer: nn.Module | None,
    params: dict[str, Any],
    noise_per_image: bool = True,
) -> torch.Tensor:
    """Captum's raw attribution for resolved inputs: ``target`` a LongTensor ``[B]``, ``layer`` a module (CAMs),
    ``params`` resolved by the method's declaration. ``[B, C, H, W]``, or ``[B, h, w]`` for gradcam (before ReLU).

    ``noise_per_image=False`` runs SmoothGrad as one batched NoiseTunnel call with the mean sigma (what a Captum user
    would time; the noise then differs from ours).
    """
    from captum.attr import GuidedBackprop, GuidedGradCam, LayerGradCam, Saliency

    x = x.detach().clone()
    if method == "gradient":
        return Saliency(model).attribute(x, target=target, abs=False)
    if method == "guided_backprop":
        return GuidedBackprop(model).attribute(x, target=target)
    if method == "gradcam":
        return LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=False).squeeze(1)
    if method == "guided_gradcam":
        return GuidedGradCam(model, layer).attribute(x, target=target, interpolate_mode="bilinear")
    if method == "integrated_gradients":
        return _integrated_gradients(model, x, target, params)
    if method == "smoothgrad":
        return _smoothgrad(model, x, target, params, noise_per_image)
    raise ConfigError(f"Captum has no equivalent of {method!r}; methods with one: {', '.join(reference_methods())}")


def captum_explain(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    target: TargetSpec = None,
    layer: str | nn.Module | None = None,
    **params: Any,
) -> Explanation:
    """Like ``interpgrad.explain``, computed by Captum: same parameters, targets, layer and display conventions."""
    spec = get_method(method)
    if not spec.captum:
        raise ConfigError(f"Captum has no equivalent of {method!r}; methods with one: {', '.join(reference_methods())}")
    resolved = spec.resolve(params)
    x = check_input(x)
    with preserved_model_state(model):
        with torch.no_grad():
            logits = model(x)
        targets = resolve_target(target, logits)
        module, name = resolve_layer(model, layer) if spec.uses_layer else (None, None)
        with warnings.catch_warnings():  # Captum's notices about hooks it sets and removes itself
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
            warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
            raw = captum_attribute(model, x, method, targets, module, resolved).detach()
    attribution = Attribution(raw, logits, targets, at_input=method != "gradcam")
    return build_explanation(attribution, (int(x.shape[-2]), int(x.shape[-1])), method, name, resolved)
