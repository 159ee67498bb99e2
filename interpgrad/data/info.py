"""DataInfo: the description of a dataset that travels with every dataset and into checkpoint metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ..errors import DataError

__all__ = ["DataInfo", "IDENTITY_MEAN", "IDENTITY_STD", "DEFAULT_AUGMENT"]

IDENTITY_MEAN: tuple[float, float, float] = (0.0, 0.0, 0.0)
IDENTITY_STD: tuple[float, float, float] = (1.0, 1.0, 1.0)
DEFAULT_AUGMENT: tuple[str, ...] = ("random_crop_pad4", "horizontal_flip")


def _triple(value: Any, field_name: str) -> tuple[float, float, float]:
    """``value`` as a tuple of three floats (one per RGB channel)."""
    try:
        triple = tuple(float(item) for item in value)
    except (TypeError, ValueError):
        raise DataError(f"DataInfo.{field_name} must be three numbers (one per RGB channel), got {value!r}") from None
    if len(triple) != 3:
        raise DataError(f"DataInfo.{field_name} must have 3 values (one per RGB channel), got {len(triple)}")
    return triple  # type: ignore[return-value]


@dataclass(frozen=True)
class DataInfo:
    """What a model was trained on: dataset name, classes, input size, normalisation and training augmentations.

    Inputs are ``(x - mean) / std`` per channel with ``x`` in [0, 1]; without normalisation mean = (0, 0, 0) and
    std = (1, 1, 1), so inputs stay in [0, 1].
    """

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    augment: tuple[str, ...]
    root: str | None = None

    def __post_init__(self) -> None:
        set_field = object.__setattr__
        set_field(self, "class_names", tuple(str(name) for name in self.class_names))
        set_field(self, "augment", tuple(str(name) for name in self.augment))
        set_field(self, "mean", _triple(self.mean, "mean"))
        set_field(self, "std", _triple(self.std, "std"))
        set_field(self, "num_classes", int(self.num_classes))
        set_field(self, "image_size", int(self.image_size))
        if self.root is not None:
            set_field(self, "root", str(self.root))
        if self.num_classes != len(self.class_names):
            raise DataError(f"DataInfo: num_classes={self.num_classes} but {len(self.class_names)} class names given")
        if self.image_size < 1:
            raise DataError(f"DataInfo: image_size must be positive, got {self.image_size}")
        if min(self.std) <= 0:
            raise DataError(f"DataInfo: std must be positive in every channel, got {self.std}")

    @property
    def normalized(self) -> bool:
        """Whether inputs are normalised (mean/std other than the identity)."""
        return self.mean != IDENTITY_MEAN or self.std != IDENTITY_STD

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists instead of tuples)."""
        return {
            "name": self.name,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "augment": list(self.augment),
            "root": self.root,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataInfo:
        """The DataInfo stored by :meth:`to_dict` (lists or tuples; unknown keys are ignored)."""
        if not isinstance(data, Mapping):
            raise DataError(f"data info must be a mapping, got {type(data).__name__}")
        known = {field.name for field in fields(cls)}
        missing = sorted(known - {"root", "augment"} - set(data))
        if missing:
            raise DataError(f"data info is missing {', '.join(missing)}")
        values = {key: value for key, value in data.items() if key in known}
        values.setdefault("augment", ())
        return cls(**values)
