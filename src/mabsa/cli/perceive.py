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


# -- a process pool for many images (--workers): each worker builds its own Perceiver once ------
_WORKER: dict[str, object] = {}


def _worker_init(config: object, cache_root: str, threads: int) -> None:
    from mabsa.perception.cache import DiskCache
    from mabsa.perception.perceiver import Perceiver, use_threads

    use_threads(threads)
    _WORKER["perceiver"] = Perceiver(config, DiskCache(cache_root))  # type: ignore[arg-type]


def _worker_perceive(job: tuple[str, str | None]) -> tuple[Perception | None, str | None, int]:
    """(perception or None, error message or None, cache hits of this image)."""
    perceiver = _WORKER["perceiver"]
    cache = perceiver.cache  # type: ignore[attr-defined]
    before = cache.hits
    try:
        return perceiver.perceive(job[0], name=job[1]), None, cache.hits - before  # type: ignore[attr-defined]
    except MabsaError as e:
        return None, str(e), cache.hits - before


def _perceive_all(jobs, config, cache, threads: int, workers: int):
    """Perceive each (path, name) job in order: in this process, or in ``workers`` processes
    (spawned: a forked child of a process that loaded torch may hang)."""
    if workers <= 1:
        _worker_init(config, str(cache.root), threads)
        yield from map(_worker_perceive, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, context, _worker_init, (config, str(cache.root), threads)) as pool:
        yield from pool.map(_worker_perceive, jobs, chunksize=4)


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
@click.option("--threads", default=1, show_default=True, help="torch threads per worker (1 is fastest on 2 cores).")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Processes perceiving images in parallel (each loads the models once; about one per core).",
)
def perceive(
    paths, dataset, images_dir, cache_dir, face_detector, captioner, segmenter, interpreter, as_json, threads, workers
):
    """Faces, caption, labels and regions for each image in PATHS (files or folders), offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a model hub
    from mabsa.perception.cache import DiskCache
    from mabsa.perception.llm import mabsa_cache_dir
    from mabsa.perception.perceiver import PerceptionConfig, use_threads

    use_threads(threads)
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
    failures = 0

    if dataset:
        from tqdm import tqdm

        ids = _dataset_images(dataset)
        jobs, missing = [], []
        for image_id in ids:
            path = Path(images_dir) / image_id
            if path.is_file():
                jobs.append((str(path), image_id))
            else:
                missing.append(image_id)
        done = hits = 0
        results = _perceive_all(jobs, config, cache, threads, workers)
        for _, error, n_hits in tqdm(results, total=len(jobs), desc=f"perceive {dataset}", unit="img", file=sys.stderr):
            hits += n_hits
            if error is None:
                done += 1
            else:
                failures += 1
                tqdm.write(f"error: {error}", file=sys.stderr)
        click.echo(
            f"{dataset}: {done} of {len(ids)} images perceived ({hits} cache hits), "
            f"{len(missing)} missing from {images_dir}, {failures} failed; cache: {cache.root}"
        )
        if missing:
            click.echo("missing (first 5): " + ", ".join(missing[:5]), err=True)

    for p, error, _ in _perceive_all([(str(f), None) for f in files], config, cache, threads, workers):
        if error is not None:
            failures += 1
            click.echo(f"error: {error}", err=True)
            continue
        click.echo(json.dumps(p.to_dict(), ensure_ascii=False) if as_json else _format(p))
    if failures:
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    perceive()
