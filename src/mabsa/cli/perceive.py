"""``mabsa perceive``: run perception on image files/folders (printed for humans) and/or
precompute the cache for every image of a dataset (resumable: cached images are skipped)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mabsa.errors import MabsaError
from mabsa.perception.records import Perception
from mabsa.processing.images import IMAGE_SUFFIXES, iter_image_files


def _format(p: Perception) -> str:
    lines = [f"{p.image}  {p.size[0]}x{p.size[1]}" if p.size else p.image]
    if p.faces is not None:
        lines.append(f"  faces ({len(p.faces)}): {p.face_text}")
        for f in p.faces:
            attrs = [
                a
                for a in (
                    f.gender,
                    f"{f.age:.0f}" if f.age is not None else None,
                    f.emotion,
                    f"{f.confidence:.2f}" if f.confidence is not None else None,
                )
                if a
            ]
            lines.append(f"    box={list(f.box) if f.box else None}  {' '.join(attrs)}")
    if p.caption:
        lines.append(f"  caption: {p.caption.text}" + ("  [label-derived]" if p.caption.label_derived else ""))
    if p.labels:
        lines.append("  labels: " + ", ".join(f"{label} {s:.2f}" for label, s in p.labels))
    if p.regions is not None:
        lines.append(f"  regions ({len(p.regions)}):")
        for i, r in enumerate(p.regions, 1):
            tag = "bg" if r.is_background else f"#{i}"
            sharp = f"{r.sharpness:.0f}" if r.sharpness is not None else "-"
            lines.append(
                f"    {tag:>3} box={list(r.box)} score={r.score:.2f} sharpness={sharp}"
                + (f"  {r.interpretation}" if r.interpretation else "")
            )
    return "\n".join(lines)


def _dataset_images(dataset: str) -> list[str]:
    from mabsa.data.registry import SPLITS, load_dataset

    ids: dict[str, None] = {}
    for split in SPLITS:
        for post in load_dataset(dataset, split, image_texts=False):
            if post.image:
                ids.setdefault(post.image)
    return list(ids)


@click.command("perceive")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--dataset", help="Dataset name or directory: precompute every image its posts use.")
@click.option(
    "--images",
    "images_dir",
    type=click.Path(file_okay=False),
    help="Folder with the dataset's images, files named by image id.",
)
@click.option(
    "--out", "cache_dir", type=click.Path(file_okay=False), help="Cache directory (default: $MABSA_CACHE/perception)."
)
@click.option("--face-detector", default="dlib", show_default=True, help="dlib | opencv | none")
@click.option("--captioner", default="labels", show_default=True, help="labels | hf:<id|dir> | openai:<url>#<model>")
@click.option("--segmenter", default="classical", show_default=True, help="classical | sam:<id|dir> | none")
@click.option(
    "--interpreter",
    default="labels",
    show_default=True,
    help="labels | smollm2 | hf:<id|dir> | openai:<url>#<model> | none",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per image instead of text.")
@click.option("--threads", default=1, show_default=True, help="torch threads (1 is fastest on 2 shared cores).")
def perceive(paths, dataset, images_dir, cache_dir, face_detector, captioner, segmenter, interpreter, as_json, threads):
    """Faces, caption, labels and regions for each image in PATHS (files or folders), offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
    import torch

    from mabsa.perception.cache import DiskCache
    from mabsa.perception.llm import mabsa_cache_dir
    from mabsa.perception.perceiver import Perceiver, PerceptionConfig

    torch.set_num_threads(threads)
    if not paths and not dataset:
        raise click.UsageError("give image files/folders, or --dataset with --images")
    if dataset and not images_dir:
        raise click.UsageError("--dataset needs --images DIR (the folder holding its images)")
    files = iter_image_files(list(paths))
    if paths and not files:  # before loading any model
        raise MabsaError(f"no images found in {', '.join(map(str, paths))} (looked for {', '.join(IMAGE_SUFFIXES)})")
    none = lambda s: None if s in (None, "", "none") else s
    config = PerceptionConfig(
        face_detector=none(face_detector),
        captioner=none(captioner),
        segmenter=none(segmenter),
        interpreter=none(interpreter),
    )
    cache = DiskCache(cache_dir or Path(mabsa_cache_dir()) / "perception")
    cache.clean()
    perceiver = Perceiver(config, cache)
    failures = 0

    if dataset:
        from tqdm import tqdm

        ids = _dataset_images(dataset)
        missing, done = [], 0
        for image_id in tqdm(ids, desc=f"perceive {dataset}", unit="img", file=sys.stderr):
            path = Path(images_dir) / image_id
            if not path.is_file():
                missing.append(image_id)
                continue
            try:
                perceiver.perceive(path, name=image_id)
                done += 1
            except MabsaError as e:
                failures += 1
                tqdm.write(f"error: {e}", file=sys.stderr)
        click.echo(
            f"{dataset}: {done} of {len(ids)} images perceived ({cache.hits} cache hits), "
            f"{len(missing)} missing from {images_dir}, {failures} failed; cache: {cache.root}"
        )
        if missing:
            click.echo("missing (first 5): " + ", ".join(missing[:5]), err=True)

    for path in files:
        try:
            p = perceiver.perceive(path)
        except MabsaError as e:
            failures += 1
            click.echo(f"error: {e}", err=True)
            continue
        click.echo(json.dumps(p.to_dict(), ensure_ascii=False) if as_json else _format(p))
    if failures:
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    perceive()
