"""``python -m interpgrad evaluate`` on the shipped starter checkpoints: every file of the folder with consistent
contents, every bad flag refused with one line and no folder, and a real process killed (SIGKILL) or stopped
(SIGTERM) mid-way that resumes to the same bytes as an uninterrupted run.

Evaluations here run with one thread, in this process (``torch.set_num_threads(1)`` for the module) and in the child
processes (``OMP_NUM_THREADS=1``): the numbers are then computed the same way in both, and on a busy 2-core machine one
thread per process is several times faster than two.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from interpgrad.cli import build_parser, main
from interpgrad.cli.evaluate import _options
from interpgrad.metrics import EvaluationDir, check_request, load_evaluation
from interpgrad.metrics.launcher import command_line
from interpgrad.metrics.tables import (
    COMPARISON_COLUMNS,
    CURVE_COLUMNS,
    METHOD_COMPARISON_COLUMNS,
    RESULT_COLUMNS,
    SUMMARY_COLUMNS,
)

ROOT = Path(__file__).resolve().parents[1]
BASELINE = str(ROOT / "checkpoints" / "shapes-resnet18-baseline")
GUIDED = str(ROOT / "checkpoints" / "shapes-resnet18-guided")
MODELS = ["--checkpoint", BASELINE, "--checkpoint", GUIDED]
COMMON = ["--device", "cpu", "--resamples", "200", "--no-progress"]
METRICS = ["insertion", "deletion", "pointing_game", "energy_pointing_game", "sparseness", "randomisation"]
TINY = [*MODELS, "--methods", "gradient,edge", "--metrics", ",".join(METRICS), "--n", "8",
        "--param", "insertion.step_rows=4", "--param", "deletion.step_rows=4",
        "--param", "randomisation.granularity=stage", *COMMON]
# 2 models x 16 batches of one image x 2 methods = 64 units of ~30 ms: time to interrupt a real process mid-way.
LONG = [*MODELS, "--methods", "gradient,random", "--metrics", "deletion,sparseness", "--n", "16", "--batch-size", "1",
        *COMMON]
LONG_UNITS = 64
TABLES = ["results.csv", "summary.csv", "comparisons.csv", "method_comparisons.csv", "curves.csv"]


pytestmark = pytest.mark.usefixtures("one_thread")


def evaluate(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    try:
        code = main(["evaluate", *arguments])
    except SystemExit as exit:  # argparse reports bad choices by exiting with status 2
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def quiet_main(*arguments: str) -> int:
    """``main`` for fixtures (no capsys at module scope)."""
    return main(["evaluate", *arguments])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaluate") / "tiny"
    assert quiet_main(*TINY, "--out", str(out)) == 0
    return out


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"image": str, "label": str})


def test_a_tiny_evaluation_writes_every_file(tiny: Path) -> None:
    assert sorted(p.name for p in tiny.iterdir()) == sorted(
        ["config.json", "status.json", "units.jsonl", "results.json", "plots", *TABLES])
    assert json.loads((tiny / "status.json").read_text())["state"] == "finished"
    assert len((tiny / "units.jsonl").read_text().splitlines()) == 2 * 2  # models x methods, one batch of 8
    plots = sorted(p.name for p in (tiny / "plots").iterdir())
    assert plots == ["curves_deletion.png", "curves_insertion.png", "curves_randomisation.png", "summary.png"]
    for plot in plots:
        assert (tiny / "plots" / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    headers = {name: (tiny / name).read_text().splitlines()[0].split(",") for name in TABLES}
    assert headers == {"results.csv": RESULT_COLUMNS, "summary.csv": SUMMARY_COLUMNS,
                       "comparisons.csv": COMPARISON_COLUMNS, "method_comparisons.csv": METHOD_COMPARISON_COLUMNS,
                       "curves.csv": CURVE_COLUMNS}
    assert RESULT_COLUMNS == ["model", "method", "metric", "image", "value"]
    assert SUMMARY_COLUMNS == ["model", "method", "metric", "direction", "mean", "ci_low", "ci_high", "n"]
    assert COMPARISON_COLUMNS == ["model_a", "model_b", "method", "metric", "difference", "ci_low", "ci_high",
                                  "p_value", "verdict"]


def test_the_tables_agree_with_the_per_image_values(tiny: Path) -> None:
    results = read(tiny / "results.csv")
    models = ["shapes-resnet18-baseline", "shapes-resnet18-guided"]
    assert len(results) == 2 * 2 * len(METRICS) * 8
    for (model, method, metric), group in results.groupby(["model", "method", "metric"]):
        assert group["image"].tolist() == [str(i) for i in range(8)], (model, method, metric)
    assert set(results["model"]) == set(models) and set(results["method"]) == {"gradient", "edge"}
    assert set(results["metric"]) == set(METRICS)

    summary = read(tiny / "summary.csv")
    assert len(summary) == 2 * 2 * len(METRICS)
    means = results.groupby(["model", "method", "metric"])["value"].agg(["mean", "count"])
    for row in summary.itertuples():
        assert row.mean == pytest.approx(means.loc[(row.model, row.method, row.metric), "mean"], rel=1e-12, abs=1e-15)
        assert row.n == means.loc[(row.model, row.method, row.metric), "count"]
        assert row.ci_low <= row.mean <= row.ci_high
    directions = dict(zip(summary["metric"], summary["direction"]))
    assert directions["deletion"] == directions["randomisation"] == "lower" and directions["insertion"] == "higher"

    comparisons = read(tiny / "comparisons.csv")
    assert len(comparisons) == 2 * len(METRICS)  # one pair of models x methods x metrics
    assert set(comparisons["model_a"]) == {models[1]} and set(comparisons["model_b"]) == {models[0]}
    table = results.pivot_table(index=["method", "metric", "image"], columns="model", values="value")
    for row in comparisons.itertuples():
        pairs = table.loc[(row.method, row.metric)]
        assert row.difference == pytest.approx((pairs[models[1]] - pairs[models[0]]).mean(), rel=1e-9, abs=1e-12)
        assert row.verdict in ("better", "worse", "no clear difference")

    method_comparisons = read(tiny / "method_comparisons.csv")
    assert len(method_comparisons) == 2 * len(METRICS)  # models x one pair of methods x metrics
    assert set(method_comparisons["method_a"]) == {"gradient"} and set(method_comparisons["method_b"]) == {"edge"}

    curves = read(tiny / "curves.csv")
    counts = curves.groupby("metric").size().to_dict()
    assert counts == {"insertion": 2 * 2 * 9, "deletion": 2 * 2 * 9, "randomisation": 2 * 2 * 7}  # 32 / 4 steps + 1
    labels = curves[(curves["metric"] == "randomisation") & (curves["model"] == models[0])
                    & (curves["method"] == "edge")]
    assert labels["label"].tolist() == ["fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1"]
    np.testing.assert_allclose(labels["mean"], 1.0, atol=1e-12)  # the edge map ignores the model
    assert (curves["n"] == 8).all()


def test_results_json_records_the_protocol_and_versions(tiny: Path) -> None:
    protocol = json.loads((tiny / "results.json").read_text())
    assert protocol["format"] == "interpgrad-evaluation" and protocol["format_version"] == 1
    assert set(protocol["versions"]) >= {"interpgrad", "torch", "numpy", "pandas", "scipy", "python"}
    assert protocol["versions"]["torch"] == torch.__version__
    assert protocol["data"]["dataset"] == "shapes" and protocol["data"]["n"] == 8 and protocol["data"]["has_masks"]
    assert protocol["data"]["images"] == [str(i) for i in range(8)]
    assert list(protocol["metrics"]) == METRICS and list(protocol["methods"]) == ["gradient", "edge"]
    assert protocol["metrics"]["randomisation"]["params"]["granularity"] == "stage"
    assert "granularity=stage" in protocol["metrics"]["randomisation"]["protocol"]
    assert protocol["metrics"]["insertion"]["direction"] == "higher"
    assert protocol["metrics"]["insertion"]["params"] == {"substrate": "blur", "blur_kernel": 5, "blur_sigma": 2.0,
                                                          "constant": 0.0, "step_rows": 4.0, "score": "probability"}
    assert protocol["target"] == "predicted" and protocol["statistics"]["resamples"] == 200
    for model, path in zip(protocol["models"], (BASELINE, GUIDED)):
        digest = hashlib.sha256((Path(path) / "model.safetensors").read_bytes()).hexdigest()
        assert model["sha256"] == digest and model["name"] == Path(path).name
    assert protocol["problems"] == []
    evaluation = load_evaluation(tiny)
    assert evaluation.models == ["shapes-resnet18-baseline", "shapes-resnet18-guided"]
    pd.testing.assert_frame_equal(evaluation.results, read(tiny / "results.csv"))


def test_list_prints_the_metrics_and_presets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = evaluate(capsys, "--list")
    assert code == 0
    for name in METRICS:
        assert f"\n{name} (" in f"\n{out}"
    assert "--param insertion.step_rows=1.0" in out and "--preset rise" in out


def test_the_launchers_command_line_reproduces_the_options() -> None:
    """What the app launches (``launcher.command_line``) parses back to the same request."""
    options = {"checkpoints": [BASELINE, GUIDED], "methods": ["gradient", "random"],
               "metrics": ["insertion", "topk_iou"], "dataset": "shapes", "split": "test", "n": 12, "preset": "rise",
               "target": "label", "seed": 3, "batch_size": 4, "max_batch": 9, "device": "cpu", "confidence": 0.9,
               "resamples": 300,
               "params": {"insertion": {"step_rows": 2.0, "substrate": "mean"}, "topk_iou": {"fraction": 0.25}},
               "method_params": {"random": {"seed": 7}}}
    arguments = command_line(options, "evaluations/x")
    assert arguments[:4] == [sys.executable, "-m", "interpgrad", "evaluate"]
    parsed = build_parser(["evaluate"]).parse_args(arguments[3:])
    assert parsed.out == "evaluations/x" and not parsed.progress and not parsed.resume
    given = _options(parsed)
    assert given.pop("methods") == "gradient,random" and given.pop("metrics") == "insertion,topk_iou"
    ours = {key: value for key, value in options.items() if key not in ("methods", "metrics")}
    assert given.keys() == ours.keys()
    for key in ("checkpoints", "dataset", "split", "n", "preset", "target", "seed", "batch_size", "max_batch", "device",
                "confidence", "resamples"):
        assert given[key] == ours[key], key
    requests = [check_request(options["methods"], options["metrics"], "shapes", source["params"],
                              source["method_params"], "rise", "label", device="cpu") for source in (given, ours)]
    assert requests[0] == requests[1]
    assert requests[0].metrics["insertion"]["step_rows"] == 2.0 and requests[0].methods["random"]["seed"] == 7


def test_a_preset_is_applied_first_and_params_override_it() -> None:
    request = check_request(["gradient"], ["insertion", "deletion"], "shapes", {"insertion": {"step_rows": "2"}},
                            preset="rise", device="cpu")
    assert request.metrics["insertion"] == {"substrate": "blur", "blur_kernel": 11, "blur_sigma": 5.0, "constant": 0.0,
                                            "step_rows": 2.0, "score": "probability"}
    assert request.metrics["deletion"]["substrate"] == "zeros" and request.target == "predicted"
    assert check_request(["gradient"], ["insertion"], preset="interpretable-gradients", device="cpu").target == "label"
    assert check_request(["gradient"], ["insertion"], preset="interpretable-gradients", target="predicted",
                         device="cpu").target == "predicted"


# ---------------------------------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(("arguments", "message"), [
    (["--metrics", "nope"], "unknown metric 'nope'"),
    (["--methods", "gradient,nope"], "nope"),
    (["--metrics", "pointing_game", "--dataset", "cifar10"], "pointing_game needs ground-truth masks, and cifar10"),
    (["--n", "2001"], "N = 2001 is larger than the val split of shapes (2000 images)"),
    (["--param", "insertion.step_rows=abc"], "step_rows"),
    (["--param", "insertion.nosuch=1"], "unknown insertion parameter 'nosuch'"),
    (["--param", "insertion"], "--param expects OWNER.NAME=VALUE"),
    (["--param", "roc_auc.attribution=map"], "parameters given for the metric 'roc_auc', which is not among"),
    (["--param", "insertion.step_rows=0"], "step_rows"),
    (["--target", "nope"], "invalid choice: 'nope'"),
])
def test_bad_flags_exit_with_one_line_and_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    arguments: list[str], message: str) -> None:
    out = tmp_path / "never"
    base = [*MODELS, "--methods", "gradient", "--metrics", "insertion", "--n", "4", *COMMON]
    code, _, err = evaluate(capsys, *base, *arguments, "--out", str(out))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interpgrad evaluate: error: ") and message in lines[0], err
    assert not out.exists()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_an_existing_folder_is_refused_without_resume(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(tiny)
    code, _, err = evaluate(capsys, *TINY, "--out", str(tiny))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "already holds an evaluation; pass --resume" in err
    code, _, err = evaluate(capsys, "--out", str(tiny), "--resume", "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "has finished" in err
    assert snapshot(tiny) == before


def test_resume_needs_an_evaluation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = evaluate(capsys, "--out", str(tmp_path / "none"), "--resume", "--no-progress")
    assert code == 2 and "no evaluation to resume" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "none").exists()


# ---------------------------------------------------------------------------------------------------------------------
# Real processes: killed, stopped, resumed


def child_environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "interpgrad", "evaluate", *LONG, "--out", str(out)], cwd=ROOT,
                            env=child_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_units(process: subprocess.Popen, folder: Path, count: int, timeout: float = 120) -> int:
    """Poll until units.jsonl holds ``count`` complete lines; the process must still be running."""
    path = folder / "units.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = path.read_text().count("\n") if path.is_file() else 0
        if lines >= count:
            return lines
        if process.poll() is not None:
            raise AssertionError(f"the evaluation ended before {count} units: {process.stderr.read()[-2000:]}")
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {count} units")


@pytest.fixture()
def processes():  # type: ignore[no-untyped-def]
    """Child processes a test started, killed if it fails before they end."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaluate") / "straight"
    assert quiet_main(*LONG, "--out", str(out)) == 0
    return out


def assert_same_tables(folder: Path, reference: Path) -> None:
    for name in TABLES:
        assert (folder / name).read_bytes() == (reference / name).read_bytes(), name


def assert_complete_units(folder: Path) -> None:
    lines = (folder / "units.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line parses
    keys = {(record["model"], record["method"], record["batch"]) for record in records}
    assert len(lines) == len(keys) == LONG_UNITS


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_results(tmp_path: Path, uninterrupted: Path, processes,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "killed"
    process = start(out)
    processes.append(process)
    wait_for_units(process, out, 2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    folder = EvaluationDir(out)
    written = len((out / "units.jsonl").read_text().splitlines())
    assert 2 <= written < LONG_UNITS and not folder.finished()
    assert folder.read_status()["state"] == "interrupted"
    # a kill in the middle of a write leaves a torn last line: it is dropped and its unit computed again
    first = (out / "units.jsonl").read_text().splitlines()[0]
    with open(out / "units.jsonl", "a") as units:
        units.write(first[: len(first) // 2])
    code, _, err = evaluate(capsys, "--out", str(out), "--resume", "--no-progress")
    assert code == 0, err
    assert folder.read_status()["state"] == "finished"
    assert_complete_units(out)
    assert_same_tables(out, uninterrupted)


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_resumes(tmp_path: Path, uninterrupted: Path, processes,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "terminated"
    process = start(out)
    processes.append(process)
    wait_for_units(process, out, 1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    folder = EvaluationDir(out)
    status = folder.read_status()
    written = len((out / "units.jsonl").read_text().splitlines())
    # nothing else on stderr (no warnings): the reason to resume, on one line
    reason = f"interpgrad evaluate: stopped after {written} of {LONG_UNITS} units; continue with --resume"
    assert err.splitlines() == [reason]
    assert status["state"] == "stopped" and status["done"] == written and status["total"] == LONG_UNITS
    assert 1 <= written < LONG_UNITS and not folder.finished()
    # resuming with another N is refused, and touches nothing
    before = snapshot(out)
    code, _, err = evaluate(capsys, "--out", str(out), "--resume", "--n", "32", "--no-progress")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "was started with n=16" in err
    assert snapshot(out) == before
    code, _, err = evaluate(capsys, "--out", str(out), "--resume", "--no-progress")
    assert code == 0, err
    assert folder.read_status()["state"] == "finished"
    assert_complete_units(out)
    assert_same_tables(out, uninterrupted)


@pytest.mark.slow
def test_a_refusal_in_a_real_process_is_one_line_on_stderr(tmp_path: Path) -> None:
    out = tmp_path / "never"
    result = subprocess.run([sys.executable, "-m", "interpgrad", "evaluate", *MODELS, "--metrics", "nope", *COMMON,
                             "--out", str(out)], cwd=ROOT, env=child_environment(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("interpgrad evaluate: error: unknown metric 'nope'")
    assert not out.exists()
