"""The home page's account of what the strong regularizer changes, read from the shipped evaluation of the zoo
(``checkpoints/evaluations/shapes-strong``, made by ``make strong-evaluation``).

Each architecture's ``-guided-strong`` model is compared with its ``-baseline`` through the evaluation's own paired
comparisons (``appkit.zoo_compare.pair_verdicts``); nothing here computes a number of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from appkit.zoo_compare import entry_for, pair_counts, pair_verdicts, recorded_models, training_metric
from interpgrad.metrics.folder import EvaluationDir
from interpgrad.zoo import default_directories

__all__ = ["HEADLINE_MODELS", "STRONG_EVALUATION", "HOME_METHODS", "StrongPair", "strong_evaluation_folder", "strong_pairs"]

STRONG_EVALUATION = "shapes-strong"
HEADLINE_MODELS: tuple[str, ...] = ("shapes-resnet18-baseline", "shapes-resnet18-guided", "shapes-resnet18-guided-strong")
"""The shipped models the home page's picture and the Models page's curves show first: the baseline, the paper's
setting and the strong setting of the same ResNet-18."""
HOME_METHODS: tuple[str, ...] = ("gradient", "guided_backprop", "gradcam")
"""The methods whose verdicts the home page lists (the evaluation's controls are on the Evaluate page)."""


@dataclass(frozen=True)
class StrongPair:
    """A strong model and its baseline as the evaluation measured them."""

    strong: str
    baseline: str
    accuracy: tuple[float | None, float | None]  # (strong, baseline)
    cosine: tuple[float | None, float | None]  # eval-mode cos(standard, guided) of the loss, (strong, baseline)
    counts: dict[str, int]  # verdicts over every (method, metric) of the evaluation, for the strong model
    verdicts: pd.DataFrame  # pair_verdicts for HOME_METHODS
    settings: str = ""  # the strong model's regularizer, as its metadata records it

    def sentence(self) -> str:
        def pct(value: float | None) -> str:
            return "—" if value is None else f"{100 * value:.2f} %"

        def cos(value: float | None) -> str:
            return "—" if value is None else f"{value:.3f}"

        total = sum(self.counts.values())
        return (f"**{self.strong}** against **{self.baseline}**: validation accuracy {pct(self.accuracy[0])} vs "
                f"{pct(self.accuracy[1])}; eval-mode cos(standard, guided) {cos(self.cosine[0])} vs "
                f"{cos(self.cosine[1])}; over {total} (method, metric) pairs: better on {self.counts['better']}, "
                f"worse on {self.counts['worse']}, no clear difference on {self.counts['no clear difference']}.")


def strong_evaluation_folder() -> EvaluationDir | None:
    """The shipped evaluation of the zoo, when it is there and finished."""
    folder = EvaluationDir(default_directories()["shipped_evaluation"] / STRONG_EVALUATION)
    return folder if folder.finished() else None


def strong_pairs(evaluation: Any, entries: Sequence[Any] = (), methods: Sequence[str] = HOME_METHODS) -> list[StrongPair]:
    """Every ``X-guided-strong`` model of ``evaluation`` whose ``X-baseline`` it also measured, in its order."""
    recorded = recorded_models(evaluation)
    pairs = []
    for name in recorded:
        if not name.endswith("-guided-strong"):
            continue
        baseline = name[: -len("-guided-strong")] + "-baseline"
        if baseline not in recorded:
            continue
        accuracy, cosine = [tuple(training_metric(entry_for(model, recorded[model], entries), recorded[model], metric)
                                  for model in (name, baseline)) for metric in ("val_accuracy", "val_alignment")]
        verdicts = pair_verdicts(evaluation, name, baseline)  # every (method, metric), in the evaluation's order
        regularizer = recorded[name].get("regularizer") or {}
        settings = ", ".join(f"{key} {value:g}" if isinstance(value, float) else f"{key} {value}"
                             for key, value in (regularizer.get("params") or {}).items()
                             if key in ("lam", "batchnorm", "gradient_of", "error"))
        shown = verdicts[verdicts["method"].isin(list(methods))].reset_index(drop=True)
        pairs.append(StrongPair(name, baseline, accuracy, cosine, pair_counts(verdicts),  # type: ignore[arg-type]
                                shown,
                                f"{regularizer.get('name', '?')} ({settings})" if settings else ""))
    return pairs
