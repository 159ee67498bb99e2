"""Declared parameters: one declaration per parameter (name, type, default, range, help) that the CLI and the app read.

Regularizers, attribution methods and metrics declare their parameters with ``Param``; ``resolve_params`` checks a
user's values against the declaration (unknown names, types, ranges, choices) and fills in defaults, so every front end
validates the same way and builds its widgets from the same source.

A parameter that matters only under some value of another one says so with ``when=When(name, values)``: SmoothGrad's
``steps`` applies only when its ``base`` is ``integrated_gradients``. Conditions are data (written into ``--help``,
``info`` and ``to_dict()``) and chain: a parameter applies when its condition's parameter applies and has one of the
values. The parameter a condition names must be declared before it (``check_declarations``), so one pass in
declaration order decides every parameter (``applicable``), as the app's widgets are drawn.

A value given for a parameter that does not apply has no effect. ``resolve_params`` still checks it, then resolves the
parameter to its default (methods receive every parameter, and the resolved values — protocols, checkpoints,
manifests — never carry a value that had no effect); for what a user typed (``explicit``), a value other than the
default is a ConfigError saying why it has no effect. The command line passes what the user typed as ``explicit``; the
app shows a parameter's widget only while it applies and sends only the values of the widgets it shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Collection, Mapping, Sequence

from .errors import ConfigError

__all__ = ["Param", "When", "applicable", "check_declarations", "resolve_params"]


@dataclass(frozen=True, init=False)
class When:
    """The condition under which a parameter applies: the parameter ``param`` (declared before it) applies and has one
    of ``values``. ``When("base", "integrated_gradients")``, ``When("substrate", ("blur", "constant"))``."""

    param: str
    values: tuple[Any, ...]

    def __init__(self, param: str, values: Any) -> None:
        object.__setattr__(self, "param", param)
        object.__setattr__(self, "values", tuple(values) if isinstance(values, (tuple, list)) else (values,))

    def holds(self, applying: Mapping[str, Any]) -> bool:
        """Whether the condition holds given the values of the parameters that apply (a parameter missing from
        ``applying`` does not apply, so nothing conditioned on it does either)."""
        return self.param in applying and applying[self.param] in self.values

    def describe(self) -> str:
        """``"only when base is integrated_gradients"``; several values are joined by "or"."""
        return f"only when {self.param} is {' or '.join(_text(value) for value in self.values)}"

    def to_dict(self) -> dict[str, Any]:
        return {"param": self.param, "values": list(self.values)}


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Param:
    """A declared parameter. ``low``/``high`` bound numbers (inclusive); ``choices`` lists the allowed strings;
    ``log`` says a slider should be logarithmic; ``when`` says under which value of an earlier parameter this one
    applies (None: always)."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    log: bool = False
    when: When | None = None

    def applies(self, applying: Mapping[str, Any]) -> bool:
        """Whether this parameter applies, given the values of the parameters declared before it that apply."""
        return self.when is None or self.when.holds(applying)

    def coerce(self, value: Any, owner: str = "") -> Any:
        """``value`` converted to this parameter's type and checked against its range or choices."""
        where = f"{owner} parameter {self.name!r}" if owner else f"parameter {self.name!r}"
        try:
            if self.type is bool:
                converted = _to_bool(value)
            elif self.type is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                converted = int(value)
            else:
                converted = self.type(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be {self.type.__name__}, got {value!r}") from None
        if isinstance(converted, float) and not math.isfinite(converted):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        if self.low is not None and converted < self.low:
            raise ConfigError(f"{where} must be >= {self.low}, got {converted}")
        if self.high is not None and converted > self.high:
            raise ConfigError(f"{where} must be <= {self.high}, got {converted}")
        if self.choices is not None and converted not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(self.choices)}, got {converted!r}")
        return converted

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.__name__,
            "default": self.default,
            "help": self.help,
            "low": self.low,
            "high": self.high,
            "choices": list(self.choices) if self.choices else None,
            "log": self.log,
            "when": self.when.to_dict() if self.when else None,
        }


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
        return value.lower() in {"true", "1", "yes", "on"}
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(value)


def check_declarations(declared: Sequence[Param], owner: str = "") -> None:
    """A ValueError (a mistake in the code, not in the user's input) unless the names are unique and every
    condition names a parameter declared before its own, with values that parameter accepts."""
    seen: dict[str, Param] = {}
    where = f"{owner}: " if owner else ""
    for param in declared:
        if param.name in seen:
            raise ValueError(f"{where}parameter {param.name!r} is declared twice")
        if param.when is not None:
            controller = seen.get(param.when.param)
            if controller is None:
                raise ValueError(f"{where}the condition of {param.name!r} names {param.when.param!r}, which is not "
                                 f"declared before it")
            if not param.when.values:
                raise ValueError(f"{where}the condition of {param.name!r} lists no values")
            for value in param.when.values:
                try:
                    valid = type(value) is controller.type and controller.coerce(value) == value
                except ConfigError:
                    valid = False
                if not valid:
                    raise ValueError(f"{where}the condition of {param.name!r} names {param.when.param}={value!r}, "
                                     f"a value {param.when.param!r} does not accept")
        seen[param.name] = param


def applicable(declared: Sequence[Param], values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` whose parameters apply, in declaration order: a parameter applies when it has no
    condition, or when its condition's parameter applies and has one of the condition's values."""
    applying: dict[str, Any] = {}
    for param in declared:
        if param.name in values and param.applies(applying):
            applying[param.name] = values[param.name]
    return applying


def _no_effect(param: Param, values: Mapping[str, Any], applying: Mapping[str, Any], owner: str) -> ConfigError:
    assert param.when is not None
    controller = param.when.param
    now = f"{controller} is {_text(values[controller])}" if controller in applying else f"{controller} does not apply"
    where = f"{owner} parameter {param.name!r}" if owner else f"parameter {param.name!r}"
    return ConfigError(f"{where} has no effect: it applies {param.when.describe()} ({now})")


def resolve_params(
    declared: Sequence[Param], given: Mapping[str, Any], owner: str = "", explicit: Collection[str] = ()
) -> dict[str, Any]:
    """Defaults overridden by ``given``, every value checked; an unknown name is a ConfigError listing the valid ones.

    A parameter that does not apply (its ``when`` does not hold) resolves to its default. Among the names in
    ``explicit`` (what the user typed, when ``given`` also holds values from a preset or a saved file), a value other
    than the default for a parameter that does not apply is a ConfigError saying why it has no effect."""
    check_declarations(declared, owner)
    by_name = {param.name: param for param in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        valid = ", ".join(by_name) or "none"
        raise ConfigError(f"unknown {owner + ' ' if owner else ''}parameter {unknown[0]!r}; valid parameters: {valid}")
    values = {name: param.coerce(given.get(name, param.default), owner) for name, param in by_name.items()}
    applying = applicable(declared, values)
    for name, param in by_name.items():
        if name in applying:
            continue
        default = param.coerce(param.default, owner)
        if name in explicit and name in given and values[name] != default:
            raise _no_effect(param, values, applying, owner)
        values[name] = default
    return values
