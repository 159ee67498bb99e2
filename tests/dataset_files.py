"""Datasets written by the tests in their real on-disk formats (CIFAR's pickled batches, image folders)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def pickle_to(path: Path, obj, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_cifar10(root: Path, rng: np.random.Generator, counts=(3, 2, 4, 1, 2), n_test=5) -> dict:
    """A small CIFAR-10 in the real on-disk format; returns the arrays written."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    pickle_to(folder / "batches.meta", {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072})
    written = {"train_data": [], "train_labels": [], "names": [name.decode() for name in names]}
    for k, count in enumerate(counts, start=1):
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, count).tolist()
        batch = {b"batch_label": f"training batch {k} of 5".encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{k}_{i}.png".encode() for i in range(count)]}
        pickle_to(folder / f"data_batch_{k}", batch, protocol=2 if k != 3 else pickle.HIGHEST_PROTOCOL)
        written["train_data"].append(data)
        written["train_labels"].extend(labels)
    data = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n_test).tolist()
    pickle_to(folder / "test_batch", {b"batch_label": b"testing batch 1 of 1", b"labels": labels, b"data": data,
                                       b"filenames": [b"t.png"] * n_test})
    written.update(train_data=np.concatenate(written["train_data"]), test_data=data, test_labels=labels)
    return written


def save_png(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def make_image_folder(root: Path) -> None:
    """Three classes, four images each: RGB, grayscale, RGBA and 16-bit grayscale PNGs of different sizes."""
    colors = {"ant": (200, 10, 50), "bee": (10, 180, 20), "cow": (30, 40, 220)}
    for name, color in colors.items():
        save_png(root / name / "rgb.png", Image.new("RGB", (30, 20), color))
        save_png(root / name / "gray.png", Image.new("L", (25, 25), 128))
        save_png(root / name / "sub" / "rgba.png", Image.new("RGBA", (20, 40), color + (255,)))
        save_png(root / name / "deep.png", Image.fromarray(np.full((18, 18), 65535, np.uint16)))
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
