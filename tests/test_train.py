"""The trainer: configuration rules, the run folder, resume (exact), the divergence guard, bad flags, the schedule."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import interpgrad
from interpgrad import ConfigError, load_checkpoint
from interpgrad.cli import main as cli_main
from interpgrad.regularizers import GuidedAlignment, NoRegularizer
from interpgrad.training import RunDir, Trainer, make_config, train
from interpgrad.training import trainer as trainer_module
from interpgrad.training.distributed import DistributedContext
from interpgrad.training.state import load_training_state, save_training_state
from interpgrad.training.trainer import DivergenceError

TINY = {"arch": "resnet18", "width": 0.125, "dataset": "shapes", "n_train": 256, "n_val": 64, "batch_size": 32,
        "lr": 0.05, "alignment_samples": 32, "seed": 3}


def _tiny(tmp_path: Path, name: str = "run", **options) -> interpgrad.training.TrainConfig:
    return make_config({**TINY, "out": str(tmp_path / name), **options})


def _parameters(path: Path) -> dict[str, torch.Tensor]:
    model, _ = load_checkpoint(path)
    return {k: v for k, v in model.state_dict().items()}


# --- configuration ------------------------------------------------------------------------------------------------


def test_defaults_are_the_papers_settings() -> None:
    config = make_config({"out": "x"})
    assert (config.optimizer, config.lr, config.momentum, config.weight_decay) == ("sgd", 0.1, 0.9, 5e-4)
    assert (config.batch_size, config.epochs, config.resolved_milestones, config.gamma) == (128, 200, (100, 150), 0.1)
    guided = make_config({"out": "x", "regularizer": "guided"})
    assert guided.regularizer_params == {"lam": 7.5e-3, "error": "cosine", "histogram_normalization": "each",
                                         "batchnorm": "batch", "gradient_of": "loss"}  # the paper: as written
    assert guided.resolved_activation == "relu" and guided.resolved_normalize is True
    # Srinivas & Fleuret's code: Softplus(10) networks on inputs in [0, 1] for all three of their regularizers
    for name in ("score_matching", "anti_score_matching", "gradient_norm"):
        config = make_config({"out": "x", "regularizer": name})
        assert config.resolved_activation == "softplus" and config.resolved_normalize is False, name


def test_precedence_defaults_preset_file_flags(tmp_path: Path) -> None:
    file = tmp_path / "options.yaml"
    file.write_text("epochs: 7\nlr: 0.02\nregularizer-params:\n  lam: 0.01\n")
    config = make_config({"lr": 0.03, "out": "x"}, preset="paper-cifar100", config_file=file)
    assert config.dataset == "cifar100" and config.regularizer == "guided"  # preset
    assert config.epochs == 7  # file over preset and defaults
    assert config.lr == 0.03  # flag over file
    assert config.regularizer_params["lam"] == 0.01 and config.regularizer_params["error"] == "cosine"
    # Another regularizer drops the preset's parameters instead of failing on them.
    assert make_config({"out": "x", "regularizer": "none"}, preset="paper-cifar100").regularizer_params == {}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"arch": "resnet19"}, "unknown architecture 'resnet19'"),
        ({"regularizer": "guided", "regularizer_params": {"lam": -1.0}}, "lam.*>= 0"),
        ({"regularizer": "guided", "amp": "fp16"}, "fp16 underflows"),
        ({"dataset": "mnist"}, "unknown dataset 'mnist'"),
        ({"epochs": 0}, "--epochs"),
        ({"nonsense": 1}, "unknown training option 'nonsense'"),
        ({"regularizer": "score_matching", "amp": "bf16"}, "--amp bf16 .*Hessian-trace estimate"),
        ({"regularizer": "anti_score_matching", "amp": "fp16"}, "--amp fp16 .*Hessian-trace estimate"),
        ({"regularizer_params": {"lam": 0.1}}, r"--lam needs a regularizer that has it \(e.g. --regularizer guided\)"),
        ({"epochs": "two"}, "option epochs must be a whole number, got 'two'"),
        ({"regularizer": "guided", "regularizer_params": ["lam", 0.1]}, "option regularizer_params must be a mapping"),
        ({"augment": "maybe"}, "option augment must be true or false"),
        ({"device": "tpu"}, "--device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
    ],
)
def test_invalid_options_are_clear_errors(options: dict, message: str) -> None:
    with pytest.raises(interpgrad.InterpgradError, match=message):
        make_config({"out": "x", **options})


def test_config_files_of_the_wrong_types(tmp_path: Path) -> None:
    yaml_file = tmp_path / "options.yaml"
    yaml_file.write_text("lr: 1e-3\nepochs: 3\nmilestones: [1, 2]\n")  # PyYAML reads 1e-3 as the string '1e-3'
    config = make_config({"out": "x"}, config_file=yaml_file)
    assert (config.lr, config.epochs, config.milestones) == (1e-3, 3, (1, 2))
    json_file = tmp_path / "options.json"
    json_file.write_text(json.dumps({"epochs": "two"}))
    with pytest.raises(ConfigError, match="option epochs must be a whole number, got 'two'"):
        make_config({"out": "x"}, config_file=json_file)
    json_file.write_text(json.dumps({"regularizer_params": [0.1]}))
    with pytest.raises(ConfigError, match="option regularizer_params must be a mapping"):
        make_config({"out": "x"}, config_file=json_file)


def test_learning_rate_schedules(tmp_path: Path) -> None:
    trainer = Trainer(_tiny(tmp_path, epochs=4, schedule="multistep", warmup_epochs=1.0))
    trainer.steps_per_epoch = 10
    assert trainer.learning_rate(0, 0) == pytest.approx(0.05 * 0.1)  # warm-up: (0 + 1/10) / 1
    assert trainer.learning_rate(1, 0) == pytest.approx(0.05)
    assert trainer.learning_rate(2, 0) == pytest.approx(0.005)  # milestone at 50 %
    assert trainer.learning_rate(3, 5) == pytest.approx(0.0005)  # and at 75 %
    cosine = Trainer(_tiny(tmp_path, epochs=4, schedule="cosine"))
    cosine.steps_per_epoch = 10
    assert cosine.learning_rate(0, 0) == pytest.approx(0.05)
    assert cosine.learning_rate(2, 0) == pytest.approx(0.025)


# --- runs ---------------------------------------------------------------------------------------------------------


def test_a_short_run_leaves_a_loadable_checkpoint_metrics_status_and_config(tmp_path: Path) -> None:
    config = _tiny(tmp_path, regularizer="guided", epochs=2)
    history = train(config, progress=False)
    run = RunDir(config.out)
    assert len(history) == 2 and run.read_metrics() == json.loads(json.dumps(history))
    for key in ("train_loss", "train_classification", "train_regularization", "train_alignment_batch", "train_accuracy",
                "val_loss", "val_accuracy", "val_alignment_eval", "val_alignment_logit_eval", "epoch_time_s", "lr", "epoch"):
        assert key in history[-1]
    assert not {"train_alignment", "val_alignment"} & set(history[-1])  # the ambiguous names are gone
    model, metadata = load_checkpoint(run.path)
    assert metadata["model"]["width"] == 0.125 and metadata["regularizer"]["name"] == "guided"
    assert metadata["data"]["class_names"][0] == "circle" and metadata["epochs_completed"] == 2
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    assert run.read_status()["state"] == "finished"
    assert run.read_config()["regularizer_params"]["lam"] == 7.5e-3


def test_an_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    config = _tiny(tmp_path, epochs=1)
    train(config, progress=False)
    before = RunDir(config.out).checkpoint_path.read_bytes()
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        train(config, progress=False)
    assert RunDir(config.out).checkpoint_path.read_bytes() == before


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = _tiny(tmp_path, "straight", regularizer="guided", epochs=3)
    train(straight, progress=False)
    split = _tiny(tmp_path, "split", regularizer="guided", epochs=1)
    train(split, progress=False)
    train(make_config({**split.to_dict(), "epochs": 3}), resume=True, progress=False)
    assert [line["epoch"] for line in RunDir(split.out).read_metrics()] == [1, 2, 3]
    ours, reference = _parameters(Path(split.out)), _parameters(Path(straight.out))
    for key, value in reference.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-6)


def test_divergence_stops_with_a_reason_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    config = _tiny(tmp_path, regularizer="guided", epochs=3)
    original, calls = GuidedAlignment.loss, {"count": 0}
    steps_per_epoch = 256 // 32

    def poisoned(self, model, forward, y):  # type: ignore[no-untyped-def]
        parts = original(self, model, forward, y)
        calls["count"] += 1
        if calls["count"] > steps_per_epoch + 2:  # in epoch 2
            parts.total = parts.total * float("nan")
        return parts

    monkeypatch.setattr(GuidedAlignment, "loss", poisoned)
    with pytest.raises(DivergenceError, match="non-finite at epoch 2, step 3"):
        train(config, progress=False)
    run = RunDir(config.out)
    status = run.read_status()
    assert status["state"] == "failed" and "non-finite" in status["reason"]
    assert len(run.read_metrics()) == 1
    assert load_checkpoint(run.path).metadata["epochs_completed"] == 1


class _PoisonGradient(torch.autograd.Function):
    """The identity forward, a backward of ``value`` everywhere: a finite loss whose gradients are not."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, value: float) -> torch.Tensor:  # type: ignore[override]
        ctx.value = value
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return torch.full_like(grad, ctx.value), None


def _poison_gradients_at(monkeypatch, call: int, value: float) -> None:
    """The baseline's loss gets gradients of ``value`` at its ``call``-th call (1-based: one call per step)."""
    original, calls = NoRegularizer.loss, {"count": 0}

    def poisoned(self, model, forward, y):  # type: ignore[no-untyped-def]
        parts = original(self, model, forward, y)
        calls["count"] += 1
        if calls["count"] == call:
            parts.total = _PoisonGradient.apply(parts.total, value)
        return parts

    monkeypatch.setattr(NoRegularizer, "loss", poisoned)


def _strict_json_lines(path: Path) -> list[dict]:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in {path.name} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_non_finite_gradients_with_a_finite_loss_stop_before_the_step(tmp_path: Path, monkeypatch) -> None:
    """NaN gradients on the last step of epoch 2 (the loss finite): stopped before the optimizer steps, so epoch 2 is
    never saved and the resume state keeps the weights of epoch 1."""
    config = _tiny(tmp_path, epochs=3)
    _poison_gradients_at(monkeypatch, 2 * (256 // 32), float("nan"))
    with pytest.raises(DivergenceError, match="gradients became non-finite at epoch 2, step 8") as raised:
        train(config, progress=False)
    assert "start a new run with a lower --lr or --lam" in str(raised.value)
    run = RunDir(config.out)
    status = run.read_status()
    assert status["state"] == "failed" and "gradients" in status["reason"] and "--lr" in status["reason"]
    assert status["remedy"]["action"] == "gentler_training" and "--" not in status["problem"]  # the app's words apart
    assert [line["epoch"] for line in _strict_json_lines(run.metrics_path)] == [1]
    assert load_checkpoint(run.path).metadata["epochs_completed"] == 1
    from safetensors.torch import load_file

    resume = load_file(run.resume_path)
    assert all(torch.isfinite(t).all() for k, t in resume.items() if k.startswith("model.") and t.is_floating_point())


def test_a_non_finite_validation_loss_is_never_saved(tmp_path: Path, monkeypatch) -> None:
    config = _tiny(tmp_path, epochs=2)
    original, calls = Trainer._evaluate_loss, {"count": 0}

    def nan_in_epoch_2(self, model):  # type: ignore[no-untyped-def]
        calls["count"] += 1
        loss, accuracy = original(self, model)
        return (float("nan") if calls["count"] == 2 else loss), accuracy

    monkeypatch.setattr(Trainer, "_evaluate_loss", nan_in_epoch_2)
    with pytest.raises(DivergenceError, match=r"non-finite in epoch 2 \(val_loss=nan\)"):
        train(config, progress=False)
    run = RunDir(config.out)
    assert len(_strict_json_lines(run.metrics_path)) == 1
    assert load_checkpoint(run.path).metadata["epochs_completed"] == 1
    assert run.read_status()["state"] == "failed"


def test_fp16_infinite_gradients_are_still_the_grad_scaler_s_to_skip(tmp_path: Path, monkeypatch) -> None:
    """Under fp16 an inf gradient is routine (the scaler skips that step and lowers its scale): no divergence."""
    config = _tiny(tmp_path, amp="fp16", epochs=1, n_train=128)
    _poison_gradients_at(monkeypatch, 2, float("inf"))
    history = train(config, progress=False)
    assert len(history) == 1 and all(math.isfinite(value) for value in history[0].values())
    assert all(torch.isfinite(value).all() for value in _parameters(Path(config.out)).values())


def test_divergence_on_the_command_line_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(GuidedAlignment, "loss", lambda self, model, forward, y: _nan_parts(forward))
    code = cli_main(["train", "--width", "0.125", "--n-train", "64", "--n-val", "32", "--batch-size", "32",
                     "--regularizer", "guided", "--epochs", "1", "--out", str(tmp_path / "nan"), "--no-progress"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(error) == 1 and "non-finite" in error[0]


def _nan_parts(forward):  # type: ignore[no-untyped-def]
    from interpgrad.regularizers import LossParts

    nan = forward.losses.mean() * float("nan")
    return LossParts(nan, nan, nan)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--arch", "resnet19"], "invalid choice: 'resnet19'"),
        (["--regularizer", "guided", "--lam", "-0.1"], "lam"),
        (["--dataset", "cifar10"], "needs a data root"),
        (["--dataset", "cifar10", "--data-root", "/nonexistent/cifar"], "not found"),
        (["--epochs", "two"], "invalid int value"),
        (["--resume"], "--resume needs --out"),
        (["--device", "tpu"], "--device must be auto, cpu, cuda or cuda:N"),
        pytest.param(["--device", "cuda"], "no CUDA GPU is available",
                     marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
        (["--n-train", "5", "--n-val", "8"], "fewer than one batch"),
        (["--grad-accumulation", "3"], "must be divisible by processes x --grad-accumulation = 3"),
        (["--lam", "0.1"], "--lam needs a regularizer that has it"),
        (["--init", "no/such/model.safetensors", "--epochs", "1"], "--init no/such/model.safetensors"),
        (["--regularizer", "guided", "--batchnorm", "per_sample", "--amp", "bf16"], "without --amp"),
        (["--lam-warmup-epochs", "1"], "--lam-warmup-epochs needs a regularizer with a lam"),
        (["--regularizer", "score_matching", "--amp", "bf16"], "Hessian-trace estimate"),
    ],
)
def test_bad_flags_exit_non_zero_with_one_line(tmp_path: Path, capsys, flags: list[str], message: str) -> None:
    out = tmp_path / "run"
    arguments = ["train", *flags] if "--resume" in flags else ["train", "--out", str(out), *flags]
    try:
        code = cli_main(arguments)
    except SystemExit as exit:  # argparse
        code = exit.code
    error = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(error) == 1 and error[0].startswith("interpgrad train: error:"), error
    assert message.split(".*")[0] in error[0] or __import__("re").search(message, error[0])
    assert not out.exists()  # nothing written for bad input


def test_out_must_be_a_folder_that_can_be_made(tmp_path: Path, capsys) -> None:
    file = tmp_path / "a-file"
    file.write_text("keep me")
    cases = [(file, "is a file, not a folder"), (file / "run", "is a file, not a folder")]
    if Path("/sys/kernel").is_dir():  # no one may make a folder there, root included
        cases.append((Path("/sys/interpgrad-run"), "not writable|cannot create the run folder"))
    for out, message in cases:
        code = cli_main(["train", "--out", str(out), "--n-train", "64", "--n-val", "8", "--batch-size", "32",
                         "--width", "0.125", "--no-progress"])
        error = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(error) == 1 and re.search(message, error[0]), error
    assert file.read_text() == "keep me"


def test_a_run_the_app_launched_records_why_its_set_up_failed(tmp_path: Path) -> None:
    """The launcher made the folder and wrote "starting" with the trainer's pid: bad input is then worth a reason there."""
    config = _tiny(tmp_path, n_train=5, n_val=8)
    run = RunDir(config.out)
    run.path.mkdir()
    run.write_status("running", pid=os.getpid(), starting=True)
    with pytest.raises(ConfigError, match="fewer than one batch"):
        train(config, progress=False)
    status = run.read_status()
    assert status["state"] == "failed" and "fewer than one batch" in status["reason"]


def test_cifar_at_another_image_size_leaves_no_run_folder(tmp_path: Path, capsys) -> None:
    from dataset_files import write_cifar10

    write_cifar10(tmp_path / "data", np.random.default_rng(0))
    out = tmp_path / "run"
    code = cli_main(["train", "--out", str(out), "--dataset", "cifar10", "--data-root", str(tmp_path / "data"),
                     "--image-size", "64", "--no-progress"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(error) == 1 and "image_size=64 is not supported" in error[0]
    assert not out.exists()


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (the trainer's failure handler aside)."""


@pytest.mark.parametrize("killed_in", ["write_metrics", "save_checkpoint"])
def test_a_kill_between_the_end_of_epoch_writes_resumes_to_the_uninterrupted_result(
    tmp_path: Path, monkeypatch, killed_in: str
) -> None:
    """Killed after the resume state of the last epoch was written but before metrics.jsonl or the checkpoint: --resume
    completes them, so both equal an uninterrupted run's."""
    straight = _tiny(tmp_path, "straight", epochs=2)
    train(straight, progress=False)
    owner = RunDir if killed_in == "write_metrics" else trainer_module
    original, calls = getattr(owner, killed_in), {"count": 0}

    def killed_at_the_second_epoch(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["count"] += 1
        if calls["count"] == 2:
            raise _Killed
        return original(*args, **kwargs)

    crashed = _tiny(tmp_path, "crashed", epochs=2)
    monkeypatch.setattr(owner, killed_in, killed_at_the_second_epoch)
    with pytest.raises(_Killed):
        train(crashed, progress=False)
    monkeypatch.undo()
    train(crashed, resume=True, progress=False)

    def lines(config) -> list[dict]:  # type: ignore[no-untyped-def]
        return [{k: v for k, v in line.items() if k != "epoch_time_s"} for line in RunDir(config.out).read_metrics()]

    assert lines(crashed) == lines(straight) and len(lines(crashed)) == 2
    assert load_checkpoint(crashed.out).metadata["epochs_completed"] == 2
    ours, reference = _parameters(Path(crashed.out)), _parameters(Path(straight.out))
    for key, value in reference.items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)


def test_random_crop_pads_with_black_as_torchvision_before_normalize(tmp_path: Path) -> None:
    """Both papers' code: RandomCrop(32, padding=4) then Normalize, so the padding is black, not the mean colour."""
    trainer = Trainer(_tiny(tmp_path, n_train=64))
    trainer._setup()
    trainer.train_data.images[:] = 255  # white images: every black pixel is padding
    x = next(trainer._shards(0, 0))[-2]  # the inputs of the first micro-batch
    mean, std = (torch.tensor(values).view(1, 3, 1, 1) for values in (trainer.info.mean, trainer.info.std))
    black = torch.isclose(x, ((0 - mean) / std).expand_as(x)).all(1)
    white = torch.isclose(x, ((1 - mean) / std).expand_as(x)).all(1)
    assert bool((black | white).all()) and 0 < int(black.sum()) < black.numel() // 2


def test_score_matching_noise_differs_between_processes(tmp_path: Path, monkeypatch) -> None:
    """Every process seeds the global generator alike; each must still draw its own noise for the Hessian-trace
    estimate. Rank 0 keeps the single-process stream; another rank's noise is a function of (seed, epoch, step, shard)
    and leaves the global stream as it was (so resuming needs no per-rank RNG state)."""
    trainer = Trainer(_tiny(tmp_path, regularizer="score_matching", n_train=64))
    trainer._setup()
    draws: list[torch.Tensor] = []
    randn_like = torch.randn_like
    monkeypatch.setattr(torch, "randn_like", lambda t, *a, **k: draws.append(randn_like(t, *a, **k)) or draws[-1])
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor, op=None: None)  # stands in for a group

    def noise(rank: int, world_size: int, global_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        trainer.distributed = DistributedContext(rank=rank, world_size=world_size)
        trainer.micro_batch = 32 // world_size
        torch.manual_seed(global_seed)
        draws.clear()
        trainer._train_step(0, 0, torch.zeros(6, dtype=torch.float64))
        return draws[0], torch.get_rng_state()

    single, _ = noise(0, 1)
    torch.manual_seed(0)
    assert torch.equal(single, torch.randn(single.shape))  # the single-process stream, unchanged
    rank0, _ = noise(0, 2)
    torch.manual_seed(0)
    assert torch.equal(rank0, torch.randn(rank0.shape))
    rank1, state = noise(1, 2)
    assert rank1.shape == rank0.shape and not torch.allclose(rank1, rank0)
    torch.manual_seed(0)
    assert torch.equal(state, torch.get_rng_state())  # the global stream untouched
    again, _ = noise(1, 2, global_seed=99)
    assert torch.equal(again, rank1)  # a function of (seed, epoch, step, shard), not of the global state


def test_resume_refuses_changed_settings(tmp_path: Path, capsys) -> None:
    config = _tiny(tmp_path, regularizer="guided", epochs=1)
    train(config, progress=False)
    code = cli_main(["train", "--out", config.out, "--resume", "--lam", "0.5"])
    assert code != 0 and "trained with regularizer_params" in capsys.readouterr().err


def test_training_state_round_trip_with_adam(tmp_path: Path) -> None:
    model = interpgrad.build_model("resnet18", width=0.125)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3, 16, 16)).sum().backward()
    optimizer.step()
    torch.manual_seed(5)
    save_training_state(tmp_path / "state.safetensors", model, optimizer, {"epoch": 3, "history": [{"a": 1.0}]})
    next_draw = torch.rand(3)  # what the RNG gives right after the save
    copy = interpgrad.build_model("resnet18", width=0.125)
    copy_optimizer = torch.optim.Adam(copy.parameters(), lr=1e-3)
    torch.manual_seed(123)
    progress = load_training_state(tmp_path / "state.safetensors", copy, copy_optimizer)
    assert progress == {"epoch": 3, "history": [{"a": 1.0}]}
    assert torch.equal(torch.rand(3), next_draw)
    for a, b in zip(model.parameters(), copy.parameters()):
        assert torch.equal(a, b)
    for state, copied in zip(optimizer.state.values(), copy_optimizer.state.values()):
        assert state.keys() == copied.keys()
        for key in state:
            assert torch.equal(torch.as_tensor(state[key]), torch.as_tensor(copied[key]))


def test_training_on_cifar_files_written_by_the_test(tmp_path: Path) -> None:
    from dataset_files import write_cifar10

    write_cifar10(tmp_path / "data", np.random.default_rng(0), counts=(20, 20, 20, 20, 20), n_test=20)
    config = _tiny(tmp_path, dataset="cifar10", data_root=str(tmp_path / "data"), n_train=None, n_val=None,
                   epochs=1, alignment_samples=8)
    history = train(config, progress=False)
    metadata = load_checkpoint(config.out).metadata
    assert metadata["data"]["class_names"][:2] == ["airplane", "automobile"]
    assert metadata["data"]["mean"] == [0.4914, 0.4822, 0.4465] and len(history) == 1


def test_training_on_an_image_folder_with_worker_processes(tmp_path: Path) -> None:
    from dataset_files import make_image_folder

    make_image_folder(tmp_path / "images")
    config = _tiny(tmp_path, dataset="imagefolder", data_root=str(tmp_path / "images"), image_size=16, n_train=None,
                   n_val=None, batch_size=4, workers=2, epochs=1, alignment_samples=2)
    train(config, progress=False)
    metadata = load_checkpoint(config.out).metadata
    assert metadata["data"]["class_names"] == ["ant", "bee", "cow"] and metadata["model"]["image_size"] == 16


def test_bf16_autocast_run(tmp_path: Path) -> None:
    history = train(_tiny(tmp_path, regularizer="guided", amp="bf16", epochs=1, n_train=64), progress=False)
    assert all(np.isfinite(value) for value in history[0].values())


# --- issue 9: lambda warm-up, fine-tuning from a checkpoint, threads ----------------------------------------------------

FINE = {**TINY, "n_train": 128, "n_val": 32, "alignment_samples": 16}


def test_lambda_warm_up_ramps_linearly_from_zero(tmp_path: Path) -> None:
    trainer = Trainer(_tiny(tmp_path, regularizer="guided", regularizer_params={"lam": 0.1}, lam_warmup_epochs=2))
    trainer.regularizer, trainer.steps_per_epoch = GuidedAlignment(lam=0.1), 4
    ramp = [trainer._set_lam(epoch, step) for epoch, step in [(0, 0), (0, 2), (1, 0), (1, 2), (2, 0), (5, 3)]]
    assert ramp == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, 0.1])
    assert trainer.regularizer.lam == pytest.approx(0.1) and trainer.regularizer.config["lam"] == 0.1
    plain = Trainer(_tiny(tmp_path, "plain", regularizer="guided", regularizer_params={"lam": 0.1}))
    plain.regularizer, plain.steps_per_epoch = GuidedAlignment(lam=0.1), 4
    assert plain._set_lam(0, 0) == pytest.approx(0.1)


def test_fine_tuning_refuses_a_mismatch_in_one_line_and_resumes_like_any_run(tmp_path: Path, capsys) -> None:
    base = make_config({**FINE, "out": str(tmp_path / "base"), "epochs": 1})
    train(base, progress=False)
    weights = RunDir(base.out).checkpoint_path
    for flags, words in ((["--arch", "mobilenet_v2"], "arch 'resnet18' (this run: 'mobilenet_v2')"),
                         (["--width", "0.25"], "width 0.125 (this run: 0.25)")):
        out = tmp_path / "mismatch"
        code = cli_main(["train", "--out", str(out), "--init", str(weights), "--n-train", "128", "--n-val", "32",
                         "--batch-size", "32", "--epochs", "1", *flags])
        error = capsys.readouterr().err.strip().splitlines()
        assert code != 0 and len(error) == 1 and words in error[0] and "--init" in error[0], error
        assert not out.exists()

    options = {**FINE, "init": str(weights), "optimizer": "adam", "lr": 1e-4, "regularizer": "guided",
               "regularizer_params": {"lam": 0.5, "batchnorm": "per_sample"}, "lam_warmup_epochs": 2}
    straight = make_config({**options, "out": str(tmp_path / "straight"), "epochs": 2})
    history = train(straight, progress=False)
    assert [line["lam"] for line in history] == pytest.approx([0.5 * (1 - 1 / 4) / 2, 0.5 * (2 - 1 / 4) / 2])
    split = make_config({**options, "out": str(tmp_path / "split"), "epochs": 1})
    first = train(split, progress=False)
    # the fine-tuned run starts from the checkpoint: its first epoch differs from a run from scratch
    scratch = train(make_config({**{k: v for k, v in options.items() if k != "init"}, "out": str(tmp_path / "scratch"),
                                 "epochs": 1}), progress=False)
    assert first[0]["train_loss"] != pytest.approx(scratch[0]["train_loss"], rel=1e-3)
    assert first[0]["train_loss"] == pytest.approx(history[0]["train_loss"], rel=1e-6)
    code = cli_main(["train", "--out", split.out, "--resume", "--epochs", "2", "--no-progress"])
    assert code == 0
    ours, reference = _parameters(Path(split.out)), _parameters(Path(straight.out))
    for key, value in reference.items():
        torch.testing.assert_close(ours[key], value, rtol=1e-5, atol=1e-6)
    import hashlib

    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    _, metadata = load_checkpoint(Path(split.out))
    assert metadata["init"] == {"path": str(weights.resolve()), "sha256": digest}
    assert RunDir(split.out).read_config()["init_checkpoint"]["sha256"] == digest
    assert {"train_alignment_batch", "val_alignment_eval", "val_alignment_logit_eval", "lam"} <= set(
        RunDir(split.out).read_metrics()[-1])


def test_threads_follow_the_shared_cores(tmp_path: Path, monkeypatch) -> None:
    from interpgrad.training import launcher
    from interpgrad.training.trainer import shared_threads

    monkeypatch.setattr(trainer_module, "available_cores", lambda: 8)
    assert [shared_threads(n) for n in (1, 2, 3, 8, 20)] == [8, 4, 2, 1, 1]
    for value, expected in (("3", 3), ("", None), ("0", None), ("two", None)):  # the environment's own request
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert trainer_module.requested_threads() == expected
    spawned = []
    monkeypatch.setattr(launcher, "spawn", lambda arguments, run, keys: spawned.append(arguments))
    monkeypatch.setattr(launcher, "running_runs", lambda root: 1)
    monkeypatch.setattr(launcher, "shared_threads", lambda processes: {2: 4}[processes])
    launcher.launch_run({**FINE, "epochs": 1}, tmp_path, "one")
    launcher.launch_run({**FINE, "epochs": 1, "threads": 3}, tmp_path, "two")
    assert spawned[0][spawned[0].index("--threads") + 1] == "4"
    assert spawned[1][spawned[1].index("--threads") + 1] == "3"
