"""``mabsa pipeline`` and ``mabsa ensemble``: one checkpoint composed from trained ones, usable
wherever a checkpoint is (``evaluate``, ``predict``, ``serve``, ``mabsa.load``)."""

from __future__ import annotations

import json

import click

from mabsa.models.pipeline.config import POLARITY_INPUTS


@click.command("pipeline", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--terms",
    "terms",
    required=True,
    type=click.Path(file_okay=False),
    help="A mate or jmasa checkpoint (or ensemble).",
)
@click.option(
    "--polarity", "polarity", required=True, type=click.Path(file_okay=False), help="A masc checkpoint (or ensemble)."
)
@click.option(
    "--output", "output", required=True, type=click.Path(file_okay=False), help="Where to write the pipeline."
)
@click.option(
    "--polarity-input",
    type=click.Choice(POLARITY_INPUTS),
    default="extraction",
    show_default=True,
    help="What the polarity stage reads besides the terms: 'extraction' (no text built with the gold "
    "aspects) or 'post' (also the shipped per-aspect face description: labelled rows only).",
)
def pipeline_command(terms: str, polarity: str, output: str, polarity_input: str) -> None:
    """JMASA as terms, then polarity: compose a two-stage checkpoint from two trained ones."""
    from mabsa.models.pipeline.model import compose_pipeline

    out = compose_pipeline(terms, polarity, output, polarity_input)
    click.echo(json.dumps({"output": str(out), "model": "pipeline", "terms": terms, "polarity": polarity}))


@click.command("ensemble", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option(
    "--output", "output", required=True, type=click.Path(file_okay=False), help="Where to write the ensemble."
)
def ensemble_command(checkpoints: tuple[str, ...], output: str) -> None:
    """Average two or more trained checkpoints of one task (emissions for taggers, probabilities
    for classifiers)."""
    from mabsa.models.ensemble.model import compose_ensemble

    out = compose_ensemble(list(checkpoints), output)
    click.echo(json.dumps({"output": str(out), "model": "ensemble", "members": list(checkpoints)}))
