"""The ``shapes-hard`` dataset: deterministic, exact masks, balanced classes, harder than ``shapes``, named everywhere."""

from __future__ import annotations

import numpy as np
import pytest

from interpgrad import ConfigError, DataError
from interpgrad.cli import build_parser
from interpgrad.cli.evaluate import _applicable_metrics
from interpgrad.data import DATASETS, build_datasets, canonical_dataset_name, has_masks
from interpgrad.data.shapes import (
    SHAPE_CLASSES,
    ShapesDataset,
    _PROFILES,
    _draw,
    _object_masks,
    clear_shapes_cache,
    generate_shapes,
    shapes_cache_path,
)
from interpgrad.metrics.datasets import evaluation_data
from interpgrad.metrics.request import check_masks


def _ring(masks: np.ndarray, width: int = 2) -> np.ndarray:
    """The pixels within ``width`` of the mask but outside it (a square dilation), bool like ``masks``."""
    grown = masks.copy()
    for _ in range(width):
        padded = np.pad(grown, ((0, 0), (1, 1), (1, 1)))
        grown = (padded[:, 1:-1, 1:-1] | padded[:, :-2, 1:-1] | padded[:, 2:, 1:-1]
                 | padded[:, 1:-1, :-2] | padded[:, 1:-1, 2:])
    return grown & ~masks


def _contrast(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, the RGB distance (0..1 units) between the mean colour inside the mask and just around it."""
    ring = _ring(masks)
    pixels = images.astype(np.float64) / 255.0
    inside = (pixels * masks[..., None]).sum(axis=(1, 2)) / masks.sum(axis=(1, 2))[:, None]
    around = (pixels * ring[..., None]).sum(axis=(1, 2)) / ring.sum(axis=(1, 2))[:, None]
    return np.linalg.norm(inside - around, axis=1)


def test_generation_is_deterministic_by_seed_and_apart_from_shapes() -> None:
    first = generate_shapes(60, 32, seed=5, difficulty="hard")
    clear_shapes_cache()
    again = generate_shapes(60, 32, seed=5, difficulty="hard")
    other = generate_shapes(60, 32, seed=6, difficulty="hard")
    standard = generate_shapes(60, 32, seed=5)
    assert np.array_equal(first.images, again.images) and np.array_equal(first.masks, again.masks)
    assert np.array_equal(first.labels, again.labels)
    assert not np.array_equal(first.images, other.images)
    assert not np.array_equal(first.images, standard.images)
    assert shapes_cache_path("c", 60, 32, 5, "hard") != shapes_cache_path("c", 60, 32, 5)


def test_cached_file_reloads_the_same_arrays(tmp_path) -> None:
    made = generate_shapes(20, 32, seed=3, cache_dir=tmp_path, difficulty="hard")
    assert shapes_cache_path(tmp_path, 20, 32, 3, "hard").is_file()
    clear_shapes_cache()
    loaded = generate_shapes(20, 32, seed=3, cache_dir=tmp_path, difficulty="hard")
    assert np.array_equal(made.images, loaded.images) and np.array_equal(made.masks, loaded.masks)


def test_masks_are_the_visible_object_pixels() -> None:
    arrays = generate_shapes(200, 32, seed=11, difficulty="hard")
    masks, images = arrays.masks, arrays.images.astype(np.float64)
    assert masks.sum(axis=(1, 2)).min() >= 8  # every object keeps visible pixels
    # inside the mask every pixel is the object colour plus the pixel noise (std 10 of 255)
    difference = images - arrays.colors[:, None, None, :].astype(np.float64)
    assert np.abs(difference[masks]).mean() < 10.0
    # the mask lies inside the object's enclosing disc, and within the full (unoccluded) shape
    rows, cols = np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5, indexing="ij")
    distance = np.hypot(cols[None] - arrays.centers[:, 0, None, None], rows[None] - arrays.centers[:, 1, None, None])
    assert not (masks & (distance > arrays.radii[:, None, None] + 0.5)).any()
    rng = np.random.default_rng(11)
    full = _object_masks(_draw(rng, 200, 32, _PROFILES["hard"]), 32)
    assert not (masks & ~full).any()
    occluded = (full & ~masks).any(axis=(1, 2))
    assert 0.3 < occluded.mean() < 0.7  # an occluding bar over about half of the objects


def test_classes_are_balanced_in_every_split() -> None:
    for split, n in (("train", 500), ("val", 200)):
        data = ShapesDataset(split, n, 32, seed=0, normalize=False, difficulty="hard")
        assert np.bincount(data.labels, minlength=len(SHAPE_CLASSES)).tolist() == [n // len(SHAPE_CLASSES)] * 10
        assert data.info.name == "shapes-hard" and data.masks.shape == (n, 32, 32)


def test_it_is_harder_than_shapes() -> None:
    """Cheap proxies: smaller objects, lower contrast with their surroundings, more clutter outside the object."""
    hard = generate_shapes(300, 32, seed=2, difficulty="hard")
    easy = generate_shapes(300, 32, seed=2)
    assert hard.masks.mean() < 0.8 * easy.masks.mean()
    assert np.median(_contrast(hard.images, hard.masks)) < 0.85 * np.median(_contrast(easy.images, easy.masks))

    def busy(arrays) -> float:  # noqa: ANN001 - share of background pixels far from their 3x3 neighbourhood mean
        pixels = arrays.images.astype(np.float64) / 255.0
        padded = np.pad(pixels, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        local = sum(padded[:, i:i + 32, j:j + 32] for i in range(3) for j in range(3)) / 9.0
        edges = np.linalg.norm(pixels - local, axis=-1) > 0.15
        return float(edges[~arrays.masks].mean())

    assert busy(hard) > 1.2 * busy(easy)


def test_names_resolve_everywhere() -> None:
    assert "shapes-hard" in DATASETS
    for spelling in ("shapes-hard", "Shapes_Hard", "SHAPESHARD"):
        assert canonical_dataset_name(spelling) == "shapes-hard"
    assert canonical_dataset_name("shapes") == "shapes" and canonical_dataset_name("CIFAR-10") == "cifar10"
    with pytest.raises(DataError, match="shapes-hard"):
        canonical_dataset_name("shapes-harder")
    assert has_masks("shapes-hard") and not has_masks("cifar10")
    train, val, info = build_datasets("shapes_hard", n_train=20, n_val=10)
    assert info.name == "shapes-hard" and len(train) == 20 and len(val) == 10
    assert isinstance(val, ShapesDataset) and val.difficulty == "hard"
    parser = build_parser()
    assert parser.parse_args(["train", "--dataset", "shapes-hard"]).dataset == "shapes-hard"
    assert "energy_pointing_game" in _applicable_metrics("shapes-hard")
    check_masks(["energy_pointing_game"], "shapes-hard")
    with pytest.raises(ConfigError, match="shapes-hard"):
        check_masks(["energy_pointing_game"], "cifar10")


def test_evaluation_data_reads_the_hard_images_and_masks() -> None:
    data = evaluation_data("shapes-hard", "val", n=12)
    expected = ShapesDataset("val", None, 32, seed=0, normalize=False, difficulty="hard")
    assert data.dataset == "shapes-hard"
    assert np.array_equal(data.images, expected.images[:12]) and np.array_equal(data.masks, expected.masks[:12])


def test_the_train_page_offers_shapes_hard(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from test_app import ROOT, _no_exception, _page

    monkeypatch.setenv("INTERPGRAD_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("INTERPGRAD_UPLOADS", str(tmp_path / "uploads"))
    monkeypatch.chdir(ROOT)
    at = _page("pages/3_Train.py")
    _no_exception(at)
    assert "shapes-hard" in at.selectbox(key="train.dataset").options
    at.selectbox(key="train.dataset").set_value("shapes-hard").run()
    _no_exception(at)
    assert at.selectbox(key="train.image_size").value == 32
