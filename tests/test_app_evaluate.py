"""The Evaluate page (and the scores under the Explore grid) through AppTest: a finished evaluation shows its protocol,
tables, verdicts, charts, curves and one image's maps; a stopped or running one its progress with Resume or Stop;
choices that cannot work give a readable message and launch nothing; Start launches the CLI with what was chosen."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from interpgrad.jobs import reason_fields
from interpgrad.metrics import Stopped

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages" / "4_Evaluate.py")
TIMEOUT = 120
SHIPPED = ["shapes-resnet18-baseline", "shapes-resnet18-guided"]
VERDICTS = {"better", "worse", "no clear difference"}


@pytest.fixture(autouse=True)
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    return isolated_folders(tmp_path, monkeypatch)


def isolated_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The shipped models (linked into a checkpoints folder of its own, so that no shipped evaluation is seen unless a
    test puts one there); runs, uploads and evaluations in temporary folders."""
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    for name in SHIPPED:
        (checkpoints / name).symlink_to(ROOT / "checkpoints" / name, target_is_directory=True)
    found = {"checkpoints": checkpoints, "run": tmp_path / "runs", "upload": tmp_path / "uploads",
             "evaluation": tmp_path / "evaluations"}
    monkeypatch.setenv("INTERPGRAD_CHECKPOINTS", str(checkpoints))
    monkeypatch.setenv("INTERPGRAD_RUNS", str(found["run"]))
    monkeypatch.setenv("INTERPGRAD_UPLOADS", str(found["upload"]))
    monkeypatch.setenv("INTERPGRAD_EVALUATIONS", str(found["evaluation"]))
    monkeypatch.chdir(ROOT)
    return found


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished evaluation of the two shipped models: 8 shapes images, gradient, Grad-CAM and the random control,
    a curve metric (insertion), a localisation metric and a complexity metric."""
    import interpgrad

    out = tmp_path_factory.mktemp("evaluations") / "tiny"
    interpgrad.evaluate([ROOT / "checkpoints" / name for name in SHIPPED], ["gradient", "gradcam", "random"],
                        ["insertion", "energy_pointing_game", "sparseness"], n=8, out=out)
    return out


@pytest.fixture()
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Launching records the command instead of starting a process (and says "running", as the real spawn does)."""
    from interpgrad.metrics import launcher

    commands: list[list[str]] = []

    def spawn(arguments: list[str], job: Any, carry: tuple[str, ...] = ()) -> None:
        commands.append(list(arguments))
        job.path.mkdir(parents=True, exist_ok=True)
        job.write_status("running", pid=os.getpid(), starting=True)

    monkeypatch.setattr(launcher, "spawn", spawn)
    return commands


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _texts(elements: Any) -> list[str]:
    return [element.value for element in elements]


def _table(at: AppTest, *columns: str) -> Any:
    """The first dataframe (as a pandas DataFrame) that has all these ``columns``."""
    for element in at.dataframe:
        if set(columns) <= set(element.value.columns):
            return element.value
    raise AssertionError(f"no table with columns {columns}: {[list(e.value.columns) for e in at.dataframe]}")


def _figures(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _write_job(folder: Path, state: str, **status: Any) -> None:
    """An evaluation folder as the CLI leaves it: its config and its status."""
    from interpgrad.metrics import EvaluationDir

    job = EvaluationDir(folder)
    folder.mkdir(parents=True)
    job.write_config({"checkpoints": [str(ROOT / "checkpoints" / name) for name in SHIPPED], "methods": ["gradient"],
                      "metrics": ["sparseness"], "dataset": "shapes", "n": 8, "split": "val", "data_root": None,
                      "params": {}, "method_params": {}, "preset": None, "target": None, "judge": None, "seed": 0,
                      "batch_size": 2, "max_batch": 0, "device": "cpu", "confidence": 0.95, "resamples": 2000,
                      "created_at": time.time()})
    job.write_status(state, **status)


# ---------------------------------------------------------------------------------------------------- tests


def test_the_page_renders_without_any_evaluation(folders: dict[str, Path]) -> None:
    at = _page()
    assert any("No evaluations yet" in text for text in _texts(at.info))
    assert at.multiselect(key="evaluate.models").value == [f"shipped/{name}" for name in SHIPPED]  # baseline first
    methods = at.multiselect(key="evaluate.methods").value
    assert methods[-2:] == ["random", "edge"] and "gradient" in methods and "gradcam" in methods
    localisation = at.button_group(key="evaluate.metrics.localisation")
    assert "energy_pointing_game" in localisation.value and "needs ground-truth masks" in localisation.label
    assert at.button(key="evaluate.start") is not None
    assert not at.get("plotly_chart")


def test_a_finished_evaluation_shows_its_protocol_tables_charts_and_one_image(folders: dict[str, Path],
                                                                              tiny: Path) -> None:
    shutil.copytree(tiny, folders["evaluation"] / "tiny")
    at = _page()
    markdown = "\n".join(_texts(at.markdown))
    assert "**tiny**" in markdown and "finished" in markdown  # listed
    assert at.session_state["evaluate.open"] == str(folders["evaluation"] / "tiny")  # and opened
    # The protocol in words, with every metric's protocol and parameters.
    from interpgrad.metrics import get_metric

    assert "the first 8 of the val split of shapes" in markdown and "predicted class" in markdown
    for name in ("insertion", "energy_pointing_game", "sparseness"):
        assert get_metric(name).describe() in markdown

    summary = _table(at, "excluded")
    assert list(summary.columns) == ["metric", "method", "model", "mean", "interval", "n", "excluded"]
    assert len(summary) == 3 * 3 * 2 and set(summary["n"]) == {8}
    assert {"insertion ↑", "energy_pointing_game ↑", "sparseness ↑"} == set(summary["metric"])

    comparisons = _table(at, "p-value")
    assert set(comparisons["verdict"]) <= VERDICTS and len(comparisons) == 3 * 3
    headline = "shapes-resnet18-guided vs shapes-resnet18-baseline**: better on"
    assert any(headline in text and "of 6 (method, metric) pairs" in text  # the controls are left out of the count
               for text in _texts(at.markdown))
    controls = _table(at, "against", "insertion ↑")
    assert set(controls["against"]) == {"random"} and set(controls["insertion ↑"]) <= VERDICTS
    assert any("gradient beats random on" in text for text in _texts(at.markdown))

    figures = _figures(at)
    bars = [figure for figure in figures if any(trace["type"] == "bar" for trace in figure["data"])]
    assert len(bars) == 1
    traces = [trace for trace in bars[0]["data"] if trace["type"] == "bar"]
    assert {trace["name"] for trace in traces} == set(SHIPPED) and all(trace["error_y"]["array"] for trace in traces)
    assert bars[0]["layout"]["legend"]["x"] > 1  # outside the plotting area
    curves = [figure for figure in figures if any(trace.get("fill") == "tonexty" for trace in figure["data"])]
    assert len(curves) == 1 and "insertion" in curves[0]["layout"]["title"]["text"]  # the only curve metric
    assert curves[0]["layout"]["xaxis"]["title"]["text"] == "fraction of pixels inserted"

    # One image: its maps from every model and method, recomputed, and its scores from the results.
    assert any(text.startswith("**Image 0**") for text in _texts(at.markdown))
    assert len(at.get("image")) >= 2 + 2 * 3  # input, mask, 2 models x 3 methods (+ best / worst thumbnails)
    scores = next(e.value for e in at.dataframe if list(e.value.columns) == [
        "model", "method", "insertion ↑", "energy_pointing_game ↑", "sparseness ↑"])
    assert len(scores) == 2 * 3 and set(scores["method"]) == {"gradient", "gradcam", "random"}
    at.selectbox(key=f"evaluate.image.{folders['evaluation'] / 'tiny'}").set_value(3)
    at.run()
    _no_exception(at)
    assert any(text.startswith("**Image 3**") for text in _texts(at.markdown))
    best = next(button for button in at.button if button.key and button.key.startswith("evaluate.show.best."))
    best.click()
    at.run()
    _no_exception(at)
    shown = best.key.rsplit(".", 1)[1]
    assert any(text.startswith(f"**Image {shown}**") for text in _texts(at.markdown))
    labels = {button.label for button in at.get("download_button")}
    assert {"results.csv", "summary.csv", "comparisons.csv", "results.json", "plots/summary.png",
            "Everything (ZIP)"} <= labels


def test_the_shipped_evaluation_is_opened_first_and_cannot_be_stopped(folders: dict[str, Path], tiny: Path) -> None:
    shutil.copytree(tiny, folders["checkpoints"] / "evaluations" / "shapes-starter")
    shutil.copytree(tiny, folders["evaluation"] / "mine")
    at = _page()
    assert at.session_state["evaluate.open"] == str(folders["checkpoints"] / "evaluations" / "shapes-starter")
    assert any(header.value == "shapes-starter (shipped)" for header in at.subheader)
    keys = [button.key for button in at.button]
    assert "evaluate.open.yours.mine" in keys
    assert not any(key.startswith(("evaluate.stop", "evaluate.resume")) for key in keys)
    at.button(key="evaluate.open.yours.mine").click()
    at.run()
    _no_exception(at)
    assert any(header.value == "mine" for header in at.subheader)


def test_a_stopped_evaluation_shows_its_progress_and_resumes(folders: dict[str, Path],
                                                             spawned: list[list[str]]) -> None:
    stopped = folders["evaluation"] / "halfway"
    _write_job(stopped, "stopped", done=2, total=6, fraction=2 / 6, message="stopped",
               **reason_fields(Stopped(2, 6)))  # as the evaluation writes it
    _write_job(folders["evaluation"] / "broken", "failed", message="failed", done=1, total=6,
               reason="no checkpoint at /nowhere")
    at = _page()
    progress = [bar.proto for bar in at.get("progress")]
    assert any(bar.value == 33 and bar.text.startswith("2 of 6 units") for bar in progress), progress
    assert any("stopped after 2 of 6 units; continue with the Resume button" in text for text in _texts(at.warning))
    assert any("no checkpoint at /nowhere" in text for text in _texts(at.error))
    assert at.button(key="evaluate.resume.yours.broken") is not None
    at.button(key="evaluate.resume.yours.halfway").click()
    at.run()
    _no_exception(at)
    assert len(spawned) == 1 and spawned[0][-3:] == ["--out", str(stopped), "--resume"]
    assert at.session_state["evaluate.open"] == str(stopped)
    assert any("halfway is starting" in text for text in _texts(at.info))


def test_a_running_evaluation_shows_live_progress_and_can_be_stopped(folders: dict[str, Path]) -> None:
    busy = folders["evaluation"] / "busy"
    _write_job(busy, "running", pid=os.getpid(), done=3, total=12, fraction=0.25,
               message="shapes-resnet18-baseline: gradcam, images 1-2 of 8", started_at=time.time() - 30)
    at = _page()
    bar = at.get("progress")[0].proto
    assert bar.value == 25 and bar.text == "3 of 12 units · shapes-resnet18-baseline: gradcam, images 1-2 of 8"
    assert at.button(key="evaluate.stop.yours.busy") is not None  # not clicked: the "process" is this test
    assert "running" in "\n".join(_texts(at.markdown))
    from interpgrad.metrics import EvaluationDir

    EvaluationDir(busy).write_status("running", pid=os.getpid(), done=6, total=12, fraction=0.5, message="more")
    at.run()  # what the panel does every 2 s: the progress, and the time left at the rate seen since
    bar = at.get("progress")[0].proto
    assert bar.value == 50 and bar.text.startswith("6 of 12 units · more · about ") and bar.text.endswith(" left")


def test_choices_that_cannot_work_give_a_message_and_launch_nothing(folders: dict[str, Path],
                                                                    spawned: list[list[str]]) -> None:
    at = _page()
    at.multiselect(key="evaluate.models").set_value([])
    at.run()
    at.button(key="evaluate.start").click()
    at.run()
    _no_exception(at)
    assert any("The evaluation was not started: choose at least one model" in text for text in _texts(at.error))

    at = _page()
    at.selectbox(key="evaluate.dataset").set_value("cifar10")  # the localisation metrics stay chosen
    at.run()
    assert any("cifar10 has no ground-truth masks" in text for text in _texts(at.warning))
    at.button(key="evaluate.start").click()
    at.run()
    _no_exception(at)
    errors = _texts(at.error)
    assert any("ground-truth masks" in text and "cifar10 has none" in text for text in errors), errors

    at = _page()
    at.text_input(key="evaluate.name").set_value("no spaces allowed")
    at.run()
    at.button(key="evaluate.start").click()
    at.run()
    assert any("evaluation name 'no spaces allowed'" in text for text in _texts(at.error)), _texts(at.error)
    assert spawned == [] and not folders["evaluation"].exists()


def test_start_launches_the_cli_with_the_choices(folders: dict[str, Path], spawned: list[list[str]]) -> None:
    at = _page()
    at.multiselect(key="evaluate.methods").set_value(["random", "gradcam"])  # the control is run last anyway
    for category in ("faithfulness", "localisation", "sanity", "complexity"):
        at.button_group(key=f"evaluate.metrics.{category}").set_value([])
    at.button_group(key="evaluate.metrics.causality").set_value(["insertion"])
    at.number_input(key="evaluate.n").set_value(8)
    at.selectbox(key="evaluate.preset").set_value("rise")
    at.text_input(key="evaluate.name").set_value("mine")
    at.run()
    at.number_input(key="evaluate.param.rise.insertion.blur_sigma").set_value(2.5)  # changed from the preset's 5
    at.run()
    at.button(key="evaluate.start").click()
    at.run()
    _no_exception(at)
    assert len(spawned) == 1, _texts(at.error)
    command = spawned[0]
    flags = {command[i]: command[i + 1] for i in range(len(command) - 1) if command[i].startswith("--")}
    assert [command[i + 1] for i, part in enumerate(command) if part == "--checkpoint"] == [
        str(folders["checkpoints"] / name / "model.safetensors") for name in SHIPPED]
    assert flags["--methods"] == "gradcam,random" and flags["--metrics"] == "insertion" and flags["--n"] == "8"
    assert flags["--preset"] == "rise" and flags["--target"] == "predicted"
    assert flags["--out"] == str(folders["evaluation"] / "mine")
    assert "insertion.blur_sigma=2.5" in command  # changed; the preset's own values are left to the preset
    assert not any(part.startswith("insertion.blur_kernel") for part in command)
    assert any("Started mine" in text for text in _texts(at.success))
    assert at.session_state["evaluate.open"] == str(folders["evaluation"] / "mine")


def test_explore_scores_appear_under_the_maps_and_follow_the_grid() -> None:
    at = AppTest.from_file(str(ROOT / "pages" / "2_Explore.py"), default_timeout=TIMEOUT)
    at.run()
    at.multiselect(key="explore.methods").set_value(["gradient", "gradcam"])
    at.toggle(key="explore.captum").set_value(False)
    at.run()
    at.button(key="explore.run").click()
    at.run()
    assert not any("insertion ↑" in text for text in _texts(at.caption))  # off until asked for
    at.toggle(key="explore.show_scores").set_value(True)
    at.run()
    _no_exception(at)
    under = [text for text in _texts(at.caption) if text.startswith("insertion ↑")]
    assert len(under) == 2 * 2  # a shapes sample with its mask: all three scores under every map
    assert all("deletion ↓" in text and "energy pointing game ↑" in text for text in under)
    result = at.session_state["explore.result"][1]
    stored, scores = at.session_state["explore.scores"]
    assert stored is result and len(scores) == 4
    at.run()  # kept with the result: not recomputed
    assert at.session_state["explore.scores"][1] is scores
    at.button(key="explore.run").click()  # a new grid: its own scores
    at.run()
    _no_exception(at)
    assert at.session_state["explore.scores"][0] is at.session_state["explore.result"][1] is not result


@pytest.mark.slow
def test_the_page_opens_on_the_evaluation_shipped_with_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the project's own checkpoints folder, a new session opens the shipped starter evaluation (1,000 images x
    2 models x every method and metric) and shows its tables and charts."""
    monkeypatch.delenv("INTERPGRAD_CHECKPOINTS")
    at = _page()
    assert at.session_state["evaluate.open"] == str(ROOT / "checkpoints" / "evaluations" / "shapes-starter")
    assert any(header.value == "shapes-starter (shipped)" for header in at.subheader)
    summary = _table(at, "excluded")
    assert set(summary["n"]) <= set(range(1, 1001)) and len(summary) == 2 * 15 * 15
    assert _figures(at)
