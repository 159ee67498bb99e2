"""CAM-family methods: a class activation map ``L = sum_k alpha_k A^k`` of a target layer's feature maps ``A``
``[B, K, h, w]``; each method is its channel weights ``alpha`` (or, for Layer-CAM, element-wise weights).

``raw`` is the map before the ReLU, at the layer's resolution; ``explain`` derives ``map = Up(ReLU(raw))``.
Notation: ``y = f_t(x)`` the target logit, ``g = dy/dA`` (``interpgrad.explain.layers.layer_gradients``).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..gradients import rectifier_hooks, select_logits
from ..params import Param
from .core import Attribution, Request, register
from .layers import layer_gradients, record_forward, record_layer_output, replace_layer_output
from .mechanics import (
    BATCH_SIZE_PARAM,
    NOISE_PARAM,
    SEED_PARAM,
    noisy_batches,
    rows_per_forward,
    safe_divide,
    spans,
    upsample,
)

__all__ = [
    "ablationcam",
    "cam",
    "channel_weighted_sum",
    "gradcam",
    "gradcam_plus_plus",
    "gradcam_plus_plus_weights",
    "guided_gradcam",
    "layercam",
    "scorecam",
    "smooth_gradcam_plus_plus",
    "xgradcam",
]

SPATIAL = (2, 3)


def channel_weighted_sum(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """``sum_k alpha_k A^k``: weights ``[B, K]``, activations ``[B, K, h, w]`` -> ``[B, h, w]``."""
    return torch.einsum("bk,bkhw->bhw", weights, activations)


def _layer_attribution(request: Request, raw: torch.Tensor, logits: torch.Tensor) -> Attribution:
    return Attribution(raw, logits, request.targets(logits), at_input=False)


@register(
    "cam",
    "cam",
    "class activation map: the classifier weights of a global-average-pooling + linear head",
    uses_layer=True,
    source="Zhou et al. 2016, arXiv 1512.04150",
)
def cam(request: Request) -> Attribution:
    """``alpha_k = W_{t,k}``, the weights of the linear layer applied to the global average of ``A``.

    The head is checked, not assumed: some ``nn.Linear`` must output the logits from exactly ``mean_ij A_ij``;
    otherwise a ConfigError says the model has no such head (Grad-CAM applies to any model).
    """
    seen: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def remember(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen[module] = (inputs[0], output)

    linears = list(dict.fromkeys(module for module in request.model.modules() if isinstance(module, nn.Linear)))
    handles = [linear.register_forward_hook(remember) for linear in linears]
    try:
        activations, logits, _ = record_forward(request)
    finally:
        for handle in handles:
            handle.remove()
    pooled = activations.mean(dim=SPATIAL)
    for linear, (pooled_input, output) in seen.items():
        if output.shape == logits.shape and torch.equal(output, logits) and pooled_input.shape == pooled.shape:
            if torch.allclose(pooled_input, pooled, rtol=1e-4, atol=1e-6):
                weights = linear.weight.detach()[request.targets(logits)]
                return _layer_attribution(request, channel_weighted_sum(weights, activations), logits)
    raise ConfigError(
        f"cam needs a model whose logits are a linear layer applied to the global average of the target layer "
        f"{request.layer_name!r} (a GAP + linear head); this model/layer has none: use gradcam"
    )


@register(
    "gradcam",
    "cam",
    "feature maps weighted by the spatial mean of the target logit's gradient",
    uses_layer=True,
    captum="LayerGradCam",
    source="Selvaraju et al. 2017, arXiv 1610.02391",
)
def gradcam(request: Request) -> Attribution:
    """``alpha_k = (1/hw) sum_ij g^k_ij``."""
    layer = layer_gradients(request)
    weights = layer.gradients.mean(dim=SPATIAL)
    return _layer_attribution(request, channel_weighted_sum(weights, layer.activations), layer.logits)


def gradcam_plus_plus_weights(
    activations: torch.Tensor, first: torch.Tensor, second: torch.Tensor, third: torch.Tensor
) -> torch.Tensor:
    """Grad-CAM++ channel weights ``alpha_k = sum_ij w_ij ReLU(g_ij)``, ``w = g^2 / (2 g^2 + sum_ab A_ab g^3)``,
    from the first derivative and the stand-ins of the second and third (``g^2``, ``g^3``: the closed form for an
    exponential output). ``w = 0`` where the denominator is 0."""
    denominator = 2 * second + activations.sum(dim=SPATIAL, keepdim=True) * third
    return (safe_divide(second, denominator) * first.clamp(min=0)).sum(dim=SPATIAL)


@register(
    "gradcam++",
    "cam",
    "Grad-CAM with pixel-wise weights of the positive gradients (second/third-order terms)",
    uses_layer=True,
    source="Chattopadhay et al. 2018, arXiv 1710.11063",
)
def gradcam_plus_plus(request: Request) -> Attribution:
    """``alpha_k = sum_ij [g^2 / (2 g^2 + sum_ab A_ab g^3)]_ij ReLU(g_ij)``."""
    layer = layer_gradients(request)
    g = layer.gradients
    weights = gradcam_plus_plus_weights(layer.activations, g, g * g, g * g * g)
    return _layer_attribution(request, channel_weighted_sum(weights, layer.activations), layer.logits)


@register(
    "smooth_gradcam++",
    "cam",
    "Grad-CAM++ with its derivatives averaged over noisy copies of the input",
    params=(
        Param("samples", int, 16, "number of noisy copies", low=1, high=4096),
        NOISE_PARAM,
        SEED_PARAM,
        BATCH_SIZE_PARAM,
    ),
    uses_layer=True,
    source="Omeiza et al. 2019, arXiv 1908.01224",
)
def smooth_gradcam_plus_plus(request: Request, samples: int, noise: float, seed: int, batch_size: int) -> Attribution:
    """Grad-CAM++ weights from ``mean_s g_s``, ``mean_s g_s^2``, ``mean_s g_s^3`` with ``g_s = dy/dA`` at
    ``x + sigma * eps_s`` (``sigma = noise * (max(x) - min(x))`` per image, the same draws for every image); the
    activations ``A`` are those of the clean input."""
    x, batch = request.x, request.x.shape[0]
    activations, logits, _ = record_forward(request)
    targets = request.targets(logits)
    sums = [torch.zeros_like(activations) for _ in range(3)]
    samples_per_batch = max(1, rows_per_forward(batch_size, x[0].numel(), device=x.device) // batch)
    for count, noisy in noisy_batches(x, noise, seed, samples, samples_per_batch):
        g = layer_gradients(request, noisy, targets.repeat_interleave(count)).gradients
        g = g.view(batch, count, *g.shape[1:])
        for power, total in enumerate(sums, start=1):
            total += g.pow(power).sum(dim=1)
    first, second, third = (total / samples for total in sums)
    weights = gradcam_plus_plus_weights(activations, first, second, third)
    return _layer_attribution(request, channel_weighted_sum(weights, activations), logits)


SCORES = ("probability", "logit")


def _class_scores(logits: torch.Tensor, targets: torch.Tensor, score: str) -> torch.Tensor:
    if score == "probability":
        return torch.softmax(logits, dim=1).gather(1, targets.view(-1, 1)).squeeze(1)
    return select_logits(logits, targets)


@register(
    "scorecam",
    "cam",
    "feature maps weighted by the class score of the input masked by each (upsampled, min-max scaled) map",
    params=(
        Param(
            "score", str, "probability", "class score of a masked input: softmax probability (as published) or logit",
            choices=SCORES,
        ),
        Param(
            "subtract_baseline", bool, False,
            "subtract the score of the all-zero input, alpha_k = s(x * M_k) - s(0): the paper's Definition 2 (and "
            "PAPERS.md); off by default, as in the paper's Algorithm 1 and its reference implementation",
        ),
        BATCH_SIZE_PARAM,
    ),
    uses_layer=True,
    source="Wang et al. 2020, arXiv 1910.01279",
)
def scorecam(request: Request, score: str, subtract_baseline: bool, batch_size: int) -> Attribution:
    """``alpha_k = s_t(x * M_k) [- s_t(0)]``, ``M_k = minmax(Up(A^k))`` scaled to [0, 1] over the image.

    Baseline: PAPERS.md writes ``alpha_k = f(x * M_k)_c - f(x_b)_c``, the paper's Definition 2 (channel-wise
    increase of confidence). The paper's Algorithm 1, its reference implementation (github.com/haofanwang/Score-CAM)
    and pytorch-grad-cam use ``alpha_k = s_t(x * M_k)`` without subtracting anything, and so does the default here
    (``subtract_baseline=False``): it is what users compare against. ``subtract_baseline=True`` gives the formula of
    PAPERS.md with ``x_b`` the all-zero input (the dataset mean after normalisation). The two differ by
    ``s_t(0) * sum_k A^k``, a map of its own, not a constant: with the baseline, channels that raise the score above
    the blank input's count positively and the others negatively.

    The masked inputs of all (image, channel) pairs are scored in batches of ``batch_size`` rows (one forward pass
    each, no graph); the result does not depend on the batch size. A channel that is zero everywhere contributes
    nothing and is skipped; a constant non-zero channel has an all-zero mask, whose score is that of the zero input.
    """
    x, model = request.x, request.model
    activations, logits, _ = record_forward(request)
    targets = request.targets(logits)
    flat = activations.flatten(2)
    varying = flat.amax(dim=2) > flat.amin(dim=2)
    constant_nonzero = ~varying & flat.ne(0).any(dim=2)
    weights = torch.zeros(activations.shape[:2], dtype=x.dtype, device=x.device)
    pairs = varying.nonzero()
    rows = rows_per_forward(batch_size, x[0].numel(), device=x.device)
    with torch.no_grad():
        for start, stop in spans(len(pairs), rows):
            image, channel = pairs[start:stop].unbind(1)
            maps = upsample(activations[image, channel], request.image_size).flatten(1)
            low, high = maps.amin(dim=1, keepdim=True), maps.amax(dim=1, keepdim=True)
            masks = safe_divide(maps - low, high - low).view(-1, 1, *request.image_size)
            weights[image, channel] = _class_scores(model(x[image] * masks), targets[image], score)
        if constant_nonzero.any() or subtract_baseline:
            zero_logits = model(torch.zeros_like(x[:1])).expand(x.shape[0], -1)
            zero_scores = _class_scores(zero_logits, targets, score).unsqueeze(1)
            weights = torch.where(constant_nonzero, zero_scores, weights)
            if subtract_baseline:
                weights = weights - zero_scores
    return _layer_attribution(request, channel_weighted_sum(weights, activations), logits)


@register(
    "guided_gradcam",
    "cam",
    "guided backpropagation times the upsampled Grad-CAM",
    uses_layer=True,
    captum="GuidedGradCam",
    source="Selvaraju et al. 2017, arXiv 1610.02391",
)
def guided_gradcam(request: Request) -> Attribution:
    """``d_G y/dx * Up(ReLU(Grad-CAM))`` at input resolution ``[B, C, H, W]``: one forward pass, a standard backward
    pass to the layer and a guided one to the input."""
    assert request.layer is not None and request.layer_name is not None
    inputs = request.x.detach().requires_grad_(True)
    with torch.enable_grad():
        with rectifier_hooks() as rules, record_layer_output(request.layer, request.layer_name) as recording:
            logits = request.model(inputs)
        activations = recording.feature_map()
        score = select_logits(logits, request.targets(logits)).sum()
        (g,) = torch.autograd.grad(score, activations, retain_graph=True, allow_unused=True)
        with rules.use("guided"):
            (guided,) = torch.autograd.grad(score, inputs)
    g = torch.zeros_like(activations) if g is None else g
    grad_cam = channel_weighted_sum(g.mean(dim=SPATIAL), activations.detach()).clamp(min=0)
    raw = guided * upsample(grad_cam, request.image_size).unsqueeze(1)
    return Attribution(raw, logits.detach(), request.targets(logits), at_input=True)


@register(
    "layercam",
    "cam",
    "activations weighted element-wise by the positive gradients",
    uses_layer=True,
    source="Jiang et al. 2021, IEEE TIP 30:5875",
)
def layercam(request: Request) -> Attribution:
    """``L = sum_k ReLU(g^k) * A^k`` (element-wise weights)."""
    layer = layer_gradients(request)
    return _layer_attribution(request, (layer.gradients.clamp(min=0) * layer.activations).sum(dim=1), layer.logits)


@register(
    "xgradcam",
    "cam",
    "Grad-CAM with gradients weighted by the normalised activations (axiom-based)",
    uses_layer=True,
    source="Fu et al. 2020, arXiv 2008.02312",
)
def xgradcam(request: Request) -> Attribution:
    """``alpha_k = sum_ij (A^k_ij / sum_ab A^k_ab) g^k_ij`` (0 for a channel whose activations sum to 0)."""
    layer = layer_gradients(request)
    a = layer.activations
    weights = (safe_divide(a, a.sum(dim=SPATIAL, keepdim=True)) * layer.gradients).sum(dim=SPATIAL)
    return _layer_attribution(request, channel_weighted_sum(weights, a), layer.logits)


def _ablated_logits(
    request: Request, image: torch.Tensor, channels: torch.Tensor, at_call: int, replay_tail: bool
) -> torch.Tensor:
    """Logits ``[1 + len(channels), classes]`` of one image with the target layer's output unchanged (row 0) and
    with each of ``channels`` set to zero (rows 1...).

    ``replay_tail``: run the image once (batch 1) and give the rest of the network all the ablated copies of the
    layer's output at once, so the network before the layer runs once instead of once per channel. Tensors from
    before the layer keep batch 1 and broadcast over the copies. Otherwise the image is repeated for every copy.
    """
    assert request.layer is not None and request.layer_name is not None
    rows = len(channels) + 1
    row_index = torch.arange(1, rows, device=channels.device)

    def ablate(output: torch.Tensor) -> torch.Tensor:
        copies = output.expand(rows, *output.shape[1:]).clone()
        copies[row_index, channels] = 0
        return copies

    inputs = image if replay_tail else image.expand(rows, *image.shape[1:])
    with torch.no_grad(), replace_layer_output(request.layer, request.layer_name, ablate, at_call):
        return request.model(inputs)


@register(
    "ablationcam",
    "cam",
    "feature maps weighted by the relative drop of the target logit when each map is set to zero",
    params=(BATCH_SIZE_PARAM,),
    uses_layer=True,
    source="Desai & Ramaswamy 2020, WACV",
)
def ablationcam(request: Request, batch_size: int) -> Attribution:
    """``alpha_k = (y - y_{A^k = 0}) / y`` (0 where ``y = 0``).

    The ablated copies run ``batch_size`` at a time, and the network before the layer runs once per image and batch
    (``_ablated_logits``) when a probe on the first image shows that this replay reproduces the model's logits;
    otherwise (a network that mixes tensors from before and after the layer in a way that does not broadcast) every
    copy runs through the whole network. All-zero channels are skipped: ablating them changes nothing (alpha = 0).
    """
    x = request.x
    activations, logits, calls = record_forward(request)
    targets = request.targets(logits)
    scores = select_logits(logits, targets)
    ablated = scores.unsqueeze(1).repeat(1, activations.shape[1])
    active = activations.flatten(2).ne(0).any(dim=2)
    replay_tail = _replay_reproduces_logits(request, logits[0], calls - 1)
    values_per_row = activations[0].numel() if replay_tail else x[0].numel()
    copies_per_pass = max(1, rows_per_forward(batch_size, values_per_row, device=x.device) - 1)  # plus the unablated row
    passes = _ablation_passes(active, copies_per_pass)
    for start, _ in spans(len(passes), 1):  # one pass per span: progress runs over the whole batch, once
        index, part = passes[start]
        out = _ablated_logits(request, x[index : index + 1], part, calls - 1, replay_tail)
        ablated[index, part] = out[1:, targets[index]]
    weights = safe_divide(scores.unsqueeze(1) - ablated, scores.unsqueeze(1))
    return _layer_attribution(request, channel_weighted_sum(weights, activations), logits)


def _ablation_passes(active: torch.Tensor, copies_per_pass: int) -> list[tuple[int, torch.Tensor]]:
    """Every forward pass of Ablation-CAM as (image index, channels to ablate): the active channels of each image,
    ``copies_per_pass`` at a time, all images in one list."""
    passes = []
    for index in range(active.shape[0]):
        channels = active[index].nonzero().squeeze(1)
        passes += [(index, channels[start : start + copies_per_pass]) for start in range(0, len(channels), copies_per_pass)]
    return passes


def _replay_reproduces_logits(request: Request, first_logits: torch.Tensor, at_call: int) -> bool:
    """Whether replaying the layer's output (batch 1 before it, two copies after it) gives the first image's logits."""
    probe = torch.zeros(1, dtype=torch.long, device=request.x.device)
    try:
        out = _ablated_logits(request, request.x[:1], probe, at_call, replay_tail=True)
    except RuntimeError:  # shapes that do not broadcast
        return False
    scale = max(1.0, float(first_logits.abs().max()))
    return out.shape == (2, first_logits.shape[0]) and torch.allclose(out[0], first_logits, rtol=1e-4, atol=1e-5 * scale)
