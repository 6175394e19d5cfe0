"""Reusable neural building blocks (CRF, fusion blocks, losses) shared by the models."""

from mabsa.modules.crf import CRF, bio_transition_constraints

__all__ = ["CRF", "bio_transition_constraints"]
