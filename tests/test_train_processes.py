"""Real training processes: SIGKILL mid-epoch then --resume, SIGTERM stops cleanly, and torchrun with 2 CPU processes
(gloo) equals one process on the same global batches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from interpgrad import load_checkpoint
from interpgrad.training import RunDir

pytestmark = pytest.mark.slow

TINY = ["--arch", "resnet18", "--width", "0.125", "--dataset", "shapes", "--n-train", "1024", "--n-val", "64",
        "--batch-size", "32", "--lr", "0.05", "--regularizer", "guided", "--alignment-samples", "32", "--seed", "5",
        "--no-progress"]


def _command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "interpgrad", "train", *arguments]


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train(out: Path, *extra: str) -> None:
    result = subprocess.run(_command(*TINY, "--out", str(out), *extra), env=_environment(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _wait_for(run: RunDir, process: subprocess.Popen, condition, timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = run.read_status()
        if condition(status):
            return status
        assert process.poll() is None, f"training ended early: {process.stderr.read()[-2000:] if process.stderr else ''}"
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting; last status {run.read_status()}")


def _assert_same_parameters(a: Path, b: Path) -> None:
    ours, reference = load_checkpoint(a).model.state_dict(), load_checkpoint(b).model.state_dict()
    for key, value in reference.items():
        if "running" in key or "num_batches" in key:
            continue
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight") / "run"
    _train(out, "--epochs", "3")
    return out


def test_sigkill_mid_epoch_then_resume(tmp_path: Path, uninterrupted: Path) -> None:
    out = tmp_path / "killed"
    run = RunDir(out)
    process = subprocess.Popen(_command(*TINY, "--out", str(out), "--epochs", "3"), env=_environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(run, process, lambda s: s.get("epoch") == 1 and s.get("step", 0) >= 1)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    # The last complete epoch is intact and loadable; the app sees the run as interrupted.
    assert load_checkpoint(out).metadata["epochs_completed"] == 1
    assert len(run.read_metrics()) == 1
    assert run.read_status()["state"] == "interrupted"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    _train(out, "--epochs", "3", "--resume")
    assert [line["epoch"] for line in run.read_metrics()] == [1, 2, 3]
    assert run.read_status()["state"] == "finished"
    _assert_same_parameters(out, uninterrupted)


def test_sigterm_stops_cleanly_after_saving_and_resumes_exactly(tmp_path: Path, uninterrupted: Path) -> None:
    out = tmp_path / "terminated"
    run = RunDir(out)
    process = subprocess.Popen(_command(*TINY, "--out", str(out), "--epochs", "3"), env=_environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(run, process, lambda s: s.get("epoch") == 1 and s.get("step", 0) >= 2)
    process.send_signal(signal.SIGTERM)
    stdout, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    status = run.read_status()
    assert status["state"] == "stopped" and status["epoch"] == 1 and 0 < status["step"] < 32
    assert "continue with --resume" in stdout and status["reason"] == "stopped and saved; continue with --resume"
    assert status["remedy"] == {"action": "resume", "details": {}}
    _train(out, "--resume")
    assert run.read_status()["state"] == "finished"
    _assert_same_parameters(out, uninterrupted)


def test_torchrun_two_cpu_processes_equal_one_process(tmp_path: Path) -> None:
    """2 processes x 16 images (gloo, DistributedDataParallel) vs 1 process accumulating 2 micro-batches of 16: the
    same shards of the same global batches, so the same parameters (batch-norm statistics are per shard in both)."""
    one = tmp_path / "one"
    _train(one, "--epochs", "1", "--grad-accumulation", "2")
    two = tmp_path / "two"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run([*torchrun, "-m", "interpgrad", "train", *TINY, "--out", str(two), "--epochs", "1"],
                            env=_environment(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert RunDir(two).read_status()["world_size"] == 2
    _assert_same_parameters(two, one)
    assert len(RunDir(two).read_metrics()) == 1
