"""Background training runs (the app's Train page): the command line reproduces the config; launch, stop, resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interpgrad import ConfigError, InterpgradError
from interpgrad.cli import build_parser
from interpgrad.cli.train import _options
from interpgrad.training import RunDir, launch_run, make_config, resume_run, stop_run
from interpgrad.jobs import spawn
from interpgrad.training.launcher import command_line, valid_run_name

TINY = {"arch": "resnet18", "width": 0.125, "dataset": "shapes", "n_train": 512, "n_val": 32, "batch_size": 32,
        "alignment_samples": 16, "regularizer": "guided"}


def test_the_command_line_reproduces_the_config(tmp_path: Path) -> None:
    config = make_config({**TINY, "out": str(tmp_path / "r"), "regularizer_params": {"lam": 0.02, "error": "mse"},
                          "milestones": (3, 4), "augment": False, "channels_last": False, "image_size": 32})
    arguments = command_line(config)[3:]  # after "python -m interpgrad"
    parsed = build_parser(["train"]).parse_args(arguments)
    assert make_config(_options(parsed)) == config


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_run_names_are_checked(name: str) -> None:
    with pytest.raises(ConfigError, match="run name"):
        valid_run_name(name)


def test_invalid_options_are_refused_before_launching(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lam"):
        launch_run({**TINY, "regularizer_params": {"lam": -1}}, tmp_path, "bad")
    assert not (tmp_path / "bad").exists()


def _wait(run: RunDir, predicate, timeout: float = 300) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = run.read_status()
        if predicate(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"timed out; status {run.read_status()}; log: {run.log_path.read_text()[-1500:]}")


@pytest.fixture()
def processes():  # type: ignore[no-untyped-def]
    """Background processes started by a test, killed if the test fails before they end."""
    started: list = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_launch_stop_resume_in_the_background(tmp_path: Path, processes) -> None:
    run, process = launch_run({**TINY, "epochs": 2}, tmp_path, "bg")
    processes.append(process)
    assert run.read_status()["state"] == "running"
    with pytest.raises(ConfigError, match="already exists"):
        launch_run(TINY, tmp_path, "bg")
    _wait(run, lambda s: "started_at" in s)  # the trainer's first status: training has begun, epoch 1 is under way
    assert stop_run(run)
    process.wait(timeout=120)
    assert _wait(run, lambda s: s["state"] != "running")["state"] == "stopped"
    assert not stop_run(run)
    resumed = resume_run(run)
    processes.append(resumed)
    resumed.wait(timeout=300)
    assert run.read_status()["state"] == "finished"
    assert [line["epoch"] for line in run.read_metrics()] == [1, 2]
    assert "stopped at epoch 1" in run.log_path.read_text()
    with pytest.raises(ConfigError, match="finished"):
        resume_run(run)


def test_missing_data_is_refused_before_launching(tmp_path: Path) -> None:
    with pytest.raises(InterpgradError, match="needs a data root"):
        launch_run({**TINY, "dataset": "cifar10"}, tmp_path, "nodata")
    with pytest.raises(InterpgradError, match="not found under"):
        launch_run({**TINY, "dataset": "cifar100", "data_root": str(tmp_path)}, tmp_path, "nocifar")
    assert not any(tmp_path.iterdir())


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")


def _process_state(pid: int) -> str | None:
    """The state letter in /proc/PID/stat (Z: a zombie), None once the process is reaped."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()[0]


def _until(condition, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.02)


@needs_proc
def test_a_killed_trainer_left_as_a_zombie_is_not_running(tmp_path: Path) -> None:
    """A child killed by SIGKILL stays a zombie until its parent reaps it (the app's server, for the runs it
    launched); os.kill(pid, 0) still succeeds on it, yet the run must read as interrupted."""
    run = RunDir(tmp_path / "run")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        run.write_status("running", pid=child.pid)
        assert run.read_status()["state"] == "running"
        child.send_signal(signal.SIGKILL)
        _until(lambda: _process_state(child.pid) == "Z")
        assert run.read_status()["state"] == "interrupted"
        assert not stop_run(run)
    finally:
        child.kill()
        child.wait()


@needs_proc
def test_a_reused_process_id_is_not_taken_for_the_trainer(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.write_status("running", pid=os.getpid())  # this process, with its start time
    assert run.read_status()["state"] == "running"
    run.write_status("running", pid=os.getpid(), process_start="an-earlier-boot:12345")  # a trainer before a reboot
    assert run.read_status()["state"] == "interrupted"


@needs_proc
def test_a_launched_process_is_reaped_when_it_dies(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    process = spawn([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"], run)
    _until(lambda: _process_state(process.pid) is None)  # reaped: not even a zombie left
    assert process.wait(timeout=10) == -signal.SIGKILL
    assert run.read_status()["state"] == "interrupted"
