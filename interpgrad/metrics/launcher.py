"""Evaluations as background processes (what the app's Evaluate page uses): launch, stop, resume.

An evaluation is ``python -m interpgrad evaluate ... --out DIR`` in its own session (closing the browser or stopping
the app does not stop it), with its output in ``DIR/evaluate.log``; its state is read from the folder
(``EvaluationDir``). The request is checked here first (``check_request``), so a bad one is refused before any process
starts.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from ..jobs import check_resumable, python_command, spawn, stop_job, valid_job_name
from ..training.checkpoint import checkpoint_path
from .datasets import SPLITS
from .folder import EvaluationDir
from .request import check_request

__all__ = ["command_line", "launch_evaluation", "resume_evaluation", "stop_evaluation"]

_PROGRESS_KEYS = ("done", "total", "fraction")
_SCALARS = ("dataset", "data_root", "split", "n", "preset", "target", "judge", "seed", "batch_size", "max_batch",
            "device", "confidence", "resamples")


def command_line(options: Mapping[str, Any], out: str | os.PathLike[str]) -> list[str]:
    """The ``python -m interpgrad evaluate`` arguments for ``options`` (``evaluate``'s keyword names, with
    ``checkpoints``, ``methods`` and ``metrics`` as lists) writing into ``out``."""
    arguments = python_command("evaluate", "--out", str(out))
    for path in options["checkpoints"]:
        arguments += ["--checkpoint", str(path)]
    arguments += ["--methods", ",".join(options["methods"]), "--metrics", ",".join(options["metrics"])]
    for key in _SCALARS:
        if options.get(key) is not None:
            arguments += ["--" + key.replace("_", "-"), str(options[key])]
    for flag, key in (("--param", "params"), ("--method-param", "method_params")):
        for owner, values in (options.get(key) or {}).items():
            arguments += [item for name, value in values.items() for item in (flag, f"{owner}.{name}={json.dumps(value) if isinstance(value, bool) else value}")]
    return arguments


def launch_evaluation(options: Mapping[str, Any], root: str | os.PathLike[str], name: str) -> tuple[EvaluationDir, subprocess.Popen]:
    """Check ``options`` (``evaluate``'s keyword names), then start the evaluation into ``root/name`` in the
    background."""
    folder = EvaluationDir(Path(root) / valid_job_name(name, "evaluation"))
    if folder.path.exists():
        raise ConfigError(f"an evaluation named {name!r} already exists; choose another name")
    if not options.get("checkpoints"):
        raise ConfigError("choose at least one model")
    for path in options["checkpoints"]:
        if not checkpoint_path(path).is_file():
            raise ConfigError(f"no checkpoint at {path}")
    if options.get("split", "val") not in SPLITS:
        raise ConfigError(f"unknown split {options.get('split')!r}; choose one of {', '.join(SPLITS)}")
    check_request(options["methods"], options["metrics"], options.get("dataset", "shapes"), options.get("params"),
                  options.get("method_params"), options.get("preset"), options.get("target"),
                  options.get("batch_size", 32), options.get("max_batch", 0), options.get("confidence", 0.95),
                  options.get("resamples", 2000), options.get("device", "auto"))
    return folder, spawn(command_line(options, folder.path), folder, _PROGRESS_KEYS)


def resume_evaluation(folder: EvaluationDir) -> subprocess.Popen:
    """Continue a stopped, failed or interrupted evaluation in the background."""
    check_resumable(folder)
    if not folder.exists():
        raise ConfigError(f"{folder.name} never started (no config.json): start a new evaluation")
    return spawn(python_command("evaluate", "--out", str(folder.path), "--resume"), folder, _PROGRESS_KEYS)


def stop_evaluation(folder: EvaluationDir) -> bool:
    """Ask a running evaluation to stop after its current unit (SIGTERM); it can be resumed. False if not running."""
    return stop_job(folder)
