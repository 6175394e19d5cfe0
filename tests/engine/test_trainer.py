"""The training loop: determinism, resume after a kill, several seeds, config overrides."""

import json

import pytest
from safetensors.torch import load_file

from mabsa.data import load_dataset, write_posts
from mabsa.engine import checkpoint as ckpt
from mabsa.engine import trainer
from mabsa.engine.config import TrainConfig, load_run_config
from mabsa.errors import ConfigError, MabsaError

TINY_SETS = [
    "model_args.random_init=true",
    'model_args.encoder_overrides={"hidden_size": 32, "num_hidden_layers": 2, '
    '"num_attention_heads": 2, "intermediate_size": 37}',
    "train.max_train_posts=24",
    "train.max_eval_posts=12",
    "train.batch_size=8",
    "train.epochs=2",
    "train.patience=0",
    "train.head_lr=0.01",
    "train.lr=0.001",
    "train.keep_last=true",  # these tests compare the resume state of finished runs
]


def tiny_config(*extra):
    return load_run_config("text-crf", sets=TINY_SETS + list(extra))


def run(tmp_path, name, config=None, **kw):
    return trainer.train(config or tiny_config(), "twitter2015", "jmasa", tmp_path / name, progress=False, **kw)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted 2-epoch run."""
    base = tmp_path_factory.mktemp("ref")
    return run(base, "a"), base / "a"


def test_same_seed_gives_identical_results(tmp_path, reference):
    metrics, out = reference
    assert "prediction_counts" not in metrics["test"]  # a tagger cannot give an invalid answer
    again = run(tmp_path, "b")
    assert again["dev"] == metrics["dev"] and again["test"] == metrics["test"]
    a = load_file(str(out / ckpt.LAST_DIR / ckpt.WEIGHTS_FILE))
    b = load_file(str(tmp_path / "b" / ckpt.LAST_DIR / ckpt.WEIGHTS_FILE))
    assert all((a[k] == b[k]).all() for k in a)
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[1] < losses[0]


def test_checkpoint_directory_contents(reference):
    metrics, out = reference
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "text-crf" and config["task"] == "jmasa"
    assert config["train"]["epochs"] == 2 and config["model_args"]["encoder"] == "minilm"
    assert config["labels"]["id2label"]["1"] == "B-POS"
    assert config["data"]["splits"] == {"train": 24, "dev": 12}
    assert "mabsa" in config["code_version"]
    for name in (
        "model.safetensors",
        "processor_config.json",
        "tokenizer/tokenizer.json",
        "text_encoder/config.json",
        "metrics.json",
        "train_log.jsonl",
    ):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"] == metrics["test"] and 1 <= saved["best_epoch"] <= 2
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2]
    assert sum(r["type"] == "test" for r in records) == 1


def test_resume_after_kill_restores_optimizer_and_epoch(tmp_path, monkeypatch, reference):
    metrics, ref_out = reference
    real_save = ckpt.save_resume_state

    def save_then_die(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after epoch 1 was saved

    monkeypatch.setattr(ckpt, "save_resume_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "c")
    state = json.loads((tmp_path / "c" / "last" / "trainer_state.json").read_text())
    assert state["epoch"] == 1 and state["optimizer"]["param_groups"]
    moments = load_file(str(tmp_path / "c" / "last" / ckpt.OPTIMIZER_FILE))
    assert any(k.endswith(".exp_avg_sq") for k in moments) and any(k.endswith(".step") for k in moments)
    monkeypatch.setattr(ckpt, "save_resume_state", real_save)
    with pytest.raises(Exception, match="--resume"):
        run(tmp_path, "c")
    resumed = run(tmp_path, "c", resume=True)
    records = [json.loads(line) for line in (tmp_path / "c" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] in ("epoch", "resume")] == [1, 1, 2]
    # Identical to the uninterrupted run: weights, optimizer moments, metrics.
    assert resumed["test"] == metrics["test"] and resumed["dev"] == metrics["dev"]
    for name in (ckpt.WEIGHTS_FILE, ckpt.OPTIMIZER_FILE):
        a = load_file(str(ref_out / "last" / name))
        b = load_file(str(tmp_path / "c" / "last" / name))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), name


def test_resume_inside_an_epoch_matches_the_uninterrupted_run(tmp_path, monkeypatch, reference):
    """train.save_every_steps: killed one step into epoch 2, resumed, the run ends exactly as the
    uninterrupted one (same batches, same dropout stream, same optimizer moments)."""
    metrics, ref_out = reference
    real_save = ckpt.save_resume_state
    saved = []

    def save_then_die(directory, model, optimizer, state):
        real_save(directory, model, optimizer, state)
        saved.append((state["epoch"], (state["partial"] or {}).get("steps")))
        if state["epoch"] == 1 and state["partial"]:
            raise KeyboardInterrupt  # one step into the second epoch

    monkeypatch.setattr(ckpt, "save_resume_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, "m", config=tiny_config("train.save_every_steps=1"))
    assert saved == [(0, 1), (0, 2), (1, None), (1, 1)]  # 3 steps per epoch; none after the last
    monkeypatch.setattr(ckpt, "save_resume_state", real_save)
    resumed = run(tmp_path, "m", resume=True)  # save_every_steps may differ on resume
    records = [json.loads(line) for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("step_in_epoch")) for r in records if r["type"] == "resume"] == [(1, 1)]
    assert resumed["test"] == metrics["test"] and resumed["dev"] == metrics["dev"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in metrics["history"]]
    for name in (ckpt.WEIGHTS_FILE, ckpt.OPTIMIZER_FILE):
        a = load_file(str(ref_out / "last" / name))
        b = load_file(str(tmp_path / "m" / "last" / name))
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), name


def test_several_seeds_write_summary(tmp_path):
    config = tiny_config("train.epochs=1")
    summary = trainer.train_seeds(config, "twitter2015", "jmasa", tmp_path, [3, 4], progress=False)
    assert summary["seeds"] == [3, 4]
    f1 = summary["metrics"]["test.jmasa.f1"]
    assert len(f1["values"]) == 2 and f1["mean"] == pytest.approx(sum(f1["values"]) / 2)
    assert (tmp_path / "seed3" / "metrics.json").is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["n_seeds"] == 2


def test_config_layers_and_errors(tmp_path):
    user = tmp_path / "c.json"
    user.write_text(json.dumps({"train": {"epochs": 7}, "model_args": {"max_length": 64}}))
    c = load_run_config("text-crf", user, ["lr=3e-5", 'model_args.image_text=["caption"]'])
    assert c["train"]["epochs"] == 7 and c["train"]["lr"] == 3e-5
    assert c["model_args"]["max_length"] == 64 and c["model_args"]["image_text"] == ["caption"]
    assert "batch_size" not in c["train"] and TrainConfig.from_dict(c["train"]).batch_size == 16  # the default
    assert c["model_args"]["dropout"] == 0.1 and c["model_args"]["random_init"] is False  # every option, typed
    with pytest.raises(ConfigError, match="unknown train option"):
        load_run_config("text-crf", sets=["train.lrr=1"])
    with pytest.raises(ConfigError, match="no packaged config"):
        load_run_config("nope")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_run_config("text-crf", sets=["train.lr"])


def test_presets_stack_later_ones_winning_then_sets(tmp_path):
    c = load_run_config("fite", ["fite-cpu", "fite-de"])
    assert c["model_args"]["pooling"] == "cls+aspect" and c["model_args"]["encoder"] == "mpnet-base"
    assert c["train"]["epochs"] == 2  # fite-cpu's budget over fite.json's 8
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"model_args": {"encoder": "minilm", "dropout": 0.3}}))
    c = load_run_config("fite", ["fite-de", mine], ["model_args.dropout=0.2"])
    assert c["model_args"]["encoder"] == "minilm" and c["model_args"]["dropout"] == 0.2
    with pytest.raises(ConfigError, match="a config for 'text-crf'"):
        load_run_config(None, ["fite-de", "iea-aligner"])


def test_config_values_take_their_options_type():
    """A typo or a Python spelling must not be saved and silently ignored (or read as truthy)."""
    c = load_run_config(
        "clamp",
        sets=[
            "model_args.paf=False",
            "model_args.wra=true",
            "train.lr=.00003",
            "train.epochs=3.0",
            "model_args.image_text=caption",
            "seed=4",
            "train.max_train_posts=None",
        ],
    )
    assert c["model_args"]["paf"] is False and c["model_args"]["wra"] is True
    assert c["train"]["lr"] == 3e-5 and c["train"]["epochs"] == 3 and isinstance(c["train"]["epochs"], int)
    assert c["model_args"]["image_text"] == ["caption"] and c["train"]["seed"] == 4
    assert c["train"]["max_train_posts"] is None
    for sets, message in (
        (["model_args.dropuot=0.3"], r"unknown model_args option\(s\) \['dropuot'\]"),
        (["model_args.paf=maybe"], "model_args.paf: expected true or false"),
        (["train.batch_size=abc"], "train.batch_size: expected an integer"),
        (["train.lr=fast"], "train.lr: expected a number"),
        (["train.epochs=0"], "train.epochs must be at least 1"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_run_config("clamp", sets=sets)
    with pytest.raises(ConfigError, match=r"found in: \['model_args', 'train'\]"):
        load_run_config("iea", sets=["seed=5"])  # IEA's region-shuffle seed and the training seed


def test_model_args_that_do_not_fit_together_are_a_config_error(tmp_path):
    """A building block's ValueError (here: a dual-attention fusion kind that does not exist)
    reaches the user as a one-line ConfigError naming the model, not as a stack trace."""
    config = load_run_config("lrsa", sets=TINY_SETS + ["model_args.dual=true", 'model_args.dual_fusion="concat"'])
    with pytest.raises(ConfigError, match="model 'lrsa': model_args do not fit together: unknown fusion 'concat'"):
        trainer.train(config, "twitter2015", "masc", tmp_path / "out", progress=False)


def test_training_on_a_single_file_is_refused(tmp_path):
    """One file has no splits: its 'test' score would be a training score."""
    data = tmp_path / "posts.jsonl"
    write_posts(load_dataset("twitter2015", "test")[:4], data)
    with pytest.raises(MabsaError, match="training needs train/dev/test splits"):
        trainer.train(load_run_config("text-crf", sets=TINY_SETS), str(data), "jmasa", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_finished_run_drops_its_resume_state_and_files_follow_the_umask(tmp_path):
    import os
    import stat

    config = load_run_config("text-crf", sets=[s for s in TINY_SETS if "keep_last" not in s] + ["train.epochs=1"])
    old = os.umask(0o022)
    try:
        run(tmp_path, "d", config=config)
    finally:
        os.umask(old)
    out = tmp_path / "d"
    assert (out / ckpt.WEIGHTS_FILE).is_file() and (out / ckpt.METRICS_FILE).is_file()
    assert not (out / ckpt.LAST_DIR).exists()  # the resume state went once the run finished
    assert stat.S_IMODE((out / ckpt.WEIGHTS_FILE).stat().st_mode) == 0o644


def test_a_dev_only_run_never_reads_the_test_split(tmp_path, monkeypatch, reference):
    """train.test=false (a sweep point): the same training and dev selection, no test cost, test None."""
    metrics, _ = reference
    splits = []
    real = trainer.load_dataset

    def spy(dataset, split, *a, **kw):
        splits.append(split)
        return real(dataset, split, *a, **kw)

    monkeypatch.setattr(trainer, "load_dataset", spy)
    dev_only = run(tmp_path, "e", config=tiny_config("train.test=false"))
    assert "test" not in splits and {"train", "dev"} <= set(splits)
    assert dev_only["test"] is None and dev_only["dev"] == metrics["dev"]
    assert json.loads((tmp_path / "e" / ckpt.METRICS_FILE).read_text())["test"] is None
