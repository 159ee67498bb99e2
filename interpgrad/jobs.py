"""Long work in a folder of its own, run as a background process: what training runs and evaluations share.

A job is one ``python -m interpgrad <command> ... --out FOLDER`` process. Its folder holds at least::

    FOLDER/config.json   the effective configuration (with ``created_at``)
    FOLDER/status.json   running (with live progress) / finished / failed (with the reason) / stopped
    FOLDER/<command>.log the process's output, when a page launched it

Every file is written atomically (temporary file + rename): a process killed at any moment leaves the previous version
or the new one. ``spawn`` starts a job in its own session, so closing the browser or stopping the app does not kill
it; ``stop_job`` asks it to stop cleanly (SIGTERM), after which it can be resumed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from .errors import ConfigError, InterpgradError, Remedy
from .training.checkpoint import atomic_write_bytes

__all__ = [
    "JobDir",
    "STATES",
    "StopRequest",
    "delete_job",
    "list_jobs",
    "process_alive",
    "process_start",
    "read_json",
    "reason_fields",
    "spawn",
    "stop_job",
    "valid_job_name",
    "write_json",
]

STATES = ("running", "finished", "failed", "stopped")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# ---------------------------------------------------------------------------------------------------- processes


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
    yet reaped by its parent, e.g. a job the app launched and that was SIGKILLed) and, given ``start``
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


# ---------------------------------------------------------------------------------------------------- files


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, written atomically."""
    atomic_write_bytes(path, (json.dumps(data, indent=2, default=str) + "\n").encode())


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


class JobDir:
    """The folder of one job. Subclasses name their log (``LOG_NAME``) and the files of their own."""

    LOG_NAME = "job.log"
    PROCESS = "the process"  # what the "interrupted" reason calls it

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.path == self.path  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def log_path(self) -> Path:
        return self.path / self.LOG_NAME

    def exists(self) -> bool:
        """Whether a job was started here (a config was written)."""
        return self.config_path.is_file()

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_path, config)

    def read_config(self) -> dict[str, Any] | None:
        config = read_json(self.config_path)
        return config if isinstance(config, dict) else None

    def write_status(self, state: str, **details: Any) -> None:
        """Write the status; a ``pid`` is stored with its ``process_start``, so that a later process reusing the id
        is not taken for this job's."""
        if state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        if details.get("pid") and "process_start" not in details:
            details["process_start"] = process_start(details["pid"])
        write_json(self.status_path, {"state": state, "updated_at": time.time(), **details})

    def read_status(self) -> dict[str, Any]:
        """The last status written, with ``state`` "interrupted" when it says running but its process is gone
        (killed, or the machine restarted) and "new" when nothing was written yet."""
        status = read_json(self.status_path)
        if not isinstance(status, dict):
            return {"state": "new"}
        if status.get("state") == "running" and not process_alive(status.get("pid"), status.get("process_start")):
            status = {**status, "state": "interrupted", "reason": f"{self.PROCESS} is gone (killed or crashed)"}
        return status

    def created_at(self) -> float:
        """When the job was first started (its first status when it has no config yet)."""
        created = (self.read_config() or {}).get("created_at")
        if isinstance(created, (int, float)):
            return float(created)
        return min((p.stat().st_mtime for p in (self.config_path, self.status_path) if p.is_file()), default=0.0)


def reason_fields(reason: str | BaseException, remedy: Remedy | None = None) -> dict[str, Any]:
    """The status keys that say why a job stopped or failed: ``reason``, one line in the command line's words, and
    when there is something to do about it (``remedy``, or the error's own) ``problem`` (the reason without the
    remedy) and ``remedy`` (``Remedy.to_dict``), from which an app says what to do in its own words."""
    if isinstance(reason, BaseException):
        error = reason
        remedy = remedy or getattr(error, "remedy", None)
        reason = (error.problem if isinstance(error, InterpgradError) else str(error)) or type(error).__name__
    problem = reason.splitlines()[0] if reason else ""
    if remedy is None:
        return {"reason": problem}
    return {"reason": f"{problem}; {remedy.command_line}", "problem": problem, "remedy": remedy.to_dict()}


Job = TypeVar("Job", bound=JobDir)


def list_jobs(root: str | os.PathLike[str], kind: Callable[[Path], Job]) -> Iterator[Job]:
    """The job folders directly inside ``root`` (started: a config or a status written), newest first."""
    root = Path(root)
    if not root.is_dir():
        return iter(())
    jobs = [kind(child) for child in root.iterdir() if child.is_dir()]
    jobs = [job for job in jobs if job.config_path.is_file() or job.status_path.is_file()]
    return iter(sorted(jobs, key=lambda job: job.created_at(), reverse=True))


def valid_job_name(name: str, what: str = "run") -> str:
    """``name`` if it can name a job folder (letters, digits, '.', '_', '-'; at most 64), else a ConfigError."""
    if not _NAME.fullmatch(name or ""):
        raise ConfigError(f"{what} name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


# ---------------------------------------------------------------------------------------------------- launching


def spawn(arguments: list[str], job: JobDir, carry: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start ``arguments`` (a ``python -m interpgrad ...`` command) detached from this process, its output appended to
    the job's log; its status says "running" (starting) until the process writes its own, keeping the ``carry`` keys
    of the previous status (the progress of a job being resumed). A thread waits for it, so that when it ends (even by
    SIGKILL or the OOM killer) it is reaped at once instead of lingering as a zombie child that still looks alive."""
    job.path.mkdir(parents=True, exist_ok=True)
    with open(job.log_path, "ab") as log:
        process = subprocess.Popen(
            arguments, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    previous = job.read_status()
    job.write_status("running", pid=process.pid, starting=True, **{k: previous[k] for k in carry if k in previous})
    threading.Thread(target=process.wait, name=f"reap {job.name}", daemon=True).start()
    return process


def python_command(command: str, *arguments: str) -> list[str]:
    """``python -m interpgrad COMMAND --no-progress ARGUMENTS`` with this interpreter."""
    return [sys.executable, "-m", "interpgrad", command, "--no-progress", *arguments]


def check_resumable(job: JobDir) -> None:
    """A ConfigError unless ``job`` stopped, failed or was interrupted (a running or finished job is not resumed)."""
    state = job.read_status().get("state")
    if state == "running":
        raise ConfigError(f"{job.name} is still running")
    if state == "finished":
        raise ConfigError(f"{job.name} has finished")


def stop_job(job: JobDir) -> bool:
    """Ask a running job to stop after its current step (SIGTERM); it saves and can be resumed. False if not running."""
    status = job.read_status()
    pid = status.get("pid")
    if status.get("state") != "running" or not process_alive(pid, status.get("process_start")):
        return False
    os.kill(pid, signal.SIGTERM)
    return True


def delete_job(job: JobDir) -> None:
    """Delete a job's folder and everything in it. A running job (or one still starting) is refused: stop it first."""
    if job.read_status().get("state") == "running":
        raise ConfigError(f"{job.name} is running; stop it first")
    if not job.path.is_dir():
        raise ConfigError(f"there is no {job.name} to delete (its folder is gone)")
    shutil.rmtree(job.path)


class StopRequest:
    """Within the block, SIGTERM / SIGINT set ``signal`` instead of killing the process: the job's loop stops after
    its current step and saves. A second signal stops at once (KeyboardInterrupt). Only the main thread installs
    handlers."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        if self.signal is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.signal = number

    def __exit__(self, *exc: Any) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
