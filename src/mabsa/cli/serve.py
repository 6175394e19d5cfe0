"""``mabsa serve``: the HTTP service and web page (registered on the ``mabsa`` group)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from mabsa.cli.errors import run_as_program
from mabsa.errors import MabsaError


def parse_checkpoints(specs: tuple[str, ...]) -> dict[str, str]:
    """``[NAME=]DIR`` -> {name: dir}; the name defaults to the directory's name. Each directory
    must be a finished checkpoint (checked now, so a typo fails before the server starts)."""
    from mabsa.engine.checkpoint import read_checkpoint_config

    out: dict[str, str] = {}
    for spec in specs:
        name, sep, directory = spec.partition("=")
        if not sep or Path(spec).exists():
            name, directory = Path(spec).name, spec
        name = name.strip()
        if not name:
            raise MabsaError(f"--checkpoint {spec!r}: empty model name")
        if name in out:
            raise MabsaError(f"--checkpoint {spec!r}: the name {name!r} is given twice; use NAME=DIR")
        read_checkpoint_config(directory)
        out[name] = directory
    return out


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    required=True,
    metavar="[NAME=]DIR",
    help='Checkpoint from mabsa train (repeatable; requests pick one with "model").',
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Use 0.0.0.0 to serve other machines.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--evidence/--no-evidence",
    default=True,
    show_default=True,
    help="Image evidence: faces, regions, caption and each aspect's aligned region.",
)
@click.option(
    "--faces",
    type=click.Choice(["dlib", "opencv", "none"]),
    default="dlib",
    show_default=True,
    help="Face detector for the evidence.",
)
@click.option(
    "--rationales/--no-rationales",
    default=False,
    show_default=True,
    help="An LLM rationale per aspect (embedded SmolLM2: seconds per aspect on a CPU).",
)
@click.option(
    "--chat",
    default="smollm2",
    show_default=True,
    help="Chat backend for rationales: smollm2, hf:<id|dir> or openai:<url>#<model>.",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Cache perception results on disk here.",
)
@click.option(
    "--perception-workers",
    default=2,
    show_default=True,
    type=click.IntRange(min=0),
    help="Processes that perceive uploaded images (0: a thread of the service process).",
)
@click.option("--max-body-mb", default=8.0, show_default=True, help="Largest request body.")
@click.option("--max-image-pixels", default=24_000_000, show_default=True, help="Largest image (w*h).")
@click.option("--max-text-chars", default=2000, show_default=True)
@click.option("--max-batch-items", default=32, show_default=True, help="Posts per /v1/predict/batch.")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds per request.")
@click.option("--max-batch", default=16, show_default=True, help="Posts per model call (micro-batching).")
@click.option(
    "--max-wait-ms", default=5.0, show_default=True, help="How long a post waits for others to share its model call."
)
@click.option("--threads", default=1, show_default=True, help="torch threads (1 is fastest on small CPUs).")
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve_command(
    checkpoints,
    host,
    port,
    evidence,
    faces,
    rationales,
    chat,
    cache_dir,
    perception_workers,
    max_body_mb,
    max_image_pixels,
    max_text_chars,
    max_batch_items,
    timeout,
    max_batch,
    max_wait_ms,
    threads,
    access_log,
):
    """Serve CHECKPOINT(s) over HTTP: the web page at /, the API at /v1, docs at /docs."""
    import torch
    import uvicorn

    from mabsa.perception import PerceptionConfig
    from mabsa.serve import EvidenceConfig, Limits, ServeConfig, create_app

    served = parse_checkpoints(checkpoints)
    torch.set_num_threads(max(1, int(threads)))
    limits = Limits(
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_image_pixels=int(max_image_pixels),
        max_text_chars=int(max_text_chars),
        max_batch_items=int(max_batch_items),
        request_timeout_s=float(timeout),
    )
    evidence_config = EvidenceConfig(
        enabled=evidence,
        rationales=rationales,
        cache_dir=cache_dir,
        workers=perception_workers,
        perception=PerceptionConfig(face_detector=None if faces == "none" else faces, chat=chat),
    )
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    url = f"http://{shown}:{port}/"
    app = create_app(
        ServeConfig(
            checkpoints=served,
            limits=limits,
            evidence=evidence_config,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            url=url,
        )
    )
    show_service_log()
    click.echo(
        f"mabsa serve: loading {', '.join(f'{n}={d}' for n, d in served.items())}; "
        f"the page will be at {url}, the API docs at {url}docs",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info", timeout_keep_alive=5)


class _StderrLines(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"mabsa serve: {self.format(record)}", err=True)


def show_service_log() -> None:
    """The service's own lines (``ready at URL``, load failures) on stderr as ``mabsa serve: ...``:
    uvicorn configures only its own loggers."""
    log = logging.getLogger("mabsa.serve")
    if not any(isinstance(h, _StderrLines) for h in log.handlers):
        log.addHandler(_StderrLines())
    log.setLevel(logging.INFO)


def main() -> None:
    """``python -m mabsa.serve``: the command on its own, its errors in the CLI's one style."""
    run_as_program(lambda: serve_command.main(standalone_mode=False))
