"""``python -m interpgrad lab``: each subcommand on tiny checkpoints writes its CSV and PNG; bad input is refused with
one line and exit status 2."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_lab import tiny_checkpoint

from interpgrad.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("lab-models")
    return tiny_checkpoint(folder / "softplus"), tiny_checkpoint(folder / "judge", seed=2, activation="relu",
                                                                 normalized=True, arch="mobilenet_v2")


def lab(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    try:
        code = main(["lab", *arguments])
    except SystemExit as exit:  # argparse refuses bad flags by exiting with status 2
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_samples_and_gan_test(models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator, judge = models
    code, out, err = lab(capsys, "samples", "--checkpoint", str(generator), "--checkpoint", str(judge), "--classes",
                         "circle,star", "--steps", "4", "--keep", "0,2", "--out", str(tmp_path / "s"), *FAST)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "s" / "samples.csv")
    assert set(table["step"]) == {0, 2, 4} and set(table["name"]) == {"circle", "star"} and table["model"].nunique() == 2
    assert (tmp_path / "s" / "samples.png").read_bytes()[:4] == b"\x89PNG"
    code, out, err = lab(capsys, "gan-test", "--checkpoint", str(generator), "--judge", str(judge), "--steps", "3",
                         "--resamples", "50", "--out", str(tmp_path / "g"), "--cache", str(tmp_path / "cache"), *FAST)
    assert code == 0, err
    assert "GAN-test accuracy" in out
    table = pd.read_csv(tmp_path / "g" / "gan_test.csv")
    assert len(table) == 11 and table["name"].iloc[0] == "all" and table["n"].iloc[0] == 30  # 3 per class by default
    assert (tmp_path / "g" / "samples.png").is_file() and any((tmp_path / "cache").iterdir())


def test_density_and_perturb(models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generator, judge = models
    code, out, err = lab(capsys, "density", "--checkpoint", str(generator), "--n", "6", "--stds", "0,0.01,0.1",
                         "--noise-samples", "2", "--out", str(tmp_path / "d"), *FAST)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "d" / "density.csv")
    assert list(table["std"]) == [0, 0.01, 0.1] and table["mean"].iloc[0] == 0
    assert (tmp_path / "d" / "density.png").is_file()
    code, out, err = lab(capsys, "perturb", "--checkpoint", str(generator), "--checkpoint", str(judge), "--n", "4",
                         "--points", "5", "--out", str(tmp_path / "p"), *FAST)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p" / "perturbation.csv")
    assert len(table) == 10 and set(table["judge"]) == set(table["saliency"])
    code, out, err = lab(capsys, "perturb", "--checkpoint", str(generator), "--judge", str(judge), "--n", "4",
                         "--points", "3", "--out", str(tmp_path / "j"), *FAST)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "j" / "perturbation.csv")
    assert table["judge"].iloc[0] == "judge" and table["saliency"].iloc[0] == "softplus"
    assert "judge judged with softplus's saliency" in out


@pytest.mark.parametrize(("arguments", "message"), [
    (["samples", "--checkpoint", "MISSING", "--out", "OUT"], "no checkpoint at"),
    (["samples", "--checkpoint", "GEN", "--classes", "hexagon", "--out", "OUT"],
     "class 'hexagon' is not in the model; its classes are circle (0)"),
    (["samples", "--checkpoint", "GEN"], "--out (the output folder) is required"),
    (["samples", "--out", "OUT"], "give at least one --checkpoint"),
    (["samples", "--checkpoint", "GEN", "--steps", "-1", "--out", "OUT"], "steps must be >= 0"),
    (["gan-test", "--checkpoint", "GEN", "--out", "OUT"], "--judge (the independent classifier"),
    (["density", "--checkpoint", "GEN", "--stds", "0,x", "--out", "OUT"], "--stds expects comma-separated numbers"),
    (["density", "--checkpoint", "GEN", "--n", "0", "--out", "OUT"], "N must be a positive whole number"),
    (["perturb", "--checkpoint", "GEN", "--constant", "2", "--n", "2", "--out", "OUT"], "replacement constant"),
    (["fool", "--checkpoint", "GEN", "--pattern", "shape:hexagon", "--out", "OUT"], "unknown shape"),
    (["samples", "--checkpoint", "GEN", "--device", "tpu", "--out", "OUT"], "unknown device"),
    ([], "choose a subcommand"),
])
def test_bad_input_is_one_line(arguments: list[str], message: str, models: tuple[Path, Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    replaced = [str(models[0]) if a == "GEN" else str(tmp_path / "out") if a == "OUT" else
                str(tmp_path / "missing.safetensors") if a == "MISSING" else a for a in arguments]
    code, out, err = lab(capsys, *replaced, "--no-progress") if arguments else lab(capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_help_lists_the_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lab(capsys, "--help")
    assert code == 0 and all(name in out for name in ("samples", "gan-test", "density", "perturb", "fool"))
