"""Errors in what a user hands the toolkit: posts, images, and texts the leakage rule forbids."""

from __future__ import annotations

from pathlib import Path

from mabsa.errors import MabsaError


class InputError(MabsaError):
    """An input post cannot be processed (empty text, missing aspect, ...)."""


class LeakageError(MabsaError):
    """A text built with the gold aspects was asked for where no aspect is given.

    The shipped per-aspect texts (face descriptions, rationales) name the gold aspects
    (leakage rule, ``DEVELOPERS.md``): they may only be read for an aspect the task gives,
    never by a term extractor.
    """


class ImageLoadError(MabsaError):
    """A file is not a usable image (missing, empty, corrupt, truncated, too large)."""

    def __init__(self, source: str | Path, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: cannot load image: {reason}")
