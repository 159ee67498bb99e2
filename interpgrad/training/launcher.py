"""Training runs as background processes (what the app's Train page uses): launch, stop, resume.

A run is ``python -m interpgrad train ... --out RUN`` in its own session (so closing the browser or stopping the app
does not kill it), with its output in ``RUN/train.log``. Its state is read from the run folder (``RunDir``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Mapping

from ..data import check_dataset
from ..errors import ConfigError
from .config import TrainConfig, make_config
from .run import RunDir, process_alive

__all__ = ["command_line", "launch_run", "resume_run", "stop_run", "valid_run_name"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def valid_run_name(name: str) -> str:
    """``name`` if it can name a run folder (letters, digits, '.', '_', '-'; at most 64), else a ConfigError."""
    if not _NAME.fullmatch(name or ""):
        raise ConfigError(f"run name {name!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def command_line(config: TrainConfig) -> list[str]:
    """The ``python -m interpgrad train`` arguments that reproduce ``config`` (every option spelled out)."""
    arguments = [sys.executable, "-m", "interpgrad", "train", "--no-progress"]
    defaults = TrainConfig()
    for key, value in config.to_dict().items():
        if key in ("regularizer_params", "preset") or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value != getattr(defaults, key):
                arguments.append({"augment": "--no-augment", "channels_last": "--no-channels-last"}.get(key, flag))
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        arguments += [flag, str(value)]
    for name, value in config.regularizer_params.items():
        arguments += ["--reg-param", f"{name}={value}"]
    return arguments


def _spawn(arguments: list[str], run: RunDir) -> subprocess.Popen:
    """Start the training process detached from ours; its status says "running" (starting) until it writes its own.
    A thread waits for it, so that when it ends (even by SIGKILL or the OOM killer) it is reaped at once instead of
    lingering as a zombie child of the app that still looks alive."""
    run.path.mkdir(parents=True, exist_ok=True)
    with open(run.log_path, "ab") as log:
        process = subprocess.Popen(
            arguments, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    previous = run.read_status()
    run.write_status("running", pid=process.pid, starting=True,
                     **{k: previous[k] for k in ("epoch", "epochs", "step", "steps_per_epoch") if k in previous})
    threading.Thread(target=process.wait, name=f"reap {run.name}", daemon=True).start()
    return process


def launch_run(options: Mapping[str, Any], runs_dir: str | os.PathLike[str], name: str) -> tuple[RunDir, subprocess.Popen]:
    """Validate ``options`` (TrainConfig fields) and the dataset's presence, then start training into
    ``runs_dir/name`` in the background."""
    run = RunDir(Path(runs_dir) / valid_run_name(name))
    if run.path.exists():
        raise ConfigError(f"a run named {name!r} already exists; choose another name")
    config = make_config({**options, "out": str(run.path)})
    check_dataset(config.dataset, config.data_root, config.download)
    return run, _spawn(command_line(config), run)


def resume_run(run: RunDir) -> subprocess.Popen:
    """Continue a stopped, failed or interrupted run in the background."""
    status = run.read_status()
    if status.get("state") == "running":
        raise ConfigError(f"{run.name} is still running")
    if status.get("state") == "finished":
        raise ConfigError(f"{run.name} has finished; start a new run to train longer")
    return _spawn([sys.executable, "-m", "interpgrad", "train", "--no-progress", "--out", str(run.path), "--resume"], run)


def stop_run(run: RunDir) -> bool:
    """Ask a running run to stop after its current step (SIGTERM); it saves and can be resumed. False if not running."""
    status = run.read_status()
    pid = status.get("pid")
    if status.get("state") != "running" or not process_alive(pid, status.get("process_start")):
        return False
    os.kill(pid, signal.SIGTERM)
    return True
