"""``mabsa iea``: make FGCA data, score an aligner, print a post's Nearest-to-Match Instruction."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mabsa.errors import MabsaError


@click.group("iea", context_settings={"help_option_names": ["-h", "--help"]})
def iea() -> None:
    """IEA tools: FGCA data for the aligner, aligner accuracy, instruction explainer."""


@iea.command("make-fgca")
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset directory to write (jmasa_json/, captions.json, fgca/*.jsonl).",
)
@click.option(
    "--classes",
    default=None,
    type=click.Path(dir_okay=False),
    help="Class list, one per line [the 59 PASCAL-Context classes].",
)
@click.option("--sizes", default="2000,500,500", show_default=True, help="train,dev,test samples.")
@click.option("--seed", default=13, show_default=True)
@click.option(
    "--llm",
    default=None,
    metavar="SPEC",
    help="Write texts with a chat backend (smollm2, hf:DIR, openai:URL#MODEL) instead of "
    "templates; texts missing a phrase fall back to a template.",
)
def make_fgca_command(output, classes, sizes, seed, llm):
    """Build FGCA (region interpretation, text, phrase span) triples for the aligner."""
    from mabsa.models.iea.fgca import (
        PASCAL_CONTEXT_59,
        SURFACE,
        make_fgca,
        stats,
        write_fgca,
    )

    names = PASCAL_CONTEXT_59
    if classes:
        names = tuple(line.strip() for line in Path(classes).read_text().splitlines() if line.strip())
        unknown = [c for c in names if c not in SURFACE]
        for c in unknown:  # a new class is named by itself
            SURFACE[c] = [c]
    try:
        n = [int(x) for x in sizes.split(",")]
    except ValueError:
        raise MabsaError(f"--sizes {sizes!r}: expected three integers, e.g. 2000,500,500") from None
    if len(n) != 3 or min(n) < 1:
        raise MabsaError(f"--sizes {sizes!r}: expected three positive integers (train,dev,test)")
    backend = None
    if llm:
        from mabsa.perception.llm import build_chat_backend

        backend = build_chat_backend(llm)
    data = make_fgca(names, dict(zip(("train", "dev", "test"), n)), seed, backend)
    write_fgca(data, output)
    click.echo(json.dumps({"output": output, **{k: stats(v) for k, v in data.items()}}, indent=2))


@iea.command("train-aligner")
@click.option(
    "--fgca", "fgca_dir", required=True, type=click.Path(file_okay=False), help="Directory from `mabsa iea make-fgca`."
)
@click.option("--output", required=True, type=click.Path(file_okay=False))
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override the packaged iea-aligner preset, e.g. --set train.epochs=2.",
)
def train_aligner_command(fgca_dir, output, sets):
    """Train the aligner (text-crf, mate scheme) on FGCA with the engine; prints span accuracy."""
    from mabsa.engine.config import load_run_config
    from mabsa.engine.trainer import train
    from mabsa.models.iea.aligner import Aligner, evaluate_aligner
    from mabsa.models.iea.fgca import read_fgca

    config = load_run_config(config_file="iea-aligner", sets=sets)
    metrics = train(config, fgca_dir, "mate", output)
    al = Aligner.from_checkpoint(output)
    result = {s: evaluate_aligner(al, read_fgca(fgca_dir, s)) for s in ("dev", "test")}
    click.echo(json.dumps({"output": output, "best_epoch": metrics["best_epoch"], **result}, indent=2))


@iea.command("eval-aligner")
@click.option("--checkpoint", required=True, type=click.Path(file_okay=False))
@click.option("--fgca", "fgca_dir", required=True, type=click.Path(file_okay=False))
@click.option("--split", default="test", show_default=True)
def eval_aligner_command(checkpoint, fgca_dir, split):
    """Span accuracy of an aligner checkpoint on an FGCA split (none counts as a label)."""
    from mabsa.models.iea.aligner import Aligner, evaluate_aligner
    from mabsa.models.iea.fgca import read_fgca

    result = evaluate_aligner(Aligner.from_checkpoint(checkpoint), read_fgca(fgca_dir, split))
    click.echo(json.dumps({"checkpoint": checkpoint, "split": split, **result}, indent=2))


@iea.command("explain")
@click.option("--text", default=None, help="Raw post text.")
@click.option("--dataset", default=None, help="Dataset name/dir (with --post).")
@click.option("--split", default="test", show_default=True)
@click.option("--post", "post_id", default=None, help="Post id in --dataset/--split.")
@click.option(
    "--image",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Image file for --text (regions are then perceived).",
)
@click.option("--caption", default=None, help="Caption standing in for the image (--text).")
@click.option(
    "--aligner",
    default=None,
    type=click.Path(file_okay=False),
    help="Aligner checkpoint (or an IEA checkpoint, whose aligner is used).",
)
@click.option(
    "--mode",
    default="nmi",
    show_default=True,
    type=click.Choice(["nmi", "no_aligner", "no_interpretation", "text_only"]),
)
def explain_command(text, dataset, split, post_id, image, caption, aligner, mode):
    """Print the Nearest-to-Match Instruction IEA builds for one post."""
    from mabsa.data import load_dataset, tokenize
    from mabsa.data.records import Post
    from mabsa.models.iea.aligner import Aligner
    from mabsa.models.iea.instructions import build_instruction
    from mabsa.models.iea.interpretations import ImageViews

    if bool(text) == bool(dataset and post_id):
        raise MabsaError("give either --text, or --dataset with --post ID")
    if text:
        post = Post(id="0", tokens=tuple(tokenize(text)), text=text, image=image, caption=caption)
    else:
        found = [p for p in load_dataset(dataset, split) if p.id == post_id]
        if not found:
            raise MabsaError(f"no post {post_id!r} in {dataset}:{split}")
        post = found[0]
    visible = post.extraction_input()  # leakage rule: never the per-aspect texts
    view = ImageViews("auto")(visible)
    spans = [None] * len(view.regions)
    if aligner:
        path = Path(aligner)
        if (path / "aligner" / "config.json").is_file():
            path = path / "aligner"
        spans = Aligner.from_checkpoint(path).align([(visible.tokens, u.interpretation) for u in view.regions])
    instruction = build_instruction(visible.tokens, view, spans, mode)
    click.echo(instruction.text())
    click.echo("")
    for u, s in zip(view.regions, spans):
        where = (
            "end (aligned to nothing)"
            if s is None
            else f"after {' '.join(visible.tokens[s[0] : s[1]])!r} (tokens {s[0]}-{s[1]})"
        )
        click.echo(f"region {u.index} box={u.box}: {where}")
