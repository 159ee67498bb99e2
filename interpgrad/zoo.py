"""The model zoo: every checkpoint a user can pick — shipped with the project, trained in a run folder, or uploaded.

A model is a ``model.safetensors`` with its metadata (and, when it has them, the training curves of its run in
``metrics.jsonl`` beside it). Uploads are validated by loading them (never unpickled) before they are kept.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CheckpointError
from .training.checkpoint import CHECKPOINT_NAME, atomic_write_bytes, load_checkpoint, read_checkpoint_metadata
from .training.run import RunDir

__all__ = ["ModelEntry", "default_directories", "discover_models", "save_upload"]

SOURCES = ("shipped", "run", "upload")
_PROJECT = Path(__file__).resolve().parent.parent


def default_directories() -> dict[str, Path]:
    """Where shipped checkpoints, runs and uploads live (override with INTERPGRAD_CHECKPOINTS, INTERPGRAD_RUNS and
    INTERPGRAD_UPLOADS)."""
    return {
        "shipped": Path(os.environ.get("INTERPGRAD_CHECKPOINTS", _PROJECT / "checkpoints")),
        "run": Path(os.environ.get("INTERPGRAD_RUNS", _PROJECT / "runs")),
        "upload": Path(os.environ.get("INTERPGRAD_UPLOADS", _PROJECT / "uploads")),
    }


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo."""

    key: str  # "source/name", unique
    source: str  # shipped | run | upload
    name: str
    path: Path  # the .safetensors file
    metadata: dict[str, Any] = field(compare=False, repr=False)
    metrics: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)

    @property
    def arch(self) -> str:
        return str(self.metadata["model"]["arch"])

    @property
    def regularizer(self) -> str:
        return str((self.metadata.get("regularizer") or {}).get("name", "none"))

    @property
    def class_names(self) -> list[str]:
        data = self.metadata.get("data") or {}
        names = data.get("class_names")
        return list(names) if names else [str(i) for i in range(int(self.metadata["model"]["num_classes"]))]

    @property
    def label(self) -> str:
        """A short human label: name, source, architecture, regularizer, validation accuracy."""
        model = self.metadata["model"]
        width = f" x{model.get('width', 1)}" if model.get("width", 1) != 1 else ""
        accuracy = (self.metadata.get("metrics") or {}).get("val_accuracy")
        accuracy_text = f", val acc {accuracy:.1%}" if isinstance(accuracy, (int, float)) else ""
        return f"{self.name} ({self.source}: {model['arch']}{width}, {self.regularizer}{accuracy_text})"

    @property
    def mtime(self) -> float:
        return self.path.stat().st_mtime


def _metrics_beside(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(RunDir(path.parent).read_metrics()) if path.name == CHECKPOINT_NAME else ()


def _entry(source: str, name: str, path: Path) -> ModelEntry | None:
    try:
        metadata = read_checkpoint_metadata(path)
    except CheckpointError:
        return None  # a half-copied or foreign file: not offered (the Models page reports problems on upload)
    return ModelEntry(f"{source}/{name}", source, name, path, metadata, _metrics_beside(path))


def _candidates(directory: Path) -> list[tuple[str, Path]]:
    """(name, checkpoint) for ``directory/*.safetensors`` and ``directory/*/model.safetensors``."""
    if not directory.is_dir():
        return []
    found = [(path.stem, path) for path in directory.glob("*.safetensors")]
    found += [(child.name, child / CHECKPOINT_NAME) for child in directory.iterdir() if (child / CHECKPOINT_NAME).is_file()]
    return sorted(found)


def discover_models(directories: dict[str, Path] | None = None) -> list[ModelEntry]:
    """Every readable model: shipped first, then runs (with at least one complete epoch), then uploads."""
    directories = directories or default_directories()
    entries = []
    for source in SOURCES:
        for name, path in _candidates(Path(directories[source])):
            entry = _entry(source, name, path)
            if entry is not None:
                entries.append(entry)
    return entries


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def save_upload(uploads_dir: str | os.PathLike[str], filename: str, data: bytes, metadata_json: bytes | None = None) -> ModelEntry:
    """Validate an uploaded checkpoint (and optional JSON metadata) by loading it, then keep it in ``uploads_dir``.

    Raises CheckpointError with a readable reason: not safetensors (a pickle is refused unread), no metadata, metadata
    that is not JSON, or weights that do not match the architecture the metadata describes.
    """
    stem = _SAFE_NAME.sub("-", Path(filename).stem).strip("-.") or "model"
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / CHECKPOINT_NAME
        candidate.write_bytes(data)
        if metadata_json is not None:
            try:
                json.loads(metadata_json)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise CheckpointError(f"the metadata file is not valid JSON: {error}") from None
            candidate.with_suffix(".json").write_bytes(metadata_json)
        load_checkpoint(candidate)  # the full check: metadata, architecture, every tensor's shape
        target = Path(uploads_dir) / stem
        atomic_write_bytes(target / CHECKPOINT_NAME, data)
        if metadata_json is not None:
            atomic_write_bytes(target / "model.json", metadata_json)
    entry = _entry("upload", stem, target / CHECKPOINT_NAME)
    if entry is None:
        raise CheckpointError(f"{filename} could not be read back after saving")
    return entry
