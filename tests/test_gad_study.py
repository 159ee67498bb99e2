"""``interpgrad.gad.study``: the regions of a GAD run over a set of images (``region_study``, ``study_images``) on a
tiny run, and the shipped GAD runs of the starter checkpoints (``checkpoints/gad``): they load from the project as
checked out, are complete, were made from the shipped checkpoints, and carry their study of every square and heart
image of the validation split (400; ``make gad-runs`` asks for 500)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import small_models
import torch

from interpgrad import ConfigError
from interpgrad.gad import STUDY_COLUMNS, GadExplanation, Pair, gad_explanation, load_gad_run, region_study, \
    study_images, train_gad
from interpgrad.training.checkpoint import file_sha256
from interpgrad.regions import COLUMNS, compare_regions, summarise_regions
from interpgrad.training.checkpoint import input_normalisation

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = {kind: ROOT / "checkpoints" / "gad" / f"shapes-resnet18-{kind}-square-heart"
           for kind in ("baseline", "guided")}
TINY = {"supports": 2, "n_train": 64, "n_val": 32, "epochs": 2, "batch_size": 16, "lr": 1e-4, "device": "cpu"}
FAST = {"base": "gradient"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    tiny = small_models.tiny_shapes_checkpoint(tmp_path_factory.mktemp("tiny") / "original")
    out = tmp_path_factory.mktemp("runs") / "circle-square"
    train_gad(tiny, Pair("circle", "square"), out, **TINY)
    return load_gad_run(out)


def test_study_images_are_the_first_of_the_strategys_classes_normalised(run) -> None:  # type: ignore[no-untyped-def]
    x, labels, names = study_images(run, "val", n=12)
    assert x.shape == (12, 3, 16, 16) and x.dtype == torch.float32 and len(labels) == len(names) == 12
    assert set(labels) <= {"circle", "square"} and names == sorted(names, key=int) and len(set(names)) == 12
    mean, std = input_normalisation(run.metadata)
    pixels = x * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    again, _, names_again = study_images(run, "val", n=5)
    assert torch.equal(again, x[:5]) and names_again == names[:5]
    with pytest.raises(ConfigError, match="split must be train or val"):
        study_images(run, "test", n=5)


def test_region_study_rows_are_compare_regions_on_the_gad_maps(run) -> None:  # type: ignore[no-untyped-def]
    x, labels, names = study_images(run, "val", n=10)
    calls: list[tuple[int, int, str]] = []
    table = region_study(run, x, labels, names=names, batch_size=4, progress=lambda *a: calls.append(a), **FAST)
    assert tuple(table.columns) == STUDY_COLUMNS == ("image", "label", *COLUMNS) and len(table) == 10
    assert list(table["image"]) == names and list(table["label"]) == labels
    assert [(done, total) for done, total, _ in calls] == [(4, 10), (8, 10), (10, 10)]
    # by hand: the GAD explanation of the whole batch, then the regions of its two maps
    result = gad_explanation(run, x, base="gradient")
    assert isinstance(result, GadExplanation)
    mean, std = input_normalisation(run.metadata)
    expected = compare_regions(run.original, x, result.original_map, result.gad_map, target=result.target,
                               mean=mean, std=std)
    pd.testing.assert_frame_equal(table[list(COLUMNS)], expected, check_exact=False, atol=1e-5)
    # GAD's map is the original's restricted to the fused mask: it never explains with more
    assert (table["area_gad"] <= table["area_original"] + 1e-9).all()
    assert (table["rc"].dropna() <= 1 + 1e-9).all()
    summary = summarise_regions(table)
    assert "rs_gad > rs_removed" in set(summary["quantity"])


def test_region_study_does_not_depend_on_the_batching_and_checks_its_input(run) -> None:  # type: ignore[no-untyped-def]
    x, labels, _ = study_images(run, "val", n=6)
    one = region_study(run, x, labels, batch_size=6, occlusion="mean", **FAST)
    many = region_study(run, x, None, batch_size=2, occlusion="mean", **FAST)
    pd.testing.assert_frame_equal(one[list(COLUMNS)], many[list(COLUMNS)], check_exact=False, atol=1e-5)
    assert list(many["image"]) == list(range(6)) and list(many["label"]) == [""] * 6
    with pytest.raises(ConfigError, match="3 labels for 6 images"):
        region_study(run, x, labels[:3], **FAST)
    with pytest.raises(ConfigError, match="batch_size must be >= 1"):
        region_study(run, x, labels, batch_size=0, **FAST)


@pytest.mark.parametrize("kind", sorted(SHIPPED))
def test_the_shipped_gad_runs_load_and_carry_their_study(kind: str) -> None:
    folder = SHIPPED[kind]
    shipped = load_gad_run(folder)  # the original is found from the path the run records, relative to the project
    assert shipped.complete and len(shipped.supports) == 3
    assert shipped.strategy.describe(shipped.class_names) == "square vs heart"
    original = ROOT / "checkpoints" / f"shapes-resnet18-{kind}" / "model.safetensors"
    assert not Path(shipped.checkpoint).is_absolute()
    assert shipped.checkpoint_sha256 == file_sha256(original)
    table = pd.read_csv(folder / "study" / "regions.csv")
    # --n 500 asked for; the shapes validation split holds 400 images of square and heart (200 each)
    assert tuple(table.columns) == STUDY_COLUMNS and len(table) == 400
    assert (table["label"].value_counts() == 200).all() and set(table["label"]) == {"square", "heart"}
    summary = pd.read_csv(folder / "study" / "summary.csv")
    assert {"rc", "rs_gad", "rs_gad > rs_removed", "rs_gad > rs_random"} <= set(summary["quantity"])
    assert list((folder / "study").glob("*.png"))
