"""A disk cache for the lab's heavier results, so that a page opens instantly on models measured before.

An entry is a folder ``<cache>/<kind>-<key>/`` holding ``table.csv`` (the result's table), ``arrays.npz`` (its arrays)
and ``entry.json`` (what was computed, written last: an entry without it is incomplete and ignored). The key is a
hash of the kind, the sha256 of every checkpoint involved (``file_sha256``: a retrained checkpoint of the same name
is another model), the images and every parameter, so a change of any of them computes anew. The default cache folder
is ``lab/`` beside the checkpoint (``lab_cache_dir``); a folder that cannot be written only means no caching.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..training.checkpoint import atomic_write_bytes, checkpoint_path

__all__ = ["CACHE_VERSION", "CacheEntry", "cache_key", "cached", "lab_cache_dir"]

CACHE_VERSION = 1


@dataclass
class CacheEntry:
    """What a cached computation stores: a ``table``, named ``arrays`` and JSON-able ``info``."""

    table: pd.DataFrame
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def lab_cache_dir(checkpoint: str | os.PathLike[str]) -> Path:
    """The default cache folder of a checkpoint: ``lab/`` in its run folder (beside ``model.safetensors``)."""
    return checkpoint_path(checkpoint).parent / "lab"


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_plain(item) for item in list(value)]
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def cache_key(kind: str, sha256s: Sequence[str], params: Mapping[str, Any]) -> str:
    """The entry name ``<kind>-<16 hex digits>`` of a computation."""
    text = json.dumps({"version": CACHE_VERSION, "kind": kind, "models": list(sha256s), "params": _plain(params)},
                      sort_keys=True, default=str)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _load(folder: Path) -> CacheEntry | None:
    try:
        info = json.loads((folder / "entry.json").read_text())
        table = pd.read_csv(folder / "table.csv")
        with np.load(folder / "arrays.npz", allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, KeyError):
        return None
    return CacheEntry(table, arrays, info.get("info", {}))


def _save(folder: Path, entry: CacheEntry, description: Mapping[str, Any]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **entry.arrays)
    atomic_write_bytes(folder / "arrays.npz", buffer.getvalue())
    atomic_write_bytes(folder / "table.csv", entry.table.to_csv(index=False).encode())
    record = {**_plain(description), "info": _plain(entry.info)}
    atomic_write_bytes(folder / "entry.json", (json.dumps(record, indent=2, default=str) + "\n").encode())


def cached(cache_dir: str | os.PathLike[str] | None, kind: str, sha256s: Sequence[str], params: Mapping[str, Any],
           compute: Callable[[], CacheEntry]) -> tuple[CacheEntry, bool]:
    """The entry of this computation from ``cache_dir``, else ``compute()`` stored there; returns (entry, whether it
    came from the cache). ``cache_dir`` None: no cache."""
    if cache_dir is None:
        return compute(), False
    name = cache_key(kind, sha256s, params)
    folder = Path(cache_dir) / name
    found = _load(folder) if (folder / "entry.json").is_file() else None
    if found is not None:
        return found, True
    entry = compute()
    try:
        _save(folder, entry, {"kind": kind, "models": list(sha256s), "params": params, "version": CACHE_VERSION})
    except OSError:
        pass  # a read-only checkpoint folder: the result is still returned, just not kept
    return entry, False
