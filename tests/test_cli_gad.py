"""``python -m interpgrad gad train`` on a tiny model: the run folder it writes, every bad input refused with one line
and nothing written, and a real process killed (SIGKILL) or stopped (SIGTERM) during its second support model that
resumes with it and ends equal to an uninterrupted run.

The processes run with one thread (``OMP_NUM_THREADS=1``), as this module does (``one_thread``): the support models
are then computed the same way in both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import small_models
import torch

from interpgrad import ConfigError
from interpgrad.cli import main
from interpgrad.gad import GadDir, Pair, load_gad_run, train_gad

pytestmark = pytest.mark.usefixtures("one_thread")

SETTINGS = ["--supports", "2", "--n-train", "64", "--n-val", "32", "--epochs", "2", "--batch-size", "16",
            "--lr", "1e-4", "--device", "cpu", "--no-progress"]
# Long enough to be interrupted in its second support model: 2 x 160 steps of a few ms.
LONG = {"supports": 2, "n_train": 256, "n_val": 32, "epochs": 10, "batch_size": 16, "lr": 1e-4, "device": "cpu"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_models.tiny_shapes_checkpoint(tmp_path_factory.mktemp("tiny") / "original")


def gad(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    try:
        code = main(["gad", *arguments])
    except SystemExit as exit:  # argparse refuses bad flags by exiting with status 2
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def trained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["gad", "train", "--checkpoint", str(tiny), "--classes", "circle,square", "--out", str(out),
                 *SETTINGS]) == 0
    return out


def test_gad_train_writes_a_run(trained: Path, capsys: pytest.CaptureFixture[str], tiny: Path) -> None:
    run = load_gad_run(trained)
    assert run.complete and len(run.supports) == 2 and run.strategy == Pair(0, 1)
    assert run.settings["epochs"] == 2 and run.settings["train"] == "last_stage" and run.settings["n_train"] == 64
    assert GadDir(trained).read_status()["state"] == "finished"
    code, out, err = gad(capsys, "train", "--out", str(trained), "--resume", *SETTINGS)  # nothing left to train
    assert code == 0 and "kept support 1" in out and "kept support 2" in out
    assert f"wrote {trained}: original, circle vs square: 2 of 2 support models" in out


def test_one_vs_all_and_split_by_index(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for flags, text in [(["--one-vs-all", "3"], "star vs rest"), (["--split", "0,1/2,ring"], "circle+square vs "
                                                                                              "triangle+ring")]:
        out = tmp_path / text.replace(" ", "_").replace("+", "-")
        code, printed, err = gad(capsys, "train", "--checkpoint", str(tiny), *flags, "--out", str(out), *SETTINGS,
                                 "--train", "head")
        assert code == 0, err
        assert text in printed and json.loads((out / "config.json").read_text())["strategy_text"] == text


@pytest.mark.parametrize(("arguments", "message"), [
    (["--classes", "circle,hexagon"], "class 'hexagon' is not in the model; its classes are circle (0), square (1)"),
    (["--classes", "circle"], "--classes takes two classes K,L"),
    ([], "choose a strategy: --classes K,L, --one-vs-all K or --split A,B/C,D"),
    (["--classes", "0,1", "--split", "0/1"], "argument --split: not allowed with argument --classes"),
    (["--classes", "0,1", "--train", "trunk"], "gad parameter 'train' must be one of head, last_stage, all"),
    (["--classes", "0,1", "--alphas", "1,2", "--supports", "3"], "supports=3 but 2 alphas are given"),
    (["--classes", "0,1", "--alphas", "1,2", "--alpha-scale", "2"], "parameter 'alpha_scale' has no effect"),
    (["--classes", "0,1", "--alphas", "1,x"], "alphas must be numbers separated by commas"),
    (["--classes", "0,1", "--epochs", "0"], "parameter 'epochs' must be >= 1"),
    (["--classes", "0,1", "--device", "cuda:7"], "device cuda:7"),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  arguments: list[str], message: str) -> None:
    code, out, err = gad(capsys, "train", "--checkpoint", str(tiny), *arguments, "--out", str(tmp_path / "bad"),
                         "--no-progress")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("interpgrad gad") and not (tmp_path / "bad").exists()


def test_refusals_around_existing_folders(tiny: Path, trained: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = (trained / "config.json").read_bytes()
    for arguments, message in [
        (["--checkpoint", str(tiny), "--classes", "0,1", "--out", str(trained)],
         "already holds a run; pass --resume to continue it or choose another --out"),
        (["--out", str(trained), "--resume", "--epochs", "3"], "was made with epochs=2; resume with the same settings"),
        (["--out", str(trained), "--resume", "--classes", "circle,star"], "was made for circle vs square"),
        (["--out", str(tmp_path / "none"), "--resume"], "there is no GAD run in"),
        (["--checkpoint", str(tmp_path / "missing.safetensors"), "--classes", "0,1", "--out", str(tmp_path / "x")],
         "no checkpoint at"),
    ]:
        code, out, err = gad(capsys, "train", *arguments, "--no-progress")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert (trained / "config.json").read_bytes() == config
    training_run = tmp_path / "training-run"
    training_run.mkdir()
    (training_run / "config.json").write_text(json.dumps({"arch": "resnet18", "epochs": 3}))
    code, out, err = gad(capsys, "train", "--out", str(training_run), "--resume", "--no-progress")
    assert code == 2 and "holds another kind of run, not a GAD run" in err
    code, out, err = gad(capsys)
    assert code == 2 and "choose a subcommand: train" in err


# ---------------------------------------------------------------------------------------------------------------------
# Real processes


def _command(tiny: Path, out: Path, *extra: str) -> list[str]:
    flags = [item for key, value in LONG.items() for item in ("--" + key.replace("_", "-"), str(value))]
    return [sys.executable, "-m", "interpgrad", "gad", "train", "--checkpoint", str(tiny), "--classes",
            "circle,square", "--out", str(out), *flags, "--no-progress", *extra]


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _in_second_support(folder: GadDir, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = folder.read_status()
        if status.get("state") == "running" and status.get("supports_done") == 1:
            return
        assert process.poll() is None, f"ended early: {process.stderr.read()[-2000:] if process.stderr else ''}"
        time.sleep(0.02)
    raise AssertionError(f"timed out; last status {folder.read_status()}")


@pytest.fixture(scope="module")
def uninterrupted(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    train_gad(tiny, Pair("circle", "square"), out, **LONG)
    return out


def _assert_same_supports(ours: Path, reference: Path) -> None:
    mine, theirs = load_gad_run(ours), load_gad_run(reference)
    assert mine.alphas == theirs.alphas and len(mine.supports) == len(theirs.supports) == 2
    for a, b in zip(mine.supports, theirs.supports):
        for key, value in b.state_dict().items():
            torch.testing.assert_close(a.state_dict()[key], value, rtol=1e-6, atol=1e-7, msg=key)


def _interrupt_in_the_second_support(tiny: Path, out: Path, number: signal.Signals) -> tuple[int, str]:
    """Start a run, send it ``number`` once it trains its second support model; its exit status and stderr."""
    process = subprocess.Popen(_command(tiny, out), env=_environment(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        _in_second_support(GadDir(out), process)
        process.send_signal(number)
        code = process.wait(timeout=60)
        return code, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_sigkill_in_the_second_support_then_resume(tiny: Path, tmp_path: Path, uninterrupted: Path) -> None:
    out = tmp_path / "killed"
    folder = GadDir(out)
    assert _interrupt_in_the_second_support(tiny, out, signal.SIGKILL)[0] == -signal.SIGKILL
    assert folder.read_status()["state"] == "interrupted"
    assert (out / "support-1.safetensors").is_file() and not (out / "support-2.safetensors").exists()
    first = (out / "support-1.safetensors").read_bytes()
    result = subprocess.run([sys.executable, "-m", "interpgrad", "gad", "train", "--out", str(out), "--resume",
                             "--no-progress"], env=_environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "kept support 1" in result.stdout and (out / "support-1.safetensors").read_bytes() == first
    assert folder.read_status()["state"] == "finished"
    _assert_same_supports(out, uninterrupted)


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_resumes(tiny: Path, tmp_path: Path, uninterrupted: Path) -> None:
    out = tmp_path / "stopped"
    folder = GadDir(out)
    code, err = _interrupt_in_the_second_support(tiny, out, signal.SIGTERM)
    assert code == 0
    assert "stopped while training support model 2; continue with --resume" in err
    status = folder.read_status()
    assert status["state"] == "stopped" and status["supports_done"] == 1 and status["remedy"]["action"] == "resume"
    assert main(["gad", "train", "--out", str(out), "--resume", "--device", "cpu", "--no-progress"]) == 0
    _assert_same_supports(out, uninterrupted)


@pytest.mark.slow
def test_the_launcher_runs_stops_and_resumes_in_the_background(tiny: Path, tmp_path: Path, uninterrupted: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """What the app does: launch_gad starts the process (its output in gad.log), stop_gad stops it after a step,
    resume_gad continues with the support model it was training."""
    from interpgrad.gad import launch_gad, resume_gad, stop_gad

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    folder, process = launch_gad({"checkpoint": str(tiny), "strategy": Pair("circle", "square"), **LONG}, tmp_path,
                                 "background")
    try:
        _in_second_support(folder, process)
        assert stop_gad(folder)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert folder.read_status()["state"] == "stopped" and not stop_gad(folder)
    with pytest.raises(ConfigError, match="already exists"):
        launch_gad({"checkpoint": str(tiny), "strategy": Pair("circle", "square")}, tmp_path, "background")
    resumed = resume_gad(folder)
    assert resumed.wait(timeout=300) == 0
    assert folder.read_status()["state"] == "finished"
    log = folder.log_path.read_text()
    assert "stopped during support model 2" in log and "kept support 1" in log
    with pytest.raises(ConfigError, match="has finished"):
        resume_gad(folder)
    _assert_same_supports(folder.path, uninterrupted)


# ---------------------------------------------------------------------------------------------------------------------
# gad explain


EXPLAIN = ["--base", "gradient", "--no-progress"]


def test_gad_explain_a_dataset_sample(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    from interpgrad.gad import STUDY_COLUMNS

    out = tmp_path / "sample"
    code, printed, err = gad(capsys, "explain", "--run", str(trained), "--dataset-sample", "--n", "6", "--max-png", "2",
                             "--batch-size", "4", "--out", str(out), *EXPLAIN)
    assert code == 0, err
    table = pd.read_csv(out / "regions.csv")
    assert tuple(table.columns) == STUDY_COLUMNS and len(table) == 6 and set(table["label"]) <= {"circle", "square"}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["quantity", "mean", "ci_low", "ci_high", "n", "excluded"]
    assert {"rc", "rs_gad > rs_removed", "rs_gad > rs_random"} <= set(summary["quantity"])
    assert sorted(path.name for path in out.glob("*.png")) == sorted(f"{name}.png" for name in table["image"][:2])
    assert "rs_gad > rs_removed" in printed and "rs_gad > rs_random" in printed and "6 images in" in printed
    rc = summary.set_index("quantity").loc["rc"]
    assert f"{rc['mean']:8.3f}  [{rc['ci_low']:.3f}, {rc['ci_high']:.3f}]" in printed


def test_gad_explain_image_files(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    import pandas as pd
    from PIL import Image

    paths = []
    for index, size in enumerate((16, 40)):
        paths.append(tmp_path / f"picture {index}.png")
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(paths[-1])
    out = tmp_path / "files"
    code, printed, err = gad(capsys, "explain", "--run", str(trained), "--image", str(paths[0]), "--image",
                             str(paths[1]), "--occlusion", "mean", "--out", str(out), *EXPLAIN)
    assert code == 0, err
    table = pd.read_csv(out / "regions.csv", keep_default_na=False)
    assert list(table["image"]) == ["picture 0.png", "picture 1.png"] and list(table["label"]) == ["", ""]
    assert sorted(path.name for path in out.glob("*.png")) == ["picture_0.png.png", "picture_1.png.png"]
    assert Image.open(out / "picture_0.png.png").size[0] > 160 * 6


def test_gad_explain_refuses_bad_input_with_one_line(trained: Path, tiny: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    incomplete = tmp_path / "incomplete"
    shutil.copytree(trained, incomplete)
    for path in incomplete.glob("support-2.*"):
        path.unlink()
    other = small_models.tiny_shapes_checkpoint(tmp_path / "other", seed=1)
    moved = tmp_path / "moved"
    shutil.copytree(trained, moved)
    config = json.loads((moved / "config.json").read_text())
    config["original"]["path"] = str(other)
    (moved / "config.json").write_text(json.dumps(config))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    for arguments, message in [
        (["--run", str(tmp_path / "none"), "--dataset-sample"], "there is no GAD run in"),
        (["--run", str(incomplete), "--dataset-sample"], "is incomplete (1 of 2 support models)"),
        (["--run", str(moved), "--dataset-sample"], "the GAD run was made from"),
        (["--run", str(trained), "--image", str(broken)], "broken.png"),
        (["--run", str(trained), "--image", str(tmp_path / "missing.png")], "missing.png"),
        (["--run", str(trained), "--dataset-sample", "--n", "0"], "--n must be >= 1"),
        (["--run", str(trained)], "one of the arguments --image --dataset-sample is required"),
        (["--run", str(trained), "--dataset-sample", "--fusion", "some"], "argument --fusion: invalid choice"),
    ]:
        out = tmp_path / "out"
        code, printed, err = gad(capsys, "explain", *arguments, "--out", str(out), *EXPLAIN)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (arguments, err)
        assert err.startswith("interpgrad gad") and not (out / "regions.csv").exists()
