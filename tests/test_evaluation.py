"""``interpgrad.evaluate`` from Python (no folder): models given as (name, module, metadata), a judge fed images
normalised for another model, progress and stop requests, and the checks made before any work."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from interpgrad import ConfigError
from interpgrad.data.transforms import denormalize, normalize
from interpgrad.metrics import Stopped, evaluate
from interpgrad.training.checkpoint import input_normalisation, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
OTHER_MEAN, OTHER_STD = (0.25, 0.5, 0.75), (0.5, 0.25, 0.125)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def baseline() -> tuple[nn.Module, dict]:
    model, metadata = load_checkpoint(ROOT / "checkpoints" / "shapes-resnet18-baseline")
    return model.eval(), metadata


class OtherNormalisation(nn.Module):
    """The same classifier, expecting inputs normalised with OTHER_MEAN / OTHER_STD; counts its calls."""

    def __init__(self, model: nn.Module, mean, std) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.model, self.mean, self.std, self.calls = model, mean, std, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(normalize(denormalize(x, OTHER_MEAN, OTHER_STD), self.mean, self.std))


def test_a_judge_normalised_otherwise_scores_what_the_model_would(baseline) -> None:
    """Pixel perturbation judged by the model itself equals it judged by the same classifier behind another input
    normalisation: the judge gets the perturbed images re-normalised its own way."""
    model, metadata = baseline
    judge = OtherNormalisation(model, *input_normalisation(metadata))
    judge_metadata = copy.deepcopy(metadata)
    judge_metadata["data"].update(mean=list(OTHER_MEAN), std=list(OTHER_STD))
    common = {"n": 4, "device": "cpu", "resamples": 100, "params": {"pixel_perturbation": {"score": "probability"}}}
    itself = evaluate([("base", model, metadata)], ["gradient"], ["pixel_perturbation"], **common)
    judged = evaluate([("base", model, metadata)], ["gradient"], ["pixel_perturbation"],
                      judge=("judge", judge, judge_metadata), **common)
    assert judge.calls > 0
    torch.testing.assert_close(torch.tensor(judged.results["value"].to_numpy()),
                               torch.tensor(itself.results["value"].to_numpy()), rtol=0, atol=1e-5)
    assert judged.protocol["judge"]["name"] == "judge" and itself.protocol["judge"] is None
    assert judged.folder is None and judged.models == ["base"] and judged.methods == ["gradient"]


def test_progress_is_reported_and_a_stop_request_is_obeyed(baseline) -> None:
    model, metadata = baseline
    reports: list[tuple[int, int]] = []
    evaluate([("a", model, metadata), ("b", model, metadata)], ["edge", "random"], ["sparseness"], n=6, batch_size=4,
             device="cpu", resamples=100, progress=lambda done, total, message: reports.append((done, total)))
    assert reports == [(done, 8) for done in range(1, 9)]  # 2 models x 2 batches x 2 methods
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Stopped, match="stopped after 3 of 4 units"):
        evaluate([("a", model, metadata)], ["edge", "random"], ["sparseness"], n=6, batch_size=4, device="cpu",
                 resamples=100, should_stop=should_stop)


def test_the_same_names_are_told_apart(baseline) -> None:
    model, metadata = baseline
    result = evaluate([("m", model, metadata), ("m", model, metadata)], ["edge"], ["top10_energy"], n=3, device="cpu",
                      resamples=100)
    assert result.models == ["m", "m-2"]
    assert result.comparisons[["model_a", "model_b"]].values.tolist() == [["m-2", "m"]]
    assert result.comparisons.loc[0, "difference"] == 0.0 and result.comparisons.loc[0, "p_value"] == 1.0


def test_models_that_do_not_fit_the_data_are_refused(baseline) -> None:
    model, metadata = baseline
    ten = copy.deepcopy(metadata)
    ten["model"]["num_classes"] = 7
    with pytest.raises(ConfigError, match="has 7 classes but shapes has 10"):
        evaluate([("seven", model, ten)], ["edge"], ["sparseness"], n=2, device="cpu")
    small = copy.deepcopy(metadata)
    small["model"]["image_size"] = 24
    with pytest.raises(ConfigError, match="different input sizes"):
        evaluate([("a", model, metadata), ("b", model, small)], ["edge"], ["sparseness"], n=2, device="cpu")
    with pytest.raises(ConfigError, match="choose at least one model"):
        evaluate([], ["edge"], ["sparseness"], n=2, device="cpu")
    with pytest.raises(ConfigError, match="no checkpoint at"):
        evaluate([ROOT / "checkpoints" / "nothing-here"], ["edge"], ["sparseness"], n=2, device="cpu")


def test_resume_from_python_continues_only_the_same_request(tmp_path: Path, baseline) -> None:
    """``evaluate(resume=True)`` refuses a request that measures something else (its units would mix with the saved
    ones) and accepts the same request however it is typed; the device and max_batch may change."""
    model, metadata = baseline
    out = tmp_path / "evaluation"
    request = {"n": 4, "batch_size": 2, "device": "cpu", "resamples": 100, "out": out}
    asked = {"params": {"insertion": {"step_rows": 2}}}
    with pytest.raises(Stopped):
        evaluate([("base", model, metadata)], ["gradient"], ["insertion"], should_stop=lambda: True, **request, **asked)
    status = json.loads((out / "status.json").read_text())
    assert (status["state"], status["reason"]) == ("stopped", "stopped after 0 of 2 units; continue with --resume")
    assert (status["problem"], status["remedy"]) == ("stopped after 0 of 2 units", {"action": "resume", "details": {}})
    config = (out / "config.json").read_text()
    for change in ({"batch_size": 1}, {"n": 3}, {"params": {"insertion": {"step_rows": 3}}}, {"target": "label"}):
        with pytest.raises(ConfigError, match="was started with"):
            evaluate([("base", model, metadata)], ["gradient"], ["insertion"], resume=True,
                     **{**request, **asked, **change})
        assert (out / "config.json").read_text() == config  # refused before anything is written
    with pytest.raises(ConfigError, match="was started with other methods"):
        evaluate([("base", model, metadata)], ["gradient", "random"], ["insertion"], resume=True, **request, **asked)
    typed_otherwise = {"params": {"insertion": {"step_rows": "2.0", "substrate": "blur"}}, "max_batch": 3}
    resumed = evaluate([("base", model, metadata)], ["gradient"], ["insertion"], resume=True, **request, **typed_otherwise)
    assert len(resumed.results) == 4


def test_the_evaluation_shipped_with_the_project_is_complete_and_current() -> None:
    """checkpoints/evaluations/shapes-starter (make starter-evaluation) reads back whole and was made from the very
    checkpoints shipped beside it (a retrained checkpoint without a new evaluation fails here)."""
    import hashlib

    from interpgrad.metrics import load_evaluation, metrics
    from interpgrad.explain import methods

    shipped = load_evaluation(ROOT / "checkpoints" / "evaluations" / "shapes-starter")
    every = [name for name, method in methods().items() if not method.requires]  # --methods all (gad needs a run)
    assert shipped.protocol["data"] == {**shipped.protocol["data"], "dataset": "shapes", "split": "val", "n": 1000}
    assert shipped.methods == every and list(shipped.metrics) == list(metrics())
    assert len(shipped.results) == 2 * len(every) * len(metrics()) * 1000
    assert len(shipped.summary) == 2 * len(every) * len(metrics())
    for model in shipped.protocol["models"]:
        path = ROOT / model["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == model["sha256"], f"{path} changed since its evaluation"
