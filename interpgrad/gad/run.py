"""A GAD run folder: the support models of one original checkpoint under one strategy, made by ``train_gad`` (what
``python -m interpgrad gad train`` runs) and read by ``load_gad_run``.

    RUN/config.json               kind "gad", the original checkpoint (path, sha256 of the file, sha256 of its
                                  parameters), the strategy, the resolved settings, the alphas
    RUN/support-S.safetensors     support model S (+ support-S.json): a checkpoint ``load_checkpoint`` reads, whose
                                  metadata's "gad" section records the original, the strategy, its alpha, the settings
                                  and its report (regression error, agreement)
    RUN/status.json               running (support s of S, epoch, step) / finished / failed (the reason) / stopped
    RUN/gad.log                   the process's output, when a page launched it

A run continues where it stopped (``resume``): finished support models are kept, the next one is trained (a support
interrupted mid-training starts again; each is a function of the original, the data, its alpha, the settings and the
seed, so a resumed run equals an uninterrupted one). A folder that holds a run is never overwritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

import torch
from torch import nn

from .._version import __version__
from ..errors import CheckpointError, ConfigError, InterpgradError, Remedy
from ..jobs import JobDir, list_jobs, reason_fields
from ..metrics.request import resolve_device
from ..training.checkpoint import (
    CHECKPOINT_NAME,
    PROJECT,
    checkpoint_path,
    class_names_of,
    file_sha256,
    load_checkpoint,
    project_path,
    read_checkpoint_metadata,
    save_checkpoint,
)
from .data import dataset_of, strategy_images
from .distancing import alpha_schedule
from .settings import CHANGEABLE_ON_RESUME, gad_settings, parse_alphas
from .strategies import Strategy, strategy_from_dict
from .support import StrategyImages, SupportReport, SupportStopped, logits_of, report_support, train_support

__all__ = ["GadDir", "GadRun", "list_gad_runs", "load_gad_run", "load_supports", "parameters_sha256", "train_gad"]

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, message)
_STATUS_INTERVAL_S = 1.0


class GadDir(JobDir):
    """The files of one GAD run (``interpgrad.jobs.JobDir``: config, status, log; and the support models)."""

    LOG_NAME = "gad.log"
    PROCESS = "the GAD training process"

    def support_path(self, index: int) -> Path:
        return self.path / f"support-{index}.safetensors"

    def is_gad(self) -> bool:
        return (self.read_config() or {}).get("kind") == "gad"


def list_gad_runs(root: str | os.PathLike[str]) -> list[GadDir]:
    """The GAD run folders directly inside ``root``, newest first."""
    return [job for job in list_jobs(root, GadDir) if not job.exists() or job.is_gad()]


# ---------------------------------------------------------------------------------------------------- identity


def parameters_sha256(model: nn.Module) -> str:
    """The SHA-256 of a model's state (every tensor's name, dtype, shape and values): equal for the same weights
    whatever the device or memory layout, so a model in hand can be checked against a run's original."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        values = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}:{values.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(values.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _find_recorded(recorded: str) -> Path:
    path = Path(recorded)
    for candidate in ([path] if path.is_absolute() else [path, PROJECT / path]):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"the GAD run's original checkpoint {recorded} is not there any more; pass the checkpoint "
                      "(the same file, wherever it is now)")


# ---------------------------------------------------------------------------------------------------- a loaded run


@dataclass
class GadRun:
    """A GAD run as loaded: the original model (eval mode) and its checkpoint metadata, the finished support models
    (eval mode, in order of alpha) with their checkpoint metadata and reports, the strategy (resolved), the alphas and
    the resolved settings."""

    path: Path
    original: nn.Module
    metadata: dict[str, Any]
    supports: list[nn.Module]
    support_metadata: list[dict[str, Any]]
    reports: list[SupportReport]
    strategy: Strategy
    alphas: tuple[float, ...]
    settings: dict[str, Any]
    checkpoint: str
    checkpoint_sha256: str
    state: str = "finished"
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def class_names(self) -> list[str]:
        return class_names_of(self.metadata)

    @property
    def models(self) -> list[nn.Module]:
        """The original first, then the support models."""
        return [self.original, *self.supports]

    @property
    def complete(self) -> bool:
        return len(self.supports) == len(self.alphas)

    @property
    def model_name(self) -> str:
        """The original's name: its run folder's, or its file's."""
        path = Path(self.checkpoint)
        return path.parent.name if path.name == CHECKPOINT_NAME else path.stem

    def describe(self) -> str:
        """``shapes-resnet18-baseline, circle vs square: 3 of 3 support models (alpha 17.5, 34.9, 52.4), train
        last_stage``."""
        alphas = ", ".join(f"{alpha:.3g}" for alpha in self.alphas[: len(self.supports)])
        return (f"{self.model_name}, {self.strategy.describe(self.class_names)}: {len(self.supports)} of "
                f"{len(self.alphas)} support models (alpha {alphas}), train {self.settings.get('train')}")


def _read_config(folder: GadDir) -> dict[str, Any]:
    config = folder.read_config()
    if config is None:
        raise ConfigError(f"there is no GAD run in {folder.path} (no config.json)")
    if config.get("kind") != "gad":
        raise ConfigError(f"{folder.path} holds another kind of run, not a GAD run")
    return config


def _check_original(config: Mapping[str, Any], original: str | os.PathLike[str] | nn.Module | None
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """The run's original (loaded from ``original`` or the recorded path), refused when it is another model."""
    recorded = config["original"]
    if isinstance(original, nn.Module):
        if parameters_sha256(original) != recorded["parameters_sha256"]:
            raise ConfigError(f"the model is not the GAD run's original ({recorded['path']}): its weights differ")
        return original, dict(recorded.get("metadata") or {})
    path = checkpoint_path(original) if original is not None else _find_recorded(recorded["path"])
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {original}")
    digest = file_sha256(path)
    if digest != recorded["sha256"]:
        raise ConfigError(f"the GAD run was made from {recorded['path']} (sha256 {recorded['sha256'][:12]}…), "
                          f"not from {path} (sha256 {digest[:12]}…)")
    model, metadata = load_checkpoint(path)
    return model, metadata


def load_supports(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[nn.Module], list[dict[str, Any]],
                                                         list[SupportReport]]:
    """The run's config and its finished support models (on the CPU, in order), their checkpoint metadata and
    reports, without loading the original; a ConfigError when the folder holds no GAD run or no finished support
    model yet."""
    folder = GadDir(path)
    config = _read_config(folder)
    supports, support_metadata, reports = [], [], []
    for index in range(1, len(config["alphas"]) + 1):
        support_path = folder.support_path(index)
        if not support_path.is_file():
            break
        support, metadata = load_checkpoint(support_path)
        gad = metadata.get("gad") or {}
        if gad.get("index") != index or (gad.get("original") or {}).get("sha256") != config["original"]["sha256"]:
            raise CheckpointError(f"{support_path} is not support model {index} of this GAD run")
        supports.append(support)
        support_metadata.append(metadata)
        reports.append(SupportReport.from_dict(gad["report"]))
    if not supports:
        state = folder.read_status().get("state", "new")
        raise ConfigError(f"the GAD run {folder.path} has no finished support model yet ({state})")
    return config, supports, support_metadata, reports


def load_gad_run(path: str | os.PathLike[str], original: str | os.PathLike[str] | nn.Module | None = None) -> GadRun:
    """The GAD run in the folder ``path``, with its finished support models (on the CPU).

    ``original``: the original checkpoint (default: the path the run recorded) or the original model itself; a
    ConfigError when it is another checkpoint (another sha256) or another model (other weights). A run with no finished
    support model yet is a ConfigError."""
    config, supports, support_metadata, reports = load_supports(path)
    model, metadata = _check_original(config, original)
    folder = GadDir(path)
    return GadRun(folder.path, model, metadata, supports, support_metadata, reports,
                  strategy_from_dict(config["strategy"]), tuple(config["alphas"]), dict(config["settings"]),
                  config["original"]["path"], config["original"]["sha256"], folder.read_status().get("state", "new"),
                  config)


# ---------------------------------------------------------------------------------------------------- training


class _Status:
    """status.json of the run: running (at most every second), stopped, failed, finished."""

    def __init__(self, folder: GadDir, supports: int, steps_per_support: int, device: torch.device) -> None:
        self.folder, self.supports, self.steps = folder, supports, steps_per_support
        self.started, self.written, self.device = time.time(), 0.0, str(device)
        self.reports: list[dict[str, Any]] = []

    def write(self, state: str, done_supports: int, step: int = 0, **details: Any) -> None:
        total = self.supports * self.steps
        done = min(total, done_supports * self.steps + step)
        self.folder.write_status(state, pid=os.getpid(), supports=self.supports, supports_done=done_supports,
                                 support=min(done_supports + 1, self.supports), step=step,
                                 steps_per_support=self.steps, done=done, total=total, fraction=done / max(1, total),
                                 device=self.device, started_at=self.started, reports=self.reports, **details)

    def running(self, done_supports: int, step: int, message: str, force: bool = False) -> None:
        if force or time.monotonic() - self.written >= _STATUS_INTERVAL_S:
            self.write("running", done_supports, step, message=message)
            self.written = time.monotonic()


def _launched_for_us(folder: GadDir) -> bool:  # as the trainer's
    """Whether a launcher created the folder for this very process (its status names our pid as starting)."""
    status = folder.read_status()
    return bool(status.get("starting")) and status.get("pid") == os.getpid()


def _resume_settings(folder: GadDir, saved: Mapping[str, Any], given: Mapping[str, Any], explicit: Collection[str],
                     strategy: Strategy | None) -> dict[str, Any]:
    """The saved settings with the few a resumed run may change; a ConfigError when the user asks for others."""
    settings = dict(saved["settings"])
    typed = gad_settings({**settings, **{key: given[key] for key in explicit if key in given}})
    for key in explicit:
        if key in CHANGEABLE_ON_RESUME or key not in typed:
            continue
        if typed[key] != settings.get(key):
            raise ConfigError(f"{folder.path} was made with {key}={settings.get(key)!r}; resume with the same settings "
                              f"(only {', '.join(sorted(CHANGEABLE_ON_RESUME))} may change) or start a new run")
    if strategy is not None:
        names = class_names_of(saved["original"]["metadata"])
        if strategy.resolved(names).to_dict() != saved["strategy"]:
            raise ConfigError(f"{folder.path} was made for {strategy_from_dict(saved['strategy']).describe(names)}; "
                              "resume with the same strategy or start a new run")
    return {**settings, **{key: typed[key] for key in CHANGEABLE_ON_RESUME if key in explicit}}


def train_gad(
    checkpoint: str | os.PathLike[str] | None = None,
    strategy: Strategy | None = None,
    out: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    explicit: Collection[str] | None = None,
    **options: Any,
) -> GadRun:
    """Train the support models of ``checkpoint`` under ``strategy`` into the run folder ``out``.

    ``options``: the training parameters (``interpgrad.gad.TRAINING_PARAMS``: supports, alphas, alpha_scale, gap,
    mode, train, epochs, lr, batch_size, n_train, n_val, seed, device, data_root). ``resume``: continue the run in
    ``out`` with its saved settings (``checkpoint`` and ``strategy`` may be left out; only the device may change).
    ``explicit``: the option names the user typed (default: every option given). ``progress(done, total, message)``
    after each step; ``should_stop()`` is polled between steps: the run stops (status "stopped") and
    ``SupportStopped`` is raised. Bad input is a ConfigError before anything is written."""
    if out is None:
        raise ConfigError("--out (the GAD run folder) is required")
    folder = GadDir(out)
    explicit = set(options) if explicit is None else set(explicit)
    ours = _launched_for_us(folder)  # else the folder becomes ours once every check has passed
    try:
        if resume:
            saved = _read_config(folder)
            if folder.read_status().get("state") == "running" and not ours:
                raise ConfigError(f"{folder.path} is still running")
            settings = _resume_settings(folder, saved, options, explicit, strategy)
            path = _find_recorded(saved["original"]["path"]) if checkpoint is None else checkpoint_path(checkpoint)
            if not path.is_file():
                raise ConfigError(f"no checkpoint at {checkpoint}")
            if file_sha256(path) != saved["original"]["sha256"]:
                raise ConfigError(f"{folder.path} was made from {saved['original']['path']} (sha256 "
                                  f"{saved['original']['sha256'][:12]}…), not from {path}, which has changed or is "
                                  "another checkpoint; resume with the same checkpoint or start a new run")
            strategy = strategy_from_dict(saved["strategy"])
        else:
            if folder.exists():
                raise ConfigError(f"{folder.path} already holds a run", Remedy("resume_or_rename"))
            if checkpoint is None:
                raise ConfigError("--checkpoint (the original model) is required")
            if strategy is None:
                raise ConfigError("choose a strategy: --classes K,L, --one-vs-all K or --split A,B/C,D")
            settings = gad_settings(options, explicit)
            path = checkpoint_path(checkpoint)
            if not path.is_file():
                raise ConfigError(f"no checkpoint at {checkpoint}")
            saved = None
        prepared = _prepare(path, strategy, settings, saved)
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
            folder.write_config(prepared.config)
        except OSError as error:
            raise ConfigError(f"cannot write the GAD run folder {folder.path}: {error.strerror or error}") from None
        ours = True
        return _work(folder, prepared, progress, should_stop, log or (lambda text: None))
    except BaseException as error:
        if ours and folder.read_status().get("state") not in ("failed", "stopped"):
            with contextlib.suppress(OSError):  # the folder went away: the error itself matters more
                if isinstance(error, KeyboardInterrupt):
                    folder.write_status("stopped", pid=os.getpid(), **reason_fields("interrupted", Remedy("resume")))
                else:
                    folder.write_status("failed", pid=os.getpid(), **reason_fields(error))
        raise


@dataclass
class _Prepared:
    """Everything a run computes from: the original, the strategy (resolved), the images, the original's logits on
    them, the alphas, the settings and the config to write."""

    path: Path
    original: nn.Module
    metadata: dict[str, Any]
    strategy: Strategy
    settings: dict[str, Any]
    device: torch.device
    train: StrategyImages
    val: StrategyImages
    train_logits: torch.Tensor
    val_logits: torch.Tensor
    alphas: tuple[float, ...]
    config: dict[str, Any]


def _prepare(path: Path, strategy: Strategy, settings: dict[str, Any], saved: dict[str, Any] | None) -> _Prepared:
    """Load and check everything (the checkpoint, the strategy, the images) and compute the alphas; nothing is
    written."""
    device = resolve_device(settings["device"])
    original, metadata = load_checkpoint(path, device=device)
    strategy = strategy.resolved(class_names_of(metadata))
    root = settings["data_root"] or None
    dataset, data_root = dataset_of(metadata, root)
    train = strategy_images(metadata, strategy, "train", settings["n_train"], root)
    val = strategy_images(metadata, strategy, "val", settings["n_val"], root)
    train_logits, val_logits = logits_of(original, train, device), logits_of(original, val, device)
    if saved is not None:
        alphas = tuple(saved["alphas"])
    else:
        given = parse_alphas(settings["alphas"]) if settings["schedule"] == "given" else None
        alphas = alpha_schedule(train_logits, strategy, settings["supports"], settings["alpha_scale"], settings["gap"],
                                given)
    original_record = {"path": project_path(path), "sha256": file_sha256(path),
                       "parameters_sha256": parameters_sha256(original), "metadata": metadata}
    config = {"kind": "gad", "original": original_record, "strategy": strategy.to_dict(),
              "strategy_text": strategy.describe(class_names_of(metadata)), "settings": settings,
              "alphas": list(alphas), "dataset": dataset, "data_root": data_root, "n_train": len(train),
              "n_val": len(val), "interpgrad_version": __version__,
              "created_at": (saved or {}).get("created_at", time.time())}
    return _Prepared(path, original, metadata, strategy, settings, device, train, val, train_logits, val_logits,
                     alphas, config)


def _work(folder: GadDir, run: _Prepared, progress: Progress | None, should_stop: Callable[[], bool] | None,
          say: Callable[[str], None]) -> GadRun:
    """Train every support model the folder does not hold yet, saving each as it finishes."""
    settings, alphas, original_record = run.settings, run.alphas, run.config["original"]
    steps = settings["epochs"] * -(-len(run.train) // settings["batch_size"])
    status = _Status(folder, len(alphas), steps, run.device)
    say(f"GAD: {len(alphas)} support models of {run.path} for {run.config['strategy_text']} ({len(run.train)} "
        f"training / {len(run.val)} held-out images, train {settings['train']}, alphas "
        f"{', '.join(f'{alpha:.3g}' for alpha in alphas)}) on {run.device} -> {folder.path}")
    for index, alpha in enumerate(alphas, start=1):
        existing = _finished_support(folder, index, alpha, original_record["sha256"])
        if existing is not None:
            status.reports.append(existing.to_dict())
            say(f"kept {existing.describe()}")
            continue
        status.running(index - 1, 0, f"support {index}/{len(alphas)}", force=True)

        def stepped(step: int, loss: float, index: int = index) -> None:
            message = f"support {index}/{len(alphas)}, step {step}/{steps}, loss {loss:.4g}"
            status.running(index - 1, step, message)
            if progress is not None:
                progress((index - 1) * steps + step, len(alphas) * steps, message)

        try:
            support, training = train_support(
                run.original, run.train, run.strategy, alpha, mode=settings["mode"], part=settings["train"],
                epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
                seed=settings["seed"] * 1000 + index, device=run.device, progress=stepped, should_stop=should_stop,
                index=index)
        except SupportStopped as stopped:
            status.write("stopped", index - 1, **reason_fields(stopped), message="stopped")
            say(f"stopped during support model {index}; {len(status.reports)} finished; continue with --resume")
            raise
        report = report_support(index, alpha, support, training, run.strategy, settings["mode"], settings["train"],
                                run.train, run.train_logits, run.val, run.val_logits, run.device)
        save_checkpoint(
            folder.support_path(index), support, run.metadata["model"], data=run.metadata.get("data"),
            training={"gad": settings}, regularizer=run.metadata.get("regularizer"), metrics=report.to_dict(),
            name=f"{folder.name}-support-{index}",
            gad={"index": index, "alpha": float(alpha), "alphas": list(alphas), "strategy": run.strategy.to_dict(),
                 "original": {key: original_record[key] for key in ("path", "sha256", "parameters_sha256")},
                 "settings": settings, "report": report.to_dict()},
        )
        status.reports.append(report.to_dict())
        say(report.describe())
    status.write("finished", len(alphas), message="finished", finished_at=time.time())
    return load_gad_run(folder.path, run.original.to("cpu"))


def _finished_support(folder: GadDir, index: int, alpha: float, digest: str) -> SupportReport | None:
    """The report of support model ``index`` when a previous process finished it for this run, else None."""
    path = folder.support_path(index)
    if not path.is_file():
        return None
    try:
        gad = read_checkpoint_metadata(path).get("gad") or {}
    except InterpgradError:
        return None  # unreadable: trained again and rewritten (atomically)
    made_from = (gad.get("original") or {}).get("sha256")
    if gad.get("index") != index or gad.get("alpha") != float(alpha) or made_from != digest:
        return None
    return SupportReport.from_dict(gad["report"])
