"""Declared parameters: one declaration per parameter (name, type, default, range, help) that the CLI and the app read.

Regularizers and attribution methods declare their parameters with ``Param``; ``resolve_params`` checks a user's values
against the declaration (unknown names, types, ranges, choices) and fills in defaults, so every front end validates
the same way and builds its widgets from the same source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ConfigError

__all__ = ["Param", "resolve_params"]


@dataclass(frozen=True)
class Param:
    """A declared parameter. ``low``/``high`` bound numbers (inclusive); ``choices`` lists the allowed strings;
    ``log`` says a slider should be logarithmic."""

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    log: bool = False

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
        }


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
        return value.lower() in {"true", "1", "yes", "on"}
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(value)


def resolve_params(declared: Sequence[Param], given: Mapping[str, Any], owner: str = "") -> dict[str, Any]:
    """Defaults overridden by ``given``, every value checked; an unknown name is a ConfigError listing the valid ones."""
    by_name = {param.name: param for param in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        valid = ", ".join(by_name) or "none"
        raise ConfigError(f"unknown {owner + ' ' if owner else ''}parameter {unknown[0]!r}; valid parameters: {valid}")
    return {name: param.coerce(given.get(name, param.default), owner) for name, param in by_name.items()}
