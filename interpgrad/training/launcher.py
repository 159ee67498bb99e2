"""Training runs as background processes (what the app's Train page uses): launch, stop, resume, delete.

Threads: several runs may train at once on the same cores, and more torch threads than cores made a step 7x slower on
a busy 2-core machine; a run launched here gets ``--threads max(1, cores // runs running with it)`` unless its options
name ``threads`` (the count is fixed at launch: runs started earlier keep theirs).

A run is ``python -m interpgrad train ... --out RUN`` in its own session (so closing the browser or stopping the app
does not kill it), with its output in ``RUN/train.log``. Its state is read from the run folder (``RunDir``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

from ..data import check_dataset
from ..errors import ConfigError
from ..jobs import check_resumable, delete_job, python_command, spawn, stop_job, valid_job_name
from .config import TrainConfig, make_config
from .run import RunDir, list_runs
from .trainer import shared_threads

__all__ = ["command_line", "delete_run", "launch_run", "resume_run", "stop_run", "valid_run_name"]

# What a resumed run's "starting" status keeps of the stopped run's, so that the page shows where it stands.
_PROGRESS_KEYS = ("epoch", "epochs", "step", "steps_per_epoch")


def valid_run_name(name: str) -> str:
    """``name`` if it can name a run folder (letters, digits, '.', '_', '-'; at most 64), else a ConfigError."""
    return valid_job_name(name, "run")


def command_line(config: TrainConfig) -> list[str]:
    """The ``python -m interpgrad train`` arguments that reproduce ``config`` (every option spelled out)."""
    arguments = python_command("train")
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


def launch_run(options: Mapping[str, Any], runs_dir: str | os.PathLike[str], name: str) -> tuple[RunDir, subprocess.Popen]:
    """Validate ``options`` (TrainConfig fields) and the dataset's presence, then start training into
    ``runs_dir/name`` in the background."""
    run = RunDir(Path(runs_dir) / valid_run_name(name))
    if run.path.exists():
        raise ConfigError(f"a run named {name!r} already exists; choose another name")
    options = dict(options)
    if options.get("threads") is None:
        options["threads"] = shared_threads(running_runs(runs_dir) + 1)
    config = make_config({**options, "out": str(run.path)})
    check_dataset(config.dataset, config.data_root, config.download)
    return run, spawn(command_line(config), run, _PROGRESS_KEYS)


def running_runs(runs_dir: str | os.PathLike[str]) -> int:
    """How many runs in ``runs_dir`` are running (their process alive) or starting."""
    if not Path(runs_dir).is_dir():
        return 0
    return sum(run.read_status().get("state") == "running" for run in list_runs(runs_dir))


def resume_run(run: RunDir) -> subprocess.Popen:
    """Continue a stopped, failed or interrupted run in the background (with the threads of the cores it shares)."""
    if run.read_status().get("state") == "finished":
        raise ConfigError(f"{run.name} has finished; start a new run to train longer")
    check_resumable(run)
    threads = shared_threads(running_runs(run.path.parent) + 1)
    return spawn(python_command("train", "--out", str(run.path), "--resume", "--threads", str(threads)), run, _PROGRESS_KEYS)


def stop_run(run: RunDir) -> bool:
    """Ask a running run to stop after its current step (SIGTERM); it saves and can be resumed. False if not running."""
    return stop_job(run)


def delete_run(run: RunDir) -> None:
    """Delete a run folder (its checkpoint, curves and log); a running run is refused: stop it first."""
    delete_job(run)
