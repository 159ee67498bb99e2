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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .checkpoint import CHECKPOINT_NAME, atomic_write_bytes

__all__ = ["RunDir", "STATES", "list_runs", "process_alive", "process_start"]

STATES = ("running", "finished", "failed", "stopped")


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat from the state on (field 3 first; the name before it may hold spaces and
    parentheses), or None when there is no such process or no /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start(fields: list[str]) -> str:
    return f"{_boot_id()}:{fields[19]}"


def process_start(pid: int) -> str | None:
    """What tells this process from a later one with the same id: the boot's id and the start time (field 22 of
    /proc/PID/stat, clock ticks since boot). None without /proc (then only the id is checked)."""
    fields = _proc_stat(pid)
    return _start(fields) if fields else None


def process_alive(pid: int | None, start: str | None = None) -> bool:
    """Whether the process with this id is still running (on this machine): not gone, not a zombie (killed but not
    yet reaped by its parent, e.g. a trainer the app launched and that was SIGKILLed) and, given ``start``
    (``process_start`` when it began), the same process rather than a later one that reuses the id."""
    if not pid:
        return False
    if Path("/proc/self/stat").is_file():
        fields = _proc_stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return start is None or _start(fields) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class RunDir:
    """The files of one training run."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_NAME

    @property
    def resume_path(self) -> Path:
        return self.path / "resume.safetensors"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    def exists(self) -> bool:
        """Whether a run was started here (a config was written)."""
        return self.config_path.is_file()

    # config -------------------------------------------------------------------------------------------------------

    def write_config(self, config: dict[str, Any]) -> None:
        _write_json(self.config_path, config)

    def read_config(self) -> dict[str, Any] | None:
        return _read_json(self.config_path)

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

    # status -------------------------------------------------------------------------------------------------------

    def write_status(self, state: str, **details: Any) -> None:
        """Write the status; a ``pid`` is stored with its ``process_start``, so that a later process reusing the id
        is not taken for this run's."""
        if state not in STATES:
            raise ValueError(f"unknown run state {state!r}")
        if details.get("pid") and "process_start" not in details:
            details["process_start"] = process_start(details["pid"])
        _write_json(self.status_path, {"state": state, "updated_at": time.time(), **details})

    def read_status(self) -> dict[str, Any]:
        """The last status written, with ``state`` "interrupted" when it says running but its process is gone
        (killed, or the machine restarted) and "new" when nothing was written yet."""
        status = _read_json(self.status_path)
        if not isinstance(status, dict):
            return {"state": "new"}
        if status.get("state") == "running" and not process_alive(status.get("pid"), status.get("process_start")):
            status = {**status, "state": "interrupted", "reason": "the training process is gone (killed or crashed)"}
        return status

    def created_at(self) -> float:
        """When the run was first started (its first status when it has no config yet)."""
        created = (self.read_config() or {}).get("created_at")
        if isinstance(created, (int, float)):
            return float(created)
        return min((p.stat().st_mtime for p in (self.config_path, self.status_path) if p.is_file()), default=0.0)

    def can_resume(self) -> bool:
        return self.resume_path.is_file()


def list_runs(root: str | os.PathLike[str]) -> Iterator[RunDir]:
    """The run folders directly inside ``root`` (started: a config or a status written), newest first."""
    root = Path(root)
    if not root.is_dir():
        return iter(())
    runs = [RunDir(child) for child in root.iterdir() if child.is_dir()]
    runs = [run for run in runs if run.config_path.is_file() or run.status_path.is_file()]
    return iter(sorted(runs, key=RunDir.created_at, reverse=True))
