"""The model zoo: every checkpoint a user can pick — shipped with the project, trained in a run folder, or uploaded.

A model is a ``model.safetensors`` with its metadata (and, when it has them, the training curves of its run in
``metrics.jsonl`` beside it). Uploads are validated by loading them (never unpickled) before they are kept, each in
a folder of its own named after the model its metadata describes (an upload never replaces another, and a file that
is already in the zoo is not kept twice). Entries are keyed ``source/name``, unique across the zoo; a file that
cannot be used is an entry with the reason in ``problem``, left out unless asked for. Runs and uploads can be
deleted; shipped checkpoints cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import CheckpointError, ConfigError
from .jobs import delete_job
from .training.checkpoint import CHECKPOINT_NAME, atomic_write_bytes, file_sha256, load_checkpoint, read_checkpoint_metadata
from .training.run import RunDir

__all__ = [
    "DELETABLE_SOURCES",
    "ModelEntry",
    "SavedUpload",
    "as_number",
    "default_directories",
    "delete_model",
    "discover_models",
    "model_name",
    "save_upload",
]

SOURCES = ("shipped", "run", "upload")
DELETABLE_SOURCES = ("run", "upload")  # shipped checkpoints stay
_PROJECT = Path(__file__).resolve().parent.parent


def default_directories() -> dict[str, Path]:
    """Where shipped checkpoints, runs, uploads and evaluations live (override with INTERPGRAD_CHECKPOINTS,
    INTERPGRAD_RUNS, INTERPGRAD_UPLOADS and INTERPGRAD_EVALUATIONS). Evaluations shipped with the project lie in
    ``evaluations/`` inside the shipped checkpoints' folder."""
    shipped = Path(os.environ.get("INTERPGRAD_CHECKPOINTS", _PROJECT / "checkpoints"))
    return {
        "shipped": shipped,
        "run": Path(os.environ.get("INTERPGRAD_RUNS", _PROJECT / "runs")),
        "upload": Path(os.environ.get("INTERPGRAD_UPLOADS", _PROJECT / "uploads")),
        "evaluation": Path(os.environ.get("INTERPGRAD_EVALUATIONS", _PROJECT / "evaluations")),
        "shipped_evaluation": shipped / "evaluations",
    }


def as_number(value: Any) -> int | float | None:
    """``value`` when it is a number (not a boolean), else None: metadata comes from files, so a field may hold anything."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# val_alignment (checkpoints before issue 9) is what is now named val_alignment_eval: eval mode, per image, validation.
_METRIC_ALIASES = {"val_alignment": "val_alignment_eval", "val_alignment_eval": "val_alignment"}


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo. An entry whose file cannot be used has ``problem`` set (the reason) and empty metadata;
    every property works on it too, so a broken file on disk is listed as broken instead of crashing a page."""

    key: str  # "source/name", unique
    source: str  # shipped | run | upload
    name: str
    path: Path  # the .safetensors file
    metadata: dict[str, Any] = field(compare=False, repr=False)
    metrics: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    problem: str | None = field(default=None, compare=False)

    @property
    def usable(self) -> bool:
        return self.problem is None

    def section(self, name: str) -> dict[str, Any]:
        """A metadata section (``model``, ``data``, ``regularizer``, ``metrics``...), ``{}`` when absent."""
        value = self.metadata.get(name) if isinstance(self.metadata, dict) else None
        return value if isinstance(value, dict) else {}

    def metric(self, name: str) -> float | None:
        """A final metric (``val_accuracy``, ``val_alignment``...) when it is a number, else None."""
        metrics = self.section("metrics")
        value = as_number(metrics.get(name))
        if value is None and name in _METRIC_ALIASES:  # the eval-mode cosine's old and new names read either way
            value = as_number(metrics.get(_METRIC_ALIASES[name]))
        return None if value is None else float(value)

    @property
    def arch(self) -> str:
        return str(self.section("model").get("arch", "?"))

    @property
    def regularizer(self) -> str:
        return str(self.section("regularizer").get("name") or "none")

    @property
    def class_names(self) -> list[str]:
        names = self.section("data").get("class_names")
        if isinstance(names, list) and names:
            return [str(name) for name in names]
        count = self.section("model").get("num_classes")
        return [str(i) for i in range(count)] if isinstance(count, int) and count > 0 else []

    @property
    def short_label(self) -> str:
        """Name and source: unique like the key, short enough for legends and row titles."""
        return f"{self.name} ({self.source})"

    @property
    def label(self) -> str:
        """A human label: name, source, architecture, regularizer, validation accuracy (or why it cannot be used)."""
        if self.problem:
            return f"{self.name} ({self.source}: cannot be used: {self.problem})"
        width = self.section("model").get("width", 1)
        width_text = f" x{width}" if width != 1 else ""
        accuracy = self.metric("val_accuracy")
        accuracy_text = f", val acc {accuracy:.1%}" if accuracy is not None else ""
        return f"{self.name} ({self.source}: {self.arch}{width_text}, {self.regularizer}{accuracy_text})"

    @property
    def mtime(self) -> float:
        return self.path.stat().st_mtime

    @property
    def deletable(self) -> bool:
        """Whether the app may delete it (a run or an upload; never a shipped checkpoint)."""
        return self.source in DELETABLE_SOURCES

    def sha256(self) -> str:
        """The SHA-256 of the checkpoint file (hex): what tells one file from another with the same name."""
        return file_sha256(self.path)


def _metrics_beside(path: Path) -> tuple[dict[str, Any], ...]:
    """The epoch lines of the run beside a checkpoint; lines that are not epoch records are left out."""
    if path.name != CHECKPOINT_NAME:
        return ()
    try:
        lines = RunDir(path.parent).read_metrics()
    except (OSError, ValueError):  # unreadable or not text
        return ()
    return tuple(line for line in lines if isinstance(line, dict) and isinstance(line.get("epoch"), (int, float)))


def _entry(source: str, name: str, path: Path) -> ModelEntry:
    """The entry of one checkpoint file; its metadata is validated (``read_checkpoint_metadata``), and a file that
    cannot be used (half-copied, foreign, invalid metadata) gives an entry with the reason."""
    key = f"{source}/{name}"
    try:
        metadata = read_checkpoint_metadata(path)
    except CheckpointError as error:
        return ModelEntry(key, source, name, path, {}, problem=str(error))
    except OSError as error:
        return ModelEntry(key, source, name, path, {}, problem=f"cannot be read ({error.strerror or error})")
    return ModelEntry(key, source, name, path, metadata, _metrics_beside(path))


def _candidates(directory: Path) -> list[tuple[str, Path]]:
    """(name, checkpoint) for ``directory/*/model.safetensors`` and ``directory/*.safetensors``; a loose file whose
    stem is also a folder's name keeps its suffix in its name, so that names (and keys) are unique."""
    if not directory.is_dir():
        return []
    found = {child.name: child / CHECKPOINT_NAME for child in directory.iterdir() if (child / CHECKPOINT_NAME).is_file()}
    for path in directory.glob("*.safetensors"):
        found[path.stem if path.stem not in found else path.name] = path
    return sorted(found.items())


def discover_models(directories: dict[str, Path] | None = None, include_broken: bool = False) -> list[ModelEntry]:
    """Every usable model: shipped first, then runs (with at least one complete epoch), then uploads.

    ``include_broken``: also the checkpoint files that cannot be used, each with its ``problem`` (for listing them).
    """
    directories = directories or default_directories()
    entries = [_entry(source, name, path) for source in SOURCES for name, path in _candidates(Path(directories[source]))]
    return [entry for entry in entries if include_broken or entry.usable]


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_GENERIC_STEMS = (Path(CHECKPOINT_NAME).stem, "checkpoint", "weights")  # file names that say nothing of the model


def _safe_name(text: str) -> str:
    """``text`` in the characters a folder name may safely have ('' when none is left)."""
    return _SAFE_NAME.sub("-", text).strip("-.")[:64].strip("-.")


def model_name(metadata: Mapping[str, Any], filename: str = "") -> str:
    """The name a checkpoint goes by, in safe characters: the ``name`` in its metadata (a trainer's checkpoint has its
    run's), else the name of the run folder it was trained into (``training.out``), else the file's stem unless it
    is a generic one (``model``), else what the model is (``dataset-arch-regularizer``)."""

    def section(key: str) -> Mapping[str, Any]:
        value = metadata.get(key)
        return value if isinstance(value, Mapping) else {}

    out = section("training").get("out")
    stem = Path(filename).stem
    candidates = [
        metadata.get("name"),
        Path(out).name if isinstance(out, str) else None,
        stem if stem.lower() not in _GENERIC_STEMS else None,
        "-".join(str(part) for part in (section("data").get("name"), section("model").get("arch"),
                                        section("regularizer").get("name") or "none") if part),
    ]
    for candidate in candidates:
        name = _safe_name(candidate) if isinstance(candidate, str) else ""
        if name:
            return name
    return "model"


def _scratch_name(filename: str) -> str:
    """The uploaded file's own name for the file that is checked, so that error messages name what the user
    uploaded (``Path.name`` drops any folder part; an unusable name falls back to a neutral one)."""
    name = Path(filename).name
    if name in ("", ".", "..") or len(name.encode()) > 200:
        return "upload.safetensors"
    return name if name.endswith(".safetensors") else f"{name}.safetensors"  # the JSON beside needs another name


def _claim_folder(uploads_dir: Path, stem: str) -> Path:
    """A new folder ``uploads_dir/stem``, or ``stem-2``, ``stem-3``... when that name is taken (by an upload folder
    or a loose file). Created atomically (mkdir fails if it exists), so two uploads never share a folder."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    for number in range(1, 10_000):
        name = stem if number == 1 else f"{stem}-{number}"
        if (uploads_dir / f"{name}.safetensors").exists():
            continue
        try:
            (uploads_dir / name).mkdir()
        except FileExistsError:
            continue
        return uploads_dir / name
    raise CheckpointError(f"too many uploads named {stem}; remove some from {uploads_dir}")


def _same_model(entry: ModelEntry, data: bytes, digest: str, metadata: Mapping[str, Any]) -> bool:
    """Whether ``entry`` is the uploaded model: the same bytes (size first, then SHA-256) and the same metadata (a
    plain safetensors file takes its metadata from the JSON beside it, which may differ)."""
    try:
        return (entry.usable and entry.path.stat().st_size == len(data) and entry.sha256() == digest
                and entry.metadata == metadata)
    except OSError:  # removed meanwhile
        return False


@dataclass(frozen=True)
class SavedUpload:
    """What ``save_upload`` did: ``entry`` is the model now in the zoo, under the name its metadata gives it
    (``wanted``) or with a suffix when an upload has that name; ``already_there``: the same model was in the zoo
    (``entry`` is that one) and nothing was added."""

    entry: ModelEntry
    wanted: str
    already_there: bool = False


def save_upload(
    uploads_dir: str | os.PathLike[str],
    filename: str,
    data: bytes,
    metadata_json: bytes | None = None,
    metadata_filename: str = "the metadata file",
    existing: Sequence[ModelEntry] | None = None,
) -> SavedUpload:
    """Validate an uploaded checkpoint (and optional JSON metadata) by loading it, then keep it in a new folder of
    ``uploads_dir`` named after the model (``model_name``). An existing upload is never replaced: a name already
    taken gets a suffix (``name-2``). A model identical to one of ``existing`` (default: the uploads already in
    ``uploads_dir``) is not kept again: the result names the one that is there.

    Raises CheckpointError with a readable reason naming the uploaded file: not safetensors (a pickle is refused
    unread), no metadata, metadata that is not JSON or not valid, or weights that do not match the architecture the
    metadata describes.
    """
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / _scratch_name(filename)
        candidate.write_bytes(data)
        if metadata_json is not None:
            try:
                json.loads(metadata_json)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise CheckpointError(f"{metadata_filename} is not valid JSON: {error}") from None
            candidate.with_suffix(".json").write_bytes(metadata_json)
        _, metadata = load_checkpoint(candidate)  # the full check: metadata, architecture, every tensor's shape
    wanted = model_name(metadata, filename)
    uploads_dir = Path(uploads_dir)
    if existing is None:
        existing = [_entry("upload", name, path) for name, path in _candidates(uploads_dir)]
    digest = hashlib.sha256(data).hexdigest()
    for entry in existing:
        if _same_model(entry, data, digest, metadata):
            return SavedUpload(entry, wanted, already_there=True)
    target = _claim_folder(uploads_dir, wanted)
    try:
        atomic_write_bytes(target / CHECKPOINT_NAME, data)
        if metadata_json is not None:
            atomic_write_bytes(target / "model.json", metadata_json)
        entry = _entry("upload", target.name, target / CHECKPOINT_NAME)
        if not entry.usable:
            raise CheckpointError(f"{filename} could not be read back after saving: {entry.problem}")
    except BaseException:  # nothing half-saved stays behind
        shutil.rmtree(target, ignore_errors=True)
        raise
    return SavedUpload(entry, wanted)


def delete_model(entry: ModelEntry, directories: Mapping[str, str | os.PathLike[str]] | None = None) -> None:
    """Delete a run's or an upload's files for good: its folder (``NAME/model.safetensors`` and everything beside it,
    such as a run's curves, log and resume state), or a loose ``NAME.safetensors`` with its ``NAME.json``.

    A shipped checkpoint is refused, and so is a run that is still training (stop it first): ConfigError.
    """
    if not entry.deletable:
        raise ConfigError(f"{entry.name} is shipped with interpgrad and cannot be deleted")
    home = Path((directories or default_directories())[entry.source]).resolve()
    path = entry.path.resolve()
    if path.parent == home:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
    elif path.parent.parent == home and path.name == CHECKPOINT_NAME:
        delete_job(RunDir(path.parent))  # an upload's folder has no status: never running
    else:
        raise ConfigError(f"{entry.path} is not in the {entry.source} folder {home}; it was not deleted")
