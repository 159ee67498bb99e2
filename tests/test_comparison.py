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
from interpgrad.comparison import Cell, ComparedModel, compare
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
    without = Image.open(io.BytesIO(grid.png_bytes(panel_size=64, differences=False)))  # no A - B row, same width
    assert without.width == picture.width and without.height < picture.height - 64
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


# --- what the grid shows besides the maps -----------------------------------------------------------------------------

SHAPES_METADATA = {"model": {"arch": "resnet18", "num_classes": 10, "image_size": 32},
                   "data": {"name": "shapes", "class_names": [f"class{i}" for i in range(10)], "mean": [0.5] * 3,
                            "std": [0.25] * 3}}


class _Scaled(torch.nn.Module):
    """A model's logits times ``factor``: every gradient map of it is ``factor`` times the model's."""

    def __init__(self, model: torch.nn.Module, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = model, factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * self.factor


def test_a_scale_shared_per_column_shows_a_weaker_model_weaker(models: list[ComparedModel]) -> None:
    from interpgrad.viz import DisplayOptions, normalize_map, shared_scale

    weak = ComparedModel("weak", _Scaled(models[0].model, 0.1).eval(), models[0].metadata)
    grid = compare([models[0], weak], IMAGE, ["gradient", "guided_backprop"])
    each = grid.render(DisplayOptions(), 32)
    assert each.column_scales == {}
    for method in grid.methods:
        strong_panel, weak_panel = each.panels[("a", method)], each.panels[("weak", method)]
        assert weak_panel.scale == pytest.approx(0.1 * strong_panel.scale, rel=1e-4)
        assert np.abs(strong_panel.image.astype(int) - weak_panel.image).max() <= 1  # on its own scale: alike
        assert strong_panel.note == f"scale {strong_panel.scale:.3g}"
    shared = grid.render(DisplayOptions(scale="column"), 32)
    for method in grid.methods:
        maps = [row.cells[grid.methods.index(method)].explanation.map[0] for row in grid.rows]
        assert shared.column_scales[method] == pytest.approx(shared_scale(maps, 99.5))
        scales = {shared.panels[(key, method)].scale for key in ("a", "weak")}
        assert scales == {shared.column_scales[method]}
        assert shared.panels[("a", method)].note == ""  # the colour scale above the column gives the numbers
        weak_shown = normalize_map(maps[1], "absolute", 99.5, scale=shared.column_scales[method])
        assert float(weak_shown.max()) < 0.2  # a tenth of the strong map's values: it looks weaker
        assert shared.scale_labels(method) == ("0", None, f"{shared.column_scales[method]:.3g}")
    assert each.scale_labels("gradient") == ("0", None, "scale")
    assert grid.render(DisplayOptions(signed=True), 32).scale_labels("gradient") == ("-scale", "0", "+scale")


def test_a_minus_b_rows_subtract_the_maps_as_shown_for_models_of_the_same_input_size(
    models: list[ComparedModel],
) -> None:
    from dataclasses import replace

    from interpgrad.viz import DisplayOptions, normalize_map

    big = replace(models[1], name="big", metadata={**models[1].metadata,
                                                   "model": {**models[1].metadata["model"], "image_size": 48}})
    grid = compare([*models, big], IMAGE, ["gradient", "gradcam"])
    for display, limit in [(DisplayOptions(), 1.0), (DisplayOptions(signed=True, percentile=98), 2.0)]:
        view = grid.render(display, 64)
        assert [(row.minuend, row.subtrahend) for row in view.differences] == [("a", "b")]
        assert view.difference_note == ("No A - B row for big (48x48): a takes 32x32 inputs, so their maps are not "
                                        "pixel-aligned.")
        difference = view.differences[0]
        assert difference.limit == limit and set(difference.panels) == {"gradient", "gradcam"}
        for method in grid.methods:
            explanations = [row.cells[grid.methods.index(method)].explanation for row in grid.rows[:2]]
            shown = [normalize_map((e.signed_map if display.signed else e.map)[0], display.mode, display.percentile)
                     for e in explanations]
            torch.testing.assert_close(difference.values[method], shown[0] - shown[1])
            assert difference.panels[method].image.shape == (64, 64, 3)
        assert view.difference_labels == (f"-{limit:g}", "0", f"+{limit:g}")
    swapped = grid.render(DisplayOptions(), reference="b").differences[0]
    assert (swapped.minuend, swapped.subtrahend) == ("b", "a")
    torch.testing.assert_close(swapped.values["gradient"], -grid.render().differences[0].values["gradient"])
    with pytest.raises(ConfigError, match="no model 'c'"):
        grid.render(reference="c")
    alone = compare(models[:1], IMAGE, ["gradient"]).render()
    assert alone.differences == [] and alone.difference_note is None
    layout = grid.figure_layout(DisplayOptions(), 64)
    assert any(text.lines[0].startswith("A - B: a - b") for text in layout.texts("row"))
    assert "No A - B row for big" in " ".join(" ".join(text.lines) for text in layout.texts("title"))


def test_captum_s_agreement_is_the_pearson_correlation_of_the_raw_maps(models: list[ComparedModel]) -> None:
    grid = compare(models[:1], IMAGE, ["gradient", "gradcam", "layercam"], with_captum=True)
    cells = {cell.column: cell for cell in grid.rows[0].cells}
    assert set(cells) == {"gradient", "gradient (Captum)", "gradcam", "gradcam (Captum)", "layercam"}
    for method in ("gradient", "gradcam"):
        ours, captum = cells[method], cells[f"{method} (Captum)"]
        expected = np.corrcoef(ours.explanation.raw.flatten().double().numpy(),
                               captum.explanation.raw.flatten().double().numpy())[0, 1]
        assert captum.agreement == pytest.approx(expected, abs=1e-12) and captum.agreement > 0.9999
        assert ours.agreement is None and ours.agreement_text == ""
        assert captum.agreement_text == f"Pearson r {expected:.4f} with ours"
    from interpgrad.comparison import _agreement

    from dataclasses import replace

    ours = cells["gradient"]
    assert _agreement(ours, replace(ours.explanation, raw=-ours.explanation.raw)) == pytest.approx(-1.0)
    constant = replace(ours.explanation, raw=torch.ones_like(ours.explanation.raw))
    undefined = Cell("gradient", "captum", constant, None, 0.0, _agreement(ours, constant))
    assert undefined.agreement_text == "Pearson r with ours undefined (a constant map)"
    assert _agreement(ours, None) is None and _agreement(ours, cells["gradcam"].explanation) is None  # no pair


def test_cos_standard_guided_is_what_the_trainer_measures_and_1_without_rectifiers(models: list[ComparedModel]) -> None:
    from interpgrad.data import prepare_image
    from interpgrad.regularizers import gradient_alignment

    grid = compare(models, IMAGE, ["gradient"], targets={"b": 4})
    for row, compared in zip(grid.rows, models):
        x = prepare_image(IMAGE, 32, [0.5] * 3, [0.25] * 3)
        expected = float(gradient_alignment(compared.model, x, torch.tensor([row.target]))[0])  # its val_alignment
        assert row.alignment == pytest.approx(expected, abs=1e-6) and -1 <= row.alignment <= 1
        assert f"cos(standard, guided) {expected:.2f}" in row.predictions()
        assert all(p.grad is None for p in compared.model.parameters())
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10)).eval()
    plain = compare([ComparedModel("linear", linear, SHAPES_METADATA)], IMAGE, ["gradient"])
    assert plain.rows[0].alignment == pytest.approx(1.0, abs=1e-6)  # nothing to guide: the two gradients are one


def test_every_row_says_how_the_image_was_resized_and_whether_it_is_in_the_model_s_domain() -> None:
    from interpgrad.comparison import domain_note

    model = ComparedModel("shapes-model", small_models.cifar_resnet18(0), SHAPES_METADATA)
    sample = compare([model], IMAGE, ["gradient"], dataset="shapes").rows[0]
    assert sample.domain is None
    assert sample.resize == "40x48 downscaled to 32x38 (shorter side 32), centre 32x32 cropped"
    upload = compare([model], IMAGE[:1, :1], ["gradient"], dataset="upload").rows[0]
    assert upload.domain == domain_note("upload", "shapes") and "trained on shapes images" in upload.domain
    assert upload.resize == "1x1 upscaled to 32x32"
    assert compare([model], IMAGE, ["gradient"]).rows[0].domain is None  # where the image is from is not said
    assert domain_note("shapes", "cifar10").startswith("out of domain: trained on CIFAR-10 images")
    assert domain_note("photo", "imagefolder").startswith("possibly out of domain")
    assert domain_note("upload", None) is None  # a model that does not say what it was trained on


def test_an_all_zero_map_says_so_on_its_panel_and_in_the_figure() -> None:
    model = small_models.cifar_resnet18(0)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.zero_()  # every logit is its bias: no gradient anywhere
    grid = compare([ComparedModel("flat", model, SHAPES_METADATA)], IMAGE, ["gradient", "gradcam"])
    view = grid.render()
    for method in ("gradient", "gradcam"):
        panel = view.panels[("flat", method)]
        assert panel.all_zero and panel.note == "all zero" and panel.scale == 0.0
    captions = [text.lines for text in grid.figure_layout(panel_size=64).texts("caption")]
    assert sum(lines[0] == "all zero" for lines in captions) == 2


def test_the_figure_has_a_title_with_the_settings_labels_predictions_targets_and_colour_scales(
    models: list[ComparedModel],
) -> None:
    from dataclasses import replace

    from interpgrad.viz import DisplayOptions

    shapes_models = [replace(model, metadata=SHAPES_METADATA) for model in models]  # trained on shapes, they say
    grid = compare(shapes_models, IMAGE, ["gradient", "guided_backprop", "smooth_gradcam++"], with_captum=True,
                   image_name="cat.jpg", dataset="upload")
    display = DisplayOptions("magma", 0.4, False, 98.0, "column", False)
    layout = grid.figure_layout(display, panel_size=96)
    title = " ".join(" ".join(text.lines) for text in layout.texts("title"))
    assert title == f"cat.jpg - 2 models x 3 methods {display.describe()}"
    labels = ["".join(text.lines).replace(" ", "") for text in layout.texts("column")]  # wrapped to 96 px
    assert labels == [column.replace(" ", "") for column in ["input", *grid.columns]]
    rows = [" ".join(text.lines) for text in layout.texts("row") if text.row in (1, 2)]
    assert rows == [f"{row.name} · {row.predictions()} · {row.domain}" for row in grid.rows]
    assert "out of domain" in rows[0]  # an upload, a model trained on shapes
    inputs = [text.lines for text in layout.texts("caption") if text.column == 0 and text.row in (1, 2)]
    assert [lines[0] for lines in inputs] == [f"target: {row.target_name}" for row in grid.rows]
    captum = [" ".join(text.lines) for text in layout.texts("caption") if "Pearson" in " ".join(text.lines)]
    assert len(captum) == 4  # gradient and guided backprop have Captum's result, for each model
    view = grid.render(display, 96)
    panels = [item for item in layout.items if item.image is not None]
    bars = [item for item in panels if item.row == 0]
    assert len(bars) == len(grid.columns) and all(item.box[3] - item.box[1] < 40 for item in bars)
    assert np.array_equal(bars[0].image, view.colorbar("gradient", 96))  # the app's scale, in the PNG
    model_panels = {(item.row, item.column): item.image for item in panels if 1 <= item.row <= 2}
    for number, row in enumerate(grid.rows, start=1):
        assert np.array_equal(model_panels[(number, 0)], view.inputs[row.key])
        for column_number, column in enumerate(grid.columns, start=1):
            assert np.array_equal(model_panels[(number, column_number)], view.panels[(row.key, column)].image)
    assert np.array_equal(np.asarray(grid.figure(display, panel_size=96)), np.asarray(layout.render()))


def test_the_zip_holds_the_input_parameters_display_settings_targets_and_checkpoints(
    models: list[ComparedModel],
) -> None:
    from dataclasses import replace

    from interpgrad.explain import get_method
    from interpgrad.viz import DisplayOptions

    mask = np.zeros(IMAGE.shape[:2], dtype=bool)
    mask[10:30, 8:28] = True
    files = [replace(model, path=f"/models/{model.name}.safetensors", sha256=f"{i:064x}")
             for i, model in enumerate(models)]
    grid = compare(files, IMAGE, ["gradient", "smoothgrad"], params={"smoothgrad": {"samples": 4}},
                   targets={"b": 3}, image_name="star.png", mask=mask, dataset="shapes")
    display = DisplayOptions("viridis", 0.7, True, 99.0, "column", True)
    with zipfile.ZipFile(io.BytesIO(grid.zip_bytes(display))) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["image"] == {"name": "star.png", "file": "input.png", "width": 40, "height": 48,
                                     "dataset": "shapes", "mask": "mask.png"}
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(archive.read("input.png")))), IMAGE)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(archive.read("mask.png"))))[..., 0] > 0, mask)
        assert manifest["methods"] == [
            {"name": "gradient", "description": get_method("gradient").description, "params": {}},
            {"name": "smoothgrad", "description": get_method("smoothgrad").description,
             "params": get_method("smoothgrad").resolve({"samples": 4})}]
        assert manifest["methods"][1]["params"]["samples"] == 4 and "noise" in manifest["methods"][1]["params"]
        assert manifest["display"] == display.to_dict()
        for entry, row, model in zip(manifest["models"], grid.rows, files):
            assert entry["checkpoint"] == {"path": model.path, "sha256": model.sha256}
            assert (entry["target"], entry["target_name"]) == (row.target, row.target_name)
            assert entry["cos_standard_guided"] == pytest.approx(row.alignment)
            assert entry["cells"][1]["params"]["samples"] == 4
        assert manifest["models"][1]["target"] == 3
        difference = manifest["differences"][0]
        assert (difference["a"], difference["b"], difference["range"]) == ("a", "b", [-2.0, 2.0])
        values = grid.render(display).differences[0].values
        for method, name in difference["files"].items():
            np.testing.assert_array_equal(np.load(io.BytesIO(archive.read(name))), values[method].numpy())
        assert archive.read("grid.png") == grid.png_bytes(display)


def test_counts_digests_and_method_help(models: list[ComparedModel]) -> None:
    from interpgrad.comparison import counted, image_digest, method_help

    assert [counted(n, "model") for n in (0, 1, 2)] == ["0 models", "1 model", "2 models"]
    grid = compare(models[:1], IMAGE, ["gradient"])
    assert grid.summary == "1 model x 1 method"
    assert grid.is_of(IMAGE.copy()) and grid.is_of(IMAGE, image_digest(IMAGE))
    assert not grid.is_of(IMAGE[:, ::-1]) and not grid.is_of(None) and not grid.is_of(IMAGE[:40, :40])
    text = method_help("gradcam")
    assert text.startswith("**gradcam**: feature maps weighted by the spatial mean of the target logit's gradient.")
    assert "``alpha_k = (1/hw) sum_ij g^k_ij``." in text and "Source: Selvaraju et al. 2017" in text


def test_a_refused_parameter_fails_its_method_s_cells_only(models: list[ComparedModel]) -> None:
    grid = compare(models[:1], IMAGE, ["gradient", "smoothgrad"], params={"smoothgrad": {"samples": 0}})
    gradient, smoothgrad = grid.rows[0].cells
    assert gradient.explanation is not None and smoothgrad.explanation is None
    assert "samples" in smoothgrad.error and grid.render().panels[("a", "smoothgrad")].note == smoothgrad.error
    assert grid.params == {"gradient": {}}


def test_convex_hull_regions_are_drawn_on_every_map_with_their_count_and_area(models: list[ComparedModel]) -> None:
    """With ``regions`` on, each panel is the plain panel with the regions of its map's top q % drawn over it (only
    pixels inside the hulls change) and its note gives their number and area; the input stays as it was."""
    from interpgrad.regions import convex_hull_regions, draw_regions, important_pixels, region_complexity
    from interpgrad.viz import DisplayOptions

    grid = compare(models, IMAGE, ["gradient", "gradcam"])
    plain = grid.render(DisplayOptions(), 64)
    for q in (5.0, 20.0):
        drawn = grid.render(DisplayOptions(regions=True, region_q=q), 64)
        assert all(np.array_equal(drawn.inputs[key], plain.inputs[key]) for key in plain.inputs)
        for row in grid.rows:
            for cell in row.cells:
                values = cell.explanation.map[0]
                regions = convex_hull_regions(important_pixels(values, q).numpy())
                count, area = region_complexity(regions, tuple(values.shape))
                assert count >= 1 and 0 < area < 1
                panel, before = drawn.panels[(row.key, cell.column)], plain.panels[(row.key, cell.column)]
                assert np.array_equal(panel.image, draw_regions(before.image, regions))
                changed = (panel.image != before.image).any(axis=2)
                inside = np.kron(np.logical_or.reduce([region.mask for region in regions]), np.ones((2, 2), bool))
                assert changed.any() and not (changed & ~inside).any()
                region_word = "region" if count == 1 else "regions"
                assert panel.note == f"{before.note}, {count} {region_word}, {area:.0%} of the image"
    assert "convex-hull regions of each map's top 5 %" in DisplayOptions(regions=True, region_q=5).describe()
    with pytest.raises(ConfigError, match="region_q"):
        DisplayOptions(region_q=0)
