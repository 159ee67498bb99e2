"""Parameters that do not apply are not shown in the app (AppTest): a widget appears when its controlling value makes
it apply and goes when it stops applying, and what a page sends holds no value of a hidden widget, so the command
line it launches passes the CLI's own check."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from interpgrad.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    folders = {"run": tmp_path / "runs", "upload": tmp_path / "uploads", "evaluation": tmp_path / "evaluations"}
    monkeypatch.setenv("INTERPGRAD_RUNS", str(folders["run"]))
    monkeypatch.setenv("INTERPGRAD_UPLOADS", str(folders["upload"]))
    monkeypatch.setenv("INTERPGRAD_EVALUATIONS", str(folders["evaluation"]))
    monkeypatch.chdir(ROOT)
    return folders


def _spawned(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[list[str]]:
    """Launching through ``module`` records the command instead of starting a process."""
    commands: list[list[str]] = []

    def spawn(arguments: list[str], job: Any, *rest: Any) -> None:
        commands.append(list(arguments))
        job.path.mkdir(parents=True, exist_ok=True)
        job.write_status("running", pid=os.getpid(), starting=True)

    monkeypatch.setattr(module, "spawn", spawn)
    return commands


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _keys(at: AppTest) -> set[str]:
    return {widget.key for kind in ("selectbox", "number_input", "checkbox", "select_slider")
            for widget in getattr(at, kind) if widget.key}


def test_param_widgets_draw_and_return_only_what_applies() -> None:
    def script() -> None:
        import streamlit as st

        from appkit.widgets import param_widgets
        from interpgrad.explain import methods

        st.session_state["returned"] = param_widgets(methods()["smoothgrad"].params, "demo", columns=3)

    at = AppTest.from_function(script, default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    assert "demo.steps" not in _keys(at) and "steps" not in at.session_state["returned"]
    at.selectbox(key="demo.base").set_value("integrated_gradients").run()
    at.number_input(key="demo.steps").set_value(64).run()
    assert at.session_state["returned"]["steps"] == 64
    at.selectbox(key="demo.base").set_value("gradient").run()
    _no_exception(at)
    assert "demo.steps" not in _keys(at)
    assert set(at.session_state["returned"]) == {"base", "samples", "noise", "seed", "batch_size"}  # no kept 64


def test_train_page_shows_histogram_normalization_only_for_the_histogram_error(
        monkeypatch: pytest.MonkeyPatch, isolated_folders: dict[str, Path]) -> None:
    from interpgrad.cli.train import _options, refuse_params_without_effect
    from interpgrad.training import launcher
    from interpgrad.training.config import make_config

    spawned = _spawned(monkeypatch, launcher)
    at = _page("pages/3_Train.py")
    assert at.selectbox(key="train.regularizer").value == "guided"
    hidden = "train.reg.guided.histogram_normalization"
    assert "train.reg.guided.error" in _keys(at) and hidden not in _keys(at)  # cosine by default
    at.selectbox(key="train.reg.guided.error").set_value("histogram").run()
    assert hidden in _keys(at)
    at.selectbox(key=hidden).set_value("product").run()
    at.selectbox(key="train.reg.guided.error").set_value("cosine").run()
    _no_exception(at)
    assert hidden not in _keys(at)
    at.text_input(key="train.name").set_value("cosine-run")
    at.button(key="train.start").click().run()
    _no_exception(at)
    assert len(spawned) == 1, [error.value for error in at.error]
    command = spawned[0]
    assert "error=cosine" in command and "histogram_normalization=each" in command  # not the hidden product
    options = _options(build_parser(["train"]).parse_args(command[3:]))
    refuse_params_without_effect(make_config(options), options["regularizer_params"])  # the CLI accepts it


def test_explore_method_parameters_show_smoothgrad_steps_only_for_its_integrated_gradients_base() -> None:
    at = _page("pages/2_Explore.py")
    assert "smoothgrad" in at.multiselect(key="explore.methods").value
    expander = next(expander for expander in at.expander if expander.label == "Method parameters")
    keys = {widget.key for widget in expander.selectbox} | {widget.key for widget in expander.number_input}
    assert "explore.param.smoothgrad.base" in keys and "explore.param.smoothgrad.steps" not in keys
    assert "explore.param.smoothgrad.samples" in keys
    at.selectbox(key="explore.param.smoothgrad.base").set_value("integrated_gradients").run()
    _no_exception(at)
    expander = next(expander for expander in at.expander if expander.label == "Method parameters")
    assert "explore.param.smoothgrad.steps" in {widget.key for widget in expander.number_input}
    at.selectbox(key="explore.param.smoothgrad.base").set_value("guided_backprop").run()
    assert "explore.param.smoothgrad.steps" not in _keys(at)


def test_evaluate_page_hides_the_blur_of_a_substrate_that_is_not_blur(monkeypatch: pytest.MonkeyPatch) -> None:
    from interpgrad.cli.evaluate import _options, refuse_params_without_effect
    from interpgrad.metrics import launcher

    spawned = _spawned(monkeypatch, launcher)
    at = _page("pages/4_Evaluate.py")
    at.multiselect(key="evaluate.methods").set_value(["gradient"])
    for category in ("faithfulness", "localisation", "sanity", "complexity"):
        at.button_group(key=f"evaluate.metrics.{category}").set_value([])
    at.button_group(key="evaluate.metrics.causality").set_value(["insertion", "deletion"])
    at.selectbox(key="evaluate.preset").set_value("rise")
    at.number_input(key="evaluate.n").set_value(4)
    at.text_input(key="evaluate.name").set_value("mine")
    at.run()
    prefix = "evaluate.param.rise"
    assert {f"{prefix}.insertion.blur_sigma", f"{prefix}.insertion.blur_kernel"} <= _keys(at)
    assert not {f"{prefix}.deletion.blur_sigma", f"{prefix}.deletion.constant"} & _keys(at)  # zeros
    at.number_input(key=f"{prefix}.insertion.blur_sigma").set_value(2.5).run()
    at.selectbox(key=f"{prefix}.insertion.substrate").set_value("constant").run()
    assert f"{prefix}.insertion.blur_sigma" not in _keys(at) and f"{prefix}.insertion.constant" in _keys(at)
    at.number_input(key=f"{prefix}.insertion.constant").set_value(0.5).run()
    at.button(key="evaluate.start").click().run()
    _no_exception(at)
    assert len(spawned) == 1, [error.value for error in at.error]
    command = spawned[0]
    assert "insertion.substrate=constant" in command and "insertion.constant=0.5" in command
    assert not any(part.startswith(("insertion.blur", "deletion.")) for part in command)  # the hidden 2.5 stays home
    parsed = build_parser(["evaluate"]).parse_args(command[3:])
    refuse_params_without_effect(_options(parsed), parsed.preset)  # the CLI accepts what the page sends
