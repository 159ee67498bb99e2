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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..jobs import STATES, JobDir, list_jobs, process_alive, process_start
from .checkpoint import CHECKPOINT_NAME, atomic_write_bytes

__all__ = ["RunDir", "RunProgress", "STATES", "list_runs", "process_alive", "process_start"]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True)
class RunProgress:
    """Where a run stands (read from its status): ``epochs_done`` complete epochs of ``epochs``, and ``step`` of
    ``steps_per_epoch`` into the next one (the one it is in, or stopped or failed in). None: not known yet (a run
    that is still starting)."""

    state: str
    epochs_done: int | None
    epochs: int | None
    step: int | None
    steps_per_epoch: int | None
    starting: bool = False

    @classmethod
    def from_status(cls, status: dict[str, Any]) -> "RunProgress":
        return cls(str(status.get("state", "new")), _count(status.get("epoch")), _count(status.get("epochs")),
                   _count(status.get("step")), _count(status.get("steps_per_epoch")), bool(status.get("starting")))

    @property
    def known(self) -> bool:
        return self.epochs_done is not None and bool(self.epochs)

    @property
    def fraction(self) -> float:
        """The share of the whole run done, in [0, 1]: complete epochs plus the share of the current one."""
        if self.state == "finished":
            return 1.0
        if not self.known:
            return 0.0
        done, epochs, step, steps = self.epochs_done or 0, self.epochs or 1, self.step or 0, self.steps_per_epoch
        return min(1.0, (done + (step / steps if steps else 0.0)) / epochs)

    def describe(self) -> str:
        """Where the run stands in words: ``epoch 2/3, step 40/156`` (the epoch it is in, counted from 1), ``3/3
        epochs`` when all are done, ``resuming at epoch 1/3, step 4/156`` while a stopped run starts again, and
        ``starting`` (or, once it has ended, ``before its first step``) while nothing is known."""
        if not self.known:
            return "starting" if self.state in ("new", "running") else "before its first step"
        done, epochs, step = self.epochs_done or 0, self.epochs or 0, self.step or 0
        if self.state == "finished" or (done >= epochs and not step):
            return f"{min(done, epochs)}/{epochs} epochs"
        where = f"epoch {min(done + 1, epochs)}/{epochs}"
        if self.steps_per_epoch:
            where += f", step {step}/{self.steps_per_epoch}"
        return f"resuming at {where}" if self.starting else where


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

    def progress(self) -> RunProgress:
        """Where the run stands now (``RunProgress``), from its status."""
        return RunProgress.from_status(self.read_status())


def list_runs(root: str | os.PathLike[str]) -> Iterator[RunDir]:
    """The run folders directly inside ``root`` (started: a config or a status written), newest first."""
    return list_jobs(root, RunDir)
