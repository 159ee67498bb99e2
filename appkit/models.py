"""Models for the pages: the zoo as it is on disk now, and cached, lock-guarded loaded models."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from torch import nn

from interpgrad.comparison import ComparedModel
from interpgrad.training import load_checkpoint
from interpgrad.zoo import ModelEntry, default_directories, discover_models

__all__ = ["LoadedModel", "compared_model", "load_checkpoint_file", "load_model", "show_broken", "zoo"]


@dataclass(frozen=True)
class LoadedModel:
    """A model in eval mode, its metadata, and the lock every session holds while it explains with it (methods
    attach temporary hooks to the shared module)."""

    model: nn.Module
    metadata: dict[str, Any]
    lock: threading.Lock


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


@st.cache_resource(max_entries=16, show_spinner=False)
def _load(path: str, mtime: float) -> LoadedModel:
    model, metadata = load_checkpoint(path)
    return LoadedModel(model, metadata, threading.Lock())


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
    return ComparedModel(entry.short_label, loaded.model, loaded.metadata, loaded.lock, key=entry.key)
