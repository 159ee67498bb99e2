"""The model zoo (shipped, runs, uploads; uploads validated before they are kept) and the bundled samples."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from interpgrad import CheckpointError, ConfigError, ModelConfig, build_model, save_checkpoint
from interpgrad.samples import PHOTOS, photo_sample, sample_images, shapes_samples
from interpgrad.jobs import reason_fields
from interpgrad.training import RunDir
from interpgrad.zoo import delete_model, discover_models, model_name, save_upload

CONFIG = ModelConfig("resnet18", num_classes=10, width=0.125)


@pytest.fixture()
def directories(tmp_path: Path) -> dict[str, Path]:
    return {source: tmp_path / source for source in ("shipped", "run", "upload")}


def test_discovers_shipped_runs_and_uploads_with_curves(directories: dict[str, Path]) -> None:
    model = build_model(CONFIG)
    save_checkpoint(directories["shipped"] / "baseline", model, CONFIG, data={"class_names": list("abcdefghij")},
                    metrics={"val_accuracy": 0.9})
    RunDir(directories["shipped"] / "baseline").write_metrics([{"epoch": 1, "val_accuracy": 0.9}])
    save_checkpoint(directories["run"] / "mine", model, CONFIG, regularizer={"name": "guided"})
    (directories["run"] / "empty-run").mkdir(parents=True)  # a run without a complete epoch: not a model yet
    (directories["upload"]).mkdir()
    (directories["upload"] / "broken.safetensors").write_bytes(b"garbage")  # unreadable files are not offered
    entries = discover_models(directories)
    assert [entry.key for entry in entries] == ["shipped/baseline", "run/mine"]
    shipped, run = entries
    assert shipped.metrics == ({"epoch": 1, "val_accuracy": 0.9},) and shipped.class_names[0] == "a"
    assert "val acc 90.0%" in shipped.label and run.regularizer == "guided" and run.class_names[:2] == ["0", "1"]


def test_a_valid_upload_is_kept(directories: dict[str, Path], tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "src", build_model(CONFIG), CONFIG)
    entry = save_upload(directories["upload"], "my model!.safetensors", path.read_bytes()).entry
    assert entry.key == "upload/my-model" and entry.path.is_file()
    assert [e.key for e in discover_models(directories)] == ["upload/my-model"]


def test_an_upload_with_separate_metadata(directories: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file(build_model(CONFIG).state_dict(), str(tmp_path / "plain.safetensors"))
    data = (tmp_path / "plain.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="no interpgrad metadata"):
        save_upload(directories["upload"], "plain.safetensors", data)
    entry = save_upload(directories["upload"], "plain.safetensors", data, json.dumps({"model": CONFIG.to_dict()}).encode()).entry
    assert entry.arch == "resnet18"


@pytest.mark.parametrize(
    "content, metadata, message",
    [
        (pickle.dumps({"weights": [1, 2, 3]}), None, "pickle"),
        (b"just some text", None, "not a safetensors file"),
        ("checkpoint", b"{not json", "not valid JSON"),
        ("other-arch", None, "do not match"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason_and_not_kept(directories, tmp_path, content, metadata, message) -> None:
    if content == "checkpoint":
        content = save_checkpoint(tmp_path / "a", build_model(CONFIG), CONFIG).read_bytes()
    elif content == "other-arch":
        path = save_checkpoint(tmp_path / "b", build_model(CONFIG), CONFIG)
        metadata = json.dumps({"model": {**CONFIG.to_dict(), "arch": "mobilenet_v2"}}).encode()
        from safetensors.torch import load_file, save_file

        save_file(load_file(str(path)), str(path))  # drop the header metadata: the JSON describes another architecture
        content = path.read_bytes()
    with pytest.raises(CheckpointError, match=message):
        save_upload(directories["upload"], "upload.safetensors", content, metadata)
    assert not directories["upload"].exists() or not any(directories["upload"].iterdir())


def test_samples_offline() -> None:
    shapes = shapes_samples()
    assert len(shapes) == 10 and all(s.mask is not None and s.mask.any() for s in shapes)
    assert {s.label for s in shapes} == {"circle", "square", "triangle", "star", "cross", "ring", "crescent", "heart",
                                         "arrow", "ellipse"}
    for name in PHOTOS:
        photo = photo_sample(name)
        assert photo.image.dtype == np.uint8 and photo.image.ndim == 3 and photo.image.shape[2] == 3
    assert len(sample_images()) == 10 + len(PHOTOS)
    # the shapes samples are not images of the default training split
    from interpgrad.data import ShapesDataset

    train = {image.tobytes() for image in ShapesDataset("train").images}
    assert not any(sample.image.tobytes() in train for sample in shapes)


def _with_metadata(path: Path, metadata: dict) -> None:
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={"interpgrad": json.dumps(metadata)})


def test_a_broken_file_on_disk_is_listed_with_its_reason_and_never_crashes(directories: dict[str, Path]) -> None:
    good = save_checkpoint(directories["upload"] / "good", build_model(CONFIG), CONFIG)
    bad = save_checkpoint(directories["upload"] / "bad", build_model(CONFIG), CONFIG)
    _with_metadata(bad, {"model": CONFIG.to_dict(), "metrics": "oops", "regularizer": "oops", "data": "oops"})
    (directories["upload"] / "garbage.safetensors").write_bytes(b"garbage")
    assert [entry.key for entry in discover_models(directories)] == ["upload/good"]
    everything = {entry.key: entry for entry in discover_models(directories, include_broken=True)}
    assert sorted(everything) == ["upload/bad", "upload/garbage", "upload/good"]
    broken = everything["upload/bad"]
    assert not broken.usable and "'data' section must be an object" in broken.problem
    assert "not a safetensors file" in everything["upload/garbage"].problem
    for entry in everything.values():  # every property a page reads works on a broken entry too
        assert entry.arch and entry.regularizer and isinstance(entry.class_names, list) and entry.label
        assert entry.metric("val_accuracy") is None and entry.section("metrics") == {}
    assert "cannot be used" in broken.label and everything["upload/good"].path == good


def test_metrics_lines_that_are_not_epoch_records_are_left_out(directories: dict[str, Path]) -> None:
    save_checkpoint(directories["run"] / "r", build_model(CONFIG), CONFIG)
    (directories["run"] / "r" / "metrics.jsonl").write_text('5\n"x"\n{"epoch": 1, "val_accuracy": 0.5}\n{"no": 1}\n')
    (entry,) = discover_models(directories)
    assert entry.metrics == ({"epoch": 1, "val_accuracy": 0.5},)


def test_an_upload_never_replaces_another(directories: dict[str, Path], tmp_path: Path) -> None:
    """Another model with the same name gets a new name; no metadata file of the first stays with the second."""
    from safetensors.torch import save_file

    save_file(build_model(CONFIG).state_dict(), str(tmp_path / "plain.safetensors"))
    plain = (tmp_path / "plain.safetensors").read_bytes()
    first = save_upload(directories["upload"], "net.safetensors", plain, json.dumps({"model": CONFIG.to_dict()}).encode()).entry
    with_header = save_checkpoint(tmp_path / "h", build_model(CONFIG), CONFIG).read_bytes()
    second = save_upload(directories["upload"], "net.safetensors", with_header).entry
    (directories["upload"] / "net-3.safetensors").write_bytes(with_header)  # a loose file takes a name too
    other = save_checkpoint(tmp_path / "o", build_model(CONFIG), CONFIG).read_bytes()  # other weights
    third = save_upload(directories["upload"], "net.safetensors", other).entry
    assert (first.name, second.name, third.name) == ("net", "net-2", "net-4")
    assert first.path.read_bytes() == plain and (directories["upload"] / "net" / "model.json").is_file()
    assert not (directories["upload"] / "net-2" / "model.json").exists()
    assert len({entry.key for entry in discover_models(directories)}) == 4


def test_a_loose_file_and_a_folder_of_the_same_name_get_distinct_keys(directories: dict[str, Path]) -> None:
    save_checkpoint(directories["upload"] / "twin", build_model(CONFIG), CONFIG)
    save_checkpoint(directories["upload"] / "twin.safetensors", build_model(CONFIG), CONFIG)
    assert [entry.key for entry in discover_models(directories)] == ["upload/twin", "upload/twin.safetensors"]


@pytest.mark.parametrize("metadata", [None, b"{not json"])
def test_upload_errors_name_the_uploaded_files(directories: dict[str, Path], tmp_path: Path, metadata) -> None:
    content = b"just text" if metadata is None else save_checkpoint(tmp_path / "a", build_model(CONFIG), CONFIG).read_bytes()
    with pytest.raises(CheckpointError) as caught:
        save_upload(directories["upload"], "my weights.safetensors", content, metadata, "my meta.json")
    expected = "my weights.safetensors" if metadata is None else "my meta.json"
    assert expected in str(caught.value) and "model.safetensors" not in str(caught.value)


def test_invalid_metadata_in_an_upload_is_refused(directories: dict[str, Path], tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a", build_model(CONFIG), CONFIG)
    _with_metadata(path, {"model": {**CONFIG.to_dict(), "image_size": 50000}})
    with pytest.raises(CheckpointError, match="image_size must be an integer"):
        save_upload(directories["upload"], "big.safetensors", path.read_bytes())
    assert not directories["upload"].exists() or not any(directories["upload"].iterdir())


# ---------------------------------------------------------------------------------------------------- names, twins, deleting


@pytest.mark.parametrize("metadata, filename, expected", [
    ({"name": "guided-run", "training": {"out": "runs/other"}}, "model.safetensors", "guided-run"),
    ({"training": {"out": "build/starter/guided"}}, "model.safetensors", "guided"),
    ({"training": {"out": "runs/x"}, "name": 5}, "model.safetensors", "x"),  # a name that is not text is ignored
    ({}, "my net.safetensors", "my-net"),
    ({"data": {"name": "shapes"}, "model": {"arch": "resnet18"}, "regularizer": {"name": "guided"}}, "model.safetensors",
     "shapes-resnet18-guided"),
    ({"model": {"arch": "resnet18"}}, "checkpoint.safetensors", "resnet18-none"),
    ({"name": "../../etc"}, "model.safetensors", "etc"),  # never a path
])
def test_a_checkpoint_is_named_after_its_model(metadata: dict, filename: str, expected: str) -> None:
    assert model_name(metadata, filename) == expected


def test_uploads_are_named_after_the_model_in_their_metadata(directories: dict[str, Path], tmp_path: Path) -> None:
    """A run's checkpoint is called model.safetensors: its upload takes the run's name, not "model", "model-2"."""
    first = save_checkpoint(tmp_path / "a", build_model(CONFIG), CONFIG, name="guided-0312", training={"out": "runs/guided-0312"})
    older = save_checkpoint(tmp_path / "b", build_model(CONFIG), CONFIG, training={"out": "/somewhere/runs/baseline-7"})
    saved = [save_upload(directories["upload"], "model.safetensors", path.read_bytes()) for path in (first, older)]
    assert [(s.entry.key, s.wanted, s.already_there) for s in saved] == [
        ("upload/guided-0312", "guided-0312", False), ("upload/baseline-7", "baseline-7", False)]


def test_an_identical_file_is_recognised_and_not_kept_twice(directories: dict[str, Path], tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a", build_model(CONFIG), CONFIG, name="mine")
    first = save_upload(directories["upload"], "model.safetensors", path.read_bytes())
    again = save_upload(directories["upload"], "renamed copy.safetensors", path.read_bytes())
    assert again.already_there and again.entry.key == first.entry.key == "upload/mine"
    assert [p.name for p in directories["upload"].iterdir()] == ["mine"]
    # One shipped or trained already counts too, when the caller passes the whole zoo.
    shipped = save_checkpoint(directories["shipped"] / "starter", build_model(CONFIG), CONFIG)
    found = save_upload(directories["upload"], "starter.safetensors", shipped.read_bytes(), existing=discover_models(directories))
    assert found.already_there and found.entry.key == "shipped/starter"
    assert sorted(p.name for p in directories["upload"].iterdir()) == ["mine"]


def test_the_same_weights_with_other_metadata_are_another_model(directories: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file(build_model(CONFIG).state_dict(), str(tmp_path / "plain.safetensors"))
    plain = (tmp_path / "plain.safetensors").read_bytes()
    describe = [json.dumps({"model": CONFIG.to_dict(), "data": {"name": name}}).encode() for name in ("shapes", "cifar10")]
    saved = [save_upload(directories["upload"], "plain.safetensors", plain, metadata) for metadata in describe]
    assert [s.already_there for s in saved] == [False, False]
    assert saved[0].entry.key != saved[1].entry.key and saved[1].entry.section("data")["name"] == "cifar10"
    assert save_upload(directories["upload"], "plain.safetensors", plain, describe[1]).already_there


def test_uploads_and_runs_are_deleted_shipped_checkpoints_never(directories: dict[str, Path], tmp_path: Path) -> None:
    save_checkpoint(directories["shipped"] / "starter", build_model(CONFIG), CONFIG)
    save_checkpoint(directories["run"] / "stopped", build_model(CONFIG), CONFIG)
    run = RunDir(directories["run"] / "stopped")
    run.write_metrics([{"epoch": 1}])
    run.write_status("stopped", **reason_fields("stopped and saved"))
    save_checkpoint(directories["upload"] / "folder", build_model(CONFIG), CONFIG)
    save_checkpoint(directories["upload"] / "loose.safetensors", build_model(CONFIG), CONFIG)
    entries = {entry.key: entry for entry in discover_models(directories)}
    with pytest.raises(ConfigError, match="shipped with interpgrad and cannot be deleted"):
        delete_model(entries["shipped/starter"], directories)
    for key in ("run/stopped", "upload/folder", "upload/loose"):
        delete_model(entries[key], directories)
    assert [entry.key for entry in discover_models(directories)] == ["shipped/starter"]
    assert not run.path.exists() and not any(directories["upload"].iterdir())  # the loose file's JSON went too


def test_a_running_run_is_not_deleted(directories: dict[str, Path]) -> None:
    save_checkpoint(directories["run"] / "busy", build_model(CONFIG), CONFIG)
    RunDir(directories["run"] / "busy").write_status("running", pid=os.getpid())  # this process: alive
    (entry,) = discover_models(directories)
    with pytest.raises(ConfigError, match="busy is running; stop it first"):
        delete_model(entry, directories)
    assert entry.path.is_file()


def test_an_entry_outside_its_folder_is_not_deleted(directories: dict[str, Path], tmp_path: Path) -> None:
    """Deleting follows the zoo's layout only: an entry that lies elsewhere than the given folders is refused."""
    elsewhere = save_checkpoint(tmp_path / "precious" / "deep", build_model(CONFIG), CONFIG)
    (entry,) = discover_models({"shipped": tmp_path / "none", "run": tmp_path / "none", "upload": tmp_path / "precious"})
    with pytest.raises(ConfigError, match="not in the upload folder"):
        delete_model(entry, directories)
    assert elsewhere.is_file()
