"""Click commands ``train``, ``evaluate`` and ``predict`` (registered on the ``mabsa`` group).

Each is a thin shell over :mod:`mabsa.engine`; user mistakes raise ``MabsaError``, which the
``mabsa`` group prints as one line (exit 2).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import click

from mabsa.errors import MabsaError

TASK_CHOICE = click.Choice(["jmasa", "mate", "masc"], case_sensitive=False)


def _seeds(first: str | None, extra: tuple[str, ...]) -> list[int]:
    """``--seeds 1 2 3`` (click hands the 2 and 3 over as extra arguments) or ``--seeds 1,2,3``."""
    if first is None:
        if extra:
            raise MabsaError(f"unexpected argument(s): {' '.join(extra)}")
        return []
    items = [s for part in (first, *extra) for s in part.split(",") if s.strip()]
    try:
        return [int(s) for s in items]
    except ValueError:
        raise MabsaError(f"--seeds takes integers, got: {' '.join(items)}") from None


@click.command("train", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", "model", default=None, help="Registered model name, e.g. text-crf.")
@click.option(
    "--dataset",
    default="twitter2015",
    show_default=True,
    help="twitter2015, twitter2017, or a dataset directory in their layout.",
)
@click.option("--task", type=TASK_CHOICE, required=True)
@click.option(
    "--config",
    "--preset",
    "config_file",
    multiple=True,
    metavar="FILE_OR_PRESET",
    help="JSON run config or packaged preset (clamp-cpu, fite-de, ...) merged over the model's "
    "packaged config; repeatable, later ones win, then --set.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override one config value, e.g. --set train.epochs=3 (repeatable).",
)
@click.option(
    "--seeds",
    "seeds",
    default=None,
    metavar="N [N ...]",
    help="Train once per seed (--seeds 1 2 3); writes seed*/ and summary.json.",
)
@click.option(
    "--output",
    "output",
    type=click.Path(file_okay=False),
    default=None,
    help="Checkpoint directory [checkpoints/MODEL_DATASET_TASK].",
)
@click.option("--resume", is_flag=True, help="Continue a killed run from its last epoch.")
@click.option("--threads", type=int, default=None, help="torch threads (default: as set).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.argument("extra_seeds", nargs=-1, metavar="")
def train_command(model, dataset, task, config_file, sets, seeds, output, resume, threads, no_progress, extra_seeds):
    """Train a model; select on dev, evaluate test once at the best dev epoch."""
    from mabsa.engine.config import TrainConfig, load_run_config
    from mabsa.engine.trainer import train, train_seeds

    seed_list = _seeds(seeds, extra_seeds)
    extra = list(sets) + ([f"train.num_threads={threads}"] if threads else [])
    config = load_run_config(model, config_file, extra)
    if not config["train"].get("num_threads"):
        config["train"]["num_threads"] = len(os.sched_getaffinity(0))  # the cores this process may use
    n_threads = config["train"]["num_threads"]
    load = os.getloadavg()[0]
    # one thread cannot get fewer: beside other jobs that is already the advice
    if load > len(os.sched_getaffinity(0)) and n_threads > 1:
        click.echo(
            f"warning: the machine is busy (load {load:.1f} on {len(os.sched_getaffinity(0))} cores): training "
            f"with {n_threads} threads will be slow; fewer threads (--threads 1) often run faster",
            err=True,
        )
    task = task.lower()
    dataset_name = Path(dataset).name if Path(dataset).exists() else dataset
    out = Path(output or f"checkpoints/{config['model']}_{dataset_name}_{task}")
    click.echo(
        f"train: model {config['model']}, dataset {dataset_name}, task {task}, encoder "
        f"{config['model_args'].get('encoder', '-')}, epochs {TrainConfig.from_dict(config['train']).epochs}, "
        f"threads {n_threads}, output {out}",
        err=True,
    )
    if seed_list:  # even one --seeds N writes seedN/ + summary.json, as --help says
        summary = train_seeds(config, dataset, task, out, seed_list, resume=resume, progress=not no_progress)
        click.echo(
            json.dumps(
                {
                    "output": str(out),
                    "n_seeds": summary["n_seeds"],
                    "test": {
                        k: v
                        for k, v in summary["metrics"].items()
                        if k.startswith("test.") and k.endswith(HEADLINE_SCORES)
                    },
                },
                indent=2,
            )
        )
    else:
        t0 = time.perf_counter()
        metrics = train(config, dataset, task, out, resume=resume, progress=not no_progress)
        _summary_table(metrics, out, time.perf_counter() - t0)
        click.echo(
            json.dumps(
                {
                    "output": str(out),
                    "best_epoch": metrics["best_epoch"],
                    "dev": metrics["dev"],
                    "test": metrics["test"],
                },
                indent=2,
            )
        )


#: the score shown per task: F1 for spans, accuracy for MASC, accuracy on found spans for polarity
HEADLINE_SCORES = ("f1", "accuracy", "sentiment_acc_on_found")


def _summary_table(metrics: dict, out: Path, seconds: float) -> None:
    """The run at a glance on stderr (stdout keeps the JSON)."""
    rows = [("best dev epoch", f"{metrics['best_epoch']} of {metrics['epochs_run']}")]
    for split in ("dev", "test"):
        for task, scores in (metrics.get(split) or {}).items():
            key = next((k for k in HEADLINE_SCORES if k in scores), None) if isinstance(scores, dict) else None
            if key:
                rows.append((f"{split} {task} {key}", f"{100 * scores[key]:.2f}"))
    rows += [("time", f"{seconds / 60:.1f} min"), ("checkpoint", str(out))]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"  {k.ljust(width)}  {v}", err=True)


@click.command("evaluate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", required=True, type=click.Path(), help="Directory from mabsa train.")
@click.option(
    "--dataset",
    default=None,
    help="Dataset name/directory, or a data file (then --split is ignored). "
    "Default: the dataset the checkpoint was trained on.",
)
@click.option("--split", default="test", show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Also write the metrics JSON here.")
@click.option(
    "--from", "src_fmt", default=None, help="Format of a --dataset file (default: from its content, then suffix)."
)
def evaluate_command(checkpoint, dataset, split, batch_size, output, src_fmt):
    """Score a checkpoint on a dataset split (JSON to stdout)."""
    from mabsa.data import load_dataset
    from mabsa.engine import checkpoint as ckpt
    from mabsa.engine.inference import evaluate

    model, config = ckpt.load_model(checkpoint)
    dataset = dataset or config.get("data", {}).get("dataset")
    if not dataset:
        raise MabsaError(f"{checkpoint}: the checkpoint does not name its training dataset; give --dataset")
    gold = load_dataset(dataset, split, fmt=src_fmt)
    metrics = {
        "checkpoint": str(checkpoint),
        "model": config["model"],
        "task": config["task"],
        "dataset": dataset,
        "split": split,
        **evaluate(model, gold, batch_size),
    }
    text = json.dumps(metrics, indent=2)
    if output:
        Path(output).write_text(text + "\n")
    click.echo(text)


@click.command("predict", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--checkpoint", required=True, type=click.Path(), help="Directory from mabsa train.")
@click.option("--text", "texts", multiple=True, help="Raw post text (repeatable).")
@click.option("--image", default=None, help="Image path or id of the post (--text).")
@click.option("--caption", default=None, help="Image caption, for models that read one.")
@click.option(
    "--aspect", "aspects", multiple=True, help="masc models: an aspect term of the --text to classify (repeatable)."
)
@click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Posts file (jsonl or any supported format; needs --output); streamed in chunks. A jsonl "
    "post without an id is numbered by its line.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Where to write predicted posts (format from the extension; folders are made). Required "
    "with --input; with --text, the predictions go there instead of to stdout.",
)
@click.option(
    "--from", "src_fmt", default=None, help="Format of the --input file (default: from its content, then suffix)."
)
@click.option("--batch-size", default=64, show_default=True)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="ray: --input through Ray Data, one model per actor (docs/serve.md).",
)
def predict_command(checkpoint, texts, image, caption, aspects, input_path, output_path, src_fmt, batch_size, engine):
    """Predict aspects (and polarities) for --text or an --input file."""
    from mabsa.api import load
    from mabsa.data import iter_posts, write_posts
    from mabsa.processing.images import load_image

    if bool(texts) == bool(input_path):
        raise MabsaError("give either --text (one or more) or --input FILE")
    if input_path and not output_path:
        raise MabsaError("--input needs --output FILE")
    given = [flag for flag, value in (("--image", image), ("--caption", caption), ("--aspect", aspects)) if value]
    if input_path and given:  # a file's posts carry their own image, caption and aspects
        raise MabsaError(
            f"{', '.join(given)} apply to --text only; with --input, put them in the "
            "posts file (fields image, caption, aspects)"
        )
    # what can be checked without the model is checked before loading it (seconds)
    for i, text in enumerate(texts, 1):
        if not text.strip():
            raise MabsaError(f"--text is empty (--text #{i})")
    if image is not None:
        load_image(image)  # a missing file or a non-image: one clear error, exit 2
    if engine == "ray":
        from mabsa.engine.ray_predict import predict_file_ray

        if not input_path:
            raise MabsaError("--engine ray needs --input FILE --output FILE")
        n = predict_file_ray(checkpoint, input_path, output_path, batch_size=batch_size)
        click.echo(f"wrote {n} posts to {output_path}", err=True)
        return
    predictor = load(checkpoint, batch_size=batch_size)
    if image is not None and not predictor.reads_image:
        click.echo(f"note: model {predictor.config.get('model')!r} does not use images; --image is ignored", err=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if texts:
            preds = predictor.predict_batch(
                list(texts),
                [image] * len(texts),
                aspects=[list(aspects) or None] * len(texts),
                captions=[caption] * len(texts),
            )
            if output_path:
                write_posts([p.to_post(str(i)) for i, p in enumerate(preds, 1)], output_path)
                click.echo(f"wrote {output_path}", err=True)
            else:
                for p in preds:
                    click.echo(json.dumps(p.to_dict(), ensure_ascii=False))
        else:
            from tqdm.auto import tqdm

            # Posts are counted as they are read; memory holds one chunk at a time.
            posts = tqdm(
                iter_posts(input_path, src_fmt, number_missing_ids=True), desc="predict", unit="post", disable=None
            )
            write_posts(predictor.iter_predictions(posts, chunk_size=max(8 * batch_size, 256)), output_path)
            click.echo(f"wrote {output_path}", err=True)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)


COMMANDS = (train_command, evaluate_command, predict_command)
