"""CLI smoke tests (train / evaluate / predict) on a 20-post slice of the real data, with a
tiny random-init encoder; and the user errors they must report clearly."""

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

import mabsa.api
from mabsa import cli
from mabsa.cli.engine import COMMANDS
from mabsa.data import load_dataset, read_posts, write_posts
from mabsa.engine.checkpoint import WEIGHTS_FILE, CheckpointError, load_model, save_weights
from mabsa.processing.errors import InputError

TINY = [
    "--set",
    "model_args.random_init=true",
    "--set",
    'model_args.encoder_overrides={"hidden_size": 32, "num_hidden_layers": 2, '
    '"num_attention_heads": 2, "intermediate_size": 37}',
    "--set",
    "train.max_train_posts=20",
    "--set",
    "train.max_eval_posts=20",
    "--set",
    "train.epochs=1",
    "--set",
    "model_args.max_length=48",
    "--no-progress",
]


@pytest.fixture(scope="module")
def mabsa_cli():
    """The `mabsa` group's error handling around the engine commands."""
    group = cli._Group(name="mabsa", commands={c.name: c for c in COMMANDS})
    runner = CliRunner()
    return lambda *args: runner.invoke(group, [str(a) for a in args])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def slice_file(work):
    path = work / "slice.jsonl"
    write_posts(load_dataset("twitter2015", "test")[:20], path)
    return path


@pytest.fixture(scope="module")
def jmasa_ckpt(mabsa_cli, work):
    out = work / "jmasa"
    r = mabsa_cli("train", "--model", "text-crf", "--dataset", "twitter2015", "--task", "jmasa", "--output", out, *TINY)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["test"]["jmasa"]["n_gold"] > 0
    return out


def test_evaluate_on_a_file(mabsa_cli, jmasa_ckpt, slice_file):
    r = mabsa_cli("evaluate", "--checkpoint", jmasa_ckpt, "--dataset", slice_file)
    assert r.exit_code == 0, r.output
    metrics = json.loads(r.stdout)
    assert metrics["task"] == "jmasa" and metrics["n_posts"] == 20
    assert 0.0 <= metrics["jmasa"]["f1"] <= metrics["mate"]["f1"] + 1e-9


def test_predict_text_and_file(mabsa_cli, jmasa_ckpt, tagging_ckpt, slice_file, work):
    r = mabsa_cli("predict", "--checkpoint", tagging_ckpt, "--text", "RT @ me : Chuck Bass is great")
    assert r.exit_code == 0, r.output
    pred = json.loads(r.stdout.splitlines()[0])
    assert pred["tokens"][:3] == ["RT", "@", "me"] and pred["truncated"] is False
    assert len(pred["aspects"]) == len(pred["tokens"])  # the forced model tags every word
    for a in pred["aspects"]:
        assert 0 <= a["start"] < a["end"] <= len(pred["tokens"]) and 0 <= a["score"] <= 1
        assert a["polarity"] in ("POS", "NEU", "NEG")
    out = work / "preds.jsonl"
    r = mabsa_cli("predict", "--checkpoint", jmasa_ckpt, "--input", slice_file, "--output", out, "--batch-size", 4)
    assert r.exit_code == 0, r.output
    gold, preds = read_posts(slice_file), read_posts(out)
    assert [p.id for p in preds] == [p.id for p in gold]
    assert [p.tokens for p in preds] == [p.tokens for p in gold]


@pytest.fixture(scope="module")
def tagging_ckpt(jmasa_ckpt, work):
    """The tiny checkpoint made to tag every word B-NEU, so equality checks compare real aspects
    (a 1-epoch random model may predict none, and ``[] == []`` proves nothing)."""
    out = work / "tagging"
    shutil.copytree(jmasa_ckpt, out)
    model, _ = load_model(out)
    labels = list(model.processor.labels)
    with torch.no_grad():
        model.head.emissions.weight.zero_()
        model.head.emissions.bias.copy_(torch.tensor([20.0 if t == "B-NEU" else 0.0 for t in labels]))
    save_weights(model, out / WEIGHTS_FILE)
    return out


def test_python_api_matches_cli(mabsa_cli, tagging_ckpt, slice_file, work):
    out = work / "cli_preds.jsonl"
    r = mabsa_cli("predict", "--checkpoint", tagging_ckpt, "--input", slice_file, "--output", out)
    assert r.exit_code == 0, r.output
    by_cli = read_posts(out)
    predictor = mabsa.api.load(tagging_ckpt)
    posts = read_posts(slice_file)
    by_post = predictor.predict_posts(posts)
    assert all(len(p.aspects) == len(p.tokens) for p in by_post)  # every word is a term
    spans = lambda preds: [[(a.start, a.end, a.polarity) for a in p.aspects] for p in preds]  # noqa: E731
    assert spans(by_cli) == spans(by_post)
    scores = lambda preds: [a.score for p in preds for a in p.aspects]  # noqa: E731
    assert scores(by_cli) == pytest.approx(scores(by_post), abs=1e-6)
    by_text = predictor.predict_batch([p.text for p in posts[:5]])
    assert spans(by_text) == spans(by_post[:5])
    assert spans([predictor.predict(posts[0].text)]) == spans(by_post[:1])


def test_evaluate_defaults_to_the_training_dataset(mabsa_cli, jmasa_ckpt, work):
    """The tiny checkpoint trained on twitter2015 (a T17 checkpoint must not be scored on T15)."""
    stored = json.loads((jmasa_ckpt / "config.json").read_text())["data"]["dataset"]
    r = mabsa_cli("evaluate", "--checkpoint", jmasa_ckpt, "--split", "dev")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dataset"] == stored == "twitter2015"
    other = work / "as-t17"
    shutil.copytree(jmasa_ckpt, other)
    config = json.loads((other / "config.json").read_text())
    config["data"]["dataset"] = "twitter2017"
    (other / "config.json").write_text(json.dumps(config))
    r = mabsa_cli("evaluate", "--checkpoint", other, "--split", "dev")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dataset"] == "twitter2017" and json.loads(r.stdout)["n_posts"] == 577


def test_clear_errors(mabsa_cli, jmasa_ckpt, work):
    r = mabsa_cli("predict", "--checkpoint", work / "nope", "--text", "hi")
    assert r.exit_code == 2 and "checkpoint not found" in r.stderr and "Traceback" not in r.output
    r = mabsa_cli("evaluate", "--checkpoint", work, "--split", "dev")
    assert r.exit_code == 2 and "not a mabsa checkpoint" in r.stderr
    with pytest.raises(CheckpointError, match="jmasa checkpoint.*cannot do masc"):
        mabsa.api.load(jmasa_ckpt, task="masc")
    r = mabsa_cli("predict", "--checkpoint", jmasa_ckpt, "--text", "   ")
    assert r.exit_code == 2 and "empty" in r.stderr
    r = mabsa_cli(
        "predict",
        "--checkpoint",
        jmasa_ckpt,
        "--input",
        work / "slice.jsonl",
        "--output",
        work / "x.jsonl",
        "--image",
        "a.jpg",
        "--caption",
        "c",
    )
    assert r.exit_code == 2 and "--image, --caption apply to --text only" in r.stderr
    r = mabsa_cli("train", "--model", "text-crf", "--task", "masc", "--output", work / "x", *TINY)
    assert r.exit_code == 2 and "does not do task 'masc'" in r.stderr
    r = mabsa_cli("train", "--model", "text-crf", "--task", "jmasa", "--output", jmasa_ckpt, *TINY)
    assert r.exit_code == 2 and "--resume" in r.stderr


def test_over_long_text_is_reported_not_silently_cut(mabsa_cli, jmasa_ckpt):
    long_text = " ".join(f"word{i}" for i in range(80))
    r = mabsa_cli("predict", "--checkpoint", jmasa_ckpt, "--text", long_text)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["truncated"] is True
    assert "truncated" in r.stderr and "max_length=48" in r.stderr
    with pytest.warns(mabsa.api.TruncationWarning):
        assert mabsa.api.load(jmasa_ckpt).predict(long_text).truncated


def test_masc_train_with_seeds_and_predict(mabsa_cli, work):
    out = work / "masc"
    r = mabsa_cli("train", "--model", "text-cls", "--task", "masc", "--output", out, "--seeds", 1, 2, *TINY)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seeds"] == [1, 2] and "test.masc.accuracy" in summary["metrics"]
    r = mabsa_cli(
        "predict", "--checkpoint", out / "seed1", "--text", "Chuck Bass is everything", "--aspect", "Chuck Bass"
    )
    assert r.exit_code == 0, r.output
    (aspect,) = json.loads(r.stdout)["aspects"]
    assert (aspect["start"], aspect["end"], aspect["term"]) == (0, 2, "Chuck Bass")
    assert aspect["polarity"] in ("POS", "NEU", "NEG")
    with pytest.raises(InputError, match="give the aspect"):
        mabsa.api.load(out / "seed2").predict("Chuck Bass is everything")
    with pytest.raises(InputError, match="does not occur"):
        mabsa.api.load(out / "seed2").predict("Chuck Bass", aspects=["Blair"])


def test_one_seed_still_writes_its_seed_directory(mabsa_cli, work):
    """``--seeds 3`` trains into seed3/ like ``--seeds 1 2``, so a seed trained on its own lands
    where a multi-seed run (and a benchmark resuming it) looks for it."""
    out = work / "one-seed"
    r = mabsa_cli("train", "--model", "text-cls", "--task", "masc", "--output", out, "--seeds", 3, *TINY)
    assert r.exit_code == 0, r.output
    assert (out / "seed3" / "metrics.json").is_file() and not (out / "metrics.json").exists()
    assert json.loads((out / "summary.json").read_text())["seeds"] == [3]


def test_predict_with_an_image_file_reads_its_per_image_texts(tmp_path):
    """A model trained with image-derived text gets caption + faces from the image's perception
    (the perceiver itself is tested in test_perception_*; here a stub stands in for it)."""
    import torch

    from mabsa.data.records import Face
    from mabsa.engine import checkpoint as ckpt
    from mabsa.models import get_model_class
    from mabsa.perception import Caption, Perception

    class StubPerceiver:
        def perceive(self, source):
            return Perception(
                image=str(source),
                caption=Caption("a man on the moon", "stub"),
                faces=(Face(age=30.0, gender="woman", emotion="happy"),),
            )

    torch.manual_seed(0)
    args = {
        "encoder": "minilm",
        "random_init": True,
        "image_text": ["caption", "faces"],
        "encoder_overrides": {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 37,
        },
    }
    model = get_model_class("text-crf").create(args, "jmasa")
    model.save_components(tmp_path)
    ckpt.save_weights(model, tmp_path / ckpt.WEIGHTS_FILE)
    ckpt.write_json(
        tmp_path / ckpt.CONFIG_FILE, {"format": ckpt.FORMAT, "model": "text-crf", "task": "jmasa", "model_args": args}
    )
    predictor = mabsa.api.load(tmp_path)
    predictor._perceiver = StubPerceiver()
    post = predictor._post(0, "Eileen Collins in space", "photo.jpg", None, None)
    assert post.caption == "a man on the moon" and post.faces[0].gender == "woman"
    processor = predictor.model.processor
    text = processor.tokenizer.decode(processor.encode([post])[0].input_ids)
    assert "a man on the moon" in text and "1 person in the image" in text
    assert predictor.predict("Eileen Collins in space", image="photo.jpg").tokens[0] == "Eileen"


def test_training_output_is_a_header_epoch_lines_and_a_summary(mabsa_cli, work, monkeypatch):
    """Issue #28 items 17-18: on a non-terminal, plain lines instead of progress bars; a busy
    machine is named; stdout keeps the JSON alone."""
    import os

    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 3.0, 0.0, 0.0))
    r = mabsa_cli(
        "train",
        "--model",
        "text-crf",
        "--task",
        "jmasa",
        "--output",
        work / "plain",
        "--threads",
        "2",
        *[a for a in TINY if a != "--no-progress"],
    )
    assert r.exit_code == 0, r.output
    err = r.stderr.splitlines()
    assert err[0].startswith("warning: the machine is busy") and f"on {cores} cores" in err[0]
    assert err[1].startswith("train: model text-crf, dataset twitter2015, task jmasa, encoder minilm, epochs 1")
    assert "threads 2" in err[1]
    assert any(line.startswith("epoch 1/1: train loss ") for line in err)
    assert "\r" not in r.stderr and "it/s" not in r.stderr  # no progress bars in a log
    summary = {line.split("  ")[1].strip(): line for line in err if line.startswith("  ")}
    assert {"best dev epoch", "dev jmasa f1", "test jmasa f1", "time", "checkpoint"} <= set(summary)
    assert json.loads(r.stdout)["best_epoch"] == 1


def test_a_busy_machine_is_not_named_to_a_one_thread_run(mabsa_cli, work, monkeypatch):
    """One thread beside other jobs is what the busy warning would advise: no warning."""
    import os

    monkeypatch.setattr(os, "getloadavg", lambda: (len(os.sched_getaffinity(0)) + 3.0, 0.0, 0.0))
    r = mabsa_cli("train", "--model", "text-crf", "--task", "mate", "--output", work / "one", "--threads", "1", *TINY)
    assert r.exit_code == 0, r.output
    assert "machine is busy" not in r.stderr
    assert "threads 1" in r.stderr
