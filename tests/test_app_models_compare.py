"""The Models page's "Compare the models" section through AppTest: the zoo table's numbers are the shipped evaluation's
summary, the two-model verdicts are its comparisons table (read for model A, also when stored the other way round),
and a model or a zoo without an evaluation is told how to make one."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from interpgrad.metrics import load_evaluation
from test_app import ROOT, TIMEOUT
from test_app_evaluate import isolated_folders

PAGE = str(ROOT / "pages" / "1_Models.py")
SHIPPED_MODELS = ("shapes-resnet18-baseline", "shapes-resnet18-guided")
SHIPPED_EVALUATION = ROOT / "checkpoints" / "evaluations" / "shapes-starter"
BASELINE, GUIDED = SHIPPED_MODELS


@pytest.fixture(autouse=True)
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The Evaluate page tests' folders: the shipped models alone in a checkpoints folder (no shipped evaluation
    unless a test links it); runs, uploads and evaluations in temporary folders."""
    return isolated_folders(tmp_path, monkeypatch)


def _ship_evaluation(folders: dict[str, Path]) -> None:
    (folders["checkpoints"] / "evaluations").mkdir()
    (folders["checkpoints"] / "evaluations" / "shapes-starter").symlink_to(SHIPPED_EVALUATION, target_is_directory=True)


def _opened() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _table(at: AppTest, *columns: str) -> pd.DataFrame:
    for element in at.dataframe:
        if set(columns) <= set(element.value.columns):
            return element.value
    raise AssertionError(f"no table with columns {columns}: {[list(e.value.columns) for e in at.dataframe]}")


def _data(table: object) -> pd.DataFrame:
    """A dataframe element's value without its styling."""
    return table.data if hasattr(table, "data") else table  # type: ignore[attr-defined]


def _messages(at: AppTest) -> list[str]:
    return [element.value for kind in ("info", "warning", "caption", "markdown") for element in at.get(kind)]


def test_the_zoo_table_shows_the_evaluations_summary(folders: dict[str, Path]) -> None:
    _ship_evaluation(folders)
    at = _opened()
    assert at.selectbox(key="models.compare.evaluation").value.endswith("shapes-starter")
    assert at.multiselect(key="models.compare.methods").value == ["gradcam", "gradient"]
    table = _table(at, "model", "method", "accuracy", "val cosine", "insertion ↑", "deletion ↓")
    summary = load_evaluation(SHIPPED_EVALUATION).summary.set_index(["model", "method", "metric"])
    assert sorted(zip(table["model"], table["method"])) == sorted(
        (model, method) for model in SHIPPED_MODELS for method in ("gradcam", "gradient"))
    for metric, title in (("insertion", "insertion ↑"), ("deletion", "deletion ↓"),
                          ("energy_pointing_game", "energy_pointing_game ↑"), ("average_drop", "average_drop ↓ (%)")):
        for _, row in table.iterrows():
            expected = summary.loc[(row["model"], row["method"], metric)]
            assert row[title] == pytest.approx(float(expected["mean"]), rel=1e-12)
            low, high = (float(part) for part in row[f"{title} CI"].strip("[]").split(","))
            assert low == pytest.approx(float(expected["ci_low"]), rel=1e-3)
            assert high == pytest.approx(float(expected["ci_high"]), rel=1e-3)
    assert pd.api.types.is_float_dtype(table["insertion ↑"])  # numeric: the column sorts by value
    accuracy = dict(zip(table["model"], table["accuracy"]))
    assert accuracy[BASELINE] == pytest.approx(0.9925) and accuracy[GUIDED] == pytest.approx(0.986)
    assert all(math.isfinite(value) for value in table["val cosine"])
    assert not any("Not in this evaluation" in text for text in _messages(at))


@pytest.mark.parametrize("model_a, model_b", [(GUIDED, BASELINE), (BASELINE, GUIDED)])
def test_the_verdicts_are_the_evaluations_comparisons(folders: dict[str, Path], model_a: str, model_b: str) -> None:
    _ship_evaluation(folders)
    at = _opened()
    at.multiselect(key="models.compare.methods").set_value(["gradcam", "gradient", "smoothgrad"]).run()
    at.selectbox(key="models.compare.a").set_value(model_a).run()
    at.selectbox(key="models.compare.b").set_value(model_b).run()
    assert not at.exception
    shown = _data(_table(at, "method", "metric", "difference", "p-value", "result", "verdict"))
    stored = load_evaluation(SHIPPED_EVALUATION).comparisons
    stored = stored[stored["method"].isin(["gradcam", "gradient", "smoothgrad"])]
    assert len(shown) == len(stored) == 3 * 15
    sign = 1.0 if (model_a, model_b) == tuple(stored[["model_a", "model_b"]].iloc[0]) else -1.0
    flipped = {"better": "worse", "worse": "better", "no clear difference": "no clear difference"}
    by_pair = {(row["method"], row["metric"].split(" ")[0]): row for row in shown.to_dict("records")}
    for row in stored.to_dict("records"):
        seen = by_pair[(row["method"], row["metric"])]
        assert seen["difference"] == pytest.approx(sign * row["difference"], rel=1e-12)
        assert seen["p-value"] == pytest.approx(row["p_value"], rel=1e-12)
        assert seen["verdict"] == (row["verdict"] if sign > 0 else flipped[row["verdict"]])
        low, high = (float(part) for part in seen["interval"].strip("[]").split(","))
        expected = sorted((sign * row["ci_low"], sign * row["ci_high"]))
        assert (low, high) == (pytest.approx(expected[0], rel=1e-3, abs=1e-12), pytest.approx(expected[1], rel=1e-3,
                                                                                               abs=1e-12))
        words = {"better": f"{model_a} better", "worse": f"{model_b} better"}
        assert seen["result"] == words.get(seen["verdict"], "no clear difference")
    counts = shown["verdict"].value_counts()
    summary = next(text for text in _messages(at) if text.startswith("Over 45 (method, metric) pairs"))
    assert f"**{model_a} better** on {counts.get('better', 0)}," in summary


def test_without_an_evaluation_the_page_says_how_to_make_one(folders: dict[str, Path]) -> None:
    at = _opened()
    text = " ".join(_messages(at))
    assert "No finished evaluation yet" in text and "Evaluate page" in text and "python -m interpgrad evaluate" in text
    assert not any(box.key == "models.compare.evaluation" for box in at.selectbox)


def test_a_model_missing_from_the_evaluation_is_named_with_how_to_evaluate_it(folders: dict[str, Path]) -> None:
    _ship_evaluation(folders)
    folders["run"].mkdir()
    shutil.copytree(ROOT / "checkpoints" / GUIDED, folders["run"] / "my-run")
    at = _opened()
    note = next(text for text in _messages(at) if text.startswith("Not in this evaluation"))
    assert "my-run" in note and "Evaluate page" in note and "python -m interpgrad evaluate" in note
    table = _table(at, "model", "insertion ↑")
    assert set(table["model"]) == set(SHIPPED_MODELS)  # the run is not matched to the evaluated guided model
