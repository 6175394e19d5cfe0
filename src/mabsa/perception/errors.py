"""Errors of the perception layer; all are :class:`~mabsa.errors.MabsaError` s."""

from __future__ import annotations

from mabsa.errors import MabsaError


class BackendSpecError(MabsaError):
    """A backend spec string names nothing usable."""


class EndpointError(MabsaError):
    """An OpenAI-compatible endpoint is down, too slow, or answered something unusable."""
