"""GAD runs as background processes (what the app uses): launch, stop, resume.

A run is ``python -m interpgrad gad train ... --out RUN`` in its own session (closing the browser or stopping the app
does not stop it), with its output in ``RUN/gad.log``; its state is read from the folder (``GadDir``). The request is
checked here first (the checkpoint, the strategy against its classes, the settings, the dataset's presence), so a bad
one is refused before any process starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from ..data import check_dataset
from ..errors import ConfigError
from ..jobs import check_resumable, spawn, stop_job, valid_job_name
from ..training.checkpoint import checkpoint_path, class_names_of, read_checkpoint_metadata
from .data import dataset_of
from .run import GadDir
from .settings import TRAINING_PARAMS, gad_settings
from .strategies import OneVsAll, Pair, Strategy

__all__ = ["command_line", "launch_gad", "resume_gad", "stop_gad"]

_PROGRESS_KEYS = ("done", "total", "fraction", "supports", "supports_done")


def _gad_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "interpgrad", "gad", "train", "--no-progress", *arguments]


def _strategy_flags(strategy: Strategy) -> list[str]:
    join = lambda classes: ",".join(str(c) for c in classes)  # noqa: E731
    if isinstance(strategy, Pair):
        return ["--classes", join(strategy.classes)]
    if isinstance(strategy, OneVsAll):
        return ["--one-vs-all", str(strategy.k)]
    return ["--split", f"{join(strategy.side_a)}/{join(strategy.side_b)}"]


def command_line(checkpoint: str | os.PathLike[str], strategy: Strategy, settings: Mapping[str, Any],
                 out: str | os.PathLike[str]) -> list[str]:
    """The ``python -m interpgrad gad train`` arguments for ``settings`` (``gad_settings``'s) writing into ``out``:
    every parameter that applies, spelled out (``--alphas`` stands for the given schedule)."""
    arguments = _gad_command("--checkpoint", str(checkpoint), *_strategy_flags(strategy), "--out", str(out))
    applying = {param.name for param in TRAINING_PARAMS if param.applies(settings)} - {"schedule"}
    for param in TRAINING_PARAMS:
        value = settings.get(param.name)
        if param.name in applying and value not in (None, ""):
            arguments += ["--" + param.name.replace("_", "-"), str(value)]
    return arguments


def launch_gad(options: Mapping[str, Any], root: str | os.PathLike[str], name: str) -> tuple[GadDir, subprocess.Popen]:
    """Check ``options`` (``checkpoint``, ``strategy`` — a Strategy — and the training parameters of
    ``TRAINING_PARAMS``), then start the run into ``root/name`` in the background."""
    folder = GadDir(Path(root) / valid_job_name(name, "GAD run"))
    if folder.path.exists():
        raise ConfigError(f"a GAD run named {name!r} already exists; choose another name")
    options = dict(options)
    checkpoint, strategy = options.pop("checkpoint", None), options.pop("strategy", None)
    if not checkpoint or not checkpoint_path(checkpoint).is_file():
        raise ConfigError(f"no checkpoint at {checkpoint}" if checkpoint else "choose a model")
    if not isinstance(strategy, Strategy):
        raise ConfigError("choose a strategy: two classes, one class against the rest, or a split into two groups")
    metadata = read_checkpoint_metadata(checkpoint)
    strategy = strategy.resolved(class_names_of(metadata))
    settings = gad_settings(options)
    check_dataset(*dataset_of(metadata, settings["data_root"] or None))
    return folder, spawn(command_line(checkpoint, strategy, settings, folder.path), folder, _PROGRESS_KEYS)


def resume_gad(folder: GadDir) -> subprocess.Popen:
    """Continue a stopped, failed or interrupted GAD run in the background (its finished support models are kept)."""
    check_resumable(folder)
    if not folder.exists():
        raise ConfigError(f"{folder.name} never started (no config.json): start a new GAD run")
    return spawn(_gad_command("--out", str(folder.path), "--resume"), folder, _PROGRESS_KEYS)


def stop_gad(folder: GadDir) -> bool:
    """Ask a running GAD run to stop after its current step (SIGTERM); it can be resumed (the support model it was
    training starts again). False if not running."""
    return stop_job(folder)
