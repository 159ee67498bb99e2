"""Checkpoints: weights in safetensors, metadata as JSON (inside the safetensors header and in a file beside it).

Loading never unpickles anything: a pickle or ``torch.save`` file is refused before a byte of it is interpreted, and a
safetensors file holds only raw tensors. Writes are atomic (temporary file, fsync, rename), so a process killed at any
moment leaves either the previous checkpoint or the new one, never half of one.

The metadata inside the safetensors header is authoritative (a lone ``.safetensors`` upload is self-contained); the
JSON beside it is a copy for people and tools. Layout of the metadata::

    {"format": "interpgrad-checkpoint", "format_version": 1, "interpgrad_version": ...,
     "model": {arch, num_classes, width, image_size, activation, softplus_beta},
     "data": {name, num_classes, class_names, image_size, mean, std, augment, root},
     "training": {...}, "regularizer": {"name": ..., "params": {...}}, "metrics": {...}, ...}

A trainer's checkpoint also has ``"name"`` (its run's name) and ``"epochs_completed"``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .._version import __version__
from ..errors import CheckpointError, InterpgradError
from ..models import ModelConfig, build_model, unwrap_model

__all__ = [
    "CHECKPOINT_NAME",
    "PROJECT",
    "LoadedCheckpoint",
    "atomic_write_bytes",
    "checkpoint_path",
    "class_names_of",
    "file_sha256",
    "project_path",
    "input_normalisation",
    "load_checkpoint",
    "read_checkpoint_metadata",
    "save_checkpoint",
    "unwrap_model",
    "validate_metadata",
]

FORMAT = "interpgrad-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "model.safetensors"
_HEADER_KEY = "interpgrad"
_MAX_HEADER = 100 * 1024 * 1024


class LoadedCheckpoint(NamedTuple):
    """``model`` (in eval mode) and its ``metadata``; unpacks as ``model, metadata = load_checkpoint(path)``."""

    model: nn.Module
    metadata: dict[str, Any]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks of 1 MiB: what tells one checkpoint from another with the
    same name, and what runs, evaluations and GAD runs record of the checkpoints they were made from."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


PROJECT = Path(__file__).resolve().parents[2]


def project_path(path: str | os.PathLike[str]) -> str:
    """``path`` as a result folder records it: relative to the project when inside it (so that the project's shipped
    evaluations and GAD runs stay valid wherever it is checked out), else absolute."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(PROJECT))
    except ValueError:
        return str(resolved)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # mkstemp makes it private; give it the usual permissions
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would briefly change it for every thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _jsonable(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or ``path/model.safetensors`` when ``path`` is a run folder."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def input_normalisation(metadata: Mapping[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) a checkpoint's inputs are normalised with: its data section's; ImageNet's for a torchvision
    model without one; otherwise 0.5 per channel."""
    data = metadata.get("data") or {}
    if data.get("mean") and data.get("std"):
        return tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])
    if str((metadata.get("model") or {}).get("arch", "")).startswith("torchvision."):
        from ..data import IMAGENET_MEAN, IMAGENET_STD

        return tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
    return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def class_names_of(metadata: Mapping[str, Any]) -> list[str]:
    """A name per class: the data section's when there is one per class, ImageNet's for a 1000-class torchvision
    model, otherwise the class indices as text."""
    model = metadata.get("model") or {}
    count = int(model.get("num_classes", 0))
    names = (metadata.get("data") or {}).get("class_names")
    if names and len(names) == count:
        return [str(name) for name in names]
    if count == 1000 and str(model.get("arch", "")).startswith("torchvision."):
        from ..models import imagenet_class_names

        return list(imagenet_class_names())
    return [str(index) for index in range(count)]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    config: ModelConfig | Mapping[str, Any],
    *,
    data: Any = None,
    training: Mapping[str, Any] | None = None,
    regularizer: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """Save ``model``'s weights to ``path`` (a ``.safetensors`` file, or a folder that receives ``model.safetensors``)
    with its metadata; the JSON copy goes beside it (``model.json``). Returns the weights path.

    ``config`` rebuilds the architecture; ``data`` is a DataInfo (or dict) carrying class names and normalisation.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / CHECKPOINT_NAME
    config = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(dict(config))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "interpgrad_version": __version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": config.to_dict(),
        "data": _jsonable(data),
        "training": dict(training or {}),
        "regularizer": dict(regularizer or {}),
        "metrics": dict(metrics or {}),
        **{key: _jsonable(value) for key, value in extra.items()},
    }
    text = json.dumps(metadata, indent=2, sort_keys=False, default=str)
    state = {key: value.detach().to("cpu").contiguous() for key, value in unwrap_model(model).state_dict().items()}
    atomic_write_bytes(path, safetensors_bytes(state, metadata={_HEADER_KEY: text}))
    atomic_write_bytes(path.with_suffix(".json"), (text + "\n").encode())
    return path


def _check_safetensors_file(path: Path) -> None:
    """Refuse anything that is not a safetensors file before parsing it (pickles included) with a readable reason."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    with path.open("rb") as file:
        head = file.read(9)
    size = path.stat().st_size
    # A safetensors file: an 8-byte little-endian header length, then the JSON header. Its first byte can be anything
    # (0x80 included, a pickle's first byte), so it is recognised first and pickles only among what is left.
    if len(head) == 9 and head[8:9] == b"{":
        (header_size,) = struct.unpack("<Q", head[:8])
        if header_size > min(_MAX_HEADER, size - 8):
            raise CheckpointError(f"{path.name} is not a valid safetensors file (corrupt or truncated header)")
        return
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise CheckpointError(
            f"{path.name} is a pickle / torch.save file; interpgrad only loads safetensors checkpoints because "
            "unpickling a file can run arbitrary code (convert it with safetensors.torch.save_file on a trusted machine)"
        )
    raise CheckpointError(f"{path.name} is not a safetensors file")


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a checkpoint without building its model (from the header, else from the JSON beside it),
    validated by ``validate_metadata``."""
    return _read_metadata(checkpoint_path(path))[0]


def _read_metadata(path: Path) -> tuple[dict[str, Any], ModelConfig]:
    _check_safetensors_file(path)
    try:
        with safe_open(str(path), framework="pt") as file:
            header = file.metadata() or {}
    except Exception as error:
        raise CheckpointError(f"{path.name} is not a valid safetensors file: {error}") from None
    text = header.get(_HEADER_KEY)
    sidecar = path.with_suffix(".json")
    if text is None and sidecar.is_file():
        text = sidecar.read_text()
    if text is None:
        raise CheckpointError(f"{path.name} has no interpgrad metadata (and there is no {sidecar.name} beside it)")
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckpointError(f"the metadata of {path.name} is not valid JSON: {error}") from None
    return metadata, validate_metadata(metadata, path.name)


_SECTIONS = ("data", "training", "regularizer", "metrics")


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _number_list(value: Any, length: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == length
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def _data_problem(data: dict[str, Any], num_classes: int) -> str | None:
    """What is wrong with a checkpoint's ``data`` section (class names, normalisation, name), or None."""
    names = data.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            return f"data.class_names must be a list of strings, got {_kind(names)}"
        if len(names) != num_classes:
            return f"data.class_names has {len(names)} names but the model has {num_classes} classes"
    for key in ("mean", "std"):
        value = data.get(key)
        if value is not None and not _number_list(value, 3):
            return f"data.{key} must be 3 finite numbers (one per RGB channel), got {json.dumps(value)[:80]}"
    if data.get("std") is not None and min(data["std"]) <= 0:
        return f"data.std must be positive in every channel, got {data['std']}"
    if data.get("name") is not None and not isinstance(data["name"], str):
        return f"data.name must be a string, got {_kind(data['name'])}"
    return None


def _regularizer_problem(regularizer: dict[str, Any]) -> str | None:
    if regularizer.get("name") is not None and not isinstance(regularizer["name"], str):
        return f"regularizer.name must be a string, got {_kind(regularizer['name'])}"
    if regularizer.get("params") is not None and not isinstance(regularizer["params"], dict):
        return f"regularizer.params must be an object, got {_kind(regularizer['params'])}"
    return None


def validate_metadata(metadata: Any, name: str = "the checkpoint") -> ModelConfig:
    """Check a checkpoint's metadata and return the ModelConfig it describes; a CheckpointError names the problem.

    Every checkpoint goes through here (``read_checkpoint_metadata``, hence ``load_checkpoint``, the model zoo and
    uploads), because the metadata of a file may come from anyone and the app, the CLI and the comparison read it
    without further checks: the sections are objects, the model's size is within the bounds of real models
    (``ModelConfig``), there is one class name per class and one mean and std per channel.
    """
    if not isinstance(metadata, dict) or not isinstance(metadata.get("model"), dict):
        raise CheckpointError(f"the metadata of {name} does not describe a model (no 'model' section)")
    try:
        config = ModelConfig.from_dict(metadata["model"])
    except InterpgradError as error:
        raise CheckpointError(f"{name}: invalid model metadata: {error}") from None
    for section in _SECTIONS:
        if metadata.get(section) is not None and not isinstance(metadata[section], dict):
            raise CheckpointError(f"{name}: the metadata's {section!r} section must be an object, got {_kind(metadata[section])}")
    problem = _data_problem(metadata.get("data") or {}, config.num_classes) or _regularizer_problem(metadata.get("regularizer") or {})
    if problem:
        raise CheckpointError(f"{name}: invalid metadata: {problem}")
    return config


def _describe_mismatch(
    expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], config: ModelConfig
) -> str | None:
    """What differs between the tensor shapes the model needs and those in the file, or None."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    shapes = [
        f"{key} is {list(found[key])} in the file but {list(expected[key])} in the model"
        for key in expected
        if key in found and tuple(found[key]) != tuple(expected[key])
    ]
    if not (missing or unexpected or shapes):
        return None
    described = f"{config.arch} (width {config.width}, {config.num_classes} classes)"
    problems = shapes[:3]
    if missing:
        problems.append(f"{len(missing)} tensors missing from the file (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors the model does not have (e.g. {unexpected[0]})")
    return f"weights do not match the architecture in the metadata, {described}: " + "; ".join(problems)


def _shapes_in_file(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape from the safetensors header, without reading a tensor."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            return {key: tuple(file.get_slice(key).get_shape()) for key in file.keys()}
    except Exception as error:
        raise CheckpointError(f"cannot read the tensors of {path.name}: {error}") from None


def _build(config: ModelConfig, name: str, device: str | torch.device | None = None) -> nn.Module:
    try:
        if device is None:
            return build_model(config)
        with torch.device(device):
            return build_model(config)
    except InterpgradError as error:
        raise CheckpointError(f"{name}: {error}") from None


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Rebuild the model described by the checkpoint's metadata and load its weights; the model is in eval mode.

    ``path`` is a ``.safetensors`` file or a run folder containing ``model.safetensors``. Every problem (not
    safetensors, a pickle, no metadata, invalid metadata, unknown architecture, missing or mis-shaped tensors) is a
    CheckpointError. The shapes are compared with a model built on the meta device (no memory) before the real one
    is built, so metadata that describes a huge model costs nothing unless the file really holds its weights.
    """
    path = checkpoint_path(path)
    metadata, config = _read_metadata(path)
    expected = {key: tuple(value.shape) for key, value in _build(config, path.name, "meta").state_dict().items()}
    mismatch = _describe_mismatch(expected, _shapes_in_file(path), config)
    if mismatch:
        raise CheckpointError(f"{path.name}: {mismatch}")
    model = _build(config, path.name)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            state = {key: file.get_tensor(key) for key in file.keys()}
    except Exception as error:
        raise CheckpointError(f"cannot read the tensors of {path.name}: {error}") from None
    model.load_state_dict(state)
    return LoadedCheckpoint(model.to(device).eval(), metadata)
