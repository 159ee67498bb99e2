"""The Models and Train pages through AppTest, as a user meets them: training curves coloured by model and dashed by
split, with the legend beside the panels; Train messages in the page's words (no command-line flags); a stopped
run's real progress; the "Started" banner gone once the run ends; the number of training images following the
dataset; uploads named after their model and recognised when uploaded twice; runs and uploads deleted after a
confirmation; the Models table's validation cosine and regularizer parameters."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from appkit.charts import training_curves
from appkit.widgets import ON_THE_PAGE
from interpgrad import ModelConfig, build_model, save_checkpoint
from interpgrad.errors import REMEDIES, Remedy
from interpgrad.jobs import reason_fields
from interpgrad.training import RunDir
from test_app import ROOT, TIMEOUT, _no_exception, _page, isolated_folders  # noqa: F401 (the folders, autouse)

SHIPPED = ROOT / "checkpoints"
CONFIG = ModelConfig("resnet18", num_classes=10, width=0.125)


def _opened(path: str) -> AppTest:
    """The page after its first run, which raised nothing."""
    at = _page(path)
    _no_exception(at)
    return at


def _texts(at: AppTest) -> list[str]:
    return [element.value for kind in ("error", "warning", "info", "success") for element in at.get(kind)]


def _figure(at: AppTest, index: int = 0) -> dict[str, Any]:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def _run_like_shipped(folders: dict[str, Path], name: str, **status: Any) -> RunDir:
    """A run folder with the shipped guided model's files (checkpoint, curves) and the given status."""
    shutil.copytree(SHIPPED / "shapes-resnet18-guided", folders["run"] / name)
    run = RunDir(folders["run"] / name)
    run.write_status(**status)
    return run


# ---------------------------------------------------------------------------------------------------- 2: curves


def _data_traces(figure: dict[str, Any]) -> list[dict[str, Any]]:
    return [trace for trace in figure["data"] if trace.get("x") and trace["x"][0] is not None]


OLD_TITLES = ["loss", "accuracy", "cosine(standard, guided)"]  # runs saved before issue 9 (the starter pair)


def _check_curves_encoding(figure: dict[str, Any], models: list[str], titles: list[str] = OLD_TITLES) -> None:
    """One colour per model in every panel, solid for train and dashed for validation, a legend entry per model and
    per line style, and legends beside the panels, with room for every entry."""
    traces = _data_traces(figure)
    colours: dict[str, set[str]] = {}
    for trace in traces:
        model, split = trace["name"].rsplit(" · ", 1)
        colours.setdefault(model, set()).add(trace["line"]["color"])
        assert trace["line"]["dash"] == {"train": "solid", "validation": "dash"}[split], trace["name"]
        assert trace["marker"]["symbol"] == {"train": "circle", "validation": "circle-open"}[split]  # one epoch: a dot
        assert not trace.get("showlegend", True)  # the legend has one entry per model and per style, not per trace
    assert sorted(colours) == sorted(models)
    assert all(len(found) == 1 for found in colours.values()), colours  # the same colour in every panel
    assert len({next(iter(found)) for found in colours.values()}) == len(models)  # a colour of its own
    axes = {trace.get("xaxis", "x") for trace in traces}
    assert len(axes) == len(titles), axes  # loss, accuracy, each cosine: a panel each
    assert [annotation["text"] for annotation in figure["layout"]["annotations"]] == titles
    entries = [trace for trace in figure["data"] if trace.get("showlegend")]
    by_legend: dict[str, list[str]] = {}
    for trace in entries:
        by_legend.setdefault(trace.get("legend", "legend"), []).append(trace["name"])
    assert by_legend == ({"legend": models} if len(models) > 1 else {}) | {"legend2": ["train", "validation"]}
    layout = figure["layout"]
    for legend in ("legend", "legend2"):
        assert layout[legend]["x"] > 1 and layout[legend]["xanchor"] == "left"  # right of every panel
    lines = len(entries) + len(by_legend)  # entries and titles, ~21 px each
    plot_height = layout["height"] - layout["margin"]["t"] - layout["margin"]["b"]
    assert lines * 20 <= plot_height, "the legends would not fit beside the panels"
    if len(models) > 1:  # the line styles' legend starts under the models' last entry
        assert (1 - layout["legend2"]["y"]) * plot_height >= 20 * (len(models) + 1)


def test_training_curves_are_coloured_by_model_and_dashed_by_split() -> None:
    histories = {name: RunDir(SHIPPED / name).read_metrics() for name in ("shapes-resnet18-baseline", "shapes-resnet18-guided")}
    histories["third"] = histories["shapes-resnet18-guided"][:3]
    _check_curves_encoding(training_curves(histories).to_plotly_json(), list(histories))
    single = training_curves({"only": histories["third"]}, height=260).to_plotly_json()
    _check_curves_encoding(single, ["only"])


def test_training_curves_give_other_recorded_quantities_a_panel_of_their_own() -> None:
    history = [{"epoch": 1, "lr": 0.1, "train_loss": 2.0, "train_classification": 2.0, "val_loss": 2.1,
                "val_insertion": 0.4, "epoch_time_s": 3.0},
               {"epoch": 2, "lr": 0.05, "train_loss": 1.5, "train_classification": 1.5, "val_loss": 1.9,
                "val_insertion": 0.5, "epoch_time_s": 3.0}]
    figure = training_curves({"run": history}).to_plotly_json()
    assert [annotation["text"] for annotation in figure["layout"]["annotations"]] == ["loss", "insertion"]
    assert sorted(trace["name"] for trace in _data_traces(figure)) == ["run · train", "run · validation",
                                                                      "run · validation"]


def test_the_gradient_cosines_each_have_a_panel_that_says_which_one_it_is() -> None:
    """The regularizer's view (training batch) and the explanations' view (eval mode; loss and logit) are measured
    differently: each gets its own titled panel, and an old run's "alignment" keeps its own."""
    history = [{"epoch": epoch, "train_loss": 1.0, "val_loss": 1.1, "train_alignment_batch": 0.3,
                "val_alignment_eval": 0.1, "val_alignment_logit_eval": -0.1} for epoch in (1, 2)]
    figure = training_curves({"run": history}).to_plotly_json()
    titles = [annotation["text"] for annotation in figure["layout"]["annotations"]]
    assert titles == ["loss", "cos(std, guided) of the loss · eval mode", "cos(std, guided) of the logit · eval mode",
                      "cos(std, guided) as regularized · train batch"]
    assert len(set(titles)) == len(titles)
    by_panel: dict[str, list[str]] = {}
    for trace in _data_traces(figure):
        by_panel.setdefault(trace["xaxis"], []).append(trace["name"].split(" · ")[1])
    assert [sorted(by_panel[axis]) for axis in ("x", "x2", "x3", "x4")] == [  # the batch's only in train
        ["train", "validation"], ["validation"], ["validation"], ["train"]]
    old = training_curves({"old": [{"epoch": 1, "train_alignment": 0.2, "val_alignment": 0.05}]}).to_plotly_json()
    assert [annotation["text"] for annotation in old["layout"]["annotations"]] == ["cosine(standard, guided)"]


def test_models_page_curves_read_as_the_legend_says() -> None:
    at = _opened("pages/1_Models.py")
    _check_curves_encoding(_figure(at), ["shapes-resnet18-baseline (shipped)", "shapes-resnet18-guided (shipped)",
                                         "shapes-resnet18-guided-strong (shipped)"],
                           ["loss", "accuracy", "cos(std, guided) of the loss · eval mode",
                            "cos(std, guided) of the logit · eval mode", "cos(std, guided) as regularized · train batch",
                            "cosine(standard, guided)"])


def test_train_page_curves_of_a_run(isolated_folders: dict[str, Path]) -> None:
    _run_like_shipped(isolated_folders, "done", state="finished", epoch=12, epochs=12, step=0, steps_per_epoch=156)
    at = _opened("pages/3_Train.py")
    _check_curves_encoding(_figure(at), ["done"])


# ---------------------------------------------------------------------------------------------------- 7: the page's words


def test_every_remedy_has_words_for_the_page() -> None:
    assert set(ON_THE_PAGE) == set(REMEDIES)
    assert not [words for words in ON_THE_PAGE.values() if "--" in words]


@pytest.mark.parametrize("dataset, root, expected", [
    ("cifar10", "", "CIFAR-10 (the folder that contains cifar-10-batches-py) needs a data root; fill in the Data folder"),
    ("cifar100", "EMPTY", "tick “Download CIFAR into it” to fetch it, or set the Data folder to the folder that "
                          "contains cifar-100-python"),
    ("imagefolder", "", "needs a data root; fill in the Data folder"),
])
def test_train_page_says_what_to_do_with_its_own_controls(tmp_path: Path, isolated_folders: dict[str, Path], dataset: str,
                                                          root: str, expected: str) -> None:
    at = _opened("pages/3_Train.py")
    at.selectbox(key="train.dataset").set_value(dataset).run()
    if root:
        at.text_input(key="train.data_root").set_value(str(tmp_path)).run()
    at.button(key="train.start").click().run()
    _no_exception(at)
    errors = [error.value for error in at.error]
    assert len(errors) == 1 and expected in errors[0], errors
    assert "--" not in errors[0]
    assert not isolated_folders["run"].exists() or not any(isolated_folders["run"].iterdir())


@pytest.mark.parametrize("state, fields, expected", [
    ("stopped", reason_fields("stopped and saved", Remedy("resume")), "stopped and saved; continue with the Resume button"),
    ("failed", reason_fields("the loss became non-finite at epoch 2, step 3; the last good checkpoint is kept",
                             Remedy("gentler_training")),
     "the last good checkpoint is kept; start a new run with a lower Learning rate or lam, or with Gradient clipping"),
    ("failed", {"reason": "an older run's reason"}, "an older run's reason"),
])
def test_a_runs_reason_is_said_with_the_page_controls(isolated_folders: dict[str, Path], state: str, fields: dict,
                                                      expected: str) -> None:
    run = _run_like_shipped(isolated_folders, "r", state=state, epoch=1, epochs=12, step=3, steps_per_epoch=156, **fields)
    RunDir(run.path).resume_path.write_bytes(b"")  # resumable
    at = _opened("pages/3_Train.py")
    shown = [text for text in _texts(at) if expected in text]
    assert shown and "--" not in shown[0], _texts(at)
    assert at.button(key="resume.r").label == "Resume"  # the control the message names is there


def test_the_gradient_clipping_the_advice_names_is_sent_with_the_run(monkeypatch: pytest.MonkeyPatch,
                                                                     isolated_folders: dict[str, Path]) -> None:
    import interpgrad.training.launcher as launcher

    sent: list[list[str]] = []

    def spawn(arguments: list[str], job: RunDir, *rest: Any) -> None:
        sent.append(arguments)
        job.path.mkdir(parents=True)
        job.write_status("running", pid=os.getpid(), starting=True)

    monkeypatch.setattr(launcher, "spawn", spawn)
    at = _opened("pages/3_Train.py")
    at.number_input(key="train.clip_grad_norm").set_value(2.5).run()
    at.button(key="train.start").click().run()
    _no_exception(at)
    assert sent and sent[0][sent[0].index("--clip-grad-norm") + 1] == "2.5"


# ---------------------------------------------------------------------------------------------------- 8: progress, banner


def test_a_stopped_run_shows_where_it_stopped(isolated_folders: dict[str, Path]) -> None:
    """Stopped in its second epoch of three, at step 78 of 156: half of epoch 2 is half of the bar's second third."""
    _run_like_shipped(isolated_folders, "halfway", state="stopped", epoch=1, epochs=3, step=78, steps_per_epoch=156,
                      **reason_fields("stopped and saved", Remedy("resume")))
    at = _opened("pages/3_Train.py")
    (bar,) = at.get("progress")
    assert bar.proto.value == 50 and bar.proto.text == "epoch 2/3, step 78/156"
    assert any("**halfway** — :orange-badge[:material/pause_circle: stopped]" in markdown.value for markdown in at.markdown)


def test_the_started_banner_goes_once_the_run_has_ended(isolated_folders: dict[str, Path]) -> None:
    run = _run_like_shipped(isolated_folders, "fresh", state="running", pid=os.getpid(), starting=True)
    at = AppTest.from_file(str(ROOT / "pages" / "3_Train.py"), default_timeout=TIMEOUT)
    at.session_state["train.started"] = "fresh"  # as the Start button leaves it
    at.run()
    assert "Started fresh." in [s.value for s in at.success]
    assert at.get("progress")[0].proto.text == "starting"
    run.write_status("finished", epoch=3, epochs=3, step=0, steps_per_epoch=10)
    at.run()
    _no_exception(at)
    assert "Started fresh." not in [s.value for s in at.success] and "train.started" not in at.session_state
    assert at.get("progress")[0].proto.value == 100 and at.get("progress")[0].proto.text == "3/3 epochs"


# ---------------------------------------------------------------------------------------------------- 13: dataset defaults


def test_training_images_and_image_size_follow_the_dataset() -> None:
    at = _opened("app.py")
    at.switch_page("pages/3_Train.py").run()
    n_train, size = (lambda: at.number_input(key="train.n_train")), (lambda: at.selectbox(key="train.image_size"))
    assert n_train().value == 10000 and size().value == 32
    at.selectbox(key="train.dataset").set_value("cifar10").run()
    assert n_train().value == 0 and size().value == 32 and size().disabled and size().options == ["32"]
    at.selectbox(key="train.dataset").set_value("imagefolder").run()
    assert n_train().value == 0 and size().value == 64
    at.selectbox(key="train.dataset").set_value("shapes").run()
    assert n_train().value == 10000 and size().value == 32
    at.selectbox(key="train.dataset").set_value("shapes-hard").run()  # generated like shapes: no data folder
    assert n_train().value == 10000 and at.text_input(key="train.data_root").disabled
    at.selectbox(key="train.dataset").set_value("shapes").run()
    # A value the user changed for a dataset stays with that dataset; the others keep their defaults.
    n_train().set_value(2048).run()
    at.selectbox(key="train.dataset").set_value("cifar100").run()
    assert n_train().value == 0
    n_train().set_value(5000).run()
    at.selectbox(key="train.dataset").set_value("shapes").run()
    assert n_train().value == 2048
    at.selectbox(key="train.dataset").set_value("cifar100").run()
    assert n_train().value == 5000
    _no_exception(at)
    assert not at.warning  # no "set through the Session State API" warning
    at.switch_page("pages/1_Models.py").run()
    at.switch_page("pages/3_Train.py").run()
    assert at.selectbox(key="train.dataset").value == "cifar100" and n_train().value == 5000


# ---------------------------------------------------------------------------------------------------- 16: uploads, deleting


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="models.upload.weights").set_value((name, content, "application/octet-stream"))
    at.button[0].click()
    at.run()
    _no_exception(at)
    return at


def test_an_upload_is_named_after_its_model_and_kept_once(tmp_path: Path, isolated_folders: dict[str, Path]) -> None:
    path = save_checkpoint(tmp_path / "a", build_model(CONFIG), CONFIG, name="guided-0312",
                           training={"out": "runs/guided-0312"}, regularizer={"name": "guided", "params": {"lam": 0.01}})
    at = _upload(_opened("pages/1_Models.py"), "model.safetensors", path.read_bytes())
    assert any(s.value.startswith("Added guided-0312 (upload:") for s in at.success), _texts(at)
    at = _upload(at, "model.safetensors", path.read_bytes())
    assert [i.value for i in at.info if "already here" in i.value] == ["model.safetensors is already here, as guided-0312 (upload): nothing was added."]
    assert [p.name for p in isolated_folders["upload"].iterdir()] == ["guided-0312"]
    shipped = (SHIPPED / "shapes-resnet18-guided" / "model.safetensors").read_bytes()
    at = _upload(at, "copy.safetensors", shipped)
    assert [i.value for i in at.info if "already here" in i.value] == ["copy.safetensors is already here, as shapes-resnet18-guided (shipped): "
                                          "nothing was added."]
    assert [p.name for p in isolated_folders["upload"].iterdir()] == ["guided-0312"]


def test_another_model_of_the_same_name_gets_a_suffix(tmp_path: Path, isolated_folders: dict[str, Path]) -> None:
    paths = [save_checkpoint(tmp_path / str(i), build_model(CONFIG), CONFIG, name="mine") for i in range(2)]
    at = _upload(_opened("pages/1_Models.py"), "model.safetensors", paths[0].read_bytes())
    at = _upload(at, "model.safetensors", paths[1].read_bytes())
    assert any("Another upload is called mine, so this one is called mine-2." in s.value for s in at.success), _texts(at)
    assert sorted(p.name for p in isolated_folders["upload"].iterdir()) == ["mine", "mine-2"]


def test_uploads_and_runs_are_deleted_after_a_confirmation(tmp_path: Path, isolated_folders: dict[str, Path]) -> None:
    path = save_checkpoint(tmp_path / "a", build_model(CONFIG), CONFIG, name="doomed")
    at = _upload(_opened("pages/1_Models.py"), "model.safetensors", path.read_bytes())
    _run_like_shipped(isolated_folders, "old-run", state="finished", epoch=12, epochs=12, step=0, steps_per_epoch=156)
    at.run()
    choice = at.selectbox(key="models.delete.choice")
    keys = [option.split(" (")[0] for option in choice.options]
    assert sorted(keys) == ["doomed", "old-run"]  # never a shipped checkpoint
    choice.set_value("upload/doomed").run()
    at.button(key="models.delete").click().run()
    assert any("Delete **doomed (upload)**?" in w.value for w in at.warning)
    at.button(key="models.delete.cancel").click().run()
    assert not any("Delete **" in w.value for w in at.warning) and (isolated_folders["upload"] / "doomed").is_dir()
    at.button(key="models.delete").click().run()
    at.button(key="models.delete.confirm").click().run()
    _no_exception(at)
    assert "Deleted doomed (upload)." in [s.value for s in at.success]
    assert not (isolated_folders["upload"] / "doomed").exists()
    assert "doomed" not in at.dataframe[0].value["name"].tolist()

    at = _opened("pages/3_Train.py")
    at.button(key="delete.old-run").click().run()
    assert any("Delete **old-run**?" in w.value for w in at.warning)
    at.button(key="delete.old-run.confirm").click().run()
    _no_exception(at)
    assert "Deleted old-run." in [s.value for s in at.success] and not (isolated_folders["run"] / "old-run").exists()


def test_a_running_run_cannot_be_deleted(isolated_folders: dict[str, Path]) -> None:
    _run_like_shipped(isolated_folders, "busy", state="running", pid=os.getpid(), epoch=1, epochs=3, step=2, steps_per_epoch=9)
    at = _opened("pages/3_Train.py")
    assert "delete.busy" not in [button.key for button in at.button] and at.button(key="stop.busy")
    at = _opened("pages/1_Models.py")
    at.selectbox(key="models.delete.choice").set_value("run/busy").run()
    at.button(key="models.delete").click().run()
    at.button(key="models.delete.confirm").click().run()
    _no_exception(at)
    assert any("busy (run) was not deleted: busy is running; stop it first" in e.value for e in at.error)
    assert (isolated_folders["run"] / "busy" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------------------------------- 18: the table


def test_models_table_has_the_validation_cosine_and_the_regularizer_parameters() -> None:
    at = _opened("pages/1_Models.py")
    table = at.dataframe[0].value.set_index("name")
    for name in ("shapes-resnet18-baseline", "shapes-resnet18-guided"):
        metadata = json.loads((SHIPPED / name / "model.json").read_text())
        assert table.loc[name, "val cosine"] == pytest.approx(metadata["metrics"]["val_alignment"])
    guided = json.loads((SHIPPED / "shapes-resnet18-guided" / "model.json").read_text())["regularizer"]["params"]
    assert guided["error"] == "cosine" and "histogram_normalization" in guided  # saved, but it does not apply
    applying = {name: value for name, value in guided.items() if name != "histogram_normalization"}
    assert list(applying) and set(applying) <= set(table.columns)  # one column per parameter any model has
    assert "histogram_normalization" not in table.columns
    for parameter, value in applying.items():
        assert table.loc["shapes-resnet18-guided", parameter] == (f"{value:g}" if isinstance(value, float) else str(value))
        assert table.loc["shapes-resnet18-baseline", parameter] == "—"  # the baseline has no regularizer
    assert list(table.columns).index("regularizer") < list(table.columns).index(next(iter(applying)))
