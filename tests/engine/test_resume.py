"""`--resume` continues only the run that was started: a changed setting is an error, never an
old run's metrics returned as if they were the new run's."""

import pytest

from mabsa.engine import trainer
from mabsa.engine.config import TrainConfig, load_run_config, model_arg_defaults, run_differences
from mabsa.errors import MabsaError
from model_support import TINY_RUN_SETS

TINY_SETS = TINY_RUN_SETS


def requested(model="text-crf", task="jmasa", dataset="twitter2015", args=None, **train):
    return {
        "model": model,
        "task": task,
        "data": {"dataset": dataset},
        "model_args": {**model_arg_defaults(model), **(args or {})},
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


def test_an_option_missing_on_one_side_counts_as_its_default():
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
