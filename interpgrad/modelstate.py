"""Snapshot and restore everything an explanation could change on a model.

Invariant of interpgrad: explaining (or taking an input gradient of) a model leaves it exactly as it was — same
modules, no hooks left behind, same train/eval mode, same ``requires_grad``, no ``.grad`` accumulated — also when the
method raises. ``preserved_model_state`` enforces it for every method from one place.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.modules import module as module_globals

__all__ = ["ModelState", "capture_model_state", "preserved_model_state", "restore_model_state"]

_MODULE_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)
_GLOBAL_HOOK_DICTS = (
    "_global_forward_hooks",
    "_global_forward_hooks_always_called",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)


@dataclass
class ModelState:
    """What ``capture_model_state`` records: enough to compare two moments or to restore the first."""

    root: nn.Module
    children: dict[nn.Module, dict[str, Any]]
    training: dict[nn.Module, bool]
    module_hooks: dict[nn.Module, dict[str, tuple[int, ...]]]
    global_hooks: dict[str, tuple[int, ...]]
    requires_grad: dict[torch.Tensor, bool]
    grads: dict[torch.Tensor, torch.Tensor | None]
    param_hooks: dict[torch.Tensor, tuple[int, ...]]

    def summary(self) -> dict[str, Any]:
        """A comparable description (names instead of objects), for tests and error messages."""
        names = {module: name for name, module in self.root.named_modules()}
        return {
            "children": {names.get(m, "?"): {k: type(v).__name__ for k, v in c.items()} for m, c in self.children.items()},
            "training": {names.get(m, "?"): t for m, t in self.training.items()},
            "module_hooks": {names.get(m, "?"): h for m, h in self.module_hooks.items() if any(h.values())},
            "global_hooks": self.global_hooks,
            "requires_grad": list(self.requires_grad.values()),
            "grads": [None if g is None else id(g) for g in self.grads.values()],
            "param_hooks": list(self.param_hooks.values()),
        }


def _hook_keys(hooks: Any) -> tuple[int, ...]:
    return tuple(hooks.keys()) if isinstance(hooks, dict) else ()


def capture_model_state(model: nn.Module) -> ModelState:
    """Record the modules, modes, hooks, ``requires_grad`` flags and ``.grad`` tensors of ``model``."""
    modules = list(dict.fromkeys(model.modules()))
    tensors = list(dict.fromkeys(model.parameters()))
    return ModelState(
        root=model,
        children={m: dict(m._modules) for m in modules},
        training={m: m.training for m in modules},
        module_hooks={m: {name: _hook_keys(getattr(m, name, None)) for name in _MODULE_HOOK_DICTS} for m in modules},
        global_hooks={name: _hook_keys(getattr(module_globals, name, None)) for name in _GLOBAL_HOOK_DICTS},
        requires_grad={t: t.requires_grad for t in tensors},
        grads={t: t.grad for t in tensors},
        param_hooks={t: _hook_keys(t._backward_hooks) for t in tensors},
    )


def _drop_new_keys(hooks: Any, keep: tuple[int, ...]) -> None:
    if isinstance(hooks, dict):
        for key in [key for key in hooks if key not in keep]:
            del hooks[key]


def restore_model_state(state: ModelState) -> None:
    """Put back what ``capture_model_state`` recorded; hooks added since are removed."""
    for module, children in state.children.items():
        if module._modules != children:
            module._modules.clear()
            module._modules.update(children)
    for module, training in state.training.items():
        module.training = training
    for module, hooks in state.module_hooks.items():
        for name, keep in hooks.items():
            _drop_new_keys(getattr(module, name, None), keep)
    for name, keep in state.global_hooks.items():
        _drop_new_keys(getattr(module_globals, name, None), keep)
    for tensor, flag in state.requires_grad.items():
        if tensor.requires_grad != flag:
            tensor.requires_grad_(flag)
    for tensor, grad in state.grads.items():
        if tensor.grad is not grad:
            tensor.grad = grad
    for tensor, keep in state.param_hooks.items():
        _drop_new_keys(tensor._backward_hooks, keep)


@contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[ModelState]:
    """Run a block and restore ``model`` afterwards (modules, mode, hooks, ``requires_grad``, ``.grad``), even on error."""
    state = capture_model_state(model)
    try:
        yield state
    finally:
        restore_model_state(state)
