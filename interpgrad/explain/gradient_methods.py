"""Gradient-family methods: attributions at input resolution, ``[B, C, H, W]``, signed.

All of them differentiate the target-class logit ``f_t`` with respect to the input, under the ``standard`` or the
``guided`` backward rule of ``interpgrad.gradients`` (one forward pass, one backward pass w.r.t. the input only).
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

from ..errors import ConfigError
from ..gradients import rectifier_hooks, select_logits
from ..params import Param, When
from .core import Attribution, Request, register
from .mechanics import BATCH_SIZE_PARAM, NOISE_PARAM, SEED_PARAM, noisy_batches, rows_per_forward, spans

__all__ = [
    "INTEGRATION_RULES",
    "baseline_for",
    "gradient",
    "guided_backprop",
    "input_gradients",
    "integrated_gradients",
    "integrated_gradients_of",
    "quadrature",
    "smoothgrad",
]

INTEGRATION_RULES = ("gauss_legendre", "riemann_trapezoid")
BASELINES = ("zero", "blur")


TargetsFor = Callable[[torch.Tensor], torch.Tensor]


def input_gradients(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor | TargetsFor, rule: str = "standard"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``d f_{t_i}(x_i) / d x_i`` for every row under ``rule``, and the logits (detached): one forward pass and one
    backward pass w.r.t. the input only. ``targets`` is a LongTensor ``[B]`` or a function of the logits returning
    one (to resolve predicted classes from this very forward pass)."""
    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        if rule == "guided":
            with rectifier_hooks() as rules:
                logits = model(inputs)
            if rules.count == 0:
                warnings.warn("no ReLU, ReLU6 or Softplus in the forward pass: guided = standard gradient", stacklevel=3)
        else:
            logits = model(inputs)
        selected = targets(logits.detach()) if callable(targets) else targets
        score = select_logits(logits, selected).sum()
        if rule == "guided":
            with rules.use("guided"):
                (grads,) = torch.autograd.grad(score, inputs)
        else:
            (grads,) = torch.autograd.grad(score, inputs)
    return grads, logits.detach()


def quadrature(rule: str, steps: int) -> tuple[list[float], list[float]]:
    """Nodes ``alpha_k`` in [0, 1] and weights ``w_k`` of the path integral ``int_0^1 g(alpha) d alpha``.

    ``gauss_legendre``: Gauss-Legendre nodes mapped from [-1, 1] to [0, 1] (``alpha = (1 + z) / 2``, ``w = w_z / 2``),
    exact for polynomials of degree ``2 steps - 1``; Captum's default (``method="gausslegendre"``) uses the same.
    ``riemann_trapezoid``: ``steps`` equally spaced nodes including both ends, weights ``1/(steps-1)`` halved at the
    ends, which sum to 1. (Captum's ``riemann_trapezoid`` uses weights ``1/steps`` instead, which sum to
    ``(steps-1)/steps``; its result is smaller by that factor.)
    """
    if rule == "gauss_legendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return list(0.5 * (1.0 + nodes)), list(0.5 * weights)
    if rule == "riemann_trapezoid":
        if steps < 2:
            raise ConfigError("integrated_gradients with integration=riemann_trapezoid needs steps >= 2")
        width = 1.0 / (steps - 1)
        weights = [width] * steps
        weights[0] = weights[-1] = width / 2
        return list(np.linspace(0.0, 1.0, steps)), weights
    raise ConfigError(f"unknown integration rule {rule!r}; choose one of {', '.join(INTEGRATION_RULES)}")


def baseline_for(x: torch.Tensor, kind: str, blur_sigma: float) -> torch.Tensor:
    """The integration baseline of every image: ``zero`` (all zeros) or ``blur`` (Gaussian blur, sigma in pixels)."""
    if kind == "zero":
        return torch.zeros_like(x)
    # An odd kernel covering 3 sigma each side, at most 2 * side - 1 wide (reflect padding must be narrower than x).
    kernel = min(2 * int(np.ceil(3 * blur_sigma)) + 1, 2 * min(x.shape[-2:]) - 1)
    return gaussian_blur(x, [kernel, kernel], [blur_sigma, blur_sigma])


def integrated_gradients_of(
    model: torch.nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    integration: str,
    rows: int,
) -> torch.Tensor:
    """``(x - x') * sum_k w_k * grad f_t(x' + alpha_k (x - x'))`` for every row, the path points batched ``rows`` at a
    time (steps are chunked, each chunk holding all images)."""
    alphas, weights = quadrature(integration, steps)
    difference = x - baseline
    total = torch.zeros_like(x)
    for start, stop in spans(steps, max(1, rows // x.shape[0])):
        alpha = torch.tensor(alphas[start:stop], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
        weight = torch.tensor(weights[start:stop], dtype=x.dtype, device=x.device).view(-1, 1, 1, 1, 1)
        points = (baseline.unsqueeze(0) + alpha * difference.unsqueeze(0)).flatten(0, 1)  # step-major
        grads, _ = input_gradients(model, points, targets.repeat(stop - start))
        total += (grads.view(stop - start, *x.shape) * weight).sum(dim=0)
    return difference * total


def _logits_and_targets(request: Request) -> tuple[torch.Tensor, torch.Tensor]:
    """The clean input's logits and the targets they resolve (one forward pass without a graph)."""
    with torch.no_grad():
        logits = request.model(request.x)
    return logits, request.targets(logits)


@register(
    "gradient",
    "gradient",
    "gradient of the target logit w.r.t. the input (saliency)",
    captum="Saliency",
    source="Simonyan, Vedaldi & Zisserman 2014, arXiv 1312.6034",
)
def gradient(request: Request) -> Attribution:
    """``d f_t(x) / dx`` (signed; the display map is ``max_c |.|``)."""
    grads, logits = input_gradients(request.model, request.x, request.targets)
    return Attribution(grads, logits, request.targets(logits), at_input=True)


@register(
    "guided_backprop",
    "gradient",
    "gradient with every rectifier passing only positive gradients (guided backpropagation)",
    captum="GuidedBackprop",
    source="Springenberg et al. 2015, arXiv 1412.6806",
)
def guided_backprop(request: Request) -> Attribution:
    """``d_G f_t(x) / dx``: ReLU backward ``1[u > 0] * max(dv, 0)`` (ReLU6: ``1[0 < u < 6] * max(dv, 0)``)."""
    grads, logits = input_gradients(request.model, request.x, request.targets, rule="guided")
    return Attribution(grads, logits, request.targets(logits), at_input=True)


SMOOTHGRAD_BASES = ("gradient", "guided_backprop", "integrated_gradients")


@register(
    "smoothgrad",
    "gradient",
    "a gradient method averaged over noisy copies of the input",
    params=(
        Param("base", str, "gradient", "the gradient method that is averaged", choices=SMOOTHGRAD_BASES),
        Param("samples", int, 25, "number of noisy copies", low=1, high=4096),
        NOISE_PARAM,
        SEED_PARAM,
        Param(
            "steps", int, 32, "path points of each Integrated Gradients (zero baseline, Gauss-Legendre)", low=1, high=1024,
            when=When("base", "integrated_gradients"),
        ),
        BATCH_SIZE_PARAM,
    ),
    captum="NoiseTunnel",
    source="Smilkov et al. 2017, arXiv 1706.03825",
)
def smoothgrad(
    request: Request, base: str, samples: int, noise: float, seed: int, steps: int, batch_size: int
) -> Attribution:
    """``(1/n) sum_s A(x + sigma * eps_s)``, ``eps_s ~ N(0, I)``, ``sigma = noise * (max(x) - min(x))`` per image.

    Every image of a batch gets the same draws ``eps_s`` (scaled by its own sigma), so an image's explanation does
    not depend on the rest of its batch: ``explain(x)[i] == explain(x[i:i+1])``.
    """
    x, batch = request.x, request.x.shape[0]
    logits, targets = _logits_and_targets(request)
    rows = rows_per_forward(batch_size, x[0].numel(), device=x.device)
    rule = "guided" if base == "guided_backprop" else "standard"
    per_sample = steps if base == "integrated_gradients" else 1
    total = torch.zeros_like(x)
    for count, noisy in noisy_batches(x, noise, seed, samples, max(1, rows // (batch * per_sample))):
        repeated = targets.repeat_interleave(count)
        if base == "integrated_gradients":
            zero = torch.zeros_like(noisy)
            attribution = integrated_gradients_of(request.model, noisy, zero, repeated, steps, "gauss_legendre", rows)
        else:
            attribution, _ = input_gradients(request.model, noisy, repeated, rule)
        total += attribution.view(batch, count, *x.shape[1:]).sum(dim=1)
    return Attribution(total / samples, logits, targets, at_input=True)


@register(
    "integrated_gradients",
    "gradient",
    "path integral of the gradient from a baseline to the input, times (input - baseline)",
    params=(
        Param("steps", int, 32, "number of points on the path from the baseline to the input", low=1, high=1024),
        Param("integration", str, "gauss_legendre", "quadrature rule of the path integral", choices=INTEGRATION_RULES),
        Param(
            "baseline", str, "zero",
            "zero: the all-zero input (the mean image when inputs are normalised); blur: a Gaussian blur of the input",
            choices=BASELINES,
        ),
        Param("blur_sigma", float, 5.0, "standard deviation in pixels of the blur baseline", low=0.1, high=256.0,
              when=When("baseline", "blur")),
        BATCH_SIZE_PARAM,
    ),
    captum="IntegratedGradients",
    source="Sundararajan, Taly & Yan 2017, arXiv 1703.01365",
)
def integrated_gradients(
    request: Request, steps: int, integration: str, baseline: str, blur_sigma: float, batch_size: int
) -> Attribution:
    """``IG_i(x) = (x_i - x'_i) * int_0^1 d f_t(x' + a (x - x')) / dx_i da`` by quadrature (``quadrature``); the
    attributions sum to about ``f_t(x) - f_t(x')`` (completeness)."""
    x = request.x
    logits, targets = _logits_and_targets(request)
    rows = rows_per_forward(batch_size, x[0].numel(), device=x.device)
    start = baseline_for(x, baseline, blur_sigma)
    raw = integrated_gradients_of(request.model, x, start, targets, steps, integration, rows)
    return Attribution(raw, logits, targets, at_input=True)
