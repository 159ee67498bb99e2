"""An evaluation folder: what ``python -m interpgrad evaluate --out DIR`` leaves on disk, read by ``--resume`` and by
the app's Evaluate page.

    DIR/config.json                 the evaluation asked for (checkpoints, methods, metrics, data, protocol options)
    DIR/status.json                 running (done / total units) / finished / failed (the reason) / stopped
    DIR/units.jsonl                 one line per finished unit (a model's method on a batch of images): what --resume
                                    keeps
    DIR/results.csv                 model, method, metric, image, value — one row per model x method x metric x image
                                    (kept as results.csv.gz in the evaluation shipped with the project)
    DIR/summary.csv                 model, method, metric, direction, mean, ci_low, ci_high, n
    DIR/comparisons.csv             model_a, model_b, method, metric, difference, ci_low, ci_high, p_value, verdict
    DIR/method_comparisons.csv      model, method_a, method_b, metric, difference, ci_low, ci_high, p_value, verdict
    DIR/curves.csv                  model, method, metric, point, x, label, mean, ci_low, ci_high, n
    DIR/results.json                the full protocol, models (with content hashes), versions, timings, and the tables
    DIR/plots/*.png                 bars with CI whiskers, curves with bands
    DIR/evaluate.log                the process's output, when the app launched it

Files are written atomically; units are appended one line at a time (a torn last line, from a kill mid-write, is
dropped on resume and its unit computed again).
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from ..jobs import JobDir, list_jobs, read_json, write_json
from ..training.checkpoint import atomic_write_bytes

__all__ = ["EvaluationDir", "list_evaluations", "unit_key"]


def unit_key(model: str, method: str, batch: int) -> tuple[str, str, int]:
    return (model, method, int(batch))


class EvaluationDir(JobDir):
    """The files of one evaluation (``interpgrad.jobs.JobDir``: config, status, log; and the ones below)."""

    LOG_NAME = "evaluate.log"
    PROCESS = "the evaluation process"

    @property
    def units_path(self) -> Path:
        return self.path / "units.jsonl"

    @property
    def results_path(self) -> Path:
        """results.csv, or results.csv.gz where only the compressed table is kept (the evaluation shipped with the
        project: 450,000 rows)."""
        plain, packed = self.path / "results.csv", self.path / "results.csv.gz"
        return packed if packed.is_file() and not plain.is_file() else plain

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.csv"

    @property
    def comparisons_path(self) -> Path:
        return self.path / "comparisons.csv"

    @property
    def method_comparisons_path(self) -> Path:
        return self.path / "method_comparisons.csv"

    @property
    def curves_path(self) -> Path:
        return self.path / "curves.csv"

    @property
    def json_path(self) -> Path:
        return self.path / "results.json"

    @property
    def plots_path(self) -> Path:
        return self.path / "plots"

    def finished(self) -> bool:
        """Whether the evaluation completed (its results.json is written last)."""
        return self.json_path.is_file()

    def can_resume(self) -> bool:
        return self.exists() and not self.finished()

    # units ----------------------------------------------------------------------------------------------------------

    def read_units(self) -> dict[tuple[str, str, int], dict[str, Any]]:
        """The finished units by (model, method, batch); a torn line is skipped."""
        units: dict[tuple[str, str, int], dict[str, Any]] = {}
        if not self.units_path.is_file():
            return units
        for line in self.units_path.read_text().splitlines():
            try:
                record = json.loads(line)
                units[unit_key(record["model"], record["method"], record["batch"])] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        return units

    def rewrite_units(self, units: dict[tuple[str, str, int], dict[str, Any]]) -> None:
        """Replace units.jsonl by ``units`` (atomic): drops a torn last line before new units are appended after it."""
        text = "".join(json.dumps(record) + "\n" for record in units.values())
        atomic_write_bytes(self.units_path, text.encode())

    def append_unit(self, record: dict[str, Any]) -> None:
        """Append one finished unit as a line, flushed to disk before the next unit starts."""
        with open(self.units_path, "a") as file:
            file.write(json.dumps(record) + "\n")
            file.flush()
            os.fsync(file.fileno())

    # results --------------------------------------------------------------------------------------------------------

    def write_table(self, path: Path, table: pd.DataFrame) -> None:
        buffer = io.StringIO()
        table.to_csv(buffer, index=False, na_rep="nan")
        atomic_write_bytes(path, buffer.getvalue().encode())

    def read_table(self, path: Path) -> pd.DataFrame:
        return pd.read_csv(path, keep_default_na=True, na_values=["nan"], dtype={"image": str, "label": str})

    def write_json(self, data: dict[str, Any]) -> None:
        """results.json, strict JSON: a NaN (an undefined interval, say) is written as null."""
        write_json(self.json_path, _strict(data))

    def read_json(self) -> dict[str, Any] | None:
        data = read_json(self.json_path)
        return data if isinstance(data, dict) else None

    def plots(self) -> list[Path]:
        return sorted(self.plots_path.glob("*.png")) if self.plots_path.is_dir() else []


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _strict(value.item())
    return value


def list_evaluations(root: str | os.PathLike[str]) -> Iterator[EvaluationDir]:
    """The evaluation folders directly inside ``root`` (started: a config or a status written), newest first."""
    return list_jobs(root, EvaluationDir)
