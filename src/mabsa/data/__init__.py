"""Records, format readers/writers and the dataset registry."""

from mabsa.data.formats import (
    FORMATS,
    guess_format,
    iter_posts,
    read_posts,
    tokenize,
    write_posts,
)
from mabsa.data.records import TSV_LABELS, Aspect, Face, Polarity, Post, Rationale
from mabsa.data.registry import SPLITS, data_root, dataset_dir, load_dataset, stats

__all__ = [
    "Aspect",
    "FORMATS",
    "Face",
    "Polarity",
    "Post",
    "Rationale",
    "SPLITS",
    "TSV_LABELS",
    "data_root",
    "dataset_dir",
    "guess_format",
    "iter_posts",
    "load_dataset",
    "read_posts",
    "stats",
    "tokenize",
    "write_posts",
]
