"""GAN-test (Srinivas & Fleuret 2021, Table 1): the accuracy of an independent judge classifier on class samples, as
a measure of how much the samples look like their class. Overall and per class, each with a percentile-bootstrap
95 % interval over the samples (``interpgrad.metrics.statistics.bootstrap_mean``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from ..metrics.statistics import CONFIDENCE, RESAMPLES, Summary, bootstrap_mean

__all__ = ["GanTest", "gan_test"]


@dataclass(frozen=True)
class GanTest:
    """``accuracy``: a Summary (mean, ci_low, ci_high, n) of the judge's top-1 correctness on the samples, in [0, 1];
    ``per_class``: one row per class (``class``, ``name``, ``n``, ``accuracy``, ``ci_low``, ``ci_high``);
    ``predictions``: the judge's class per sample ``[N]``."""

    accuracy: Summary
    per_class: pd.DataFrame
    predictions: torch.Tensor


@torch.no_grad()
def _predictions(judge: nn.Module, samples: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = next(judge.parameters()).device
    training = judge.training
    judge.eval()
    try:
        return torch.cat([judge(samples[i:i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(samples), batch_size)])
    finally:
        judge.train(training)


def gan_test(
    judge: nn.Module,
    samples: torch.Tensor,
    classes: torch.Tensor | Sequence[int],
    *,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    batch_size: int = 128,
) -> GanTest:
    """Score ``samples`` ``[N, C, H, W]`` (in the judge's input space: pixels for a ``PixelSpaceModel``), made for
    ``classes`` ``[N]``, by the judge's top-1 prediction (judge in eval mode for the call)."""
    classes = torch.as_tensor(classes, dtype=torch.long).cpu()
    predictions = _predictions(judge, samples, batch_size)
    correct = (predictions == classes).double().numpy()
    rows = []
    for index, value in enumerate(dict.fromkeys(classes.tolist())):
        summary = bootstrap_mean(correct[classes.numpy() == value], confidence, resamples, seed + 1 + index)
        name = class_names[value] if class_names is not None and value < len(class_names) else str(value)
        rows.append({"class": value, "name": name, "n": summary.n, "accuracy": summary.mean,
                     "ci_low": summary.ci_low, "ci_high": summary.ci_high})
    per_class = pd.DataFrame(rows, columns=["class", "name", "n", "accuracy", "ci_low", "ci_high"])
    return GanTest(bootstrap_mean(correct, confidence, resamples, seed), per_class, predictions)
