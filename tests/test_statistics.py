"""Statistics over images (``interpgrad.metrics.statistics``) and the tables built from the per-image values
(``interpgrad.metrics.tables``): bootstrap intervals that cover the mean at about their nominal rate, paired comparisons
that are antisymmetric and read the metric's direction, and summaries / comparisons of a small hand-made table."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from interpgrad.metrics import bootstrap_mean, paired_comparison
from interpgrad.metrics.statistics import verdict
from interpgrad.metrics.tables import (
    COMPARISON_COLUMNS,
    METHOD_COMPARISON_COLUMNS,
    RESULT_COLUMNS,
    SUMMARY_COLUMNS,
    compare_methods,
    compare_models,
    curve_bands,
    summarise,
)


def test_bootstrap_intervals_cover_the_true_mean_at_about_the_nominal_rate() -> None:
    """300 samples of 40 draws from N(1.5, 2^2): the 95 % percentile-bootstrap interval holds 1.5 in 90-98 % of them
    (the percentile bootstrap is a little narrow at n = 40: ~93 %). An 80 % interval is narrower and covers less."""
    generator = np.random.default_rng(12345)
    covered = covered_80 = 0
    for repetition in range(300):
        sample = generator.normal(1.5, 2.0, size=40)
        summary = bootstrap_mean(sample, seed=repetition)
        assert summary.mean == pytest.approx(sample.mean(), abs=1e-12) and summary.n == 40 and summary.excluded == 0
        assert summary.ci_low < summary.mean < summary.ci_high
        covered += summary.ci_low <= 1.5 <= summary.ci_high
        narrow = bootstrap_mean(sample, confidence=0.8, resamples=500, seed=repetition)
        assert summary.ci_low < narrow.ci_low and narrow.ci_high < summary.ci_high
        covered_80 += narrow.ci_low <= 1.5 <= narrow.ci_high
    assert 0.90 <= covered / 300 <= 0.98
    assert 0.70 <= covered_80 / 300 <= 0.88


def test_bootstrap_is_seeded_and_excludes_values_that_are_not_finite() -> None:
    values = [1.0, math.nan, 3.0, 2.0, math.inf, 6.0, 4.0, 5.0, -math.inf, 9.0]
    summary = bootstrap_mean(values, seed=3)
    assert (summary.mean, summary.n, summary.excluded) == (30 / 7, 7, 3)
    assert bootstrap_mean(values, seed=3) == summary
    assert bootstrap_mean(values, seed=4) != summary
    one = bootstrap_mean([math.nan, 2.5])
    assert (one.mean, one.n, one.excluded) == (2.5, 1, 1) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    none = bootstrap_mean([math.nan, math.nan])
    assert none.n == 0 and none.excluded == 2 and math.isnan(none.mean)


def shifted_pair(size: int = 30, shift: float = 0.3, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    generator = np.random.default_rng(seed)
    b = generator.normal(0.5, 0.2, size)
    return b + shift + generator.normal(0.0, 0.1, size), b


def test_paired_comparison_is_antisymmetric() -> None:
    a, b = shifted_pair()
    forward = paired_comparison(a, b, "higher")
    backward = paired_comparison(b, a, "higher")
    assert forward.verdict == "better" and backward.verdict == "worse"
    assert forward.difference == pytest.approx(np.mean(a - b), abs=1e-12)
    assert backward.difference == -forward.difference
    assert backward.ci_low == pytest.approx(-forward.ci_high, abs=1e-12)
    assert backward.ci_high == pytest.approx(-forward.ci_low, abs=1e-12)
    assert backward.p_value == forward.p_value and backward.n == forward.n == 30
    assert forward.p_value == pytest.approx(wilcoxon(a - b).pvalue)
    # an unclear comparison stays unclear both ways
    c, d = shifted_pair(shift=0.0, seed=2)
    unclear = {paired_comparison(c, d, "higher").verdict, paired_comparison(d, c, "higher").verdict}
    assert unclear == {"no clear difference"}


def test_the_metrics_direction_reads_the_verdict() -> None:
    a, b = shifted_pair()
    assert paired_comparison(a, b, "higher").verdict == "better"
    assert paired_comparison(a, b, "lower").verdict == "worse"  # a is higher: worse when lower is better
    assert paired_comparison(b, a, "lower").verdict == "better"


def test_nan_pairs_are_excluded() -> None:
    a, b = shifted_pair(size=12)
    a_holes, b_holes = a.copy(), b.copy()
    a_holes[2], b_holes[7], a_holes[9], b_holes[9] = math.nan, math.nan, math.nan, math.nan
    keep = np.ones(12, dtype=bool)
    keep[[2, 7, 9]] = False
    with_holes = paired_comparison(a_holes, b_holes, "higher")
    assert with_holes.n == 9
    assert with_holes == paired_comparison(a[keep], b[keep], "higher")


def test_all_equal_pairs_are_no_clear_difference() -> None:
    values = np.random.default_rng(0).random(20)
    result = paired_comparison(values, values.copy(), "higher")
    assert (result.difference, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert result.verdict == "no clear difference" and result.n == 20


def test_the_verdict_needs_both_the_interval_and_the_p_value() -> None:
    """Five differences, all positive: the interval excludes 0, but the exact Wilcoxon p is 2 / 2^5 = 0.0625 > 0.05.
    Six: p = 2 / 2^6 = 0.03125, a clear difference."""
    five = paired_comparison([1.1, 1.2, 1.3, 1.4, 1.5], [1.0] * 5, "higher")
    assert five.ci_low > 0 and five.p_value == pytest.approx(0.0625) and five.verdict == "no clear difference"
    six = paired_comparison([1.1, 1.2, 1.3, 1.4, 1.5, 1.6], [1.0] * 6, "higher")
    assert six.p_value == pytest.approx(0.03125) and six.verdict == "better"
    assert verdict(0.1, 0.05, 0.2, 0.01, "higher") == "better"
    assert verdict(0.1, -0.05, 0.2, 0.01, "higher") == "no clear difference"
    assert verdict(-0.1, -0.2, -0.05, 0.01, "lower") == "better"
    assert verdict(0.1, math.nan, math.nan, 0.01, "higher") == "no clear difference"


def test_paired_values_must_be_the_same_images() -> None:
    with pytest.raises(ValueError, match="same images"):
        paired_comparison([1.0, 2.0], [1.0], "higher")


# ---------------------------------------------------------------------------------------------------------------------
# Tables

DIRECTIONS = {"ins": "higher", "del": "lower"}
M1_INS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
GAIN = [0.1, 0.2, 0.3, 0.1, 0.2, 0.3]  # m2 - m1 on every image: mean 0.2, all positive


def hand_results() -> pd.DataFrame:
    """Two models, two methods (g, e), two metrics, six images. m2's rows come in reverse image order (pairs are
    matched by image, not by position); m2 has no e/del values."""
    rows = []

    def add(model: str, method: str, metric: str, values: list[float], reverse: bool = False) -> None:
        items = list(enumerate(values))
        for image, value in reversed(items) if reverse else items:
            rows.append((model, method, metric, str(image), value))

    add("m1", "g", "ins", M1_INS)
    add("m1", "g", "del", [0.5] * 6)
    add("m1", "e", "ins", [0.3, math.nan, 0.3, 0.3, 0.3, 0.3])
    add("m1", "e", "del", [0.4] * 6)
    add("m2", "g", "ins", [v + g for v, g in zip(M1_INS, GAIN)], reverse=True)
    add("m2", "g", "del", [0.5 + g for g in GAIN], reverse=True)
    add("m2", "e", "ins", [0.3, 0.3, math.nan, 0.3, 0.3, 0.3], reverse=True)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def test_summarise_a_hand_made_table() -> None:
    summary = summarise(hand_results(), DIRECTIONS, resamples=500)
    assert list(summary.columns) == [*SUMMARY_COLUMNS, "excluded"]
    keys = list(zip(summary["model"], summary["method"], summary["metric"]))
    assert keys == [("m1", "g", "ins"), ("m1", "g", "del"), ("m1", "e", "ins"), ("m1", "e", "del"), ("m2", "g", "ins"),
                    ("m2", "g", "del"), ("m2", "e", "ins")]
    assert summary["direction"].tolist() == ["higher", "lower", "higher", "lower", "higher", "lower", "higher"]
    np.testing.assert_allclose(summary["mean"], [0.35, 0.5, 0.3, 0.4, 0.55, 0.7, 0.3], atol=1e-12)
    assert summary["n"].tolist() == [6, 6, 5, 6, 6, 6, 5]
    assert summary["excluded"].tolist() == [0, 0, 1, 0, 0, 0, 1]
    first = bootstrap_mean(M1_INS, resamples=500)
    assert (summary.loc[0, "ci_low"], summary.loc[0, "ci_high"]) == (first.ci_low, first.ci_high)
    assert summary.loc[1, "ci_low"] == summary.loc[1, "ci_high"] == 0.5  # a constant metric: a zero-width interval


def test_compare_models_pairs_images_by_id() -> None:
    comparisons = compare_models(hand_results(), DIRECTIONS, resamples=500, models=["m1", "m2"])
    assert list(comparisons.columns) == [*COMPARISON_COLUMNS, "n"]
    assert list(zip(comparisons["method"], comparisons["metric"])) == [("g", "ins"), ("g", "del"), ("e", "ins")]
    assert set(comparisons["model_a"]) == {"m2"} and set(comparisons["model_b"]) == {"m1"}  # later minus earlier
    np.testing.assert_allclose(comparisons["difference"], [0.2, 0.2, 0.0], atol=1e-12)
    np.testing.assert_allclose(comparisons["p_value"], [0.03125, 0.03125, 1.0])
    # higher is better for ins, lower for del: the same gain is better on one and worse on the other
    assert comparisons["verdict"].tolist() == ["better", "worse", "no clear difference"]
    assert comparisons["n"].tolist() == [6, 6, 4]  # images 1 and 2 have a NaN on one side
    assert (comparisons["ci_low"] <= comparisons["difference"]).all()
    assert (comparisons["difference"] <= comparisons["ci_high"]).all()
    assert comparisons.loc[0, "ci_low"] > 0 and comparisons.loc[1, "ci_low"] > 0
    # the baseline listed second: the same comparison, the other way round
    swapped = compare_models(hand_results(), DIRECTIONS, resamples=500, models=["m2", "m1"])
    np.testing.assert_allclose(swapped["difference"], [-0.2, -0.2, 0.0], atol=1e-12)
    assert swapped["verdict"].tolist() == ["worse", "better", "no clear difference"]


def test_compare_methods_on_each_model() -> None:
    comparisons = compare_methods(hand_results(), DIRECTIONS, resamples=500, methods=["g", "e"])
    assert list(comparisons.columns) == [*METHOD_COMPARISON_COLUMNS, "n"]
    assert list(zip(comparisons["model"], comparisons["metric"])) == [("m1", "ins"), ("m1", "del"), ("m2", "ins")]
    assert set(comparisons["method_a"]) == {"g"} and set(comparisons["method_b"]) == {"e"}
    # m1 ins: g - e = [-0.2, (nan), 0, 0.1, 0.2, 0.3]; m1 del: 0.1 everywhere (worse: lower is better);
    # m2 ins: g - e on images 0, 1, 3, 4, 5 = [-0.1, 0.1, 0.2, 0.4, 0.6]
    np.testing.assert_allclose(comparisons["difference"], [0.08, 0.1, 0.24], atol=1e-12)
    assert comparisons["n"].tolist() == [5, 6, 5]
    assert comparisons.loc[1, "verdict"] == "worse" and comparisons.loc[1, "p_value"] < 0.05
    expected = paired_comparison(M1_INS, [0.3, math.nan, 0.3, 0.3, 0.3, 0.3], "higher", resamples=500)
    assert comparisons.loc[0, ["difference", "ci_low", "ci_high", "p_value", "verdict", "n"]].tolist() == [
        expected.difference, expected.ci_low, expected.ci_high, expected.p_value, expected.verdict, expected.n]


def test_curve_bands_average_the_finite_curves() -> None:
    curves = np.array([[1.0, 0.5, 0.0], [0.8, 0.4, 0.2], [np.nan, 0.1, 0.1]])
    bands = curve_bands({("m", "g", "deletion"): (curves, [0.0, 0.5, 1.0], None)}, resamples=200)
    np.testing.assert_allclose(bands["mean"], [0.9, 0.45, 0.1])
    assert bands["n"].tolist() == [2, 2, 2] and bands["point"].tolist() == [0, 1, 2]
    assert bands["x"].tolist() == [0.0, 0.5, 1.0] and bands["label"].tolist() == ["", "", ""]
    assert (bands["ci_low"] <= bands["mean"]).all() and (bands["mean"] <= bands["ci_high"]).all()
