"""Models in pixel space: every lab function feeds images in [0, 1] and lets the model normalise them its own way.

A checkpoint records its input normalisation in its ``data`` section (``mean``/``std``; the Srinivas & Fleuret models
trained on inputs in [0, 1] record mean 0 and std 1, the identity). ``PixelSpaceModel`` applies it inside the module,
so input gradients, samples and perturbations are all in pixel units.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ..data.transforms import normalize
from ..errors import ConfigError
from ..training.checkpoint import checkpoint_path, class_names_of, file_sha256, input_normalisation, load_checkpoint

__all__ = ["LabModel", "PixelSpaceModel", "class_indices", "load_lab_model"]


class PixelSpaceModel(nn.Module):
    """``model(normalize(x, mean, std))``: the classifier on images ``x`` in [0, 1]. Its logit gradients are taken
    with respect to the pixels (the normalised input's gradient divided by ``std`` per channel)."""

    def __init__(self, model: nn.Module, mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
        super().__init__()
        self.model = model
        self.mean = tuple(float(value) for value in mean)
        self.std = tuple(float(value) for value in std)
        self.identity = all(m == 0.0 for m in self.mean) and all(s == 1.0 for s in self.std)

    @classmethod
    def from_metadata(cls, model: nn.Module, metadata: Mapping[str, Any]) -> "PixelSpaceModel":
        """The model with the normalisation its checkpoint metadata records (``input_normalisation``)."""
        mean, std = input_normalisation(metadata)
        return cls(model, mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x if self.identity else normalize(x, self.mean, self.std))


@dataclass(frozen=True)
class LabModel:
    """A checkpoint ready for the lab: ``model`` (a PixelSpaceModel, eval mode), its ``metadata``, ``class_names``,
    ``image_size``, the weights' ``path`` and ``sha256`` (what the lab cache is keyed by)."""

    model: PixelSpaceModel
    metadata: dict[str, Any]
    class_names: tuple[str, ...]
    image_size: int
    path: str
    sha256: str

    @property
    def name(self) -> str:
        """The run's name, else the checkpoint folder's (or file's) name."""
        return str(self.metadata.get("name") or _display_name(self.path))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def _display_name(path: str) -> str:
    weights = checkpoint_path(path)
    return weights.parent.name if weights.name == "model.safetensors" else weights.stem


def load_lab_model(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LabModel:
    """Load a checkpoint (a ``.safetensors`` file or a run folder) as a pixel-space model in eval mode; a
    CheckpointError (one line) when it is missing or invalid."""
    weights = checkpoint_path(path)
    model, metadata = load_checkpoint(weights, device)
    size = int((metadata.get("model") or {}).get("image_size") or (metadata.get("data") or {}).get("image_size") or 32)
    return LabModel(PixelSpaceModel.from_metadata(model, metadata).eval(), metadata, tuple(class_names_of(metadata)),
                    size, str(weights), file_sha256(weights))


def class_indices(classes: Sequence[int | str] | str | None, class_names: Sequence[str]) -> list[int]:
    """Class names or indices (a list, or a comma-separated string; None or ``all``: every class) as indices; a
    ConfigError naming the model's classes for one it does not have."""
    if classes is None:
        return list(range(len(class_names)))
    if isinstance(classes, str):
        classes = [part.strip() for part in classes.split(",") if part.strip()]
        if classes == ["all"]:
            return list(range(len(class_names)))
    if len(classes) == 0:
        raise ConfigError("no classes given")
    indices = []
    for value in classes:
        if isinstance(value, str) and value in class_names:
            indices.append(list(class_names).index(value))
        elif isinstance(value, (int, str)) and str(value).lstrip("-").isdigit() and 0 <= int(value) < len(class_names):
            indices.append(int(value))
        else:
            listed = ", ".join(f"{name} ({index})" for index, name in enumerate(class_names[:12]))
            more = ", ..." if len(class_names) > 12 else ""
            raise ConfigError(f"class {value!r} is not in the model; its classes are {listed}{more}")
    return indices
