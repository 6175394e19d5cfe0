"""``mabsa predict --engine ray``: the same predictions, distributed with Ray Data.

The driver streams the input file (any supported format, validated with file:line errors) in
windows of ``window`` posts; each window becomes a Ray dataset whose batches go through
``map_batches`` to a pool of actors that each load the checkpoint once; results come back in
input order and are streamed into the output file. So driver memory is bounded by one window,
and the same command runs on a laptop (a local Ray instance is started) or on a cluster
(``RAY_ADDRESS``; every node needs mabsa installed and the checkpoint at
the same path).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mabsa.data import iter_posts, write_posts
from mabsa.data.records import Post
from mabsa.engine.checkpoint import read_checkpoint_config
from mabsa.engine.inference import iter_chunks
from mabsa.engine.predictor import Predictor, TruncationWarning
from mabsa.errors import MabsaError

#: Posts handed to Ray at a time (the actors are re-created per window, so keep it large).
DEFAULT_WINDOW = 50_000


class PostPredictor:
    """A Ray Data actor: one model per actor, batches of serialised posts in and out."""

    def __init__(self, checkpoint: str, batch_size: int, threads: int):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub from a worker
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.predictor = Predictor.from_checkpoint(checkpoint, batch_size=batch_size)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import warnings

        posts = [Post.from_dict(json.loads(s)) for s in batch["post"]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            predicted = self.predictor.predict_posts(posts)
        return {"post": [json.dumps(p.to_dict(), ensure_ascii=False) for p in predicted]}


def _start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Connect to (or start) Ray; True when this call started it (so it should stop it)."""
    try:
        import ray
    except ImportError:
        raise MabsaError("--engine ray needs Ray: pip install 'mabsa[ray]'") from None
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)
    return True


def predict_file_ray(
    checkpoint: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    *,
    batch_size: int = 64,
    actors: int | None = None,
    threads_per_actor: int = 1,
    address: str | None = None,
    window: int = DEFAULT_WINDOW,
    progress: bool = True,
) -> int:
    """Predict every post of ``input_path`` into ``output_path``; returns the post count.

    ``actors`` defaults to the cluster's CPUs divided by ``threads_per_actor``.
    """
    checkpoint = str(Path(checkpoint).resolve())
    read_checkpoint_config(checkpoint)  # fail here, not inside every actor
    started = _start_ray(address, None)
    import ray
    from ray.data import ActorPoolStrategy, DataContext

    try:
        context = DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = bool(progress)
        if actors is None:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            actors = max(1, cpus // max(1, threads_per_actor))
        count = 0

        def predicted() -> Iterator[Post]:
            nonlocal count
            for chunk in iter_chunks(iter_posts(input_path), window):
                dataset: Any = ray.data.from_items(
                    [{"post": json.dumps(p.to_dict(), ensure_ascii=False)} for p in chunk]
                )
                dataset = dataset.map_batches(
                    PostPredictor,
                    batch_size=batch_size,
                    batch_format="numpy",
                    fn_constructor_kwargs={
                        "checkpoint": checkpoint,
                        "batch_size": batch_size,
                        "threads": threads_per_actor,
                    },
                    compute=ActorPoolStrategy(size=min(actors, -(-len(chunk) // batch_size))),
                    num_cpus=threads_per_actor,
                )
                for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
                    for s in batch["post"]:
                        count += 1
                        yield Post.from_dict(json.loads(s))

        write_posts(predicted(), output_path)
        return count
    finally:
        if started:
            ray.shutdown()
