"""Models for the pages: the zoo as it is on disk now, its table, cached and lock-guarded loaded models, and the
confirmation step before something is deleted."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import streamlit as st
from torch import nn

from interpgrad.comparison import ComparedModel
from interpgrad.params import applicable
from interpgrad.regularizers import REGULARIZERS
from interpgrad.training import load_checkpoint
from interpgrad.training.checkpoint import file_sha256
from interpgrad.zoo import ModelEntry, as_number, default_directories, discover_models

__all__ = ["STARTER_PAIR", "LoadedModel", "compared_model", "confirm_deletion", "default_models", "load_checkpoint_file",
           "load_model", "model_table",
           "show_broken", "zoo"]


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode, its metadata, and the lock every session holds while it explains with it (methods
    attach temporary hooks to the shared module)."""

    model: nn.Module
    metadata: dict[str, Any]
    lock: threading.Lock
    sha256: str  # of the file's bytes when it was loaded


STARTER_PAIR = ("shapes-resnet18-baseline", "shapes-resnet18-guided")
"""The shipped pair the Explore and Evaluate pages start with: the baseline and the paper's setting."""


def default_models(keys: Sequence[str], entries: Mapping[str, ModelEntry]) -> list[str]:
    """The models a page starts with, of ``keys`` (in their order): the shipped starter pair when both are there, else
    the first two shipped models, else the first two."""
    starter = [key for name in STARTER_PAIR for key in keys
               if entries[key].source == "shipped" and entries[key].name == name]
    if len(starter) == len(STARTER_PAIR):
        return starter
    shipped = [key for key in keys if entries[key].source == "shipped"]
    return shipped[:2] or list(keys)[:2]


def zoo(include_broken: bool = False) -> list[ModelEntry]:
    """Every model available now (shipped, runs, uploads); cheap enough to read on each run of a page.
    ``include_broken``: also the files that cannot be used, each with its ``problem``."""
    return discover_models(default_directories(), include_broken=include_broken)


def show_broken(entries: list[ModelEntry]) -> None:
    """A warning listing the checkpoint files that cannot be used and why (nothing when all can)."""
    broken = [entry for entry in entries if not entry.usable]
    if broken:
        st.warning(f"{len(broken)} checkpoint file(s) cannot be used and are left out:\n"
                   + "\n".join(f"- {entry.short_label}: {entry.problem}" for entry in broken))


NOT_APPLICABLE = "—"


def _cell(value: Any) -> str:
    """A regularizer parameter as a table cell, text (the column mixes models with and without it): numbers as
    ``0.0075``, and ``—`` where the model's regularizer has no such parameter or it does not apply."""
    if value is None:
        return NOT_APPLICABLE
    number = as_number(value)
    return f"{number:g}" if isinstance(number, float) and not isinstance(value, bool) else str(value)


def _applying_params(entry: ModelEntry) -> dict[str, Any]:
    """The regularizer parameters saved with ``entry`` that apply (``Param.when``: the guided regularizer's histogram
    normalisation only with the histogram error); all of them when the regularizer is not a known one."""
    params = entry.section("regularizer").get("params")
    params = params if isinstance(params, dict) else {}
    declared = REGULARIZERS.get(entry.regularizer)
    return applicable(declared.params, params) if declared else params


def _regularizer_params(entries: Sequence[ModelEntry]) -> dict[str, str]:
    """{parameter: its help} for every regularizer parameter any of ``entries`` has, in the order met (the help is
    the regularizer's declaration, when the name is a declared parameter)."""
    found: dict[str, str] = {}
    for entry in entries:
        declared = REGULARIZERS.get(entry.regularizer)
        for name in _applying_params(entry):
            if name not in found:
                helps = [param.help for param in (declared.params if declared else ()) if param.name == name]
                found[name] = f"{entry.regularizer}: {helps[0]}" if helps else "a regularizer parameter"
    return found


def model_table(entries: Sequence[ModelEntry]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The Models table: one row per entry and the column configuration. Besides what a model is, it has a column
    for every parameter of a regularizer that any listed model has (empty where a model has no such parameter),
    the validation accuracy, and the validation cosine between its standard and guided gradients."""
    fixed = ("name", "source", "architecture", "width", "regularizer", "dataset", "classes", "input", "val accuracy",
             "val cosine", "epochs")
    params = _regularizer_params(entries)
    columns = {name: f"regularizer {name}" if name in fixed else name for name in params}
    rows = []
    for entry in entries:
        model, data = entry.section("model"), entry.section("data")
        values = _applying_params(entry)
        rows.append({
            "name": entry.name, "source": entry.source, "architecture": entry.arch,
            "width": as_number(model.get("width")), "regularizer": entry.regularizer,
            **{columns[name]: _cell(values.get(name)) for name in params},
            "dataset": data.get("name"), "classes": as_number(model.get("num_classes")),
            "input": f"{model.get('image_size')} px", "val accuracy": entry.metric("val_accuracy"),
            "val cosine": entry.metric("val_alignment"), "epochs": as_number(entry.metadata.get("epochs_completed")),
        })
    config: dict[str, Any] = {
        "val accuracy": st.column_config.NumberColumn(format="percent", help="accuracy on the validation images"),
        "val cosine": st.column_config.NumberColumn(
            format="%.3f", help="mean cosine between the standard and the guided input gradient on validation "
                                "images, after the last epoch: what the guided regularizer raises"),
        **{columns[name]: st.column_config.TextColumn(help=f"{text} ({NOT_APPLICABLE}: the model's regularizer has no "
                                                             "such parameter, or it does not apply)")
           for name, text in params.items()},
    }
    return rows, config


def confirm_deletion(request_key: str, item: str, label: str, consequence: str, key: str) -> bool:
    """The confirmation step of a deletion that a page asked for with ``st.session_state[request_key] = item``: a
    warning naming ``label`` and saying what goes, with "Delete for good" and "Cancel". True once confirmed (the
    request is cleared either way; a cancel reruns the page)."""
    if st.session_state.get(request_key) != item:
        return False
    st.warning(f"Delete **{label}**? {consequence} This cannot be undone.")
    yes, no, _ = st.columns([1, 1, 5], gap="small")
    if yes.button("Delete for good", type="primary", key=f"{key}.confirm"):
        del st.session_state[request_key]
        return True
    if no.button("Cancel", key=f"{key}.cancel"):
        del st.session_state[request_key]
        st.rerun()
    return False


@st.cache_resource(max_entries=16, show_spinner=False)
def _load(path: str, mtime: float) -> LoadedModel:
    model, metadata = load_checkpoint(path)
    return LoadedModel(model, metadata, threading.Lock(), file_sha256(path))


def load_model(entry: ModelEntry) -> LoadedModel:
    """The cached model of a zoo entry (reloaded when its file changes, e.g. a run that finished another epoch)."""
    return _load(str(entry.path), entry.mtime)


def load_checkpoint_file(path: str | Path) -> LoadedModel:
    """The cached model of a checkpoint file that may not be in the zoo (one an evaluation recorded), reloaded when
    the file changes; shares the cache (and so the lock) with ``load_model`` for the same file."""
    path = Path(path).resolve()
    return _load(str(path), path.stat().st_mtime)


def compared_model(entry: ModelEntry) -> ComparedModel:
    """The cached model of a zoo entry, ready for ``interpgrad.comparison.compare`` (with its lock)."""
    loaded = load_model(entry)
    return ComparedModel(entry.short_label, loaded.model, loaded.metadata, loaded.lock, key=entry.key,
                         path=str(entry.path), sha256=loaded.sha256)
