"""Snapshot and restore everything an explanation could change on a model.

Invariant of interpgrad: explaining (or taking an input gradient of) a model leaves it exactly as it was — same
modules, no hooks left behind, same train/eval mode, same ``requires_grad``, no ``.grad`` accumulated, and the buffers
of modules in training mode (batch-norm running statistics, which a training-mode forward pass updates) unchanged —
also when the method raises. ``preserved_model_state`` enforces it for every method from one place.
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


@dataclass(frozen=True)
class _ModuleRecord:
    module: nn.Module
    children: dict[str, Any]
    training: bool
    hooks: dict[str, tuple[int, ...]]  # only the non-empty hook dictionaries (empty ones are the common case)


@dataclass(frozen=True)
class _ParameterRecord:
    tensor: torch.Tensor
    requires_grad: bool
    grad: torch.Tensor | None
    hooks: tuple[int, ...]


@dataclass
class ModelState:
    """What ``capture_model_state`` records: enough to compare two moments or to restore the first."""

    root: nn.Module
    modules: list[_ModuleRecord]
    parameters: list[_ParameterRecord]
    global_hooks: dict[str, tuple[int, ...]]
    buffers: list[tuple[torch.Tensor, torch.Tensor]]  # (buffer, its copy) of the modules in training mode

    def summary(self) -> dict[str, Any]:
        """A comparable description (names instead of objects), for tests and error messages."""
        names = {id(module): name for name, module in self.root.named_modules()}
        return {
            "children": {names.get(id(r.module), "?"): {k: type(v).__name__ for k, v in r.children.items()} for r in self.modules},
            "training": {names.get(id(r.module), "?"): r.training for r in self.modules},
            "module_hooks": {names.get(id(r.module), "?"): r.hooks for r in self.modules if r.hooks},
            "global_hooks": self.global_hooks,
            "requires_grad": [r.requires_grad for r in self.parameters],
            "grads": [None if r.grad is None else id(r.grad) for r in self.parameters],
            "param_hooks": [r.hooks for r in self.parameters],
            "training_buffers": [copy.tolist() for _, copy in self.buffers],
        }


def _hook_keys(hooks: Any) -> tuple[int, ...]:
    return tuple(hooks) if hooks else ()


def _module_hooks(attributes: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(attributes[name]) for name in _MODULE_HOOK_DICTS if attributes.get(name)}


def capture_model_state(model: nn.Module) -> ModelState:
    """Record the modules, modes, hooks, ``requires_grad`` flags and ``.grad`` tensors of ``model``, and a copy of the
    buffers of its modules in training mode (none in eval mode, the usual case for explanations)."""
    modules, parameters, buffers, seen = [], [], [], set()
    for module in model.modules():  # each module once (shared ones included once)
        attributes = module.__dict__
        modules.append(_ModuleRecord(module, dict(module._modules), module.training, _module_hooks(attributes)))
        if module.training:
            buffers.extend((buffer, buffer.detach().clone()) for buffer in module._buffers.values() if buffer is not None)
        for tensor in module._parameters.values():
            if tensor is not None and id(tensor) not in seen:
                seen.add(id(tensor))
                parameters.append(_ParameterRecord(tensor, tensor.requires_grad, tensor.grad, _hook_keys(tensor._backward_hooks)))
    global_hooks = {name: _hook_keys(getattr(module_globals, name, None)) for name in _GLOBAL_HOOK_DICTS}
    return ModelState(model, modules, parameters, global_hooks, buffers)


def _drop_new_keys(hooks: Any, keep: tuple[int, ...]) -> None:
    """Remove the hooks added since ``keep`` was recorded (nothing to do when the keys did not change)."""
    if hooks and tuple(hooks) != keep:
        for key in [key for key in hooks if key not in keep]:
            del hooks[key]


def restore_model_state(state: ModelState) -> None:
    """Put back what ``capture_model_state`` recorded; hooks added since are removed."""
    for record in state.modules:
        module, attributes = record.module, record.module.__dict__
        if module._modules != record.children:
            module._modules.clear()
            module._modules.update(record.children)
        if module.training != record.training:
            module.training = record.training
        for name in _MODULE_HOOK_DICTS:
            hooks = attributes.get(name)
            if hooks:
                _drop_new_keys(hooks, record.hooks.get(name, ()))
    for name, keep in state.global_hooks.items():
        _drop_new_keys(getattr(module_globals, name, None), keep)
    for record in state.parameters:
        tensor = record.tensor
        if tensor.requires_grad != record.requires_grad:
            tensor.requires_grad_(record.requires_grad)
        if tensor.grad is not record.grad:
            tensor.grad = record.grad
        _drop_new_keys(tensor._backward_hooks, record.hooks)
    # Through ``.data``: the version counter stays as it is, so a graph kept by the caller (``create_graph=True``)
    # that saved these buffers can still be differentiated; a training-mode batch norm's backward uses the batch
    # statistics, never the running ones, so the restored values change no derivative.
    for buffer, copy in state.buffers:
        buffer.data.copy_(copy)


@contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[ModelState]:
    """Run a block and restore ``model`` afterwards (modules, mode, hooks, ``requires_grad``, ``.grad``, the buffers of
    training-mode modules), even on error."""
    state = capture_model_state(model)
    try:
        yield state
    finally:
        restore_model_state(state)
