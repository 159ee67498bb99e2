"""``python -m interpgrad explain``: overlay PNG and raw map for checkpoints and images written here (PNG, JPEG, 16-bit,
RGBA); every bad input is a non-zero exit with a one-line message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import interpgrad
from interpgrad.cli import main
from interpgrad.data import ShapesDataset, load_image, prepare_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("explain_cli")
    torch.manual_seed(0)
    model = interpgrad.build_model("resnet18", width=0.125)
    dataset = ShapesDataset("train", 4, 32)
    interpgrad.save_checkpoint(folder / "run", model, interpgrad.ModelConfig("resnet18", width=0.125), data=dataset.info)
    interpgrad.save_checkpoint(folder / "bare.safetensors", model, interpgrad.ModelConfig("resnet18", width=0.125))
    rgb = dataset.images[0]
    big = np.asarray(Image.fromarray(rgb).resize((96, 64)))
    Image.fromarray(big).save(folder / "image.png")
    Image.fromarray(big).save(folder / "image.jpg", quality=90)
    Image.fromarray((big[..., 0].astype(np.uint16) * 257)).save(folder / "gray16.png")
    rgba = np.concatenate([big, np.full(big.shape[:2] + (1,), 128, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["explain", *args])
    except SystemExit as exit:  # argparse reports bad choices by exiting with status 2
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("image", ["image.png", "image.jpg", "gray16.png", "rgba.png"])
def test_writes_overlay_and_map(workspace: Path, capsys: pytest.CaptureFixture[str], image: str) -> None:
    out, npy = workspace / f"{image}.overlay.png", workspace / f"{image}.map.npy"
    code, stdout, stderr = _run(
        capsys, "--checkpoint", str(workspace / "run"), "--image", str(workspace / image), "--method", "gradcam",
        "--out", str(out), "--npy", str(npy),
    )
    assert code == 0, stderr
    assert "predicted:" in stdout and "explained:" in stdout and str(out) in stdout
    written = Image.open(out)
    assert written.format == "PNG" and written.size == (256, 256) and written.mode == "RGB"
    saved = np.load(npy)
    assert saved.shape == (32, 32) and saved.dtype == np.float32
    # the saved map is explain()'s map of the image prepared as the checkpoint says (not normalised)
    model, metadata = interpgrad.load_checkpoint(workspace / "run")
    x = prepare_image(load_image(workspace / image), 32, metadata["data"]["mean"], metadata["data"]["std"])
    np.testing.assert_allclose(saved, interpgrad.explain(model, x, "gradcam").map[0].numpy(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("method", "shape"), [("gradcam", (4, 4)), ("gradient", (3, 32, 32))])
def test_raw_npy_is_the_signed_attribution_at_its_native_resolution(
    workspace: Path, capsys: pytest.CaptureFixture[str], method: str, shape: tuple[int, ...]
) -> None:
    raw, shown = workspace / f"{method}.raw.npy", workspace / f"{method}.map.npy"
    code, stdout, stderr = _run(
        capsys, "--checkpoint", str(workspace / "run"), "--image", str(workspace / "image.png"), "--method", method,
        "--out", str(workspace / f"{method}.png"), "--npy", str(shown), "--raw-npy", str(raw),
    )
    assert code == 0, stderr
    assert str(raw) in stdout and str(shown) in stdout
    model, metadata = interpgrad.load_checkpoint(workspace / "run")
    x = prepare_image(load_image(workspace / "image.png"), 32, metadata["data"]["mean"], metadata["data"]["std"])
    expected = interpgrad.explain(model, x, method)
    saved = np.load(raw)
    assert saved.shape == shape and saved.dtype == np.float32
    assert method != "gradient" or (saved < 0).any()  # signed: the gradient before any absolute value
    np.testing.assert_allclose(saved, expected.raw[0].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.load(shown), expected.map[0].numpy(), rtol=1e-5, atol=1e-7)  # --npy is unchanged


def test_target_by_name_params_signed_and_bare_checkpoint(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = workspace / "signed.png"
    code, stdout, stderr = _run(
        capsys, "--checkpoint", str(workspace / "run"), "--image", str(workspace / "image.png"), "--method", "smoothgrad",
        "--target", "star", "--param", "samples=3", "--param", "base=guided_backprop", "--signed", "--cmap", "coolwarm",
        "--alpha", "0.7", "--size", "64", "--out", str(out),
    )
    assert code == 0, stderr
    assert "explained: star (class 3" in stdout
    assert Image.open(out).size == (64, 64)
    code, stdout, stderr = _run(
        capsys, "--checkpoint", str(workspace / "bare.safetensors"), "--image", str(workspace / "image.jpg"),
        "--method", "scorecam", "--target", "2", "--layer", "layer3", "--out", str(workspace / "bare.png"),
    )
    assert code == 0, stderr
    assert "explained: 2 (class 2" in stdout and "layer3" in stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--image": "missing.png"}, "no such image file"),
        ({"--image": "notes.txt"}, "not an image"),
        ({"--checkpoint": "nothing_here"}, "no checkpoint"),
        ({"--checkpoint": "notes.txt"}, "not a safetensors file"),
        ({"--method": "magic"}, "invalid choice: 'magic'"),
        ({"--param": "steps=8"}, "unknown gradcam parameter 'steps'"),
        ({"--param": "steps"}, "NAME=VALUE"),
        ({"--method": "smoothgrad", "--param": "samples=many"}, "samples' must be int"),
        ({"--layer": "layer9"}, "no layer 'layer9'"),
        ({"--target": "12"}, "out of range"),
        ({"--target": "unicorn"}, "neither a class index nor a class name"),
        ({"--alpha": "1.5"}, "--alpha"),
        ({"--method": "cam", "--layer": "layer3"}, "GAP + linear head"),
        ({"--out": "notes.txt/out.png"}, "cannot write"),
        ({"--cmap": "no_such_map"}, "unknown colormap"),
    ],
)
def test_bad_input_is_a_one_line_error(workspace: Path, capsys: pytest.CaptureFixture[str], change: dict, message: str) -> None:
    options = {"--checkpoint": "run", "--image": "image.png", "--method": "gradcam", "--out": "never.png", **change}
    args = []
    for flag, value in options.items():
        args += [flag, str(workspace / value) if flag in ("--checkpoint", "--image", "--out") else value]
    code, stdout, stderr = _run(capsys, *args)
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interpgrad explain: error:"), stderr
    assert message in lines[0]
    assert not (workspace / "never.png").exists()


def test_module_entry_point_in_a_subprocess(workspace: Path) -> None:
    out = workspace / "subprocess.png"
    command = [
        sys.executable, "-m", "interpgrad", "explain", "--checkpoint", str(workspace / "run"),
        "--image", str(workspace / "rgba.png"), "--method", "guided_backprop", "--out", str(out),
    ]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert Image.open(out).format == "PNG"
    assert "predicted:" in finished.stdout and finished.stderr == ""
