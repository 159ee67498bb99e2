"""Training: checkpoint I/O (and, with the trainer, configuration, runs and distributed training)."""

from __future__ import annotations

from .checkpoint import (
    CHECKPOINT_NAME,
    LoadedCheckpoint,
    atomic_write_bytes,
    checkpoint_path,
    load_checkpoint,
    read_checkpoint_metadata,
    save_checkpoint,
    unwrap_model,
)

__all__ = [
    "CHECKPOINT_NAME",
    "LoadedCheckpoint",
    "atomic_write_bytes",
    "checkpoint_path",
    "load_checkpoint",
    "read_checkpoint_metadata",
    "save_checkpoint",
    "unwrap_model",
]
