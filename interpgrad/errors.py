"""Exceptions raised by interpgrad.

Every error a user can cause (a bad flag, a missing file, a checkpoint for another architecture) is an
``InterpgradError``: the CLI prints its message as one line and the app shows it as a readable message.

An error may carry a ``Remedy``: what the user can do about it, named by an action (``"resume"``, ``"set_data_root"``...)
so that each interface says it in its own words. The message (``str(error)``) ends with the command line's words
("continue with --resume"); ``error.problem`` is the message without them, for an app that names its own controls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["InterpgradError", "CheckpointError", "DataError", "ConfigError", "ModelError", "REMEDIES", "Remedy"]

# What the user can do, in the command line's words; ``{...}`` blanks are filled from the remedy's details.
REMEDIES: dict[str, str] = {
    "resume": "continue with --resume",
    "resume_or_rename": "pass --resume to continue it or choose another --out",
    "set_data_root": "pass --data-root",
    "download_or_set_data_root": "pass --download to fetch it or point --data-root at the folder that contains {folder}",
    "gentler_training": "start a new run with a lower --lr or --lam, or with --clip-grad-norm",
}


@dataclass(frozen=True)
class Remedy:
    """What a user can do about an error: ``action`` (a key of REMEDIES) and the ``details`` its wording needs."""

    action: str
    details: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.action not in REMEDIES:
            raise ValueError(f"unknown remedy {self.action!r}; known: {', '.join(REMEDIES)}")

    @property
    def command_line(self) -> str:
        """The remedy in the command line's words (flags)."""
        return REMEDIES[self.action].format(**self.details)

    def to_dict(self) -> dict[str, Any]:
        """As JSON (a job's status.json keeps it beside the reason)."""
        return {"action": self.action, "details": dict(self.details)}

    @classmethod
    def from_dict(cls, data: Any) -> "Remedy | None":
        """The remedy ``to_dict`` wrote, or None when ``data`` is not one (a status written by another version)."""
        if not isinstance(data, dict) or data.get("action") not in REMEDIES:
            return None
        details = data.get("details") if isinstance(data.get("details"), dict) else {}
        return cls(data["action"], {str(key): str(value) for key, value in details.items()})


class InterpgradError(Exception):
    """Base class of the errors caused by bad input; the message is meant for the user. ``remedy``: what the user
    can do about it (the message ends with it in the command line's words; ``problem`` is the message without it)."""

    def __init__(self, problem: str = "", remedy: Remedy | None = None) -> None:
        super().__init__(f"{problem}; {remedy.command_line}" if remedy is not None else problem)
        self.problem = problem
        self.remedy = remedy


class ConfigError(InterpgradError, ValueError):
    """An invalid option or combination of options."""


class ModelError(InterpgradError, ValueError):
    """An unknown architecture, missing pretrained weights, or an unknown layer name."""


class DataError(InterpgradError, ValueError):
    """A dataset that cannot be found, read or decoded."""


class CheckpointError(InterpgradError, ValueError):
    """A checkpoint that cannot be read, is not safetensors, or does not match its metadata."""
