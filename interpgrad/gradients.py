"""Input gradients under a backward rule: ``standard`` (ordinary backprop) or ``guided`` (guided backpropagation).

Guided backpropagation (Springenberg et al. 2015) changes only the backward pass of the rectifiers:

    standard  du = 1[u > 0] * dv           guided  d_G u = 1[u > 0] * max(dv, 0)

and, for ReLU6 (MobileNet-V2), ``d_G u = 1[0 < u < 6] * max(dv, 0)``. For Softplus(beta) — the smooth ReLU of the
score-matching models — interpgrad applies the same clamp: ``d_G u = sigmoid(beta u) * max(dv, 0)`` (our extension,
so that every model of the project has a guided gradient).

How: while the forward pass runs, a ``TorchFunctionMode`` sees every rectifier call — ``nn.ReLU`` (in place or not,
reused modules included), ``nn.ReLU6``, ``nn.Softplus``, ``F.relu``, ``torch.relu``, ``Tensor.relu_`` ... — runs it
natively and registers a hook on its output. The hook clamps the incoming gradient ``dv`` at zero only while the
``guided`` rule is selected; the native backward of the rectifier then applies its own mask. Because the rule is chosen
at backward time, one forward pass serves both rules, which is what makes the guided regularizer cheap (1 forward,
2 backward passes). Nothing is attached to the model: no module hooks, no replaced modules, nothing to clean up.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from .double_backprop import replacement_for
from .errors import ConfigError
from .modelstate import preserved_model_state

__all__ = ["BATCHNORM_MODES", "RULES", "BackwardRules", "rectifier_hooks", "input_gradient", "resolve_target", "select_logits"]

RULES = ("standard", "guided")
BATCHNORM_MODES = ("batch", "per_sample", "running")

# Calls whose output is a rectified value; hardtanh counts when its lower bound is 0 (nn.ReLU6 calls it that way).
_RECTIFIERS: frozenset[Callable[..., Any]] = frozenset(
    {
        F.relu,
        torch.relu,
        torch.relu_,
        torch.Tensor.relu,
        torch.Tensor.relu_,
        F.relu6,
        F.softplus,
    }
)
_HARDTANH: frozenset[Callable[..., Any]] = frozenset({F.hardtanh, F.hardtanh_})


def _is_rectifier_call(func: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    if func in _RECTIFIERS:
        return True
    if func in _HARDTANH:
        min_val = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
        return min_val == 0
    return False


class BackwardRules:
    """The backward rule of the rectifiers seen by one ``rectifier_hooks`` block; switch it with ``use``.

    >>> with rectifier_hooks() as rules:
    ...     logits = model(x)
    >>> standard, = torch.autograd.grad(logits[:, 0].sum(), x, retain_graph=True)
    >>> with rules.use("guided"):
    ...     guided, = torch.autograd.grad(logits[:, 0].sum(), x)
    """

    def __init__(self) -> None:
        self.rule = "standard"
        self.inputs_only = False  # backward passes only need gradients w.r.t. inputs (no parameter gradients)
        self.count = 0  # rectifier outputs hooked during the forward pass
        # How training-mode batch norms of the block's forward passes treat the input-gradient passes: "batch" (batch
        # statistics, differentiated: rows mix), "per_sample" (held constant there) or "running" (running statistics).
        self.batchnorm = "batch"

    @contextmanager
    def use(self, rule: str) -> Iterator[None]:
        """Backward passes run inside this block use ``rule`` ("standard" or "guided")."""
        check_rule(rule)
        previous, self.rule = self.rule, rule
        try:
            yield
        finally:
            self.rule = previous

    @contextmanager
    def input_gradients_only(self) -> Iterator[None]:
        """Backward passes inside this block are ``autograd.grad`` calls w.r.t. inputs: parameter gradients are
        skipped by the double-backprop operations (``cheap_double_backward``)."""
        previous, self.inputs_only = self.inputs_only, True
        try:
            yield
        finally:
            self.inputs_only = previous

    def hook(self, grad: torch.Tensor) -> torch.Tensor | None:
        """Tensor hook on a rectifier output: clamp the incoming gradient at 0 under the guided rule."""
        return grad.clamp(min=0) if self.rule == "guided" else None


class _RectifierMode(TorchFunctionMode):
    def __init__(self, rules: BackwardRules, cheap_double_backward: bool) -> None:
        super().__init__()
        self.rules = rules
        self.cheap_double_backward = cheap_double_backward

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        rectifier = _is_rectifier_call(func, args, kwargs)
        replacement = replacement_for(func, args, kwargs, self.rules, cheap=self.cheap_double_backward)
        if replacement is not None:  # it applies the backward rule itself
            self.rules.count += rectifier
            return replacement()
        output = func(*args, **kwargs)
        if rectifier and isinstance(output, torch.Tensor) and output.requires_grad:
            output.register_hook(self.rules.hook)
            self.rules.count += 1
        return output


@contextmanager
def rectifier_hooks(cheap_double_backward: bool = False, batchnorm: str = "batch") -> Iterator[BackwardRules]:
    """Hook every rectifier output of the forward passes run inside the block; returns their rule switch.

    The hooks live on the graph's tensors (freed with the graph), not on modules. Thread-local: concurrent threads
    (e.g. two app sessions) do not see each other's hooks. With ``cheap_double_backward``, 2-D convolutions and
    training-mode batch norms inside the block use ``interpgrad.double_backprop`` (same values and derivatives,
    faster to differentiate twice), for losses that differentiate an input gradient. ``batchnorm`` (``batch``,
    ``per_sample``, ``running``): how training-mode batch norms treat the input-gradient passes (see
    ``interpgrad.double_backprop``).
    """
    if batchnorm not in BATCHNORM_MODES:
        raise ConfigError(f"unknown batchnorm mode {batchnorm!r}; choose one of {', '.join(BATCHNORM_MODES)}")
    rules = BackwardRules()
    rules.batchnorm = batchnorm
    with _RectifierMode(rules, cheap_double_backward):
        yield rules


def check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ConfigError(f"unknown backward rule {rule!r}; choose one of {', '.join(RULES)}")


def resolve_target(target: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    """The target class of every row as a LongTensor ``[B]``: given (int, list, tensor) or, for ``None``, the prediction."""
    batch, classes = logits.shape[0], logits.shape[1]
    if target is None:
        return logits.detach().argmax(dim=1)
    target = torch.as_tensor(target, device=logits.device)
    if target.is_floating_point() or target.is_complex():
        raise ConfigError(f"target must hold integer class indices, got dtype {target.dtype}")
    target = target.long().reshape(-1)
    if target.numel() == 1:
        target = target.expand(batch)
    if target.numel() != batch:
        raise ConfigError(f"target has {target.numel()} entries for a batch of {batch}")
    if bool(((target < 0) | (target >= classes)).any()):
        raise ConfigError(f"target class out of range for a model with {classes} classes: {target.tolist()}")
    return target


def select_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``logits[i, target[i]]`` for every row i, shape ``[B]``."""
    return logits.gather(1, target.view(-1, 1)).squeeze(1)


def input_gradient(
    model: nn.Module,
    x: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    rule: str = "standard",
    create_graph: bool = False,
) -> torch.Tensor:
    """Gradient of the target-class logit with respect to the input, under a backward rule.

    ``d f_{t_i}(x_i) / d x_i`` for every row i: the selected logits are summed over the batch, so rows do not mix as
    long as the model treats images independently, i.e. in eval mode. A model in training mode with batch norm couples
    the rows through the batch statistics: row i then also holds the other images' logits' gradients (the guided
    regularizer's ``batchnorm="per_sample"`` or ``"running"`` removes that coupling).

    Args:
        model: a classifier returning logits ``[B, C]``; it is used in its current mode (call ``model.eval()`` for
            explanations) and left exactly as it was, also when this raises.
        x: input batch ``[B, ...]``.
        target: class per row (int, sequence or 1-D LongTensor); ``None`` = the predicted class.
        rule: ``"standard"`` or ``"guided"`` (guided backpropagation; ReLU, ReLU6 and Softplus rectifiers).
        create_graph: keep the graph of the gradient so it can be differentiated again (double backpropagation, as
            the regularizers need). If ``x`` already requires grad it is used as is, otherwise a detached copy is.

    Returns:
        A tensor shaped like ``x``.
    """
    check_rule(rule)
    inputs = x if x.requires_grad else x.detach().requires_grad_(True)
    with preserved_model_state(model), torch.enable_grad():
        with rectifier_hooks() as rules:
            logits = model(inputs)
        selected = select_logits(logits, resolve_target(target, logits)).sum()
        if rule == "guided" and rules.count == 0:
            warnings.warn("no ReLU, ReLU6 or Softplus found in the forward pass: the guided gradient equals the standard one", stacklevel=2)
        with rules.use(rule):
            (gradient,) = torch.autograd.grad(selected, inputs, create_graph=create_graph)
    return gradient
