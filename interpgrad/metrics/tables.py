"""Views of the tidy per-image table (``model, method, metric, image, value``): the summary with confidence intervals,
the paired comparisons of models and of methods, and the curves' means with bands. Nothing here recomputes a
metric: every number derives from the per-image values.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from .statistics import CONFIDENCE, RESAMPLES, bootstrap_mean, paired_comparison

__all__ = [
    "COMPARISON_COLUMNS",
    "CURVE_COLUMNS",
    "METHOD_COMPARISON_COLUMNS",
    "RESULT_COLUMNS",
    "SUMMARY_COLUMNS",
    "compare_methods",
    "compare_models",
    "curve_bands",
    "summarise",
]

RESULT_COLUMNS = ["model", "method", "metric", "image", "value"]
SUMMARY_COLUMNS = ["model", "method", "metric", "direction", "mean", "ci_low", "ci_high", "n"]
COMPARISON_COLUMNS = ["model_a", "model_b", "method", "metric", "difference", "ci_low", "ci_high", "p_value", "verdict"]
METHOD_COMPARISON_COLUMNS = ["model", "method_a", "method_b", "metric", "difference", "ci_low", "ci_high", "p_value",
                             "verdict"]
CURVE_COLUMNS = ["model", "method", "metric", "point", "x", "label", "mean", "ci_low", "ci_high", "n"]


def _ordered(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _groups(results: pd.DataFrame) -> dict[tuple[str, str, str], pd.Series]:
    """Per (model, method, metric), the values indexed by image, in the table's order."""
    return {key: group.set_index("image")["value"] for key, group in results.groupby(["model", "method", "metric"], sort=False)}


def summarise(
    results: pd.DataFrame, directions: Mapping[str, str], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, method, metric): direction, mean, bootstrap interval and n (NaN values excluded), plus
    ``excluded`` (how many images had no value: an empty mask, a constant reference map)."""
    rows = []
    for (model, method, metric), values in _groups(results).items():
        summary = bootstrap_mean(values.to_numpy(dtype=np.float64), confidence, resamples, seed)
        rows.append({"model": model, "method": method, "metric": metric, "direction": directions[metric],
                     "mean": summary.mean, "ci_low": summary.ci_low, "ci_high": summary.ci_high, "n": summary.n,
                     "excluded": summary.excluded})
    return pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, "excluded"])


def _paired(a: pd.Series, b: pd.Series, direction: str, confidence: float, resamples: int, seed: int):  # type: ignore[no-untyped-def]
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner")
    return paired_comparison(joined["a"].to_numpy(dtype=np.float64), joined["b"].to_numpy(dtype=np.float64), direction,
                             confidence, resamples, seed)


def compare_models(
    results: pd.DataFrame, directions: Mapping[str, str], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
    seed: int = 0, models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Each model against every model listed before it (list the baseline first), per (method, metric), on the images
    both were scored on: ``difference`` = mean of (model_a - model_b) per image."""
    groups = _groups(results)
    order = list(models) if models is not None else _ordered(results["model"])
    rows = []
    for earlier, later in itertools.combinations(order, 2):
        for method in _ordered(results["method"]):
            for metric in _ordered(results["metric"]):
                a, b = groups.get((later, method, metric)), groups.get((earlier, method, metric))
                if a is None or b is None:
                    continue
                comparison = _paired(a, b, directions[metric], confidence, resamples, seed)
                rows.append({"model_a": later, "model_b": earlier, "method": method, "metric": metric,
                             **{key: getattr(comparison, key) for key in ("difference", "ci_low", "ci_high", "p_value", "verdict")},
                             "n": comparison.n})
    return pd.DataFrame(rows, columns=[*COMPARISON_COLUMNS, "n"])


def compare_methods(
    results: pd.DataFrame, directions: Mapping[str, str], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
    seed: int = 0, methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """On each model, each method against every method listed after it (list the controls last), per metric."""
    groups = _groups(results)
    order = list(methods) if methods is not None else _ordered(results["method"])
    rows = []
    for model in _ordered(results["model"]):
        for first, second in itertools.combinations(order, 2):
            for metric in _ordered(results["metric"]):
                a, b = groups.get((model, first, metric)), groups.get((model, second, metric))
                if a is None or b is None:
                    continue
                comparison = _paired(a, b, directions[metric], confidence, resamples, seed)
                rows.append({"model": model, "method_a": first, "method_b": second, "metric": metric,
                             **{key: getattr(comparison, key) for key in ("difference", "ci_low", "ci_high", "p_value", "verdict")},
                             "n": comparison.n})
    return pd.DataFrame(rows, columns=[*METHOD_COMPARISON_COLUMNS, "n"])


def _curve_band(curves: np.ndarray, confidence: float, resamples: int, seed: int) -> tuple[np.ndarray, ...]:
    """Mean ``[T]`` of curves ``[n, T]`` over the images whose curve is finite, with a percentile-bootstrap band (the
    same resampled images for every point)."""
    curves = curves[np.isfinite(curves).all(axis=1)]
    count, points = curves.shape
    if count == 0:
        nan = np.full(points, np.nan)
        return nan, nan, nan, 0
    mean = curves.mean(axis=0)
    if count < 2:
        return mean, np.full(points, np.nan), np.full(points, np.nan), count
    generator = np.random.default_rng(seed)
    per_chunk = max(1, (1 << 22) // (count * points))
    means = np.empty((resamples, points))
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        means[start:stop] = curves[generator.integers(0, count, size=(stop - start, count))].mean(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    return mean, low, high, count


def curve_bands(
    curves: Mapping[tuple[str, str, str], tuple[np.ndarray, Sequence[float], Sequence[str] | None]],
    confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0,
) -> pd.DataFrame:
    """The mean curve of every (model, method, metric) with its band: ``curves[key] = (per-image curves [n, T],
    x [T], labels [T] or None)``."""
    rows = []
    for (model, method, metric), (values, xs, labels) in curves.items():
        mean, low, high, count = _curve_band(np.asarray(values, dtype=np.float64), confidence, resamples, seed)
        for point, x in enumerate(xs):
            rows.append({"model": model, "method": method, "metric": metric, "point": point, "x": float(x),
                         "label": labels[point] if labels else "", "mean": mean[point], "ci_low": low[point],
                         "ci_high": high[point], "n": count})
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)
