"""Statistics over images: means with bootstrap confidence intervals, and paired comparisons read as verdicts.

- ``bootstrap_mean``: the mean of the finite values with a percentile-bootstrap interval (images resampled with
  replacement, ``resamples`` times, from a seeded generator): the same numbers every run.
- ``paired_comparison``: two models (or two methods) scored on the same images: the mean of the per-image differences
  a - b, its paired-bootstrap interval, and the two-sided Wilcoxon signed-rank p-value. The verdict reads the metric's
  direction: "better" (for a) or "worse" when the interval excludes 0 **and** p < alpha, else "no clear difference".
  Swapping a and b negates the difference, mirrors the interval and flips the verdict (the same resamples are drawn).

p-values are per comparison: a table of many comparisons is not corrected for their number (with 0.05, about one in
twenty true null comparisons reads as a difference by chance).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

__all__ = [
    "ALPHA",
    "CONFIDENCE",
    "RESAMPLES",
    "VERDICTS",
    "PairedComparison",
    "Summary",
    "bootstrap_mean",
    "paired_comparison",
    "verdict",
]

CONFIDENCE = 0.95
RESAMPLES = 2000
ALPHA = 0.05
VERDICTS = ("better", "worse", "no clear difference")


@dataclass(frozen=True)
class Summary:
    """The mean of ``n`` finite values with its confidence interval (NaN when n < 2), and how many values were
    excluded (NaN: undefined for that image)."""

    mean: float
    ci_low: float
    ci_high: float
    n: int
    excluded: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PairedComparison:
    """a - b on the images where both are defined: mean difference, its interval, the Wilcoxon p-value, the verdict
    for a, and the number of pairs."""

    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    n: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bootstrap_means(values: np.ndarray, resamples: int, seed: int, chunk: int = 1 << 22) -> np.ndarray:
    """Means of ``resamples`` resamples of ``values`` (indices drawn at once per chunk of ~4M, so memory stays bounded)."""
    generator = np.random.default_rng(seed)
    count = len(values)
    per_chunk = max(1, chunk // max(1, count))
    means = np.empty(resamples)
    for start in range(0, resamples, per_chunk):
        stop = min(resamples, start + per_chunk)
        means[start:stop] = values[generator.integers(0, count, size=(stop - start, count))].mean(axis=1)
    return means


def bootstrap_mean(
    values: Sequence[float] | np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> Summary:
    """The mean of the finite ``values`` and its percentile-bootstrap ``confidence`` interval; NaN values are
    excluded and counted."""
    raw = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = raw[np.isfinite(raw)]
    excluded = int(raw.size - finite.size)
    if finite.size == 0:
        return Summary(math.nan, math.nan, math.nan, 0, excluded)
    mean = float(finite.mean())
    if finite.size < 2:
        return Summary(mean, math.nan, math.nan, int(finite.size), excluded)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(_bootstrap_means(finite, resamples, seed), [tail, 100.0 - tail])
    return Summary(mean, float(low), float(high), int(finite.size), excluded)


def _wilcoxon(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the differences (zeros dropped); 1 when every difference is 0."""
    if not np.any(differences != 0):
        return 1.0
    from scipy.stats import wilcoxon

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on ties and on the normal approximation
        result = wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    p_value = float(result.pvalue)
    return p_value if math.isfinite(p_value) else 1.0


def verdict(difference: float, ci_low: float, ci_high: float, p_value: float, direction: str, alpha: float = ALPHA) -> str:
    """"better" / "worse" (for a, given whether higher or lower is better) when the interval excludes 0 and
    p < alpha; "no clear difference" otherwise."""
    clear = math.isfinite(ci_low) and math.isfinite(ci_high) and (ci_low > 0 or ci_high < 0) and p_value < alpha
    if not clear:
        return "no clear difference"
    return "better" if (difference > 0) == (direction == "higher") else "worse"


def paired_comparison(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    direction: str,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
    alpha: float = ALPHA,
) -> PairedComparison:
    """Compare per-image values ``a`` and ``b`` (same images, same order) for a metric whose better ``direction`` is
    "higher" or "lower"; pairs where either is NaN are left out."""
    first = np.asarray(a, dtype=np.float64).reshape(-1)
    second = np.asarray(b, dtype=np.float64).reshape(-1)
    if first.shape != second.shape:
        raise ValueError(f"paired values need the same images: {first.size} against {second.size}")
    keep = np.isfinite(first) & np.isfinite(second)
    differences = first[keep] - second[keep]
    summary = bootstrap_mean(differences, confidence, resamples, seed)
    p_value = _wilcoxon(differences) if differences.size else math.nan
    return PairedComparison(summary.mean, summary.ci_low, summary.ci_high, p_value,
                            verdict(summary.mean, summary.ci_low, summary.ci_high, p_value, direction, alpha),
                            int(differences.size))
