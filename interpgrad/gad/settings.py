"""The declared parameters of a GAD run (``interpgrad.params.Param``): the CLI's flags, the app's widgets and the run
folder's config all come from ``TRAINING_PARAMS``. Every choice of our reading of the paper is one of them."""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence

from ..errors import ConfigError
from ..metrics.request import resolve_device
from ..params import Param, When, resolve_params
from .distancing import DISTANCING_MODES, GAP_REDUCTIONS
from .support import TRAINED_PARTS

__all__ = ["SCHEDULES", "TRAINING_PARAMS", "format_alphas", "gad_settings", "parse_alphas"]

SCHEDULES = ("gap_std", "given")

TRAINING_PARAMS: tuple[Param, ...] = (
    Param("schedule", str, "gap_std",
          "gap_std: alpha_s = s x alpha_scale x the std of the logit gap over the training images; given: the alphas",
          choices=SCHEDULES),
    Param("supports", int, 3, "number of support models S (alpha_1 < ... < alpha_S)", low=1, high=16,
          when=When("schedule", "gap_std")),
    Param("alpha_scale", float, 1.0, "alpha_s = s x alpha_scale x std(logit gap)", low=0.0, high=100.0,
          when=When("schedule", "gap_std")),
    Param("gap", str, "max",
          "the logit gap A(z_a) - A(z_b), A over a side's classes: max or mean (a pair: z_k - z_l either way)",
          choices=GAP_REDUCTIONS, when=When("schedule", "gap_std")),
    Param("alphas", str, "", "comma-separated distances, one per support model (e.g. 2,4,6)",
          when=When("schedule", "given")),
    Param("mode", str, "other",
          "other: lower the other side's logits by alpha; own: raise the own side's; both: alpha/2 each",
          choices=DISTANCING_MODES),
    Param("train", str, "last_stage",
          "what a support model trains: head (last linear layer), last_stage (the layers at the last feature-map "
          "resolution + head), all", choices=TRAINED_PARTS),
    Param("epochs", int, 10, "passes over the training images per support model", low=1, high=1000),
    Param("lr", float, 1e-3, "Adam's learning rate", low=1e-8, high=1.0, log=True),
    Param("batch_size", int, 64, "images per step", low=1, high=4096),
    Param("n_train", int, 1000, "training images of the strategy's classes (the first of the training split)",
          low=2, high=1_000_000),
    Param("n_val", int, 200, "held-out images of the strategy's classes (validation split) for the agreement",
          low=1, high=1_000_000),
    Param("seed", int, 0, "seed of the data order of every support model", low=0, high=2**31 - 1),
    Param("device", str, "auto", "auto (a GPU when present), cpu, cuda or cuda:N"),
    Param("data_root", str, "", "folder of CIFAR or of the image folder (empty: the one the checkpoint records)"),
)
# What a resumed run may change: where it computes, not what it computes.
CHANGEABLE_ON_RESUME = frozenset({"device"})


def parse_alphas(value: str | Sequence[float] | None) -> tuple[float, ...]:
    """``"1,2.5"`` or ``[1, 2.5]`` -> ``(1.0, 2.5)``; each a finite number >= 0 (ConfigError)."""
    parts = [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else list(value or [])
    try:
        alphas = tuple(float(part) for part in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"alphas must be numbers separated by commas, got {value!r}") from None
    if not alphas or any(not 0 <= alpha < float("inf") for alpha in alphas):
        raise ConfigError(f"alphas must be one or more finite numbers >= 0, got {value!r}")
    return alphas


def format_alphas(alphas: Sequence[float]) -> str:
    return ",".join(repr(float(alpha)) for alpha in alphas)


def gad_settings(given: Mapping[str, Any], explicit: Collection[str] = ()) -> dict[str, Any]:
    """Every training parameter, ``given`` over the defaults and checked (ConfigError). Alphas given (a string or a
    sequence) choose the ``given`` schedule unless a schedule is named; then ``supports`` is their number.
    ``explicit``: the names the user typed (a value for a parameter that has no effect is refused)."""
    given = dict(given)
    if given.get("alphas") not in (None, "", ()):
        given["alphas"] = format_alphas(parse_alphas(given["alphas"]))
        given.setdefault("schedule", "given")
    elif given.get("alphas") is None:
        given.pop("alphas", None)
    if given.get("data_root") is None:
        given.pop("data_root", None)
    values = resolve_params(TRAINING_PARAMS, given, owner="gad", explicit=explicit)
    if values["schedule"] == "given":
        if not values["alphas"]:
            raise ConfigError("the given alpha schedule needs alphas (e.g. alphas=2,4,6)")
        count = len(parse_alphas(values["alphas"]))
        if "supports" in explicit and "supports" in given and int(given["supports"]) != count:
            raise ConfigError(f"supports={given['supports']} but {count} alphas are given: one support model per alpha")
        values["supports"] = count
    resolve_device(values["device"])
    return values
