"""Exceptions raised by interpgrad.

Every error a user can cause (a bad flag, a missing file, a checkpoint for another architecture) is an
``InterpgradError``: the CLI prints its message as one line and the app shows it as a readable message.
"""

from __future__ import annotations

__all__ = ["InterpgradError", "CheckpointError", "DataError", "ConfigError", "ModelError"]


class InterpgradError(Exception):
    """Base class of the errors caused by bad input; the message is meant for the user."""


class ConfigError(InterpgradError, ValueError):
    """An invalid option or combination of options."""


class ModelError(InterpgradError, ValueError):
    """An unknown architecture, missing pretrained weights, or an unknown layer name."""


class DataError(InterpgradError, ValueError):
    """A dataset that cannot be found, read or decoded."""


class CheckpointError(InterpgradError, ValueError):
    """A checkpoint that cannot be read, is not safetensors, or does not match its metadata."""
