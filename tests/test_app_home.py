"""The home page's "What the regularizer changes": each strong model against its baseline, read from the shipped
evaluation of the zoo (checkpoints/evaluations/shapes-strong) — its numbers are the evaluation's own comparisons."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from appkit.home import STRONG_EVALUATION, strong_pairs
from appkit.zoo_compare import oriented_comparisons
from interpgrad.metrics import load_evaluation
from test_app import ROOT, TIMEOUT
from test_app_evaluate import isolated_folders

SHIPPED_STRONG = ROOT / "checkpoints" / "evaluations" / STRONG_EVALUATION

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return isolated_folders(tmp_path, monkeypatch)


def _ship(folders: dict[str, Path]) -> None:
    (folders["checkpoints"] / "evaluations").mkdir()
    (folders["checkpoints"] / "evaluations" / STRONG_EVALUATION).symlink_to(SHIPPED_STRONG, target_is_directory=True)


def test_the_strong_pairs_are_the_evaluations_comparisons() -> None:
    evaluation = load_evaluation(SHIPPED_STRONG)
    pairs = strong_pairs(evaluation)
    assert [(pair.strong, pair.baseline) for pair in pairs] == [
        ("shapes-resnet18-guided-strong", "shapes-resnet18-baseline"),
        ("shapes-mobilenetv2-guided-strong", "shapes-mobilenetv2-baseline")]
    for pair in pairs:
        table = oriented_comparisons(evaluation, pair.strong, pair.baseline)
        assert sum(pair.counts.values()) == len(table) == len(evaluation.methods) * len(evaluation.metrics)
        assert pair.counts["better"] == int((table["verdict"] == "better").sum())
        assert pair.counts["worse"] == int((table["verdict"] == "worse").sum())
        assert set(pair.verdicts["method"]) <= {"gradient", "guided_backprop", "gradcam"}
        assert all(value is not None and 0 < value <= 1 for value in pair.accuracy)
        assert f"better on {pair.counts['better']}" in pair.sentence()
        assert pair.settings == "guided (lam 0.5, error cosine, batchnorm per_sample, gradient_of loss)"  # its metadata


def test_the_home_page_says_what_the_strong_models_change(folders: dict[str, Path]) -> None:
    _ship(folders)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(header.value == "What the regularizer changes" for header in at.subheader)
    lines = [element.value for element in at.markdown]
    assert any("shapes-resnet18-guided-strong" in line and "shapes-resnet18-baseline" in line and "better on" in line
               for line in lines), lines
    assert any("lam 0.5" in line for line in lines), lines  # the strong setting, as its metadata says


def test_the_home_page_without_the_shipped_evaluation_leaves_the_section_out(folders: dict[str, Path]) -> None:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not any(header.value == "What the regularizer changes" for header in at.subheader)


def test_the_models_page_compares_a_strong_model_with_its_baseline_first(folders: dict[str, Path]) -> None:
    _ship(folders)
    at = AppTest.from_file(str(ROOT / "pages" / "1_Models.py"), default_timeout=TIMEOUT).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="models.compare.a").value == "shapes-resnet18-guided-strong"
    assert at.selectbox(key="models.compare.b").value == "shapes-resnet18-baseline"
