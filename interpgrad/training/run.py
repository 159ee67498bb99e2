"""A run folder: what a training run leaves on disk, read by the CLI (``--resume``) and by the app.

    RUN/config.json        the effective configuration
    RUN/model.safetensors  the model after the last complete epoch (+ model.json): loadable by load_checkpoint
    RUN/resume.safetensors everything needed to continue: model, optimizer, RNG, progress, metrics history
    RUN/metrics.jsonl      one JSON line per completed epoch
    RUN/status.json        running / finished / failed (with the reason) / stopped, with live progress
    RUN/train.log          the process's output, when the app launched it

Every file is written atomically (temporary file + rename): a process killed at any moment leaves the previous
version or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from ..jobs import STATES, JobDir, list_jobs, process_alive, process_start
from .checkpoint import CHECKPOINT_NAME, atomic_write_bytes

__all__ = ["RunDir", "STATES", "list_runs", "process_alive", "process_start"]


class RunDir(JobDir):
    """The files of one training run (``interpgrad.jobs.JobDir``: config, status, log; and the ones below)."""

    LOG_NAME = "train.log"
    PROCESS = "the training process"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def resume_path(self) -> Path:
        return self.path / "resume.safetensors"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    # metrics ------------------------------------------------------------------------------------------------------

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl with one line per epoch of ``history`` (atomic, so it always matches a checkpoint)."""
        text = "".join(json.dumps(line, default=float) + "\n" for line in history)
        atomic_write_bytes(self.metrics_path, text.encode())

    def read_metrics(self) -> list[dict[str, Any]]:
        """The epoch lines written so far (a torn last line, impossible with atomic writes, is skipped)."""
        if not self.metrics_path.is_file():
            return []
        lines = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return lines

    def can_resume(self) -> bool:
        return self.resume_path.is_file()


def list_runs(root: str | os.PathLike[str]) -> Iterator[RunDir]:
    """The run folders directly inside ``root`` (started: a config or a status written), newest first."""
    return list_jobs(root, RunDir)
