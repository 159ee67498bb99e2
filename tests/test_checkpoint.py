"""Checkpoints: round trip, metadata beside and inside, pickles refused without running them, clear mismatch errors,
atomic writes."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

import interpgrad
from interpgrad import CheckpointError, ModelConfig, build_model, load_checkpoint, save_checkpoint
from interpgrad.training import checkpoint as checkpoint_module
from interpgrad.training import read_checkpoint_metadata

CONFIG = ModelConfig("resnet18", num_classes=10, width=0.25)


def _trained_like_model() -> torch.nn.Module:
    model = build_model(CONFIG)
    with torch.no_grad():
        for buffer_name, buffer in model.named_buffers():
            if "running_mean" in buffer_name:
                buffer.uniform_(-1, 1)
    return model.eval()


def test_round_trip(tmp_path: Path) -> None:
    model = _trained_like_model()
    data = {"name": "shapes", "class_names": [f"c{i}" for i in range(10)], "mean": [0.5] * 3, "std": [0.25] * 3}
    path = save_checkpoint(tmp_path / "run", model, CONFIG, data=data, metrics={"val_accuracy": 0.9},
                           regularizer={"name": "guided", "params": {"lam": 7.5e-3}})
    assert path == tmp_path / "run" / "model.safetensors"
    loaded, metadata = load_checkpoint(tmp_path / "run")
    assert not loaded.training
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert metadata["model"] == CONFIG.to_dict()
    assert metadata["data"] == data and metadata["metrics"] == {"val_accuracy": 0.9}
    assert metadata["interpgrad_version"] == interpgrad.__version__
    beside = json.loads((tmp_path / "run" / "model.json").read_text())
    assert beside == metadata
    # A lone .safetensors (as an upload would be) carries its own metadata.
    (tmp_path / "run" / "model.json").unlink()
    assert load_checkpoint(path).metadata == metadata


def test_metadata_from_the_json_beside_when_the_header_has_none(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = _trained_like_model()
    save_file(model.state_dict(), str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="no interpgrad metadata"):
        load_checkpoint(tmp_path / "plain.safetensors")
    (tmp_path / "plain.json").write_text(json.dumps({"model": CONFIG.to_dict()}))
    loaded, _ = load_checkpoint(tmp_path / "plain.safetensors")
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("name", ["model.safetensors", "evil.pt", "evil.pkl"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / name
    path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    assert not marker.exists()
    # The same payload inside a torch.save zip archive is refused too.
    torch.save({"x": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("first_bytes", [b"\x80", b"PK"])
def test_a_header_length_that_starts_like_a_pickle_or_zip_is_still_safetensors(tmp_path: Path, first_bytes: bytes) -> None:
    """A safetensors file starts with its header length (little-endian): its first bytes are 0x80 (a pickle's) or
    "PK" (a zip's) for some metadata sizes (ImageNet class names make ~20 kB headers), and such files must load."""
    model = _trained_like_model()
    base = save_checkpoint(tmp_path / "base.safetensors", model, CONFIG, metrics={"note": ""})
    base_length = int.from_bytes(base.read_bytes()[:8], "little")
    wanted = next(n for n in range(base_length, 2**16) if n.to_bytes(8, "little").startswith(first_bytes))
    for padding in range(wanted - base_length - 16, wanted - base_length + 16):
        path = save_checkpoint(tmp_path / f"m{padding}.safetensors", model, CONFIG, metrics={"note": "x" * max(0, padding)})
        if path.read_bytes().startswith(first_bytes):
            break
    else:
        pytest.fail(f"no padding gave a header length starting with {first_bytes!r}")
    loaded, metadata = load_checkpoint(path)
    assert metadata["metrics"]["note"] == "x" * max(0, padding)
    x = torch.zeros(1, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))


def test_shape_mismatch_names_the_mismatch(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.safetensors", _trained_like_model(), CONFIG)
    metadata = read_checkpoint_metadata(path)
    wrong = {**metadata, "model": {**metadata["model"], "width": 0.5}}
    path.with_suffix(".json").write_text(json.dumps(wrong))
    _rewrite_header(path, wrong)
    with pytest.raises(CheckpointError, match=r"width 0\.5.*conv1\.weight is \[16, 3, 3, 3\] in the file but \[32, 3, 3, 3\]"):
        load_checkpoint(path)


def test_other_architecture_and_class_count_are_clear_errors(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.safetensors", _trained_like_model(), CONFIG)
    metadata = read_checkpoint_metadata(path)
    _rewrite_header(path, {**metadata, "model": {**metadata["model"], "arch": "mobilenet_v2"}})
    with pytest.raises(CheckpointError, match="mobilenet_v2.*tensors missing"):
        load_checkpoint(path)
    _rewrite_header(path, {**metadata, "model": {**metadata["model"], "num_classes": 100}})
    with pytest.raises(CheckpointError, match=r"fc\.weight is \[10, 128\] in the file but \[100, 128\]"):
        load_checkpoint(path)
    _rewrite_header(path, {**metadata, "model": {**metadata["model"], "arch": "resnet1000"}})
    with pytest.raises(CheckpointError, match="unknown architecture 'resnet1000'"):
        load_checkpoint(path)


def _rewrite_header(path: Path, metadata: dict) -> None:
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={"interpgrad": json.dumps(metadata)})


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a safetensors file"),
        (b"hello, this is a text file that claims to be a checkpoint", "not a safetensors file"),
        (b"\xff" * 8 + b"{" + b"x" * 10, "corrupt or truncated"),
    ],
)
def test_garbage_files_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.safetensors", _trained_like_model(), CONFIG)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _trained_like_model()
    path = save_checkpoint(tmp_path / "run", first, CONFIG, metrics={"epoch": 1})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(checkpoint_module.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "run", build_model(CONFIG), CONFIG, metrics={"epoch": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["model.json", "model.safetensors"]
    assert load_checkpoint(path).metadata["metrics"] == {"epoch": 1}


def test_ddp_style_wrappers_are_unwrapped(tmp_path: Path) -> None:
    model = _trained_like_model()
    wrapper = torch.nn.Module()
    wrapper.module = model
    path = save_checkpoint(tmp_path / "w.safetensors", wrapper, CONFIG)
    loaded, _ = load_checkpoint(path)
    assert set(loaded.state_dict()) == set(model.state_dict())


def _valid_metadata() -> dict:
    return {"model": CONFIG.to_dict(), "data": {"name": "shapes", "class_names": [f"c{i}" for i in range(10)],
                                                "mean": [0.5] * 3, "std": [0.25] * 3},
            "training": {}, "regularizer": {"name": "guided", "params": {"lam": 7.5e-3}}, "metrics": {"val_accuracy": 0.5}}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metrics": "oops"}, "'metrics' section must be an object, got a string"),
        ({"regularizer": "oops"}, "'regularizer' section must be an object"),
        ({"data": "oops"}, "'data' section must be an object"),
        ({"training": [1, 2]}, "'training' section must be an object, got a list"),
        ({"regularizer": {"name": 3}}, "regularizer.name must be a string"),
        ({"data": {"class_names": ["a", "b"]}}, "class_names has 2 names but the model has 10 classes"),
        ({"data": {"class_names": "abcdefghij"}}, "class_names must be a list of strings"),
        ({"data": {"mean": [0.5, 0.5], "std": [0.25] * 3}}, r"data.mean must be 3 finite numbers"),
        ({"data": {"mean": [0.5] * 3, "std": [0.25, 0.0, 0.25]}}, "std must be positive"),
        ({"model": {**CONFIG.to_dict(), "image_size": 50000}}, r"image_size must be an integer in 8\.\.1024"),
        ({"model": {**CONFIG.to_dict(), "width": 1000}}, r"width must be a number in \(0, 8\]"),
        ({"model": {**CONFIG.to_dict(), "num_classes": 10**9}}, "num_classes must be an integer"),
        ({"model": {**CONFIG.to_dict(), "num_classes": "10"}}, "num_classes must be an integer"),
        ({"model": {**CONFIG.to_dict(), "arch": ["resnet18"]}}, "arch must be a name"),
    ],
)
def test_invalid_metadata_is_refused_when_read_and_when_loaded(tmp_path: Path, change: dict, message: str) -> None:
    """The app and the CLI read the metadata without further checks: every checkpoint's metadata is validated."""
    path = save_checkpoint(tmp_path / "a.safetensors", _trained_like_model(), CONFIG)
    _rewrite_header(path, {**_valid_metadata(), **change})
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint_metadata(path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    _rewrite_header(path, _valid_metadata())
    assert load_checkpoint(path).metadata == _valid_metadata()


def test_shapes_are_compared_on_the_meta_device_before_the_model_is_built(tmp_path: Path, monkeypatch) -> None:
    """Metadata describing a larger model than the file holds is refused without allocating that model."""
    built_on: list[str] = []
    real_build = checkpoint_module.build_model

    def spy(config):  # type: ignore[no-untyped-def]
        built_on.append(torch.get_default_device().type)
        return real_build(config)

    monkeypatch.setattr(checkpoint_module, "build_model", spy)
    path = save_checkpoint(tmp_path / "a.safetensors", _trained_like_model(), CONFIG)
    metadata = read_checkpoint_metadata(path)
    _rewrite_header(path, {**metadata, "model": {**metadata["model"], "width": 8.0, "num_classes": 100_000}})
    with pytest.raises(CheckpointError, match=r"conv1\.weight is \[16, 3, 3, 3\] in the file but \[512, 3, 3, 3\]"):
        load_checkpoint(path)
    assert built_on == ["meta"]
    _rewrite_header(path, metadata)
    built_on.clear()
    model, _ = load_checkpoint(path)
    assert built_on == ["meta", "cpu"] and next(model.parameters()).device.type == "cpu"


def test_file_sha256_reads_in_blocks_and_equals_hashlib(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from interpgrad.training.checkpoint import file_sha256

    for size in (0, 1, (1 << 20) - 1, (1 << 20) + 7):
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        path = tmp_path / f"{size}.bin"
        path.write_bytes(data)
        assert file_sha256(path) == hashlib.sha256(data).hexdigest()
