"""Errors of the perception layer; all are :class:`~mabsa.errors.MabsaError` s."""

from __future__ import annotations

from pathlib import Path

from mabsa.errors import MabsaError


class ImageLoadError(MabsaError):
    """A file is not a usable image (missing, empty, corrupt, truncated, too large)."""

    def __init__(self, source: str | Path, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: cannot load image: {reason}")


class BackendSpecError(MabsaError):
    """A backend spec string names nothing usable."""


class EndpointError(MabsaError):
    """An OpenAI-compatible endpoint is down, too slow, or answered something unusable."""


class LeakageError(MabsaError):
    """Per-aspect evidence was requested without (or for a foreign) aspect.

    The shipped per-aspect texts were built with the gold aspects (leakage rule), so they may
    only be read for an aspect the task already gives.
    """
