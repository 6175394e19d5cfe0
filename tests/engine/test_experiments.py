"""Experiments as data: every declared run is a valid run config, and its printed command is
the run (parsed back by the real `mabsa train` options)."""

import shlex

import pytest

from mabsa.cli.engine import train_command
from mabsa.engine.config import load_run_config
from mabsa.engine.experiments import DATASETS, PAPER, PAPER_DECIMALS, QUALITY_RUNS, cite


@pytest.mark.parametrize("name", sorted(QUALITY_RUNS))
def test_each_run_loads_and_its_command_says_the_same(name):
    run = QUALITY_RUNS[name]
    config = load_run_config(run.model, list(run.presets), list(run.options))
    assert config["model"] == run.model
    assert config["train"].get("test", True) is not run.sweep  # a sweep point never scores test
    argv = shlex.split(run.command([1, 2], f"runs/quality/{name}"))
    assert argv[:2] == ["mabsa", "train"]
    ctx = train_command.make_context("train", argv[2:])
    p = ctx.params
    assert (p["model"], p["dataset"], p["task"]) == (run.model, run.dataset, run.task)
    assert load_run_config(p["model"], p["config_file"], p["sets"]) == config
    assert p["seeds"] == "1" and p["extra_seeds"] == ("2",)


@pytest.mark.parametrize("short", sorted(DATASETS))
def test_the_final_runs_train_the_user_facing_best_presets(short):
    """What a user trains with --preset best-terms / best-polarity is what the best-configuration
    rows measured: the final runs add only options that change nothing a run learns."""
    from mabsa.engine.config import RESUME_FREE_TRAIN_OPTIONS

    for task, preset in (("mate", "best-terms"), ("masc", "best-polarity")):
        run = QUALITY_RUNS[f"{short}-{task}-best"]
        measured = load_run_config(run.model, list(run.presets), list(run.sets))
        user = load_run_config(None, [preset], [])
        assert {k: v for k, v in measured["train"].items() if k not in RESUME_FREE_TRAIN_OPTIONS} == user["train"]
        assert measured["model_args"] == user["model_args"] and measured["model"] == user["model"]
    assert load_run_config(None, ["best-terms"], [])["model_args"]["encoder"] == "embeddinggemma-300m"
    assert load_run_config(None, ["best-polarity"], [])["model_args"]["encoder"] == "mpnet-base"


def test_the_paper_table_has_the_numbers_the_docs_cite():
    def t15_t17(paper, row, metric):
        return tuple(PAPER[paper, row, dataset, metric] for dataset in DATASETS.values())

    assert t15_t17("clamp", "full", "jmasa.f1") == (67.7, 68.9)  # CLAMP paper, Table 4
    assert t15_t17("clamp", "roberta-crf", "jmasa.f1") == (63.5, 66.2)  # its text-only row
    assert t15_t17("clamp", "no-paf", "jmasa.f1") == (64.0, 66.9)  # Table 5
    assert t15_t17("aom", "full", "jmasa.f1") == (68.6, 69.7)
    assert t15_t17("iea", "nmi", "jmasa.f1") == (71.7, 72.1)
    assert t15_t17("iea", "nmi", "masc.accuracy") == (83.4, 77.8)
    assert t15_t17("iea", "no_aligner", "jmasa.f1") == (68.4, 69.0)  # IEA paper, Table 3
    assert t15_t17("fite", "fite", "masc.accuracy") == (78.49, 70.90)  # FITE paper, Table 4
    assert t15_t17("fite", "fite", "masc.macro_f1") == (73.90, 68.70)
    assert PAPER["fite", "fite", "twitter-face", "masc.accuracy"] == 69.50


def test_cite_writes_a_number_as_its_paper_prints_it():
    assert cite("fite", "fite", "twitter2015", "masc.macro_f1") == "73.90"  # two decimals, kept
    assert cite("fite", "fite", "twitter-face", "masc.accuracy") == "69.50"
    assert cite("iea", "nmi", "twitter2017", "mate.f1") == "94.0"
    assert cite("clamp", "full", "twitter2015", "jmasa.f1") == "67.7"
    with pytest.raises(KeyError):
        cite("clamp", "no-wra", "twitter2015", "jmasa.f1")  # the paper has no such row


def test_every_paper_number_is_well_formed():
    datasets = {*DATASETS.values(), "twitter-face"}
    metrics = {"jmasa.f1", "mate.f1", "masc.accuracy", "masc.macro_f1"}
    for (paper, row, dataset, metric), value in PAPER.items():
        assert paper in PAPER_DECIMALS and dataset in datasets and metric in metrics, (paper, row, dataset, metric)
        assert 0 < value < 100
