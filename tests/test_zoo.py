"""The model zoo (shipped, runs, uploads; uploads validated before they are kept) and the bundled samples."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from interpgrad import CheckpointError, ModelConfig, build_model, save_checkpoint
from interpgrad.samples import PHOTOS, photo_sample, sample_images, shapes_samples
from interpgrad.training import RunDir
from interpgrad.zoo import discover_models, save_upload

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
    entry = save_upload(directories["upload"], "my model!.safetensors", path.read_bytes())
    assert entry.key == "upload/my-model" and entry.path.is_file()
    assert [e.key for e in discover_models(directories)] == ["upload/my-model"]


def test_an_upload_with_separate_metadata(directories: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file(build_model(CONFIG).state_dict(), str(tmp_path / "plain.safetensors"))
    data = (tmp_path / "plain.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="no interpgrad metadata"):
        save_upload(directories["upload"], "plain.safetensors", data)
    entry = save_upload(directories["upload"], "plain.safetensors", data, json.dumps({"model": CONFIG.to_dict()}).encode())
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
