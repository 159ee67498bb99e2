"""Tests of interpgrad.data: shapes generator and cache, transforms, CIFAR on-disk reader, image folders, images."""

from __future__ import annotations

import io
import json
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from interpgrad.data import (
    DATASETS,
    SHAPE_CLASSES,
    DataInfo,
    RandomCropFlip,
    ShapesDataset,
    augmentation_from_names,
    build_datasets,
    clear_shapes_cache,
    denormalize,
    generate_shapes,
    load_cifar_arrays,
    load_image,
    normalize,
    prepare_image,
)
from interpgrad.data import shapes as shapes_module
from dataset_files import make_image_folder as _make_folder
from dataset_files import pickle_to as _pickle_to
from dataset_files import save_png as _save_png
from dataset_files import write_cifar10 as _write_cifar10
from interpgrad.errors import DataError, InterpgradError

torch.set_num_threads(2)


# ---------------------------------------------------------------------------------------------------- shapes


@pytest.fixture(scope="module")
def sample():
    """600 shapes images at 32x32 (seed 11)."""
    return generate_shapes(600, 32, seed=11)


def _dilate(masks: np.ndarray) -> np.ndarray:
    """3x3 binary dilation of masks [n, H, W]."""
    height, width = masks.shape[1:]
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(masks)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            out |= padded[:, dy : dy + height, dx : dx + width]
    return out


def _pixels_match_color(images: np.ndarray, masks: np.ndarray, colors: np.ndarray, tol: int = 12) -> np.ndarray:
    """Per image, the fraction of mask pixels whose RGB is within ``tol`` (every channel) of the object colour."""
    deviation = np.abs(images.astype(int) - colors.astype(int)[:, None, None, :]).max(axis=-1)
    close = (deviation <= tol) & masks
    return close.sum(axis=(1, 2)) / np.maximum(masks.sum(axis=(1, 2)), 1)


def test_shapes_arrays_types_and_shapes(sample):
    assert sample.images.shape == (600, 32, 32, 3) and sample.images.dtype == np.uint8
    assert sample.masks.shape == (600, 32, 32) and sample.masks.dtype == bool
    assert sample.labels.shape == (600,) and sample.labels.dtype == np.int64
    assert sample.centers.shape == (600, 2) and sample.radii.shape == (600,) and sample.colors.shape == (600, 3)
    assert len(SHAPE_CLASSES) == 10 and len(set(SHAPE_CLASSES)) == 10


def test_shapes_deterministic_per_seed():
    first = generate_shapes(120, 32, seed=3)
    clear_shapes_cache()
    again = generate_shapes(120, 32, seed=3)
    assert first is not again
    for name in ("images", "masks", "labels", "centers", "radii", "colors"):
        assert np.array_equal(getattr(first, name), getattr(again, name)), name
    other = generate_shapes(120, 32, seed=4)
    assert not np.array_equal(first.images, other.images)
    assert not np.array_equal(first.masks, other.masks)


def test_shapes_in_process_cache_and_read_only():
    first = generate_shapes(50, 32, seed=21)
    assert generate_shapes(50, 32, seed=21) is first
    with pytest.raises(ValueError):
        first.images[0, 0, 0, 0] = 1


@pytest.mark.parametrize("n", [1000, 105])
def test_shapes_class_balance_is_exact(n):
    counts = np.bincount(generate_shapes(n, 32, seed=5).labels, minlength=10)
    assert counts.sum() == n and counts.max() - counts.min() <= 1
    assert sorted(counts.tolist()) == sorted((np.arange(n) % 10).tolist().count(k) for k in range(10))


def test_shapes_labels_are_shuffled(sample):
    assert not np.array_equal(sample.labels, np.arange(600) % 10)


def test_masks_nonempty_and_object_fully_inside(sample):
    size = 32
    assert (sample.masks.sum(axis=(1, 2)) > 0).all()
    # the enclosing disc lies inside the image, and every mask pixel lies inside the disc: no object is cut off
    cx, cy, r = sample.centers[:, 0], sample.centers[:, 1], sample.radii
    assert (cx - r >= 0).all() and (cx + r <= size).all() and (cy - r >= 0).all() and (cy + r <= size).all()
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    distance = np.hypot(cols[None] - cx[:, None, None], rows[None] - cy[:, None, None])
    assert (np.where(sample.masks, distance, 0).max(axis=(1, 2)) <= r + 1e-4).all()


def test_object_sizes_within_stated_range(sample):
    size = 32
    r = sample.radii
    assert (r >= 0.2 * size - 1e-4).all() and (r <= 0.4 * size + 1e-4).all()
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    distance = np.hypot(cols[None] - sample.centers[:, 0, None, None], rows[None] - sample.centers[:, 1, None, None])
    extent = np.where(sample.masks, distance, 0).max(axis=(1, 2))
    assert (extent >= 0.9 * r - 1.0).all()  # every shape reaches (almost) its enclosing radius
    area = sample.masks.sum(axis=(1, 2))
    assert (area >= 0.5 * r**2).all() and (area <= np.pi * r**2 + 4 * r).all()


def test_masks_are_exactly_the_object_pixels(sample):
    images, masks, colors = sample.images, sample.masks, sample.colors
    # every pixel in the mask has the object colour (up to the pixel noise) ...
    assert (_pixels_match_color(images, masks, colors) == 1.0).all()
    mean_inside = np.stack([images[i][masks[i]].mean(axis=0) for i in range(len(masks))])
    assert np.abs(mean_inside - colors).max() < 3.0
    # ... and no pixel bordering the mask does: the object ends exactly where the mask ends
    ring = _dilate(masks) & ~masks
    assert (_pixels_match_color(images, ring, colors) == 0.0).all()
    # the check has teeth: a mask shifted by 2 pixels fails it for almost every image
    shifted = np.roll(masks, 2, axis=2)
    assert (_pixels_match_color(images, shifted, colors) < 1.0).mean() > 0.95


def test_object_color_differs_from_background(sample):
    ring = _dilate(_dilate(sample.masks)) & ~sample.masks
    images = sample.images.astype(float)
    for i in range(0, 600, 7):
        background = images[i][ring[i]].mean(axis=0)
        assert np.linalg.norm(background - sample.colors[i]) > 40, i


def test_shapes_have_clutter_background(sample):
    # a background is not flat: gradient, texture and noise give many distinct values outside the object
    outside = [np.unique(sample.images[i][~sample.masks[i]].reshape(-1, 3), axis=0).shape[0] for i in range(20)]
    assert min(outside) > 100


def test_shapes_size_64():
    arrays = generate_shapes(100, 64, seed=2)
    assert arrays.images.shape == (100, 64, 64, 3) and arrays.masks.shape == (100, 64, 64)
    assert (arrays.masks.sum(axis=(1, 2)) >= 0.5 * arrays.radii**2).all()
    assert (_pixels_match_color(arrays.images, arrays.masks, arrays.colors) == 1.0).all()
    with pytest.raises(DataError, match="image_size"):
        generate_shapes(10, 8)


def test_shapes_bad_arguments():
    for bad in (0, -3, 2.5):
        with pytest.raises(DataError):
            generate_shapes(bad)
    with pytest.raises(DataError, match="seed"):
        generate_shapes(10, 32, seed=-1)
    with pytest.raises(DataError, match="split"):
        ShapesDataset("holdout", n=10)


def test_shapes_disk_cache_round_trip(tmp_path, monkeypatch):
    first = generate_shapes(300, 32, seed=7, cache_dir=tmp_path)
    path = shapes_module.shapes_cache_path(tmp_path, 300, 32, 7)
    assert path.is_file() and f"v{shapes_module.GENERATOR_VERSION}" in path.name
    assert not list(tmp_path.glob("*.tmp"))
    clear_shapes_cache()

    def refuse(*args, **kwargs):
        raise AssertionError("the cached file should have been loaded")

    monkeypatch.setattr(shapes_module, "_render", refuse)
    loaded = generate_shapes(300, 32, seed=7, cache_dir=tmp_path)
    assert loaded is not first
    for name in ("images", "masks", "labels", "centers", "radii", "colors"):
        assert np.array_equal(getattr(first, name), getattr(loaded, name)), name
    monkeypatch.undo()
    clear_shapes_cache()


def test_shapes_corrupt_cache_file_is_regenerated(tmp_path):
    reference = generate_shapes(40, 32, seed=8)
    path = shapes_module.shapes_cache_path(tmp_path, 40, 32, 8)
    path.write_bytes(b"not an npz file")
    clear_shapes_cache()
    arrays = generate_shapes(40, 32, seed=8, cache_dir=tmp_path)
    assert np.array_equal(arrays.images, reference.images)
    with np.load(path) as archive:
        assert np.array_equal(archive["images"], reference.images)


def test_shapes_dataset_splits_are_disjoint_and_sized():
    train = ShapesDataset("train", n=400)
    val = ShapesDataset("val", n=200)
    test = ShapesDataset("test", n=200)
    assert (len(train), len(val), len(test)) == (400, 200, 200)
    hashes = [{image.tobytes() for image in split.images} for split in (train, val, test)]
    assert not (hashes[0] & hashes[1]) and not (hashes[0] & hashes[2]) and not (hashes[1] & hashes[2])
    seed_one = ShapesDataset("train", n=50, seed=1).images
    assert seed_one.tobytes() != ShapesDataset("train", n=50, seed=0).images.tobytes()


def test_shapes_dataset_items_tensors_and_masks():
    dataset = ShapesDataset("val", n=60, seed=3)
    info = dataset.info
    assert info.name == "shapes" and info.num_classes == 10 and info.class_names == SHAPE_CLASSES
    assert info.image_size == 32 and info.augment == ("random_crop_pad4", "horizontal_flip")
    x, y = dataset[5]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int) and y == dataset.labels[5]
    X, Y = dataset.tensors()
    assert X.shape == (60, 3, 32, 32) and Y.dtype == torch.long and X.is_contiguous()
    assert torch.equal(X[5], x) and torch.equal(Y, torch.tensor(dataset.labels))
    raw = torch.as_tensor(np.array(dataset.images[5])).permute(2, 0, 1).float() / 255
    assert torch.allclose(denormalize(x, info.mean, info.std), raw, atol=1e-5)
    assert dataset.mask(5).dtype == torch.bool and torch.equal(dataset.mask(5), torch.tensor(dataset.masks[5]))
    assert dataset.masks_tensor().shape == (60, 32, 32)

    plain = ShapesDataset("val", n=60, seed=3, normalize=False)
    assert plain.info.mean == (0.0, 0.0, 0.0) and plain.info.std == (1.0, 1.0, 1.0)
    assert torch.equal(plain[5][0], raw)
    assert 0.0 <= plain.tensors()[0].min() and plain.tensors()[0].max() <= 1.0


def test_shapes_normalisation_constants_fit_the_data():
    X, _ = ShapesDataset("train", n=2000).tensors()
    assert X.mean(dim=(0, 2, 3)).abs().max() < 0.05
    assert (X.std(dim=(0, 2, 3)) - 1).abs().max() < 0.05


# ---------------------------------------------------------------------------------------------------- transforms


def test_normalize_denormalize_round_trip():
    mean, std = (0.2, 0.5, 0.7), (0.3, 0.1, 0.25)
    for shape in ((3, 8, 8), (4, 3, 8, 8)):
        x = torch.rand(shape)
        y = normalize(x, mean, std)
        assert torch.allclose(y[..., 1, :, :], (x[..., 1, :, :] - 0.5) / 0.1)
        assert torch.allclose(denormalize(y, mean, std), x, atol=1e-6)


def _reference_crop_flip(x: torch.Tensor, padding: int, params) -> torch.Tensor:
    """Per-sample reference: pad, slice the crop at (top, left), flip when asked."""
    padded = F.pad(x, (padding,) * 4)
    height, width = x.shape[-2:]
    out = []
    for b in range(x.shape[0]):
        top, left = int(params.top[b]), int(params.left[b])
        crop = padded[b, :, top : top + height, left : left + width]
        out.append(crop.flip(-1) if bool(params.flip[b]) else crop)
    return torch.stack(out)


def test_random_crop_flip_matches_per_sample_reference():
    x = torch.rand(64, 3, 12, 10)
    augment = RandomCropFlip(padding=4)
    params = augment.sample(64, torch.Generator().manual_seed(5))
    out = augment(x, generator=torch.Generator().manual_seed(5))
    assert out.shape == x.shape
    assert torch.equal(out, _reference_crop_flip(x, 4, params))
    # the draws cover both flips and many offsets, and padding shows up as zeros
    assert 0 < int(params.flip.sum()) < 64 and len(set(params.top.tolist())) > 4
    assert params.top.min() >= 0 and params.top.max() <= 8


def test_random_crop_flip_reproducible_and_single_image():
    x = torch.rand(16, 3, 8, 8)
    one = RandomCropFlip(generator=torch.Generator().manual_seed(1))(x)
    two = RandomCropFlip(generator=torch.Generator().manual_seed(1))(x)
    other = RandomCropFlip(generator=torch.Generator().manual_seed(2))(x)
    assert torch.equal(one, two) and not torch.equal(one, other)
    single = RandomCropFlip(padding=2)(x[0], generator=torch.Generator().manual_seed(3))
    params = RandomCropFlip(padding=2).sample(1, torch.Generator().manual_seed(3))
    assert single.shape == (3, 8, 8) and torch.equal(single, _reference_crop_flip(x[:1], 2, params)[0])
    assert torch.equal(RandomCropFlip(padding=0, flip=False)(x), x)


def test_augmentation_from_names():
    augment = augmentation_from_names(("random_crop_pad4", "horizontal_flip"))
    assert isinstance(augment, RandomCropFlip) and augment.padding == 4 and augment.flip
    assert augmentation_from_names(()) is None
    with pytest.raises(DataError, match="augmentation"):
        augmentation_from_names(("colour_jitter",))


# ---------------------------------------------------------------------------------------------------- DataInfo


def test_data_info_round_trip():
    info = ShapesDataset("val", n=20).info
    data = json.loads(json.dumps(info.to_dict()))
    assert isinstance(data["class_names"], list) and isinstance(data["mean"], list)
    assert DataInfo.from_dict(data) == info
    assert DataInfo.from_dict({**data, "future_field": 1}) == info
    with pytest.raises(DataError, match="num_classes"):
        DataInfo.from_dict({**data, "num_classes": 3})
    with pytest.raises(DataError, match="missing"):
        DataInfo.from_dict({"name": "shapes"})


# ---------------------------------------------------------------------------------------------------- CIFAR


def _hwc(data: np.ndarray) -> np.ndarray:
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def test_cifar10_real_format_through_build_datasets(tmp_path):
    written = _write_cifar10(tmp_path, np.random.default_rng(0))
    train, val, info = build_datasets("cifar10", root=tmp_path)
    assert info.name == "cifar10" and info.num_classes == 10 and list(info.class_names) == written["names"]
    assert info.mean == (0.4914, 0.4822, 0.4465) and info.std == (0.2470, 0.2435, 0.2616)
    assert info.image_size == 32 and info.root == str(tmp_path)
    assert train.images.shape == (12, 32, 32, 3) and train.images.dtype == np.uint8
    assert np.array_equal(train.images, _hwc(written["train_data"]))
    assert train.labels.tolist() == written["train_labels"]
    assert np.array_equal(val.images, _hwc(written["test_data"])) and val.labels.tolist() == written["test_labels"]
    # CHW -> HWC: pixel (row 1, col 2) of image 0 takes its R, G, B from the three 1024-value planes
    raw = written["train_data"][0]
    assert train.images[0, 1, 2].tolist() == [raw[34], raw[1024 + 34], raw[2048 + 34]]
    x, y = train[0]
    assert x.shape == (3, 32, 32) and y == written["train_labels"][0]
    pixels = torch.tensor(train.images[0]).permute(2, 0, 1).float()
    assert torch.allclose(denormalize(x, info.mean, info.std) * 255, pixels, atol=1e-3)
    X, Y = val.tensors()
    assert X.shape == (5, 3, 32, 32) and Y.tolist() == written["test_labels"]


def test_cifar_subsets_and_str_keys(tmp_path):
    written = _write_cifar10(tmp_path, np.random.default_rng(1))
    train, val, _ = build_datasets("cifar10", root=tmp_path, n_train=5, n_val=2, seed=3)
    assert len(train) == 5 and len(val) == 2
    all_train = {image.tobytes() for image in _hwc(written["train_data"])}
    assert {image.tobytes() for image in train.images} <= all_train
    again, _, _ = build_datasets("cifar10", root=tmp_path, n_train=5, n_val=2, seed=3)
    assert np.array_equal(again.images, train.images)
    # a batch with str keys (as re-pickled by Python 3 code) reads the same
    folder = tmp_path / "cifar-10-batches-py"
    _pickle_to(folder / "test_batch", {"data": written["test_data"], "labels": written["test_labels"]}, protocol=4)
    images, labels, _ = load_cifar_arrays(tmp_path, "cifar10", train=False)
    assert np.array_equal(images, _hwc(written["test_data"])) and labels.tolist() == written["test_labels"]


def test_cifar100_real_format(tmp_path):
    rng = np.random.default_rng(2)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    fine = [f"class_{k:02d}".encode() for k in range(100)]
    _pickle_to(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": [b"c"] * 20})
    arrays = {}
    for split, count in (("train", 7), ("test", 3)):
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = rng.integers(0, 100, count).tolist()
        batch = {b"filenames": [b"x"] * count, b"batch_label": split.encode(), b"fine_labels": labels,
                 b"coarse_labels": [0] * count, b"data": data}
        _pickle_to(folder / split, batch)
        arrays[split] = (data, labels)
    train, val, info = build_datasets("cifar100", root=tmp_path)
    assert info.name == "cifar100" and info.num_classes == 100 and info.class_names[13] == "class_13"
    assert info.mean == (0.5071, 0.4865, 0.4409)
    assert np.array_equal(train.images, _hwc(arrays["train"][0])) and train.labels.tolist() == arrays["train"][1]
    assert np.array_equal(val.images, _hwc(arrays["test"][0])) and val.labels.tolist() == arrays["test"][1]


class _Exploit:
    """Pickles as a call that would create a marker file if the loader executed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_cifar_malicious_pickle_is_refused_without_running(tmp_path):
    _write_cifar10(tmp_path, np.random.default_rng(3))
    marker = tmp_path / "marker.txt"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    _pickle_to(batch, {b"data": _Exploit(marker), b"labels": [0]})
    with pytest.raises(DataError, match="refusing"):
        build_datasets("cifar10", root=tmp_path)
    assert not marker.exists()
    import os

    class _System:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _pickle_to(batch, _System(), protocol=0)
    with pytest.raises(DataError, match="refusing"):
        load_cifar_arrays(tmp_path)
    assert not marker.exists()


def test_cifar_corrupt_and_malformed_files(tmp_path):
    written = _write_cifar10(tmp_path, np.random.default_rng(4))
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    good = batch.read_bytes()
    for payload, pattern in (
        (good[: len(good) // 2], "corrupt"),
        (b"\x00garbage" * 10, "corrupt"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2), "uint8"),
        (pickle.dumps({b"data": written["test_data"], b"labels": [0]}, protocol=2), "labels"),
        (pickle.dumps({b"data": written["test_data"], b"labels": [99] * 5}, protocol=2), "0..9"),
        (pickle.dumps([1, 2, 3], protocol=2), "not a CIFAR batch"),
    ):
        batch.write_bytes(payload)
        with pytest.raises(DataError, match=pattern):
            load_cifar_arrays(tmp_path, "cifar10", train=True)


def test_cifar_missing_and_bad_options(tmp_path):
    with pytest.raises(DataError) as error:
        build_datasets("cifar10", root=tmp_path / "nowhere")
    message = str(error.value)
    assert "CIFAR-10 not found" in message and "data_batch_1" in message and "--download" in message
    assert "cifar-10-batches-py" in message and "\n" not in message
    with pytest.raises(DataError, match="cifar-100-python"):
        build_datasets("cifar100", root=tmp_path)
    with pytest.raises(DataError, match="data-root"):
        build_datasets("cifar10")
    with pytest.raises(DataError, match="32x32"):
        build_datasets("cifar10", root=tmp_path, image_size=64)
    with pytest.raises(DataError, match="shapes, shapes-hard, cifar10, cifar100, imagefolder"):
        build_datasets("mnist")
    assert DATASETS == ("shapes", "shapes-hard", "cifar10", "cifar100", "imagefolder")
    assert issubclass(DataError, InterpgradError) and issubclass(DataError, ValueError)


def test_build_datasets_shapes():
    train, val, info = build_datasets("shapes", n_train=100, n_val=40, seed=2)
    assert (len(train), len(val)) == (100, 40) and info == train.info and info.image_size == 32
    assert train.split == "train" and val.split == "val"
    big, _, info64 = build_datasets("shapes", n_train=20, n_val=20, image_size=64)
    assert big.images.shape[1:] == (64, 64, 3) and info64.image_size == 64


# ---------------------------------------------------------------------------------------------------- image folders


def test_image_folder_stratified_split(tmp_path):
    _make_folder(tmp_path)
    train, val, info = build_datasets("imagefolder", root=tmp_path, image_size=16)
    assert info.name == "imagefolder" and info.class_names == ("ant", "bee", "cow") and info.image_size == 16
    assert info.mean == (0.485, 0.456, 0.406) and info.std == (0.229, 0.224, 0.225)
    assert (len(train), len(val)) == (9, 3)
    assert sorted(val.labels.tolist()) == [0, 1, 2] and np.bincount(train.labels).tolist() == [3, 3, 3]
    assert not set(train.paths) & set(val.paths) and len(set(train.paths) | set(val.paths)) == 12
    for path, label in zip(train.paths, train.labels):
        assert path.relative_to(tmp_path).parts[0] == info.class_names[label]
    X, Y = train.tensors()
    assert X.shape == (9, 3, 16, 16) and Y.tolist() == train.labels.tolist()
    x, y = train[0]
    assert torch.equal(x, X[0]) and y == Y[0]
    again, _, _ = build_datasets("imagefolder", root=tmp_path, image_size=16)
    assert again.paths == train.paths


def test_image_folder_pixel_values(tmp_path):
    _make_folder(tmp_path)
    from interpgrad.data import ImageFolderDataset

    dataset = ImageFolderDataset(tmp_path, image_size=12, split="train", val_fraction=0.0, normalize=False)
    assert len(dataset) == 12
    by_name = {(path.parent.name if path.parent.name != "sub" else path.parent.parent.name, path.stem): index
               for index, path in enumerate(dataset.paths)}
    assert dataset.images.shape == (12, 12, 12, 3)
    assert (dataset.images[by_name[("ant", "rgb")]] == (200, 10, 50)).all()
    assert (dataset.images[by_name[("bee", "rgba")]] == (10, 180, 20)).all()
    assert (dataset.images[by_name[("cow", "gray")]] == 128).all()
    assert (dataset.images[by_name[("cow", "deep")]] == 255).all()  # 16-bit 65535 -> 255


def test_image_folder_presplit_layout(tmp_path):
    for split, count in (("train", 3), ("val", 1)):
        for name in ("x", "y"):
            for k in range(count):
                _save_png(tmp_path / split / name / f"{k}.png", Image.new("RGB", (8, 8), (k * 40, 0, 0)))
    train, val, info = build_datasets("imagefolder", root=tmp_path, image_size=8)
    assert info.class_names == ("x", "y") and (len(train), len(val)) == (6, 2)
    assert all(path.relative_to(tmp_path).parts[0] == "val" for path in val.paths)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_datasets("imagefolder", root=tmp_path / "missing")
    with pytest.raises(DataError, match="data-root"):
        build_datasets("imagefolder")
    (tmp_path / "flat").mkdir()
    _save_png(tmp_path / "flat" / "a.png", Image.new("RGB", (4, 4)))
    with pytest.raises(DataError, match="no class subfolders"):
        build_datasets("imagefolder", root=tmp_path / "flat")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="no images"):
        build_datasets("imagefolder", root=tmp_path / "empty")
    _save_png(tmp_path / "partial" / "a" / "1.png", Image.new("RGB", (4, 4)))
    (tmp_path / "partial" / "b").mkdir()
    with pytest.raises(DataError, match="without images"):
        build_datasets("imagefolder", root=tmp_path / "partial")


# ---------------------------------------------------------------------------------------------------- load_image


def _encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def rgb_image() -> np.ndarray:
    rows, cols = np.mgrid[0:24, 0:40]
    return np.stack([rows * 10, cols * 6, 255 - rows * 5 - cols * 2], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "format, options, tolerance",
    [("PNG", {}, 0), ("TIFF", {}, 0), ("BMP", {}, 0), ("WEBP", {"lossless": True}, 0), ("JPEG", {"quality": 95}, 12)],
)
def test_load_image_round_trip(tmp_path, rgb_image, format, options, tolerance):
    data = _encode(Image.fromarray(rgb_image), format, **options)
    path = tmp_path / f"image.{format.lower()}"
    path.write_bytes(data)
    for source in (path, str(path), data, io.BytesIO(data)):
        loaded = load_image(source)
        assert loaded.shape == (24, 40, 3) and loaded.dtype == np.uint8
        assert np.abs(loaded.astype(int) - rgb_image).max() <= tolerance


def test_load_image_16_bit_is_scaled_not_clipped(tmp_path):
    values = np.linspace(0, 65535, 64 * 4).round().astype(np.uint16).reshape(4, 64)
    for format in ("PNG", "TIFF"):
        loaded = load_image(_encode(Image.fromarray(values), format))
        assert loaded.shape == (4, 64, 3)
        assert (loaded[..., 0] == loaded[..., 1]).all() and (loaded[..., 0] == loaded[..., 2]).all()
        assert loaded.min() == 0 and loaded.max() == 255
        assert np.abs(loaded[..., 0].astype(float) - values / 257.0).max() <= 0.5 + 1e-9
        assert len(np.unique(loaded)) > 200  # a full ramp, not a clipped one


def test_load_image_modes(rgb_image):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (0, 0, 255, 0)  # transparent -> white
    rgba[0, 2] = (0, 0, 0, 128)  # half black -> mid grey
    loaded = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert loaded[0, 0].tolist() == [255, 0, 0] and loaded[0, 1].tolist() == [255, 255, 255]
    assert abs(int(loaded[0, 2, 0]) - 127) <= 1 and loaded[0, 2, 0] == loaded[0, 2, 2]
    gray = load_image(_encode(Image.new("L", (5, 4), 77), "PNG"))
    assert gray.shape == (4, 5, 3) and (gray == 77).all()
    palette = Image.fromarray(rgb_image).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert load_image(_encode(palette, "PNG")).shape == (24, 40, 3)
    cmyk = load_image(_encode(Image.new("CMYK", (6, 6), (0, 255, 255, 0)), "TIFF"))
    assert cmyk[0, 0].tolist() == [255, 0, 0]
    binary = load_image(_encode(Image.new("1", (8, 8), 1), "PNG"))
    assert (binary == 255).all()


def test_load_image_rejects_bad_files(tmp_path, rgb_image):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(DataError, match="not an image"):
        load_image(text)
    png = _encode(Image.fromarray(rgb_image), "PNG")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(png[: len(png) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_image(truncated)
    with pytest.raises(DataError, match="no such image"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(DataError):
        load_image(b"")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _huge_bilevel_png(side: int) -> bytes:
    """A valid 1-bit PNG of side x side black pixels, compressed row by row (a few tens of kB)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (side + 7) // 8)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def test_load_image_refuses_decompression_bombs(tmp_path, monkeypatch):
    """Refused from the header: no pixel is decoded (decoding would fail the test)."""
    from PIL import ImageFile

    def decode(*args, **kwargs):
        raise AssertionError("the pixels of an oversized image were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_huge_bilevel_png(20_000))
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(DataError, match="too large|megapixels"):
        load_image(bomb)
    # under Pillow's own bomb threshold, but over ours (64 megapixels): refused from the header
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 8000, 8, 2, 0, 0, 0))
    header_only = b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    with pytest.raises(DataError, match="megapixels"):
        load_image(header_only)


def test_prepare_image(rgb_image):
    stripes = np.zeros((30, 90, 3), np.uint8)
    stripes[:, :30] = (255, 0, 0)
    stripes[:, 30:60] = (0, 255, 0)
    stripes[:, 60:] = (0, 0, 255)
    x = prepare_image(stripes, 16, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert x.shape == (1, 3, 16, 16) and x.dtype == torch.float32
    assert torch.allclose(x[0, :, :, 2:-2], torch.tensor([0.0, 1.0, 0.0]).view(3, 1, 1).expand(3, 16, 12), atol=0.02)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    y = prepare_image(rgb_image, 24, mean, std)
    assert y.shape == (1, 3, 24, 24)
    expected = torch.as_tensor(rgb_image[:, 8:32]).permute(2, 0, 1).float() / 255
    assert torch.allclose(denormalize(y[0], mean, std), expected, atol=1e-5)
    with pytest.raises(DataError, match="uint8"):
        prepare_image(rgb_image.astype(np.float32), 24, mean, std)
