"""The registry method ``"gad"``: ``interpgrad.explain(model, x, "gad", support=RUN, base=..., q=..., fusion=...)``.

The model must be the run's original (its weights are checked against the run's record: another model is a
ConfigError). ``raw`` is the base method's raw attribution of the original times the fused mask, so ``.map`` is the
original's display map restricted to the fused mask and ``.signed_map`` its signed version; the fused mask itself is
chosen on the ``sum_c |.|`` maps (``interpgrad.gad.combination``). The base method runs with its default parameters
here; ``interpgrad.gad.gad_explanation`` takes them (``base_params``) and returns every map and mask.

The method needs a run, so it is left out of ``--methods all`` and of the generic loops over every method
(``Method.requires``); name it explicitly (``--methods gad --method-param gad.support=RUN``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from typing import Any

from torch import nn

from ..errors import ConfigError
from ..explain.core import Attribution, Request, register
from ..params import Param
from .combination import COMBINATION_PARAMS, gad_explanation
from .run import GadDir, load_supports, parameters_sha256

__all__ = ["gad"]


def _stamp(folder: GadDir) -> tuple[int, ...]:
    """What changes when a run gains a support model or is made again (so that a cached load is not stale)."""
    paths = [folder.config_path, *sorted(folder.path.glob("support-*.safetensors"))]
    return tuple(path.stat().st_mtime_ns for path in paths if path.is_file())


@lru_cache(maxsize=4)
def _load(path: str, stamp: tuple[int, ...]) -> tuple[dict[str, Any], list[nn.Module]]:
    """The run's config and support models, loaded once per state of the folder."""
    config, supports, _, _ = load_supports(path)
    return config, supports


@register(
    "gad",
    "gradient",
    "GAD, our reading of the paper: the base method's map of the original kept where it agrees with its support "
    "models' maps (top q %, fused)",
    params=(
        Param("support", str, "", "the GAD run folder (python -m interpgrad gad train) made from this very model"),
        *COMBINATION_PARAMS,
    ),
    source="Mazini Rodrigues, Boutry & Najman 2024, arXiv 2401.14434 (a reconstruction: PAPERS.md)",
    requires=("support",),
)
def gad(request: Request, support: str, base: str, q: float, fusion: str) -> Attribution:
    """``raw = A_0 * M``: the original's raw attribution where the fused mask ``M`` of the top-q % masks of
    ``sum_c |A_s|``, s = 0..S, holds."""
    if not support:
        raise ConfigError("gad needs support=RUN: a GAD run folder made from this model "
                          "(python -m interpgrad gad train)")
    folder = GadDir(Path(os.fspath(support)))
    if not folder.config_path.is_file():
        raise ConfigError(f"there is no GAD run in {support} (no config.json)")
    config, supports = _load(str(folder.path.resolve()), _stamp(folder))
    if parameters_sha256(request.model) != config["original"]["parameters_sha256"]:
        raise ConfigError(f"the model is not the original of the GAD run {support} ({config['original']['path']}): "
                          "its weights differ")
    result = gad_explanation([request.model, *supports], request.x, request.target, base, None, q, fusion)
    raw = result.original.raw * result.fused.unsqueeze(1).to(result.original.raw.dtype)
    return Attribution(raw, result.original.logits, result.target, at_input=True)
