"""``interpgrad.evaluate``: every model x method x metric on the same images, with confidence intervals and paired
comparisons.

    result = interpgrad.evaluate(["checkpoints/shapes-resnet18-baseline", "checkpoints/shapes-resnet18-guided"],
                                 ["gradient", "gradcam", "random"], ["insertion", "deletion", "energy_pointing_game"],
                                 dataset="shapes", n=200, out="evaluations/starter")
    result.summary        # model, method, metric, direction, mean, ci_low, ci_high, n
    result.comparisons    # model_a, model_b, method, metric, difference, ci_low, ci_high, p_value, verdict

The work is split into units: one model's method on one batch of images. A unit computes the maps once and gives them
to every metric; its values are appended to ``DIR/units.jsonl`` as soon as it finishes, so an interrupted evaluation
resumes (``resume=True``) from the units it had written, with the same results (every random draw is seeded).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._version import __version__
from ..data.transforms import denormalize, normalize
from ..errors import ConfigError, InterpgradError, Remedy
from ..explain import explain, get_method
from ..jobs import reason_fields
from ..training.checkpoint import (atomic_write_bytes, checkpoint_path, file_sha256, input_normalisation,
                                   load_checkpoint, project_path)
from .core import MetricBatch, get_metric
from .datasets import EvaluationData, evaluation_data
from .folder import EvaluationDir, unit_key
from .plots import curves_figure, figure_png, summary_figure
from .presets import PRESETS
from .request import check_request
from .statistics import ALPHA, CONFIDENCE, RESAMPLES
from .tables import (
    COMPARISON_COLUMNS,
    METHOD_COMPARISON_COLUMNS,
    RESULT_COLUMNS,
    SUMMARY_COLUMNS,
    compare_methods,
    compare_models,
    curve_bands,
    summarise,
)

__all__ = ["Evaluation", "EvaluatedModel", "Stopped", "evaluate", "load_evaluation", "write_plots"]

ModelSpec = Union[str, Path, tuple[str, nn.Module, Mapping[str, Any]]]
Progress = Callable[[int, int, str], None]



class Stopped(InterpgradError):
    """Raised between units when ``should_stop()`` says so: every finished unit is saved, and the folder resumes."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"stopped after {done} of {total} units", Remedy("resume"))
        self.done, self.total = done, total


@dataclass
class EvaluatedModel:
    """A model taking part: its name in the tables, the module (eval mode), its metadata, where it came from."""

    name: str
    model: nn.Module
    metadata: Mapping[str, Any]
    path: str | None = None
    sha256: str | None = None

    @property
    def normalisation(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return input_normalisation(self.metadata)

    @property
    def image_size(self) -> int:
        return int(self.metadata["model"]["image_size"])

    @property
    def num_classes(self) -> int:
        return int(self.metadata["model"]["num_classes"])

    @property
    def device(self) -> torch.device:
        parameter = next(self.model.parameters(), None)
        return parameter.device if parameter is not None else torch.device("cpu")

    def describe(self) -> dict[str, Any]:
        """What results.json records of the model."""
        model = dict(self.metadata.get("model") or {})
        regularizer = self.metadata.get("regularizer") or {}
        return {"name": self.name, "path": self.path, "sha256": self.sha256, "model": model,
                "regularizer": regularizer, "data": {k: v for k, v in (self.metadata.get("data") or {}).items()
                                                      if k in ("name", "mean", "std", "image_size")},
                "metrics": self.metadata.get("metrics") or {}}


def _name_of(path: Path) -> str:
    return path.parent.name if path.name == "model.safetensors" else path.stem


def _load(spec: ModelSpec, device: torch.device) -> EvaluatedModel:
    if isinstance(spec, tuple):
        name, model, metadata = spec
        return EvaluatedModel(str(name), model.eval(), metadata)
    path = checkpoint_path(spec)
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {spec}")
    model, metadata = load_checkpoint(path, device=device)
    if device.type == "cpu":  # channels-last convolutions run 1.1-1.6x faster on a CPU (benchmarks/metrics.py)
        model = model.to(memory_format=torch.channels_last)
    return EvaluatedModel(_name_of(path), model, metadata, project_path(path), file_sha256(path))


def _unique_names(models: list[EvaluatedModel]) -> None:
    seen: set[str] = set()
    for model in models:
        base, number = model.name, 2
        while model.name in seen:
            model.name, number = f"{base}-{number}", number + 1
        seen.add(model.name)


class _Renormalised(nn.Module):
    """The judge of pixel perturbation, fed images normalised for another model: it re-normalises them its own way."""

    def __init__(self, judge: nn.Module, source: tuple, target: tuple) -> None:
        super().__init__()
        self.judge, self.source, self.target = judge, source, target

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.source == self.target:
            return self.judge(x)
        return self.judge(normalize(denormalize(x, *self.source), *self.target))


@dataclass
class Evaluation:
    """An evaluation's tables (pandas DataFrames: ``results`` is the source, the rest are views of it), its protocol
    and the folder it was written to (if any)."""

    results: pd.DataFrame
    summary: pd.DataFrame
    comparisons: pd.DataFrame
    method_comparisons: pd.DataFrame
    curves: pd.DataFrame
    protocol: dict[str, Any]
    folder: EvaluationDir | None = None

    @property
    def models(self) -> list[str]:
        return [model["name"] for model in self.protocol.get("models", [])]

    @property
    def methods(self) -> list[str]:
        return list(self.protocol.get("methods", {}))

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        return dict(self.protocol.get("metrics", {}))


def load_evaluation(folder: str | Path | EvaluationDir) -> Evaluation:
    """A finished evaluation read back from its folder (a ConfigError when it is not finished or not readable)."""
    folder = folder if isinstance(folder, EvaluationDir) else EvaluationDir(folder)
    protocol = folder.read_json()
    if protocol is None:
        raise ConfigError(f"{folder.path} holds no finished evaluation (no readable results.json)")
    try:
        tables = [folder.read_table(path) for path in (folder.results_path, folder.summary_path, folder.comparisons_path,
                                                       folder.method_comparisons_path, folder.curves_path)]
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ConfigError(f"{folder.path}: a result table cannot be read ({error})") from None
    summary = tables[1]
    excluded = {(row["model"], row["method"], row["metric"]): row.get("excluded", 0) for row in protocol.get("summary", [])}
    summary["excluded"] = [excluded.get((m, me, mt), 0) for m, me, mt in zip(summary["model"], summary["method"], summary["metric"])]
    return Evaluation(tables[0], summary, tables[2], tables[3], tables[4], protocol, folder)


# ---------------------------------------------------------------------------------------------------- the plan


@dataclass
class _Plan:
    """Everything checked and resolved before any work starts."""

    models: list[EvaluatedModel]
    judge: EvaluatedModel | None
    methods: dict[str, dict[str, Any]]  # method -> resolved parameters
    metrics: dict[str, dict[str, Any]]  # metric -> resolved parameters
    data: EvaluationData
    target: str
    preset: str | None
    device: torch.device
    batch_size: int
    max_batch: int
    seed: int
    confidence: float
    resamples: int
    batches: list[tuple[int, int]] = field(default_factory=list)

    def units(self) -> list[tuple[int, int, str]]:
        """(model index, batch index, method) in the order they run: a batch is prepared once per model."""
        return [(m, b, method) for m in range(len(self.models)) for b in range(len(self.batches)) for method in self.methods]


def _plan(
    models: Sequence[ModelSpec], methods: Sequence[str] | str, metrics: Sequence[str] | str, dataset: str, n: int,
    split: str, data_root: str | None, params: Mapping[str, Mapping[str, Any]] | None,
    method_params: Mapping[str, Mapping[str, Any]] | None, preset: str | None, target: str | None,
    judge: ModelSpec | None, seed: int, batch_size: int, max_batch: int, device: str, confidence: float, resamples: int,
) -> _Plan:
    request = check_request(methods, metrics, dataset, params, method_params, preset, target, batch_size, max_batch,
                            confidence, resamples, device)
    if not models:
        raise ConfigError("choose at least one model (--checkpoint)")
    resolved_device = request.device
    loaded = [_load(spec, resolved_device) for spec in models]
    _unique_names(loaded)
    sizes = sorted({model.image_size for model in loaded})
    if len(sizes) > 1:
        raise ConfigError(f"the models expect different input sizes ({', '.join(map(str, sizes))} px); evaluate them separately")
    data = evaluation_data(dataset, split, n, sizes[0], data_root)
    judge_model = _load(judge, resolved_device) if judge is not None else None
    for model in loaded + ([judge_model] if judge_model else []):
        if model.num_classes != len(data.class_names):
            raise ConfigError(f"{model.name} has {model.num_classes} classes but {data.dataset} has {len(data.class_names)}")
        if model.image_size != data.image_size:
            raise ConfigError(f"{model.name} expects {model.image_size} px images, the evaluation's are {data.image_size} px")
    batches = [(start, min(len(data), start + int(batch_size))) for start in range(0, len(data), int(batch_size))]
    return _Plan(loaded, judge_model, request.methods, request.metrics, data, request.target, preset, resolved_device,
                 int(batch_size), int(max_batch), int(seed), float(confidence), int(resamples), batches)


# ---------------------------------------------------------------------------------------------------- the work


def _run_unit(plan: _Plan, model: EvaluatedModel, batch_index: int, x: torch.Tensor, method: str,
              labels: torch.Tensor, masks: torch.Tensor | None) -> dict[str, Any]:
    """One method of one model on one batch: the maps once, then every metric. Returns the unit's record."""
    began = time.perf_counter()
    method_params = plan.methods[method]
    target = None if plan.target == "predicted" else labels

    def explainer(network: nn.Module, inputs: torch.Tensor, classes: torch.Tensor):  # type: ignore[no-untyped-def]
        return explain(network, inputs, method, target=classes, **method_params)

    explanation = explain(model.model, x, method, target=target, **method_params)
    judge = None
    if plan.judge is not None:
        judge = _Renormalised(plan.judge.model, model.normalisation, plan.judge.normalisation)
    mean, std = model.normalisation
    batch = MetricBatch.from_explanation(model.model, x, explanation, mean=mean, std=std, labels=labels, masks=masks,
                                         explainer=explainer, judge=judge, max_batch=plan.max_batch)
    values: dict[str, list[float]] = {}
    curves: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, params in plan.metrics.items():
        try:
            result = get_metric(name)(batch, **params)
        except InterpgradError as error:
            errors[name] = str(error)
            continue
        values[name] = result.values.tolist()
        if result.curve is not None:
            curves[name] = {"values": result.curve.tolist(), "x": list(result.curve_x or []),
                            "labels": list(result.curve_labels) if result.curve_labels else None}
    start, stop = plan.batches[batch_index]
    return {"model": model.name, "method": method, "batch": batch_index, "start": start, "stop": stop, "values": values,
            "curves": curves, "errors": errors, "targets": explanation.target.tolist(),
            "seconds": time.perf_counter() - began}


def _curve_value(name: str, params: Mapping[str, Any]) -> str:
    if name in ("insertion", "deletion"):
        return f"{params['score']} of the explained class"
    if name == "pixel_perturbation":
        return "accuracy" if params["score"] == "accuracy" else "probability of the true class"
    if name == "randomisation":
        return f"{params['similarity']} with the original map"
    return name


def _versions() -> dict[str, str]:
    import scipy

    return {"interpgrad": __version__, "torch": torch.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "scipy": scipy.__version__, "python": sys.version.split()[0], "platform": platform.platform()}


def _protocol(plan: _Plan, config: Mapping[str, Any]) -> dict[str, Any]:
    """results.json's description of what was measured and how."""
    metrics = {}
    for name, params in plan.metrics.items():
        metric = get_metric(name)
        metrics[name] = {**metric.to_dict(), "params": params, "protocol": metric.describe(params),
                         "curve_value": _curve_value(name, params)}
    methods = {name: {"family": get_method(name).family, "params": params, "source": get_method(name).source}
               for name, params in plan.methods.items()}
    return {
        "format": "interpgrad-evaluation",
        "format_version": 1,
        "created_at": config.get("created_at"),
        "data": {"dataset": plan.data.dataset, "split": plan.data.split, "n": len(plan.data),
                 "image_size": plan.data.image_size, "has_masks": plan.data.has_masks,
                 "class_names": list(plan.data.class_names), "images": list(plan.data.ids)},
        "target": plan.target,
        "preset": plan.preset,
        "preset_description": PRESETS[plan.preset]["description"] if plan.preset else None,
        "statistics": {"confidence": plan.confidence, "resamples": plan.resamples, "alpha": ALPHA, "seed": plan.seed,
                       "bootstrap": "percentile bootstrap over images; paired bootstrap and two-sided Wilcoxon "
                                    "signed-rank test for comparisons (verdict: interval excludes 0 and p < alpha; "
                                    "no correction for multiple comparisons)"},
        "models": [model.describe() for model in plan.models],
        "judge": plan.judge.describe() if plan.judge else None,
        "methods": methods,
        "metrics": metrics,
        "batch_size": plan.batch_size,
        "max_batch": plan.max_batch,
        "device": str(plan.device),
        "versions": _versions(),
    }


def _tables(plan: _Plan, units: Mapping[tuple[str, str, int], dict[str, Any]]) -> tuple[pd.DataFrame, dict, list]:
    """The tidy table, the per-image curves and the problems, from the unit records (in the plan's order)."""
    ids = plan.data.ids
    columns: dict[str, list[Any]] = {column: [] for column in RESULT_COLUMNS}
    curves: dict[tuple[str, str, str], list] = defaultdict(list)
    axes: dict[tuple[str, str, str], tuple[list, list | None]] = {}
    problems: dict[tuple[str, str, str], str] = {}
    for model_index in range(len(plan.models)):
        model = plan.models[model_index].name
        for method in plan.methods:
            for metric in plan.metrics:
                for batch_index, (start, stop) in enumerate(plan.batches):
                    record = units.get(unit_key(model, method, batch_index))
                    if record is None:
                        continue
                    if "error" in record:
                        problems[(model, method, "")] = record["error"]
                        continue
                    if metric in record["errors"]:
                        problems[(model, method, metric)] = record["errors"][metric]
                        continue
                    values = record["values"].get(metric)
                    if values is None:
                        continue
                    columns["model"] += [model] * len(values)
                    columns["method"] += [method] * len(values)
                    columns["metric"] += [metric] * len(values)
                    columns["image"] += list(ids[start:stop])
                    columns["value"] += [math.nan if value is None else value for value in values]
                    curve = record["curves"].get(metric)
                    if curve is not None:
                        curves[(model, method, metric)] += curve["values"]
                        axes[(model, method, metric)] = (curve["x"], curve["labels"])
    results = pd.DataFrame(columns, columns=RESULT_COLUMNS)
    curve_data = {key: (np.asarray(values, dtype=np.float64), *axes[key]) for key, values in curves.items()}
    issues = [{"model": m, "method": me, "metric": mt or None, "reason": reason} for (m, me, mt), reason in problems.items()]
    return results, curve_data, issues


def _finish(plan: _Plan, units: Mapping[tuple[str, str, int], dict[str, Any]], config: Mapping[str, Any],
            folder: EvaluationDir | None) -> Evaluation:
    """The tables, statistics and protocol from the finished units (and the folder's files, when there is one)."""
    began = time.perf_counter()
    results, curve_data, problems = _tables(plan, units)
    directions = {name: get_metric(name).direction for name in plan.metrics}
    options = {"confidence": plan.confidence, "resamples": plan.resamples, "seed": plan.seed}
    summary = summarise(results, directions, **options)
    comparisons = compare_models(results, directions, models=[model.name for model in plan.models], **options)
    method_comparisons = compare_methods(results, directions, methods=list(plan.methods), **options)
    curves = curve_bands(curve_data, **options)
    protocol = _protocol(plan, config)
    timing: dict[str, dict[str, float]] = defaultdict(dict)
    for record in units.values():
        timing[record["model"]][record["method"]] = timing[record["model"]].get(record["method"], 0.0) + record.get("seconds", 0.0)
    protocol.update({
        "finished_at": time.time(),
        "seconds": sum(record.get("seconds", 0.0) for record in units.values()) + time.perf_counter() - began,
        "seconds_per_model_method": timing,
        "problems": problems,
        "summary": summary.to_dict(orient="records"),
        "comparisons": comparisons.to_dict(orient="records"),
    })
    evaluation = Evaluation(results, summary, comparisons, method_comparisons, curves, protocol, folder)
    if folder is not None:
        _write(folder, evaluation)
    return evaluation


def _write(folder: EvaluationDir, evaluation: Evaluation) -> None:
    """The tables, the plots, then results.json (last: its presence says the evaluation finished)."""
    folder.write_table(folder.results_path, evaluation.results)
    folder.write_table(folder.summary_path, evaluation.summary[SUMMARY_COLUMNS])
    folder.write_table(folder.comparisons_path, evaluation.comparisons[COMPARISON_COLUMNS])
    folder.write_table(folder.method_comparisons_path, evaluation.method_comparisons[METHOD_COMPARISON_COLUMNS])
    folder.write_table(folder.curves_path, evaluation.curves)
    write_plots(folder, evaluation)
    folder.write_json(evaluation.protocol)


def write_plots(folder: EvaluationDir, evaluation: Evaluation) -> list[Path]:
    """``plots/summary.png`` and ``plots/curves_<metric>.png`` for every metric with a curve."""
    written = []
    if not evaluation.summary.empty:
        path = folder.plots_path / "summary.png"
        atomic_write_bytes(path, figure_png(summary_figure(evaluation.summary, evaluation.metrics)))
        written.append(path)
    for metric in dict.fromkeys(evaluation.curves["metric"]):
        path = folder.plots_path / f"curves_{metric}.png"
        atomic_write_bytes(path, figure_png(curves_figure(evaluation.curves, metric, evaluation.metrics.get(metric, {}))))
        written.append(path)
    return written


def _config(models: Sequence[ModelSpec], methods: list[str], metrics: list[str], dataset: str, n: int, split: str,
            data_root: str | None, params: Mapping | None, method_params: Mapping | None, preset: str | None,
            target: str | None, judge: ModelSpec | None, seed: int, batch_size: int, max_batch: int, device: str,
            confidence: float, resamples: int) -> dict[str, Any]:
    """The evaluation's options as JSON (config.json): what --resume checks and reruns."""
    def path_of(spec: ModelSpec) -> str:
        return spec[0] if isinstance(spec, tuple) else str(spec)

    return {"checkpoints": [path_of(spec) for spec in models], "methods": methods, "metrics": metrics,
            "dataset": dataset, "n": int(n), "split": split, "data_root": data_root,
            "params": {k: dict(v) for k, v in (params or {}).items()},
            "method_params": {k: dict(v) for k, v in (method_params or {}).items()}, "preset": preset,
            "target": target, "judge": path_of(judge) if judge is not None else None, "seed": int(seed),
            "batch_size": int(batch_size), "max_batch": int(max_batch), "device": device,
            "confidence": float(confidence), "resamples": int(resamples)}


_RESUME_KEYS = ("dataset", "split", "n", "data_root", "seed", "batch_size", "confidence", "resamples", "measures")
"""What a resumed evaluation must share with the one it continues (it may change the device and max_batch)."""


def _measures(plan: _Plan) -> dict[str, Any]:
    """What the evaluation measures, resolved (parameters with their defaults, the preset applied, the target, the
    models and the judge by name and content): equal requests give equal values however they were typed."""
    measures = {"methods": plan.methods, "metrics": plan.metrics, "target": plan.target,
                "models": [[model.name, model.sha256] for model in plan.models],
                "judge": [plan.judge.name, plan.judge.sha256] if plan.judge else None}
    return json.loads(json.dumps(measures))


def _check_resumable_with(folder: EvaluationDir, saved: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """A ConfigError unless ``config`` measures what the saved evaluation measured (else its units would mix)."""
    if not saved:
        raise ConfigError(f"there is no evaluation to resume in {folder.path} (no config.json)")
    for key in _RESUME_KEYS:
        if json.loads(json.dumps(config.get(key))) != saved.get(key):
            what = ("other methods, metrics, parameters, target or models" if key == "measures"
                    else f"{key}={saved.get(key)!r}")
            raise ConfigError(f"{folder.path} was started with {what}; resume with the same settings (only the device "
                              f"and max_batch may change) or start a new evaluation")


def evaluate(
    models: Sequence[ModelSpec],
    methods: Sequence[str] | str,
    metrics: Sequence[str] | str,
    dataset: str = "shapes",
    n: int = 100,
    *,
    split: str = "val",
    data_root: str | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    method_params: Mapping[str, Mapping[str, Any]] | None = None,
    preset: str | None = None,
    target: str | None = None,
    judge: ModelSpec | None = None,
    seed: int = 0,
    batch_size: int = 32,
    max_batch: int = 0,
    device: str = "auto",
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    out: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Evaluation:
    """Score every method of every model with every metric on the first ``n`` images of ``dataset``'s ``split``.

    Args:
        models: checkpoint paths (files or run folders), or ``(name, model, metadata)`` triples; list the baseline
            first: ``comparisons`` compares each model with every model listed before it.
        methods, metrics: registry names (``interpgrad.methods()``, ``interpgrad.metrics()``), a list or a
            comma-separated string, or ``"all"``. Methods are compared with the ones listed after them on each model
            (list the controls ``random`` and ``edge`` last).
        dataset, n, split, data_root: the images (``shapes`` validation split by default, with masks).
        params: metric -> {parameter: value}; method_params: method -> {parameter: value}; preset: a named protocol
            (``interpgrad.metrics.PRESETS``) applied before ``params``; target: ``predicted`` (default) or ``label``,
            the class every map explains and every metric scores.
        judge: a checkpoint whose predictions pixel perturbation scores, fed the perturbations of each model's maps
            (Srinivas & Fleuret's second experiment); None = each model judges itself.
        seed: of the bootstrap and of every random draw; batch_size: images per unit (maps per call);
            max_batch: images per forward pass of the perturbation metrics (0 = automatic); device: auto, cpu, cuda.
        out: a folder to write (see ``interpgrad.metrics.folder``); it must not hold another evaluation unless
            ``resume``. progress(done, total, message) after each unit; should_stop() is polled between units.

    Returns:
        An Evaluation (tables as pandas DataFrames, the protocol as a dict).
    """
    folder = EvaluationDir(out) if out is not None else None
    if resume:
        if folder is None:
            raise ConfigError("resume needs the evaluation's folder (out)")
        if folder.finished():
            raise ConfigError(f"{folder.path} has finished; its results are there")
    elif folder is not None and folder.exists():
        raise ConfigError(f"{folder.path} already holds an evaluation; pass --resume to continue it or choose another --out")
    plan = _plan(models, methods, metrics, dataset, n, split, data_root, params, method_params, preset, target, judge,
                 seed, batch_size, max_batch, device, confidence, resamples)
    config = _config(models, list(plan.methods), list(plan.metrics), dataset, n, split, data_root, params, method_params,
                     preset, target, judge, seed, batch_size, max_batch, device, confidence, resamples)
    units: dict[tuple[str, str, int], dict[str, Any]] = {}
    config["measures"] = _measures(plan)
    if folder is not None:
        saved = folder.read_config() or {}
        if resume:
            _check_resumable_with(folder, saved, config)
        config["created_at"] = saved.get("created_at", time.time())
        try:
            folder.path.mkdir(parents=True, exist_ok=True)
            if resume:
                units = folder.read_units()
                folder.rewrite_units(units)
            folder.write_config(config)
        except OSError as error:
            raise ConfigError(f"cannot write the evaluation folder {folder.path}: {error.strerror or error}") from None
    else:
        config["created_at"] = time.time()

    status = _Status(folder, len(plan.units()))
    try:
        _work(plan, units, folder, status, progress, should_stop)
        evaluation = _finish(plan, units, config, folder)
    except BaseException as error:
        status.failed(error)
        raise
    status.finished(evaluation.protocol["seconds"])
    return evaluation


class _Status:
    """status.json of an evaluation folder (nothing without a folder): running with the units done, at most every
    second; stopped; failed with the reason; finished."""

    def __init__(self, folder: EvaluationDir | None, total: int) -> None:
        self.folder, self.total, self.written = folder, total, 0.0
        self.started = time.time()

    def write(self, state: str, **details: Any) -> None:
        if self.folder is not None:
            self.folder.write_status(state, pid=os.getpid(), total=self.total, started_at=self.started, **details)

    def running(self, done: int, message: str, force: bool = False) -> None:
        if force or time.monotonic() - self.written >= 1.0:
            self.write("running", done=done, fraction=done / max(1, self.total), message=message,
                       seconds=time.time() - self.started)
            self.written = time.monotonic()

    def failed(self, error: BaseException) -> None:
        if isinstance(error, Stopped):
            self.write("stopped", done=error.done, fraction=error.done / max(1, self.total), **reason_fields(error),
                       message="stopped", seconds=time.time() - self.started)
        elif isinstance(error, KeyboardInterrupt):
            self.write("stopped", **reason_fields("interrupted", Remedy("resume")), message="interrupted")
        else:
            with contextlib.suppress(OSError):
                self.write("failed", **reason_fields(error), message="failed")

    def finished(self, seconds: float) -> None:
        self.write("finished", done=self.total, fraction=1.0, message="finished", seconds=seconds, finished_at=time.time())


def _work(plan: _Plan, units: dict[tuple[str, str, int], dict[str, Any]], folder: EvaluationDir | None, status: _Status,
          progress: Progress | None, should_stop: Callable[[], bool] | None) -> None:
    """Run every unit not in ``units`` (adding each to it, and to the folder, as it finishes)."""
    todo = plan.units()
    total, done = len(todo), sum(unit_key(plan.models[m].name, method, b) in units for m, b, method in todo)
    status.running(done, "starting", force=True)
    failed_methods: dict[tuple[str, str], str] = {}
    prepared: tuple[int, int] | None = None
    x = labels = masks = None
    for model_index, batch_index, method in todo:
        model = plan.models[model_index]
        key = unit_key(model.name, method, batch_index)
        if key in units:
            continue
        if should_stop is not None and should_stop():
            raise Stopped(done, total)
        start, stop = plan.batches[batch_index]
        if prepared != (model_index, batch_index):
            x = plan.data.inputs(start, stop, *model.normalisation, model.device)
            labels = torch.tensor(plan.data.labels[start:stop], device=model.device)  # a copy: the data are read-only
            masks = None if plan.data.masks is None else torch.tensor(plan.data.masks[start:stop])
            prepared = (model_index, batch_index)
        if (model.name, method) in failed_methods:
            record = {"model": model.name, "method": method, "batch": batch_index,
                      "error": failed_methods[(model.name, method)], "seconds": 0.0}
        else:
            try:
                record = _run_unit(plan, model, batch_index, x, method, labels, masks)
            except InterpgradError as error:  # the method cannot explain this model (e.g. CAM without a GAP head)
                failed_methods[(model.name, method)] = str(error)
                record = {"model": model.name, "method": method, "batch": batch_index, "error": str(error), "seconds": 0.0}
        units[key] = record
        if folder is not None:
            folder.append_unit(record)
        done += 1
        message = f"{model.name}: {method}, images {start + 1}-{stop} of {len(plan.data)}"
        status.running(done, message, force=done == total)
        if progress is not None:
            progress(done, total, message)

