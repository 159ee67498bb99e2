"""Snapshot and restore everything an explanation could change on a model.

Invariant of interpgrad: explaining (or taking an input gradient of) a model leaves it exactly as it was — same
modules, no hooks left behind, same train/eval mode, same ``requires_grad``, no ``.grad`` accumulated, and the buffers
of modules in training mode (batch-norm running statistics, which a training-mode forward pass updates) unchanged —
also when the method raises. ``preserved_model_state`` enforces it for every method from one place.

Hooks are recognised by their ids: every PyTorch hook (module, global module and tensor hooks) is keyed by the id of
its ``RemovableHandle``, drawn from one process-wide increasing counter. A hook whose id is at least the counter's value
at the snapshot was added since, so nothing about hooks needs recording, and when the counter has not moved no hook
dictionary is scanned at all (the common case for gradient methods; this keeps the snapshot well under a millisecond).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn.modules import module as module_globals
from torch.utils.hooks import RemovableHandle

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
    "_global_forward_hooks_with_kwargs",
    "_global_forward_hooks_always_called",
    "_global_forward_pre_hooks",
    "_global_backward_hooks",
    "_global_backward_pre_hooks",
)
_TENSOR_HOOK_DICTS = ("_backward_hooks", "_post_accumulate_grad_hooks")


@dataclass
class ModelState:
    """What ``capture_model_state`` records: enough to restore the model, or to compare two moments (``summary``)."""

    root: nn.Module
    modules: list[tuple[nn.Module, dict[str, Any], bool]]  # (module, its children, training)
    parameters: list[tuple[torch.Tensor, bool, torch.Tensor | None]]  # (parameter, requires_grad, grad)
    buffers: list[tuple[torch.Tensor, torch.Tensor]]  # (buffer, its copy) of the modules in training mode
    first_new_hook_id: int  # hooks with an id from this one on were added after the snapshot

    def summary(self) -> dict[str, Any]:
        """A comparable description (names instead of objects, the hooks present now), for tests and messages."""
        names = {id(module): name for name, module in self.root.named_modules()}
        return {
            "children": {names.get(id(m), "?"): {k: type(v).__name__ for k, v in c.items()} for m, c, _ in self.modules},
            "training": {names.get(id(m), "?"): training for m, _, training in self.modules},
            "module_hooks": {
                names.get(id(m), "?"): hooks for m, _, _ in self.modules if (hooks := _hook_keys(m, _MODULE_HOOK_DICTS))
            },
            "global_hooks": _hook_keys(module_globals, _GLOBAL_HOOK_DICTS),
            "requires_grad": [requires_grad for _, requires_grad, _ in self.parameters],
            "grads": [None if grad is None else id(grad) for _, _, grad in self.parameters],
            "param_hooks": [_hook_keys(tensor, _TENSOR_HOOK_DICTS) for tensor, _, _ in self.parameters],
            "training_buffers": [copy.tolist() for _, copy in self.buffers],
        }


def _hook_keys(owner: Any, names: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """The keys of the non-empty hook dictionaries ``names`` of ``owner`` (a module, a tensor, the global module)."""
    return {name: tuple(hooks) for name in names if (hooks := getattr(owner, name, None))}


def capture_model_state(model: nn.Module) -> ModelState:
    """Record the modules, modes, ``requires_grad`` flags and ``.grad`` tensors of ``model``, the hook-id counter, and
    a copy of the buffers of its modules in training mode (none in eval mode, the usual case for explanations)."""
    modules, parameters, buffers, seen = [], [], [], set()
    for module in model.modules():  # each module once (shared ones included once)
        modules.append((module, dict(module._modules), module.training))
        if module.training:
            buffers.extend((buffer, buffer.detach().clone()) for buffer in module._buffers.values() if buffer is not None)
        for tensor in module._parameters.values():
            if tensor is not None and id(tensor) not in seen:
                seen.add(id(tensor))
                parameters.append((tensor, tensor.requires_grad, tensor.grad))
    return ModelState(model, modules, parameters, buffers, RemovableHandle.next_id)


def _drop_hooks_since(owner: Any, names: tuple[str, ...], first_new: int) -> None:
    for name in names:
        hooks = getattr(owner, name, None)
        if hooks:
            for key in [key for key in hooks if key >= first_new]:
                del hooks[key]


def restore_model_state(state: ModelState) -> None:
    """Put back what ``capture_model_state`` recorded; hooks added since are removed."""
    hooks_added = RemovableHandle.next_id != state.first_new_hook_id
    for module, children, training in state.modules:
        if module._modules != children:
            module._modules.clear()
            module._modules.update(children)
        if module.training != training:
            module.training = training
        if hooks_added:
            _drop_hooks_since(module, _MODULE_HOOK_DICTS, state.first_new_hook_id)
    if hooks_added:
        _drop_hooks_since(module_globals, _GLOBAL_HOOK_DICTS, state.first_new_hook_id)
    for tensor, requires_grad, grad in state.parameters:
        if tensor.requires_grad != requires_grad:
            tensor.requires_grad_(requires_grad)
        if tensor.grad is not grad:
            tensor.grad = grad
        if hooks_added:
            _drop_hooks_since(tensor, _TENSOR_HOOK_DICTS, state.first_new_hook_id)
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
