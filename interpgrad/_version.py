"""The library version (recorded in every checkpoint and run folder)."""

__version__ = "0.1.0"
