"""The GAD & regions page through AppTest: it opens on the default GAD run and its first sample of the run's classes,
shows every map, mask and hull overlay with RC and RS equal to the library's; q and fusion change them; "Train
support models" launches the background run with the chosen settings; the dataset view reads a run's study files
and computes one on N images; bad or out-of-domain uploads give a message; Explore and Evaluate leave out "gad"."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from appkit.gad import SHIPPED_DEFAULT
from interpgrad.data import prepare_image
from interpgrad.gad import Pair, gad_explanation, load_gad_run, train_gad
from interpgrad.regions import compare_regions, summarise_regions
from interpgrad.samples import photo_sample
from interpgrad.training.checkpoint import input_normalisation
from test_app import ROOT, TIMEOUT, _no_exception, _png

pytestmark = pytest.mark.usefixtures("one_thread")

PAGE = str(ROOT / "pages" / "5_GAD.py")
SHIPPED = ROOT / "checkpoints"
MODEL = SHIPPED / "shapes-resnet18-baseline"
SAMPLE = "shapes: square #1"  # the first shapes sample of the run's classes (square, heart)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GAD run of the shipped baseline on square vs heart: 2 support models, trained briefly (head only)."""
    out = tmp_path_factory.mktemp("gad") / "tiny"
    train_gad(str(MODEL), Pair("square", "heart"), out, supports=2, epochs=1, n_train=32, n_val=16, batch_size=16,
              train="head")
    return out


@pytest.fixture(autouse=True)
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_run: Path) -> dict[str, Path]:
    """The shipped models as they are, the tiny run in the place of the shipped default GAD run, and the page's own
    runs, training runs and uploads in a temporary folder."""
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "gad").mkdir(parents=True)
    for child in SHIPPED.iterdir():
        if child.is_dir() and child.name != "gad":
            (checkpoints / child.name).symlink_to(child)
    shutil.copytree(tiny_run, checkpoints / "gad" / SHIPPED_DEFAULT)
    found = {"shipped_gad": checkpoints / "gad" / SHIPPED_DEFAULT, "gad": tmp_path / "gad-runs"}
    monkeypatch.setenv("INTERPGRAD_CHECKPOINTS", str(checkpoints))
    monkeypatch.setenv("INTERPGRAD_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("INTERPGRAD_UPLOADS", str(tmp_path / "uploads"))
    monkeypatch.setenv("INTERPGRAD_GAD_RUNS", str(found["gad"]))
    monkeypatch.chdir(ROOT)
    return found


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=TIMEOUT)
    at.run()
    _no_exception(at)
    return at


def _numbers(at: AppTest) -> dict[str, float]:
    table = next(element.value for element in at.dataframe if "GAD" in element.value.columns)
    return dict(zip(table["quantity"], table["GAD"]))


def _library_row(folder: Path, q: float = 10.0, fusion: str = "intersection") -> dict[str, float]:
    from interpgrad.samples import sample_images

    run = load_gad_run(folder)
    image = next(sample.image for sample in sample_images() if sample.name == SAMPLE)
    mean, std = input_normalisation(run.metadata)
    x = prepare_image(image, int(run.metadata["model"]["image_size"]), mean, std)
    result = gad_explanation(run, x, base="integrated_gradients", q=q, fusion=fusion)
    return compare_regions(run.original, x, result.original_map, result.gad_map, target=result.target, q=q,
                           min_size=4, mean=mean, std=std).iloc[0].to_dict()


def _check_numbers(at: AppTest, expected: dict[str, float]) -> None:
    numbers = _numbers(at)
    assert numbers["RC: regions"] == expected["regions_gad"]
    assert numbers["RC: hull area (share of the image)"] == pytest.approx(expected["area_gad"], abs=1e-9)
    assert numbers["RC: GAD area / original area (< 1: GAD explains with less)"] == pytest.approx(expected["rc"],
                                                                                                  abs=1e-9, nan_ok=True)
    for name, column in (("GAD's regions", "rs_gad"), ("what GAD removed", "rs_removed"),
                         ("random regions of GAD's area", "rs_random")):
        assert numbers[f"RS: {name} occluded"] == pytest.approx(expected[column], abs=1e-6)


def test_the_page_opens_on_the_default_run_with_maps_overlays_and_the_librarys_numbers(
        folders: dict[str, Path]) -> None:
    at = _page()
    assert at.selectbox(key="gad.run").value == f"shipped/{SHIPPED_DEFAULT}"
    assert at.selectbox(key="gad.sample").value == SAMPLE
    assert any("our reading of the paper" in caption.value for caption in at.caption)
    # the sample, 3 maps (original + 2 supports), fused mask, GAD map, 3 top-q masks, 2 hull overlays
    assert len(at.get("image")) == 1 + 3 + 1 + 1 + 3 + 2
    captions = " | ".join(image.caption for element in at.get("image") for image in element.proto.imgs)
    for text in ("original map", "support 1 · alpha", "agreement", "fused mask (intersection)", "GAD map",
                 "regions, ", "cyan hulls", "magenta hulls"):
        assert text in captions, text
    expected = _library_row(folders["shipped_gad"])
    _check_numbers(at, expected)
    assert at.subheader[0].value.startswith(f"{SAMPLE}: integrated_gradients, top 10 %, intersection")


def test_q_and_fusion_change_the_maps_and_numbers(folders: dict[str, Path]) -> None:
    at = _page()
    before = _numbers(at)
    at.slider(key="gad.q").set_value(25.0)
    at.selectbox(key="gad.fusion").set_value("union")
    at.run()
    _no_exception(at)
    assert "top 25 %, union" in at.subheader[0].value
    assert _numbers(at) != before
    _check_numbers(at, _library_row(folders["shipped_gad"], q=25.0, fusion="union"))


@pytest.fixture()
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Launching records the command instead of starting a process (and says "running", as the real spawn does)."""
    from interpgrad.gad import launcher

    commands: list[list[str]] = []

    def spawn(arguments: list[str], job: Any, carry: tuple[str, ...] = ()) -> None:
        commands.append(list(arguments))
        job.path.mkdir(parents=True, exist_ok=True)
        job.write_status("running", pid=os.getpid(), supports=3, supports_done=1, support=2, step=4,
                         steps_per_support=10, done=14, total=30, fraction=14 / 30)

    monkeypatch.setattr(launcher, "spawn", spawn)
    return commands


def test_train_support_models_launches_a_background_run_with_the_settings(folders: dict[str, Path],
                                                                          spawned: list[list[str]]) -> None:
    at = _page()
    at.selectbox(key="gad.model").set_value("shipped/shapes-resnet18-baseline")
    at.radio(key="gad.strategy").set_value("pair")
    at.run()
    at.selectbox(key="gad.class_k").set_value("circle")
    at.selectbox(key="gad.class_l").set_value("ring")
    at.number_input(key="gad.train.epochs").set_value(2)
    at.selectbox(key="gad.train.train").set_value("head")
    at.text_input(key="gad.name").set_value("circle-ring")
    at.run()
    at.button(key="gad.start").click().run()
    _no_exception(at)
    assert len(spawned) == 1
    command = spawned[0]
    assert command[command.index("--classes") + 1] == "0,5"  # circle, ring: resolved to class indices
    assert command[command.index("--epochs") + 1] == "2"
    assert command[command.index("--train") + 1] == "head"
    assert command[command.index("--out") + 1] == str(folders["gad"] / "circle-ring")
    assert command[command.index("--checkpoint") + 1].endswith("shapes-resnet18-baseline/model.safetensors")
    assert any("Started circle-ring" in element.value for element in at.success)
    progress = [element for element in at.get("progress")]
    assert any("1 of 3 support models trained" in str(element.proto) for element in progress)
    assert at.button(key="gad.stop.circle-ring")  # running: it can be stopped


def test_a_same_class_pair_is_refused_with_a_message(folders: dict[str, Path], spawned: list[list[str]]) -> None:
    at = _page()
    at.radio(key="gad.strategy").set_value("pair").run()
    at.selectbox(key="gad.class_k").set_value("star")
    at.selectbox(key="gad.class_l").set_value("star")
    at.run()
    at.button(key="gad.start").click().run()
    _no_exception(at)
    assert not spawned
    assert any("not started" in element.value or "not valid" in element.value for element in at.error)


def _study(folder: Path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    table = pd.DataFrame({
        "image": [f"val/{i}" for i in range(n)], "label": ["square" if i % 2 else "heart" for i in range(n)],
        "regions_original": rng.integers(1, 6, n), "regions_gad": rng.integers(0, 4, n),
        "area_original": rng.uniform(0.1, 0.3, n), "area_gad": rng.uniform(0.02, 0.1, n),
        "rs_gad": rng.uniform(0.2, 0.9, n), "rs_removed": rng.uniform(0.0, 0.5, n), "rs_random": rng.uniform(0, 0.3, n)})
    table.insert(6, "rc", table["area_gad"] / table["area_original"])
    (folder / "study").mkdir(exist_ok=True)
    table.to_csv(folder / "study" / "regions.csv", index=False)
    summarise_regions(table).to_csv(folder / "study" / "summary.csv", index=False)
    return table


def test_the_dataset_view_reads_the_runs_study(folders: dict[str, Path]) -> None:
    table = _study(folders["shipped_gad"])
    summary = summarise_regions(table)
    at = _page()
    assert any("study/regions.csv" in markdown.value and "40 images" in markdown.value for markdown in at.markdown)
    shares = {metric.label: metric.value for metric in at.metric}
    removed = summary.set_index("quantity").loc["rs_gad > rs_removed", "mean"]
    random = summary.set_index("quantity").loc["rs_gad > rs_random", "mean"]
    assert shares["Occluding GAD's regions hurts more than occluding what GAD removed"] == f"{removed:.0%}"
    assert shares["Occluding GAD's regions hurts more than occluding random regions of the same area"] == f"{random:.0%}"
    means = next(element.value for element in at.dataframe if "what it is" in element.value.columns)
    assert means.set_index("quantity")["mean"].to_dict() == pytest.approx(
        summary.set_index("quantity")["mean"].drop(["rs_gad > rs_removed", "rs_gad > rs_random"]).to_dict())
    assert any(len(element.value) == 40 and "rs_gad" in element.value.columns for element in at.dataframe)
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [trace["type"] for trace in figure["data"]] == ["bar", "bar"]


def test_compute_on_n_images_runs_the_study_with_the_page_settings(folders: dict[str, Path],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import interpgrad.gad as gad

    calls: dict[str, Any] = {}
    table = _study(folders["shipped_gad"]).drop(columns=["image", "label"])
    shutil.rmtree(folders["shipped_gad"] / "study")

    def study_images(run: Any, split: str = "val", n: int = 500, data_root: Any = None) -> Any:
        calls["n"], calls["split"] = n, split
        return "x", ["labels"] * n, [f"val/{i}" for i in range(n)]

    def region_study(run: Any, x: Any, labels: Any, **options: Any) -> pd.DataFrame:
        calls.update(options)
        options["progress"](1, 2, "half")
        return table.head(len(labels))

    monkeypatch.setattr(gad, "study_images", study_images, raising=False)
    monkeypatch.setattr(gad, "region_study", region_study, raising=False)
    at = _page()
    assert any("no stored study" in caption.value for caption in at.caption)
    at.slider(key="gad.q").set_value(20.0)
    at.number_input(key="gad.n").set_value(12)
    at.run()
    at.button(key="gad.compute").click().run()
    _no_exception(at)
    assert calls["n"] == 12 and calls["split"] == "val"
    assert calls["q"] == 20.0 and calls["fusion"] == "intersection" and calls["base"] == "integrated_gradients"
    assert calls["min_size"] == 4 and calls["occlusion"] == "black"
    assert any("Computed here: 12 images" in markdown.value for markdown in at.markdown)
    assert sum(metric.label.startswith("Occluding GAD's regions") for metric in at.metric) == 2


def test_a_bad_upload_and_an_out_of_domain_image_give_messages(folders: dict[str, Path]) -> None:
    at = _page()
    at.radio(key="gad.source").set_value("upload").run()
    at.file_uploader(key="gad.upload").set_value(("notes.png", b"not an image", "image/png")).run()
    _no_exception(at)
    assert any("notes.png cannot be used" in element.value for element in at.error)
    photo = photo_sample("chelsea").image
    at.file_uploader(key="gad.upload").set_value(("cat.png", _png(Image.fromarray(photo)), "image/png")).run()
    _no_exception(at)
    assert not at.error, [element.value for element in at.error]
    assert any("out of domain" in element.value for element in at.warning)
    assert len(at.get("image")) == 1 + 3 + 1 + 1 + 3 + 2


def test_explore_and_evaluate_leave_out_methods_that_need_a_gad_run() -> None:
    explore = AppTest.from_file(str(ROOT / "pages" / "2_Explore.py"), default_timeout=TIMEOUT)
    explore.run()
    _no_exception(explore)
    assert "gad" not in explore.multiselect(key="explore.methods").options
    assert any("GAD & regions page" in caption.value for caption in explore.caption)
    evaluate = AppTest.from_file(str(ROOT / "pages" / "4_Evaluate.py"), default_timeout=TIMEOUT)
    evaluate.run()
    _no_exception(evaluate)
    assert "gad" not in evaluate.multiselect(key="evaluate.methods").options
    assert any("GAD & regions page" in caption.value for caption in evaluate.caption)


def test_the_page_opens_on_the_shipped_run_with_its_study(monkeypatch: pytest.MonkeyPatch) -> None:
    if not (SHIPPED / "gad" / SHIPPED_DEFAULT / "study" / "regions.csv").is_file():
        pytest.skip("the shipped GAD runs are not there yet")
    monkeypatch.delenv("INTERPGRAD_CHECKPOINTS")
    at = _page()
    assert at.selectbox(key="gad.run").value == f"shipped/{SHIPPED_DEFAULT}"
    assert sum(metric.label.startswith("Occluding GAD's regions") for metric in at.metric) == 2
    assert _numbers(at)["RC: regions"] >= 0
