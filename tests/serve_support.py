"""Shared by the service tests: a tiny trained checkpoint and a real server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mabsa.engine.config import load_run_config
from mabsa.serve.probe import wait_ready

TINY_SETS = [
    "model_args.random_init=true",
    'model_args.encoder_overrides={"hidden_size": 32, "num_hidden_layers": 2, '
    '"num_attention_heads": 2, "intermediate_size": 37}',
    "train.max_train_posts=24",
    "train.max_eval_posts=8",
    "train.batch_size=8",
    "train.epochs=1",
    "train.patience=0",
]

_checkpoints: dict[tuple[str, str], Path] = {}


def tiny_checkpoint(tmp_path_factory, model: str = "text-crf", task: str = "jmasa") -> Path:
    """A checkpoint trained for one epoch on 24 posts (random-init tiny encoder), made once per
    test session through the engine's own trainer."""
    if (model, task) not in _checkpoints:
        from mabsa.engine import trainer

        out = tmp_path_factory.mktemp("serve-ckpt") / f"tiny-{model}-{task}"
        trainer.train(load_run_config(model, sets=TINY_SETS), "twitter2015", task, out, progress=False)
        _checkpoints[model, task] = out
    return _checkpoints[model, task]


@contextmanager
def running_server(app, ready_timeout: float = 120.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on 127.0.0.1 (a free port); stop it afterwards."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False, timeout_keep_alive=5)
    )
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, ready_timeout)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=20)
