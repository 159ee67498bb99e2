"""Training: configuration, the trainer (CPU, GPU, torchrun), run folders, checkpoint I/O."""

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

from .config import PRESETS, TrainConfig, make_config
from .launcher import delete_run, launch_run, resume_run, stop_run
from .run import RunDir, RunProgress, list_runs
from .trainer import DivergenceError, Trainer, train

__all__ = [
    "DivergenceError",
    "PRESETS",
    "RunDir",
    "RunProgress",
    "TrainConfig",
    "Trainer",
    "delete_run",
    "launch_run",
    "list_runs",
    "make_config",
    "resume_run",
    "stop_run",
    "train",
    "CHECKPOINT_NAME",
    "LoadedCheckpoint",
    "atomic_write_bytes",
    "checkpoint_path",
    "load_checkpoint",
    "read_checkpoint_metadata",
    "save_checkpoint",
    "unwrap_model",
]
