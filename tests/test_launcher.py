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
from interpgrad.errors import REMEDIES, DataError, Remedy
from interpgrad.training import RunDir, RunProgress, delete_run, launch_run, make_config, resume_run, stop_run
from interpgrad.jobs import reason_fields, spawn
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


def test_missing_data_errors_carry_what_to_do_for_any_interface(tmp_path: Path) -> None:
    """The command line's words end the message; the problem and the remedy's action are there for the app."""
    with pytest.raises(DataError) as no_root:
        launch_run({**TINY, "dataset": "cifar10"}, tmp_path, "nodata")
    assert str(no_root.value).endswith("needs a data root; pass --data-root")
    assert no_root.value.remedy == Remedy("set_data_root") and "--" not in no_root.value.problem
    with pytest.raises(DataError) as missing:
        launch_run({**TINY, "dataset": "cifar100", "data_root": str(tmp_path)}, tmp_path, "nocifar")
    assert missing.value.remedy == Remedy("download_or_set_data_root", {"folder": "cifar-100-python"})
    assert str(missing.value).endswith("pass --download to fetch it or point --data-root at the folder that contains "
                                       "cifar-100-python")


def test_a_status_keeps_the_reason_in_flags_and_the_remedy_apart() -> None:
    stopped = reason_fields("stopped and saved", Remedy("resume"))
    assert stopped == {"reason": "stopped and saved; continue with --resume", "problem": "stopped and saved",
                       "remedy": {"action": "resume", "details": {}}}
    failed = reason_fields(DataError("CIFAR-10 not found under /x", Remedy("download_or_set_data_root", {"folder": "f"})))
    assert Remedy.from_dict(failed["remedy"]).command_line.endswith("contains f") and failed["problem"].endswith("/x")
    assert reason_fields(RuntimeError("out of memory\nmore")) == {"reason": "out of memory"}  # one line, no remedy
    assert Remedy.from_dict({"action": "from a later version"}) is None and Remedy.from_dict("junk") is None
    assert all("--" in wording for wording in REMEDIES.values())  # the command line's own words
    with pytest.raises(ValueError, match="unknown remedy"):
        Remedy("dance")


@pytest.mark.parametrize("status, described, fraction", [
    ({"state": "running", "pid": 1, "starting": True}, "starting", 0.0),
    ({"state": "stopped", "epoch": 0, "epochs": 3, "step": 4, "steps_per_epoch": 156}, "epoch 1/3, step 4/156", 4 / 156 / 3),
    ({"state": "stopped", "epoch": 1, "epochs": 2, "step": 78, "steps_per_epoch": 156}, "epoch 2/2, step 78/156", 0.75),
    ({"state": "running", "starting": True, "epoch": 1, "epochs": 2, "step": 78, "steps_per_epoch": 156},
     "resuming at epoch 2/2, step 78/156", 0.75),
    ({"state": "failed", "epoch": 2, "epochs": 3, "step": 0, "steps_per_epoch": 10}, "epoch 3/3, step 0/10", 2 / 3),
    ({"state": "finished", "epoch": 3, "epochs": 3, "step": 0, "steps_per_epoch": 10}, "3/3 epochs", 1.0),
    ({"state": "failed", "reason": "no such folder", "pid": 1}, "before its first step", 0.0),  # failed in set-up
    ({"state": "interrupted", "epoch": "?", "epochs": None}, "before its first step", 0.0),  # whatever a status holds
])
def test_a_runs_progress_is_where_it_stands(status: dict, described: str, fraction: float) -> None:
    progress = RunProgress.from_status(status)
    assert progress.describe() == described
    assert progress.fraction == pytest.approx(fraction)


def test_a_run_is_deleted_unless_it_is_running(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.write_config({"epochs": 1})
    run.write_status("running", pid=os.getpid())  # this process: alive
    with pytest.raises(ConfigError, match="r is running; stop it first"):
        delete_run(run)
    run.write_status("stopped", epoch=0, epochs=1, step=3, steps_per_epoch=8)
    assert run.progress().describe() == "epoch 1/1, step 3/8"
    delete_run(run)
    assert not run.path.exists()
    with pytest.raises(ConfigError, match="no r to delete"):
        delete_run(run)


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
