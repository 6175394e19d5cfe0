"""Records, format readers/writers and the dataset registry."""

from mabsa.data.records import TSV_LABELS, Aspect, Face, Polarity, Post, Rationale

__all__ = ["Aspect", "Face", "Polarity", "Post", "Rationale", "TSV_LABELS"]
