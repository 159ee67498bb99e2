"""The Streamlit app through AppTest: every page renders its widgets without an exception, a full Explore run on a
sample image, and every bad upload gives a readable message (never a traceback)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from interpgrad import ModelConfig, build_model, save_checkpoint
from interpgrad.zoo import discover_models

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120


@pytest.fixture(autouse=True)
def isolated_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The shipped checkpoints as they are; runs and uploads in a temporary folder."""
    folders = {"run": tmp_path / "runs", "upload": tmp_path / "uploads"}
    monkeypatch.setenv("INTERPGRAD_RUNS", str(folders["run"]))
    monkeypatch.setenv("INTERPGRAD_UPLOADS", str(folders["upload"]))
    monkeypatch.chdir(ROOT)
    return folders


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=TIMEOUT)
    at.run()
    return at


def _no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_shipped_checkpoints_are_the_default_models() -> None:
    shipped = [entry for entry in discover_models() if entry.source == "shipped"]
    assert {entry.regularizer for entry in shipped} >= {"none", "guided"}
    assert all(entry.path.stat().st_size < 8 * 2**20 and entry.metrics for entry in shipped)


def test_home_page() -> None:
    at = _page("app.py")
    _no_exception(at)
    assert at.title[0].value == "interpgrad"
    assert len(at.get("image")) >= 1  # the overview picture
    assert any("shipped" in markdown.value for markdown in at.markdown)


def test_models_page_lists_shipped_models_with_curves() -> None:
    at = _page("pages/1_Models.py")
    _no_exception(at)
    assert "val accuracy" in at.dataframe[0].value.columns  # the zoo's table comes first (no evaluation: no comparison)
    assert at.get("plotly_chart"), "training curves of the default selection"
    assert at.button  # the upload form


def _upload_checkpoint(at: AppTest, name: str, content: bytes) -> AppTest:
    at.get("file_uploader")[0].set_value((name, content, "application/octet-stream"))
    at.button[0].click()
    return at.run()


def test_models_page_upload_valid_and_invalid(tmp_path: Path, isolated_folders: dict[str, Path]) -> None:
    config = ModelConfig("resnet18", num_classes=10, width=0.125)
    good = save_checkpoint(tmp_path / "good", build_model(config), config).read_bytes()
    at = _upload_checkpoint(_page("pages/1_Models.py"), "good.safetensors", good)
    _no_exception(at)
    assert any("Added good" in s.value for s in at.success)
    assert (isolated_folders["upload"] / "good" / "model.safetensors").is_file()

    # A checkpoint whose metadata names another architecture than its weights.
    from safetensors.torch import load_file, save_file

    other = tmp_path / "other.safetensors"
    wrong = {"interpgrad": json.dumps({"model": {**config.to_dict(), "arch": "mobilenet_v2"}})}
    save_file(load_file(str(tmp_path / "good" / "model.safetensors")), str(other), metadata=wrong)
    for name, content, message in [
        ("other.safetensors", other.read_bytes(), "do not match"),
        ("evil.safetensors", b"\x80\x04\x95" + b"pickle payload", "pickle"),
        ("text.safetensors", b"hello", "not a safetensors file"),
    ]:
        at = _upload_checkpoint(_page("pages/1_Models.py"), name, content)
        _no_exception(at)
        assert any(message in error.value for error in at.error), [e.value for e in at.error]
    assert sorted(p.name for p in isolated_folders["upload"].iterdir()) == ["good"]


def test_explore_full_run_on_a_sample_image() -> None:
    at = _page("pages/2_Explore.py")
    _no_exception(at)
    assert len(at.multiselect(key="explore.models").value) == 2
    assert len(at.multiselect(key="explore.methods").value) == 8
    at.button(key="explore.run").click()
    at.run()
    _no_exception(at)
    image_name, result = at.session_state["explore.result"]
    assert len(result.rows) == 2
    ours = [cell for row in result.rows for cell in row.cells if cell.source == "ours"]
    assert len(ours) == 16 and all(cell.explanation is not None for cell in ours)
    assert any(cell.source == "captum" for row in result.rows for cell in row.cells)
    assert len(at.get("image")) >= 3
    assert len(at.get("download_button")) == 2
    # Display options re-render the stored result without recomputing it.
    at.toggle(key="explore.signed").set_value(True)
    at.run()
    _no_exception(at)
    assert at.session_state["explore.result"][1] is result


def _huge_png() -> bytes:
    """A 20000x20000 1-bit PNG (~50 kB on disk, 400 megapixels decoded)."""
    return _png(Image.new("1", (20000, 20000)))


@pytest.mark.parametrize(
    "name, content, expectation",
    [
        ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "error"),
        ("notes.png", b"these are my notes, not an image", "error"),
        ("huge.png", "huge", "error"),
        ("deep.png", "16bit", "ok"),
        ("alpha.png", "rgba", "ok"),
        ("gray.jpg", "gray", "ok"),
    ],
)
def test_explore_uploads(name: str, content, expectation: str) -> None:
    if content == "huge":
        content = _huge_png()
    elif content == "16bit":
        content = _png(Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)))
    elif content == "rgba":
        content = _png(Image.new("RGBA", (50, 40), (200, 30, 30, 128)))
    elif content == "gray":
        buffer = io.BytesIO()
        Image.new("L", (40, 40), 100).save(buffer, format="JPEG")
        content = buffer.getvalue()
    at = _page("pages/2_Explore.py")
    at.radio(key="explore.source").set_value("upload")
    at.run()
    at.get("file_uploader")[0].set_value((name, content, "image/png"))
    at.run()
    _no_exception(at)
    if expectation == "error":
        assert any(name in error.value and "cannot be used" in error.value for error in at.error), [e.value for e in at.error]
        assert at.button(key="explore.run").disabled
    else:
        assert not at.error
        at.button(key="explore.run").click()
        at.run()
        _no_exception(at)
        assert at.session_state["explore.result"][0] == name


def test_train_page_widgets_and_refused_options(isolated_folders: dict[str, Path]) -> None:
    at = _page("pages/3_Train.py")
    _no_exception(at)
    for key in ("train.regularizer", "train.arch", "train.dataset", "train.device"):
        assert at.selectbox(key=key) is not None
    at.selectbox(key="train.dataset").set_value("cifar10")
    at.run()
    at.button(key="train.start").click()
    at.run()
    _no_exception(at)
    assert any("needs a data root" in error.value for error in at.error), [e.value for e in at.error]
    assert not isolated_folders["run"].exists() or not any(isolated_folders["run"].iterdir())


def test_navigation_keeps_results_and_choices_across_pages() -> None:
    at = _page("app.py")
    _no_exception(at)
    at.switch_page("pages/2_Explore.py").run()
    at.multiselect(key="explore.methods").set_value(["gradient", "gradcam"])
    at.toggle(key="explore.captum").set_value(False)
    at.run()
    at.button(key="explore.run").click()
    at.run()
    _no_exception(at)
    result = at.session_state["explore.result"][1]
    at.switch_page("pages/1_Models.py").run()
    _no_exception(at)
    at.switch_page("pages/2_Explore.py").run()
    _no_exception(at)
    assert at.session_state["explore.result"][1] is result
    assert at.multiselect(key="explore.methods").value == ["gradient", "gradcam"]
    assert at.toggle(key="explore.captum").value is False


def test_two_sessions_explaining_one_shared_model_at_once_get_their_own_results() -> None:
    """The app shares one cached model between sessions; each holds the model's lock while it explains."""
    import threading

    from appkit.models import compared_model
    from interpgrad.comparison import compare
    from interpgrad.samples import shapes_samples

    entry = discover_models()[0]
    shared = compared_model(entry)  # outside Streamlit, cache_resource still returns one object per key
    assert compared_model(entry).model is shared.model
    images = [sample.image for sample in shapes_samples()[:2]]
    alone = [compare([shared], image, ["gradcam", "guided_backprop", "scorecam"]) for image in images]
    together: list = [None, None]
    barrier = threading.Barrier(2)

    def session(index: int) -> None:
        barrier.wait()
        together[index] = compare([shared], images[index], ["gradcam", "guided_backprop", "scorecam"])

    threads = [threading.Thread(target=session, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for expected, got in zip(alone, together):
        for a, b in zip(expected.rows[0].cells, got.rows[0].cells):
            np.testing.assert_allclose(a.explanation.map.numpy(), b.explanation.map.numpy(), rtol=1e-5, atol=1e-6)
    assert not shared.model._forward_hooks and not any(m._forward_hooks or m._backward_hooks for m in shared.model.modules())


def _checkpoint_bytes(tmp_path: Path, metadata_change: dict | None = None) -> bytes:
    """A small valid checkpoint, optionally with some of its metadata replaced (written inside the header)."""
    from safetensors.torch import load_file, save_file

    config = ModelConfig("resnet18", num_classes=10, width=0.125)
    path = save_checkpoint(tmp_path / "source", build_model(config), config)
    if metadata_change:
        metadata = {**json.loads(path.with_suffix(".json").read_text()), **metadata_change}
        save_file(load_file(str(path)), str(path), metadata={"interpgrad": json.dumps(metadata)})
    return path.read_bytes()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metrics": "oops"}, "'metrics' section must be an object"),
        ({"regularizer": "oops"}, "'regularizer' section must be an object"),
        ({"data": "oops"}, "'data' section must be an object"),
        ({"data": {"class_names": ["a", "b", "c"]}}, "3 names but the model has 10 classes"),
        ({"model": {"arch": "resnet18", "num_classes": 10, "width": 0.125, "image_size": 50000}}, "image_size must be"),
    ],
)
def test_models_page_refuses_invalid_metadata(tmp_path: Path, isolated_folders: dict[str, Path], change, message) -> None:
    at = _upload_checkpoint(_page("pages/1_Models.py"), "weird.safetensors", _checkpoint_bytes(tmp_path, change))
    _no_exception(at)
    assert any("weird.safetensors was not added" in e.value and message in e.value for e in at.error), [e.value for e in at.error]
    assert "model.safetensors" not in " ".join(e.value for e in at.error)  # the user's file is named, not ours
    assert not isolated_folders["upload"].exists() or not any(isolated_folders["upload"].iterdir())


def test_a_broken_checkpoint_on_disk_does_not_break_any_page(tmp_path: Path, isolated_folders: dict[str, Path]) -> None:
    """A file placed in uploads/ (or runs/) directly, bypassing the upload checks, is listed as unusable."""
    folder = isolated_folders["upload"] / "broken"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(_checkpoint_bytes(tmp_path, {"metrics": "oops", "regularizer": "oops", "data": "oops"}))
    for page in ("app.py", "pages/1_Models.py", "pages/2_Explore.py"):
        at = _page(page)
        _no_exception(at)
        if page != "pages/2_Explore.py":
            assert any("broken (upload)" in w.value and "section must be an object" in w.value for w in at.warning), page
    at = _page("pages/2_Explore.py")
    assert "upload/broken" not in at.multiselect(key="explore.models").options
    at.button(key="explore.run").click()
    at.run()
    _no_exception(at)
    assert len(at.session_state["explore.result"][1].rows) == 2


def test_an_upload_with_a_taken_name_gets_a_new_one(tmp_path: Path, isolated_folders: dict[str, Path]) -> None:
    _upload_checkpoint(_page("pages/1_Models.py"), "mine.safetensors", _checkpoint_bytes(tmp_path))
    at = _upload_checkpoint(_page("pages/1_Models.py"), "mine.safetensors", _checkpoint_bytes(tmp_path))  # other weights
    _no_exception(at)
    assert any("Another upload is called mine, so this one is called mine-2" in s.value for s in at.success)
    assert sorted(p.name for p in isolated_folders["upload"].iterdir()) == ["mine", "mine-2"]


def test_models_sharing_a_name_are_kept_apart(tmp_path: Path, isolated_folders: dict[str, Path]) -> None:
    """A run named like a shipped model: both curves on Models; on Explore each keeps its own target class."""
    import shutil

    run = isolated_folders["run"] / "shapes-resnet18-guided"
    shutil.copytree(ROOT / "checkpoints" / "shapes-resnet18-baseline", run)
    keys = ["shipped/shapes-resnet18-guided", "run/shapes-resnet18-guided"]
    at = _page("pages/1_Models.py")
    at.multiselect(key="models.show").set_value(keys)
    at.run()
    _no_exception(at)
    names = {trace["legendgroup"] for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] if trace["x"][0]}
    assert names == {"shapes-resnet18-guided (shipped)", "shapes-resnet18-guided (run)"}

    at = _page("pages/2_Explore.py")
    at.multiselect(key="explore.models").set_value(keys)
    at.multiselect(key="explore.methods").set_value(["gradient"])
    at.radio(key="explore.target_mode").set_value("choose")
    at.run()
    at.selectbox(key=f"explore.target.{keys[0]}").set_value("star")
    at.selectbox(key=f"explore.target.{keys[1]}").set_value("heart")
    at.run()
    at.button(key="explore.run").click()
    at.run()
    _no_exception(at)
    result = at.session_state["explore.result"][1]
    assert [(row.key, row.target_name) for row in result.rows] == [(keys[0], "star"), (keys[1], "heart")]


def test_make_run_listens_on_this_machine_unless_told_otherwise() -> None:
    """The Train page starts processes and reads local folders: `make run` binds to 127.0.0.1 by default."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for extra, address in [([], "127.0.0.1"), (["ADDRESS=0.0.0.0"], "0.0.0.0")]:
        dry = subprocess.run(["make", "-n", "run", *extra], cwd=ROOT, capture_output=True, text=True, timeout=60)
        command = next(line for line in dry.stdout.splitlines() if "streamlit run app.py" in line)
        assert f"--server.address {address}" in command, command
