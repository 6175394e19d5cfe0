"""`--resume` continues only the run that was started: a changed setting is an error, never an
old run's metrics returned as if they were the new run's."""

import warnings

import pytest
import torch

from mabsa.data import load_dataset
from mabsa.engine import trainer
from mabsa.engine.config import TrainConfig, load_run_config, packaged_config, run_differences
from mabsa.errors import MabsaError
from mabsa.models import get_model_class
from mabsa.models.base import MabsaModel

TINY_SETS = [
    "model_args.random_init=true",
    'model_args.encoder_overrides={"hidden_size": 32, "num_hidden_layers": 2, '
    '"num_attention_heads": 2, "intermediate_size": 37}',
    "train.max_train_posts=16",
    "train.max_eval_posts=8",
    "train.batch_size=8",
    "train.epochs=1",
    "train.patience=0",
]


def requested(model="text-crf", task="jmasa", dataset="twitter2015", args=None, **train):
    return {
        "model": model,
        "task": task,
        "data": {"dataset": dataset},
        "model_args": {**packaged_config(model)["model_args"], **(args or {})},
        "train": TrainConfig(**train).to_dict(),
    }


def test_identical_runs_have_no_differences():
    assert run_differences(requested(), requested()) == []


def test_a_changed_option_is_named_with_both_values():
    assert run_differences(requested(lr=8e-5), requested(lr=3e-5)) == ["train.lr: 8e-05 -> 3e-05"]
    assert run_differences(requested(args={"dropout": 0.1}), requested(args={"dropout": 0.3})) == [
        "model_args.dropout: 0.1 -> 0.3"
    ]


def test_model_task_and_dataset_are_compared_first():
    assert run_differences(requested(), requested(task="mate")) == ["task: 'jmasa' -> 'mate'"]
    assert run_differences(requested(), requested(dataset="twitter2017")) == [
        "data.dataset: 'twitter2015' -> 'twitter2017'"
    ]


def test_speed_and_logging_options_may_change_on_resume():
    assert (
        run_differences(
            requested(num_threads=1, eval_batch_size=64), requested(num_threads=2, eval_batch_size=8, log_every=5)
        )
        == []
    )


def test_an_option_missing_on_one_side_counts_as_its_packaged_default():
    old = requested()
    del old["model_args"]["dropout"]  # a run made before the option existed
    assert run_differences(old, requested()) == []
    assert run_differences(old, requested(args={"dropout": 0.5})) == ["model_args.dropout: 0.1 -> 0.5"]


def test_resume_with_changed_settings_raises_and_leaves_the_run_alone(tmp_path):
    config = load_run_config("text-crf", sets=TINY_SETS)
    first = trainer.train(config, "twitter2015", "jmasa", tmp_path, progress=False)
    before = (tmp_path / "metrics.json").read_text()
    # Same run, other thread count: the finished metrics come back.
    again = trainer.train(
        load_run_config("text-crf", sets=TINY_SETS + ["train.num_threads=1"]),
        "twitter2015",
        "jmasa",
        tmp_path,
        resume=True,
        progress=False,
    )
    assert again["test"] == first["test"]
    changed = load_run_config("text-crf", sets=TINY_SETS + ["train.lr=0.5"])
    with pytest.raises(MabsaError, match=r"train\.lr: 8e-05 -> 0\.5"):
        trainer.train(changed, "twitter2015", "jmasa", tmp_path, resume=True, progress=False)
    with pytest.raises(MabsaError, match="data.dataset"):
        trainer.train(config, "twitter2017", "jmasa", tmp_path, resume=True, progress=False)
    assert (tmp_path / "metrics.json").read_text() == before


def test_resuming_several_seeds_checks_every_seed(tmp_path):
    config = load_run_config("text-crf", sets=TINY_SETS)
    trainer.train_seeds(config, "twitter2015", "jmasa", tmp_path, [1], progress=False)
    changed = load_run_config("text-crf", sets=TINY_SETS + ["model_args.dropout=0.4"])
    with pytest.raises(MabsaError, match=r"seed1 holds a run started with other settings"):
        trainer.train_seeds(changed, "twitter2015", "jmasa", tmp_path, [1, 2], resume=True, progress=False)
    assert not (tmp_path / "seed2").exists()


class RecordingArgs(dict):
    """A model_args mapping that records which options a model reads."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.read.add(key)
        return super().__contains__(key)


TEST_ONLY_OPTIONS = {"random_init", "encoder_overrides"}


def TINY_GENERATOR(model, tmp_path) -> dict:  # noqa: N802 - a table that needs a directory
    """IEA: a tiny random Llama instead of SmolLM2, and no aligner checkpoint."""
    if model != "iea":
        return {}
    from iea_support import tiny_llama_dir

    return {"generator": f"hf:{tiny_llama_dir(tmp_path)}", "ablation": "no_aligner"}


BODY_READS = {"clamp": {"paf_stages", "ipot_beta"}, "lrsa": {"rationale_dropout"}}


@pytest.mark.parametrize(
    "model, task",
    [
        ("text-crf", "jmasa"),
        ("text-cls", "masc"),
        ("fite", "masc"),
        ("clamp", "jmasa"),
        ("lrsa", "masc"),
        ("lrsa", "jmasa"),
        ("iea", "jmasa"),
    ],
)
def test_packaged_config_lists_every_option_the_model_reads(model, task, monkeypatch, tmp_path):
    """The packaged JSON is the list of defaults that resume checks (and users read): an option
    read by the code but absent there would make an old run look different from a new one."""
    init = MabsaModel.__init__

    def keep_recording(self, args, *rest, **kw):  # the model stores a copy; keep the recorder
        init(self, args, *rest, **kw)
        if isinstance(args, RecordingArgs):
            self.args = args

    monkeypatch.setattr(MabsaModel, "__init__", keep_recording)
    defaults = packaged_config(model)["model_args"]
    small = {"heads": 2, "align_dim": 8, "ipot_iterations": 2}  # faster, where the model has them
    args = RecordingArgs(
        {
            **defaults,
            **{k: v for k, v in small.items() if k in defaults},
            "random_init": True,
            "encoder_overrides": {
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 37,
            },
            **TINY_GENERATOR(model, tmp_path),
        }
    )
    torch.manual_seed(0)
    m = get_model_class(model).create(args, task)
    posts = load_dataset("twitter2015", "train")[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = m.processor.collate(m.processor.encode(posts))
    m(batch)["loss"].backward()
    # options read only in forward(), after construction: proves the recorder sees model-body reads
    assert BODY_READS.get(model, set()) <= args.read, BODY_READS[model] - args.read
    unlisted = args.read - set(defaults) - TEST_ONLY_OPTIONS
    assert args.read and not unlisted, f"{model} reads {sorted(unlisted)}, missing from configs/{model}.json"
