"""The Explore grid's library: ``interpgrad.comparison.compare`` and progress reporting of multi-pass methods."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import small_models
import torch
from PIL import Image

from interpgrad import ConfigError, explain
from interpgrad.comparison import ComparedModel, compare
from interpgrad.explain import reporting_progress

IMAGE = (np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)  # not square, not the model's size


def _compared(name: str, seed: int) -> ComparedModel:
    metadata = {"model": {"arch": "resnet18", "num_classes": 10, "image_size": 32},
                "data": {"class_names": [f"class{i}" for i in range(10)], "mean": [0.5] * 3, "std": [0.25] * 3}}
    return ComparedModel(name, small_models.cifar_resnet18(seed), metadata)


@pytest.fixture(scope="module")
def models() -> list[ComparedModel]:
    return [_compared("a", 0), _compared("b", 1)]


def test_grid_rows_columns_targets_and_captum(models: list[ComparedModel]) -> None:
    updates: list[tuple[float, str]] = []
    grid = compare(models, IMAGE, ["gradient", "gradcam", "scorecam"], targets={"b": 7}, with_captum=True,
                   progress=lambda fraction, message: updates.append((fraction, message)))
    assert [row.name for row in grid.rows] == ["a", "b"]
    assert grid.columns == ["gradient", "gradient (Captum)", "gradcam", "gradcam (Captum)", "scorecam"]
    assert grid.rows[1].target == 7 and grid.rows[1].target_name == "class7"
    assert grid.rows[0].target_name == grid.rows[0].top[0][0]  # no target given: the predicted class
    assert grid.rows[0].image.shape == (32, 32, 3)  # the model's view: shorter side resized, centre crop
    for row in grid.rows:
        assert all(cell.explanation is not None and cell.error is None for cell in row.cells)
        ours = {cell.method: cell for cell in row.cells if cell.source == "ours"}
        captum = {cell.method: cell for cell in row.cells if cell.source == "captum"}
        torch.testing.assert_close(ours["gradient"].explanation.raw, captum["gradient"].explanation.raw, rtol=1e-5, atol=1e-5)
        assert int(ours["gradcam"].explanation.target[0]) == row.target
    fractions = [fraction for fraction, _ in updates]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("scorecam" in message for _, message in updates)


def test_downloads_png_and_zip(models: list[ComparedModel]) -> None:
    grid = compare(models, IMAGE, ["gradient", "guided_backprop"])
    picture = Image.open(io.BytesIO(grid.png_bytes(panel_size=64)))
    assert picture.width > 3 * 64 and picture.height > 2 * 64
    with zipfile.ZipFile(io.BytesIO(grid.zip_bytes())) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert [model["name"] for model in manifest["models"]] == ["a", "b"]
        files = manifest["models"][0]["cells"][0]["files"]
        raw = np.load(io.BytesIO(archive.read(files[0])))
        assert raw.shape == (3, 32, 32)
        np.testing.assert_allclose(raw, grid.rows[0].cells[0].explanation.raw[0].numpy())


def test_unknown_method_is_refused_before_any_work(models: list[ComparedModel]) -> None:
    with pytest.raises(ConfigError, match="nosuchmethod"):
        compare(models, IMAGE, ["gradient", "nosuchmethod"])


def test_multi_pass_methods_report_progress_outermost_loop_only() -> None:
    model, x = small_models.cifar_resnet18(), torch.randn(1, 3, 32, 32)
    reported: list[float] = []
    with reporting_progress(reported.append):
        explain(model, x, "scorecam", batch_size=32)  # <= 128 channels at layer4 (width 0.25): 4 passes
    assert len(reported) == 4 and reported == sorted(reported) and reported[-1] == 1.0
    reported.clear()
    with reporting_progress(reported.append):  # 4 noisy samples of 8-step paths, 2 samples per pass: outer loop only
        explain(model, x, "smoothgrad", base="integrated_gradients", samples=4, steps=8, batch_size=16)
    assert reported == [0.5, 1.0]
    reported.clear()
    explain(model, x, "scorecam", batch_size=32)  # outside the block: nothing reported
    assert reported == []


def test_models_sharing_a_display_name_are_told_apart_by_key(models: list[ComparedModel]) -> None:
    """A shipped model and an upload may share a name: targets and the ZIP's folders follow the unique key."""
    from dataclasses import replace

    twins = [replace(models[0], name="same", key="shipped/same"), replace(models[1], name="same", key="upload/same")]
    grid = compare(twins, IMAGE, ["gradient"], targets={"shipped/same": 2, "upload/same": 5})
    assert [(row.key, row.target) for row in grid.rows] == [("shipped/same", 2), ("upload/same", 5)]
    with zipfile.ZipFile(io.BytesIO(grid.zip_bytes())) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        files = [cell["files"][0] for model in manifest["models"] for cell in model["cells"]]
        assert files == ["shipped/same/gradient_raw.npy", "upload/same/gradient_raw.npy"]
        for row, name in zip(grid.rows, files):
            np.testing.assert_array_equal(np.load(io.BytesIO(archive.read(name))), row.cells[0].explanation.raw[0].numpy())
    slugged = [replace(models[0], key="a b"), replace(models[1], key="a_b")]  # keys that slug alike
    with zipfile.ZipFile(io.BytesIO(compare(slugged, IMAGE, ["gradient"]).zip_bytes())) as archive:
        assert [m["folder"] for m in json.loads(archive.read("manifest.json"))["models"]] == ["a_b", "a_b-2"]


def test_a_target_out_of_range_is_a_readable_error(models: list[ComparedModel]) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        compare(models[:1], IMAGE, ["gradient"], targets={"a": 10})


def test_ablationcam_progress_runs_once_over_the_whole_batch() -> None:
    """Several images: the fraction rises steadily to 1 once (it used to restart at 0 for every image)."""
    model, x = small_models.cifar_resnet18(), torch.randn(3, 3, 32, 32)
    reported: list[float] = []
    with reporting_progress(reported.append):
        explain(model, x, "ablationcam", batch_size=33)  # <= 128 channels per image at layer4, 32 copies per pass
    assert reported == sorted(reported) and reported[-1] == 1.0 and reported.count(1.0) == 1
    assert len(reported) >= 6 and reported[0] <= 1 / 6


def test_scores_under_the_grid_are_each_map_scored_on_the_model_s_own_view(models: list[ComparedModel]) -> None:
    """``score_comparison`` gives every map of the grid the scores ``score_explanation`` gives it on the input the
    model saw (resized, cropped, normalised its way), with the ground-truth mask seen through the same crop."""
    from interpgrad.comparison import _mask_view, score_comparison
    from interpgrad.data import prepare_image
    from interpgrad.metrics import score_explanation

    mask = np.zeros(IMAGE.shape[:2], dtype=bool)
    mask[10:30, 8:28] = True
    grid = compare(models, IMAGE, ["gradient"], with_captum=True)
    scores = score_comparison(models[:1], IMAGE, grid, mask=mask)  # model b is not given: its row is skipped
    assert set(scores) == {("a", "gradient"), ("a", "gradient (Captum)")}
    row = grid.rows[0]
    x = prepare_image(IMAGE, 32, [0.5] * 3, [0.25] * 3)
    for cell in row.cells:
        expected = score_explanation(models[0].model, x, cell.explanation, mean=[0.5] * 3, std=[0.25] * 3,
                                     masks=torch.from_numpy(_mask_view(mask, 32))[None])
        assert scores[("a", cell.column)] == {name: float(result.values[0]) for name, result in expected.items()}
        assert set(scores[("a", cell.column)]) == {"insertion", "deletion", "energy_pointing_game"}
    without_mask = score_comparison(models[:1], IMAGE, grid)
    assert all(set(values) == {"insertion", "deletion"} for values in without_mask.values())
    with_mask = scores[("a", "gradient")]
    assert without_mask[("a", "gradient")] == {k: v for k, v in with_mask.items() if k != "energy_pointing_game"}


def test_a_mask_is_seen_through_the_model_s_crop() -> None:
    from interpgrad.comparison import _mask_view

    left = np.zeros((64, 96), dtype=bool)  # wide: resized to 32 x 48, then the centre 32 columns are kept
    left[:, :48] = True  # the left half of the image: columns 0-23 at 48 wide, so 0-15 of the crop (which starts at 8)
    view = _mask_view(left, 32)
    assert view.shape == (32, 32) and view.dtype == bool
    assert view[:, :15].all() and not view[:, 17:].any()
