"""The resumable training state as one safetensors file: tensors (model, optimizer, RNG) plus JSON (the rest).

One file, written atomically, so the model and the optimizer of a resume state always belong to the same step; no
pickle anywhere (the optimizer's state dict is split into its tensors and its plain values).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from ..errors import CheckpointError
from ..models import unwrap_model
from .checkpoint import atomic_write_bytes

__all__ = ["load_training_state", "save_training_state"]

_HEADER_KEY = "interpgrad_training_state"


def _split_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state_dict["param_groups"], "state": {}}
    for index, values in state_dict["state"].items():
        plain["state"][str(index)] = {}
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                plain["state"][str(index)][key] = value
    return tensors, plain


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(index): dict(values) for index, values in plain["state"].items()}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    return {"state": state, "param_groups": plain["param_groups"]}


def save_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    progress: dict[str, Any],
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write model, optimizer, RNG states, grad scaler and ``progress`` (any JSON) to ``path`` atomically."""
    tensors = {f"model.{k}": v.detach().to("cpu").contiguous() for k, v in unwrap_model(model).state_dict().items()}
    optimizer_tensors, optimizer_plain = _split_optimizer(optimizer.state_dict())
    tensors.update(optimizer_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{index}"] = state
    header = {
        "progress": progress,
        "optimizer": optimizer_plain,
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
    }
    text = json.dumps(header, default=float)
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata={_HEADER_KEY: text}))


def load_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Restore what ``save_training_state`` wrote into ``model``, ``optimizer`` and the RNGs; returns the progress."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            header = json.loads((file.metadata() or {})[_HEADER_KEY])
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as error:
        raise CheckpointError(f"cannot read the training state {Path(path).name}: {error}") from None
    model_state = {key[len("model."):]: value for key, value in tensors.items() if key.startswith("model.")}
    unwrap_model(model).load_state_dict(model_state)
    optimizer_tensors = {key: value.to(device) for key, value in tensors.items() if key.startswith("optimizer.")}
    optimizer.load_state_dict(_join_optimizer(optimizer_tensors, header["optimizer"]))
    torch.set_rng_state(tensors["rng.cpu"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda_states = [tensors[key] for key in cuda_keys]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    if scaler is not None and header.get("scaler"):
        scaler.load_state_dict(header["scaler"])
    return header["progress"]
