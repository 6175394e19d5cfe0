"""Errors a user can act on. The CLI prints these without a traceback."""

from __future__ import annotations

from pathlib import Path


class MabsaError(Exception):
    """Base class for every error caused by input, configuration or environment."""


class DataFormatError(MabsaError):
    """A data file is malformed. The message names the file, the line and what is wrong."""

    def __init__(self, path: str | Path | None, line: int | None, message: str):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class DatasetNotFoundError(MabsaError):
    """A dataset name or path could not be resolved."""


class ConfigError(MabsaError):
    """A run config, preset or ``--set`` names an unknown option or gives a value of the wrong type."""
