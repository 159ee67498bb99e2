"""Convolution and training-mode batch norm with cheaper second derivatives (same values, same derivatives).

Gradient regularizers differentiate an input gradient (double backpropagation). PyTorch's generic double backward of
a convolution computes the weight term as a convolution of the batch-transposed tensors (a kernel as large as the
feature map), and that of a training-mode batch norm costs more than a dozen elementwise passes per layer; on a CPU
these were the largest excess of the guided-regularized step. Here the backward of each op is itself an autograd
function whose backward (the double backward) is written out by hand with PyTorch's fused kernels:

Convolution, y = conv(x, W): the input gradient gx = conv_transpose(g, W) and the weight gradient gW = wgrad(x, g) have

    d/dg = conv(q_x, W) + conv(x, q_W),   d/dW = wgrad(q_x, g),   d/dx = conv_transpose(g, q_W)

(q_x, q_W the incoming gradients; wgrad and conv_transpose are ``convolution_backward``'s own kernels).

Batch norm, per channel over the M = N*H*W positions, with r = (var + eps)^-1/2, x^ = (x - mean) r and the projection
``P(v) = v - mean(v) - x^ mean(v x^)``: the input gradient for an output gradient g is ``dx = gamma r P(g)``, and for
an incoming gradient q,

    d/dg     = gamma r P(q)
    d/dgamma = sum(q r P(g))
    d/dx     = -gamma r^2 ( x^ mean(q P(g)) + mean(g x^) P(q) + mean(q x^) P(g) )

(from d r / d x_k = -r^2 x^_k / M and d x^_i / d x_k = r (delta_ik - 1/M - x^_i x^_k / M)).

Batch-norm modes of the input-gradient passes (``scope.batchnorm``, the guided regularizer's ``batchnorm``):
``batch`` differentiates the batch statistics as above (row i of the input gradient then mixes every image's loss);
``per_sample`` holds them constant in the passes that only ask for input gradients, so that batch norm is the
per-channel affine map ``x -> gamma r (x - mean) + beta`` there and row i is exactly dL_i/dx_i: its input gradient is
``dx = gamma r g``, and for an incoming gradient q (r = r(x) still depends on x and on the parameters),

    d/dg = gamma r q,   d/dgamma = r sum(q g),   d/dx = -gamma r^2 x^ mean(q g)

``running`` replaces a training-mode batch norm by the affine map of its running statistics (as at inference), without
updating them.

Passes that only need gradients with respect to the inputs (the regularizers' standard and guided passes) say so
through ``BackwardRules.inputs_only``, so no weight gradient is computed there. ``tests/test_double_backprop.py``
checks everything against PyTorch's own derivatives in float64.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

__all__ = ["replacement_for"]


# Overloads resolved once (calling ``torch.ops.aten.name`` resolves the overload on every call).
_BATCH_NORM_BACKWARD = torch.ops.aten.native_batch_norm_backward.default
_CONVOLUTION_BACKWARD = torch.ops.aten.convolution_backward.default
_THRESHOLD_BACKWARD = torch.ops.aten.threshold_backward.default


def _channel_shape(x: torch.Tensor) -> list[int]:
    return [1, -1] + [1] * (x.dim() - 2)


def _native_backward(
    g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, mask: list[bool]
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """PyTorch's fused batch-norm backward: (gamma r P(g), sum(g x^), sum(g)) in one pass over g and x."""
    return _BATCH_NORM_BACKWARD(g, x, weight, None, None, mean, invstd, True, 0.0, mask)


def _channel_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum over (N, H, W) of a * b, per channel, in one fused pass (batch-norm backward with mean 0 and r 1)."""
    ones = torch.ones(a.shape[1], dtype=a.dtype, device=a.device)
    return _native_backward(a, b, ones, torch.zeros_like(ones), ones, [False, True, False])[1]


class _BatchNormGradients(torch.autograd.Function):
    """(dx, dgamma, dbeta) = (gamma r P(g), sum(g x^), sum(g)) as functions of (g, x, gamma), with a hand-written
    backward made of fused passes (PyTorch's batch-norm backward kernel and ``addcmul``)."""

    @staticmethod
    def forward(
        ctx: Any, g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ctx.set_materialize_grads(False)
        grad_x, grad_weight, grad_bias = _native_backward(g, x, weight, mean, invstd, [True, True, True])
        count = x.numel() // x.shape[1]
        # x is the forward's own saved input (no extra memory); mean(g) and mean(g x^) are per-channel numbers.
        ctx.save_for_backward(g, x, weight, mean, invstd, grad_bias / count, grad_weight / count)
        return grad_x, grad_weight, grad_bias

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(
        ctx: Any, q: torch.Tensor | None, q_weight: torch.Tensor | None, q_bias: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None, None]:
        g, x, weight, mean, invstd, g_mean, g_x_hat_mean = ctx.saved_tensors
        shape = _channel_shape(x)
        count = x.numel() // x.shape[1]
        r, mu, c, g_bar = invstd.view(shape), mean.view(shape), g_x_hat_mean.view(shape), g_mean.view(shape)
        # grad_x = constant + a_q * (gamma r P(q)) + a_g * g + a_x * x, with per-channel coefficients.
        constant, a_q, a_g, a_x = (torch.zeros_like(r) for _ in range(4))
        grad_g = projected_q = grad_weight = None
        if q is not None:
            projected_q, q_x_hat_sum, q_sum = _native_backward(q, x, weight, mean, invstd, [True, True, True])
            q_x_hat_mean = (q_x_hat_sum / count).view(shape)
            q_p_mean = (_channel_dot(q, g) / count).view(shape) - g_bar * (q_sum / count).view(shape) - c * q_x_hat_mean
            scale = weight.view(shape) * r
            grad_g = projected_q
            grad_weight = (q_p_mean * r).view(-1) * count
            # -r (c gamma r P(q) + mean(q x^) scale P(g) + mean(q P(g)) scale x^), with P(g) = g - g_bar - x^ c
            # and x^ = r (x - mu).
            x_hat_coefficient = r * scale * (q_x_hat_mean * c - q_p_mean)
            a_q = -r * c
            a_g = -r * q_x_hat_mean * scale
            a_x = x_hat_coefficient * r
            constant = r * q_x_hat_mean * scale * g_bar - x_hat_coefficient * r * mu
        if q_weight is not None:  # d(sum g x^)/dg = x^, d(sum g x^)/dx = r P(g)
            w = q_weight.view(shape) * r
            term = torch.addcmul(-w * mu, x, w)
            grad_g = term if grad_g is None else grad_g + term
            a_g = a_g + w
            a_x = a_x - w * c * r
            constant = constant - w * (g_bar - c * r * mu)
        if q_bias is not None:  # d(sum g)/dg = 1
            grad_g = q_bias.view(shape).expand_as(x) if grad_g is None else grad_g + q_bias.view(shape)
        grad_x = None
        if q is not None or q_weight is not None:
            grad_x = torch.addcmul(constant, g, a_g).addcmul_(x, a_x)
            if projected_q is not None:
                grad_x.addcmul_(projected_q, a_q)
        return grad_g, grad_x, grad_weight, None, None


class _FrozenBatchNormGradient(torch.autograd.Function):
    """``dx = gamma r g`` (the batch statistics held constant) as a function of (g, x, gamma): r = (var(x) + eps)^-1/2
    keeps its dependence on x, so the regularizer's parameter gradient is the derivative of what it computes."""

    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(g, x, weight, mean, invstd)
        return g * (weight * invstd).view(_channel_shape(x))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, q: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None, None]:
        g, x, weight, mean, invstd = ctx.saved_tensors
        shape = _channel_shape(x)
        need_g, need_x, need_weight = ctx.needs_input_grad[:3]
        grad_g = q * (weight * invstd).view(shape) if need_g else None
        grad_x = grad_weight = None
        if need_x or need_weight:
            q_g = _channel_dot(q, g)  # sum(q g) per channel
            if need_weight:
                grad_weight = invstd * q_g
            if need_x:  # d r / d x_k = -r^3 (x_k - mean) / M
                count = x.numel() // x.shape[1]
                coefficient = (-weight * invstd.pow(3) * q_g / count).view(shape)
                grad_x = (x - mean.view(shape)) * coefficient
        return grad_g, grad_x, grad_weight, None, None


class _BatchNormTrain(torch.autograd.Function):
    """Batch norm with batch statistics (updating the running ones): native forward and first-order backward; under
    ``create_graph`` its gradients go through ``_BatchNormGradients``."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        running_mean: torch.Tensor | None,
        running_var: torch.Tensor | None,
        momentum: float,
        eps: float,
        scope: Any,
    ) -> torch.Tensor:
        output, mean, invstd = torch.native_batch_norm(x, weight, bias, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.scope = scope
        return output

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, mean, invstd = ctx.saved_tensors
        needs = _needed(ctx, 3)
        if ctx.scope.inputs_only and ctx.scope.batchnorm == "per_sample":  # the statistics held constant
            if not needs[0]:
                grad_x = None
            elif torch.is_grad_enabled():
                grad_x = _FrozenBatchNormGradient.apply(g, x, weight, mean, invstd)
            else:
                grad_x = g * (weight * invstd).view(_channel_shape(x))
            return (grad_x, None, None, None, None, None, None, None)
        if torch.is_grad_enabled():
            grad_x, grad_weight, grad_bias = _BatchNormGradients.apply(g, x, weight, mean, invstd)
            grads = (grad_x, grad_weight, grad_bias)
        else:
            grads = _native_backward(g, x, weight, mean, invstd, needs)
        return (*(grad if need else None for grad, need in zip(grads, needs)), None, None, None, None, None)


def _needed(ctx: Any, count: int) -> list[bool]:
    """Which of the first ``count`` inputs (data, weight, bias) need a gradient in this backward pass: none of the
    parameters when the pass only asks for input gradients."""
    needs = list(ctx.needs_input_grad[:count])
    if ctx.scope.inputs_only:
        needs[1:] = [False] * (count - 1)
    return needs


class _ConvolutionGradients(torch.autograd.Function):
    """(gx, gW, gb) of a convolution as functions of (g, x, W), with a hand-written backward built from
    ``convolution_backward``'s fused kernels (instead of convolutions of batch-transposed tensors)."""

    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, params: tuple, needs: tuple) -> tuple:
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(g, x, weight)  # x and W are the forward's own saved tensors: no extra memory
        ctx.params = params
        return _convolution_backward(g, x, weight, params, list(needs))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, q_x: torch.Tensor | None, q_weight: torch.Tensor | None, q_bias: torch.Tensor | None) -> tuple:
        g, x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.params
        need_g, need_x, need_weight = ctx.needs_input_grad[:3]
        grad_g = grad_x = grad_weight = None
        if q_x is not None:  # gx = conv_transpose(g, W)
            if need_g:
                grad_g = F.conv2d(q_x, weight, None, stride, padding, dilation, groups)
            if need_weight:
                grad_weight = _convolution_backward(g, q_x, weight, ctx.params, [False, True, False])[1]
        if q_weight is not None:  # gW = wgrad(x, g)
            if need_g:
                term = F.conv2d(x, q_weight, None, stride, padding, dilation, groups)
                grad_g = term if grad_g is None else grad_g.add_(term)
            if need_x:
                grad_x = _convolution_backward(g, x, q_weight, ctx.params, [True, False, False])[0]
        if q_bias is not None and need_g:  # gb = sum(g)
            term = q_bias.view(1, -1, 1, 1).expand_as(g)
            grad_g = term if grad_g is None else grad_g + term
        return grad_g, grad_x, grad_weight, None, None


def _convolution_backward(g: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, params: tuple, mask: list[bool]) -> tuple:
    stride, padding, dilation, groups = params
    return _CONVOLUTION_BACKWARD(g, x, weight, [weight.shape[0]], stride, padding, dilation, False, [0, 0], groups, mask)


class _Convolution(torch.autograd.Function):
    """2-D convolution: native forward and first-order backward; under ``create_graph`` its gradients go through
    ``_ConvolutionGradients``."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, params: tuple, scope: Any) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.params = params
        ctx.scope = scope
        stride, padding, dilation, groups = params
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple:
        x, weight = ctx.saved_tensors
        needs = _needed(ctx, 3)
        if torch.is_grad_enabled():
            grads = _ConvolutionGradients.apply(g, x, weight, ctx.params, tuple(needs))
        else:
            grads = _convolution_backward(g, x, weight, ctx.params, needs)
        return (*grads, None, None)


class _Rectifier(torch.autograd.Function):
    """ReLU whose backward applies the scope's rule (standard, or guided: ``1[u > 0] max(dv, 0)``) and, under
    ``create_graph``, differentiates as ``threshold_backward`` with a constant mask (PyTorch's own double backward
    also sends a zero tensor towards the ReLU output, which costs a fill and an add per layer)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scope: Any, inplace: bool) -> torch.Tensor:
        if inplace:
            ctx.mark_dirty(x)
            output = x.relu_()
        else:
            output = torch.relu(x)
        ctx.save_for_backward(output)
        ctx.scope = scope
        return output

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (output,) = ctx.saved_tensors
        guided = ctx.scope.rule == "guided"  # 1[u > 0] max(dv, 0)
        if torch.is_grad_enabled():
            grad = _RectifierGradient.apply(g, output)
            return (grad.clamp(min=0) if guided else grad), None, None
        grad = _THRESHOLD_BACKWARD(g, output, 0)
        return (grad.clamp_(min=0) if guided else grad), None, None  # in place on the fresh result


class _RectifierGradient(torch.autograd.Function):
    """``1[output > 0] g`` as a function of g alone."""

    @staticmethod
    def forward(ctx: Any, g: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(output)
        return _THRESHOLD_BACKWARD(g, output, 0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, q: torch.Tensor) -> tuple[torch.Tensor, None]:
        (output,) = ctx.saved_tensors
        return _THRESHOLD_BACKWARD(q, output, 0), None


# ReLU calls -> whether they work in place.
_RELU_CALLS: dict[Any, bool | None] = {F.relu: None, torch.relu: False, torch.Tensor.relu: False, torch.relu_: True, torch.Tensor.relu_: True}

_BATCH_NORM_ARGUMENTS = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
_BATCH_NORM_DEFAULTS = {"running_mean": None, "running_var": None, "weight": None, "bias": None, "training": False, "momentum": 0.1, "eps": 1e-5}
_CONV_ARGUMENTS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_CONV_DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def _bind(names: tuple[str, ...], defaults: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**defaults, **dict(zip(names, args)), **kwargs}


def _pair(value: Any) -> list[int]:
    return [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]


def _batch_norm(scope: Any, bound: dict[str, Any]) -> torch.Tensor:
    return _BatchNormTrain.apply(
        bound["input"], bound["weight"], bound["bias"], bound["running_mean"], bound["running_var"],
        bound["momentum"], bound["eps"], scope,
    )


def _running_batch_norm(bound: dict[str, Any]) -> torch.Tensor:
    """Batch norm with its running statistics (inference's affine map), the running statistics left as they are."""
    x = bound["input"]
    scale = torch.rsqrt(bound["running_var"] + bound["eps"])
    if bound["weight"] is not None:
        scale = scale * bound["weight"]
    shift = -bound["running_mean"] * scale
    if bound["bias"] is not None:
        shift = shift + bound["bias"]
    shape = _channel_shape(x)
    return torch.addcmul(shift.view(shape), x, scale.view(shape))


def _convolution(scope: Any, bound: dict[str, Any]) -> torch.Tensor:
    params = (_pair(bound["stride"]), _pair(bound["padding"]), _pair(bound["dilation"]), int(bound["groups"]))
    return _Convolution.apply(bound["input"], bound["weight"], bound["bias"], params, scope)


def replacement_for(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], scope: Any, cheap: bool = True
) -> Callable[[], torch.Tensor] | None:
    """A call computing ``func(*args, **kwargs)`` with the cheaper double backward, or None when ``func`` is not a
    2-D convolution, an affine training-mode batch norm or a ReLU (or grad mode is off, autocast is on, or the call
    is unusual).
    ReLUs replaced this way apply ``scope.hook`` (the backward rule) themselves. A training-mode batch norm is
    replaced whenever ``scope.batchnorm`` is not ``batch`` (its mode needs it), also without ``cheap``."""
    if not torch.is_grad_enabled() or not args or not isinstance(args[0], torch.Tensor):
        return None
    batchnorm = getattr(scope, "batchnorm", "batch")
    if torch.is_autocast_enabled(args[0].device.type):  # autocast casts inside native ops: keep PyTorch's path
        return None
    if func is F.batch_norm:
        bound = _bind(_BATCH_NORM_ARGUMENTS, _BATCH_NORM_DEFAULTS, args, kwargs)
        if batchnorm == "running" and bound["training"] and bound["running_mean"] is not None:
            return lambda: _running_batch_norm(bound)
        if not cheap and batchnorm == "batch":
            return None
        if bound["training"] and bound["weight"] is not None and bound["bias"] is not None and bound["momentum"] is not None:
            return lambda: _batch_norm(scope, bound)
    elif not cheap:
        return None
    elif func is F.conv2d:
        bound = _bind(_CONV_ARGUMENTS, _CONV_DEFAULTS, args, kwargs)
        if not isinstance(bound["padding"], str) and bound["input"].dim() == 4:
            return lambda: _convolution(scope, bound)
    elif func in _RELU_CALLS and args[0].requires_grad:
        inplace = _RELU_CALLS[func]
        if inplace is None:
            inplace = bool(kwargs.get("inplace", args[1] if len(args) > 1 else False))
        return lambda: _Rectifier.apply(args[0], scope, inplace)
    return None
