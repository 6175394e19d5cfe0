"""Experiments as data: every declared run is a valid run config, and its printed command is
the run (parsed back by the real `mabsa train` options)."""

import shlex

import pytest

from mabsa.cli.engine import train_command
from mabsa.engine.config import load_run_config
from mabsa.engine.experiments import QUALITY_RUNS


@pytest.mark.parametrize("name", sorted(QUALITY_RUNS))
def test_each_run_loads_and_its_command_says_the_same(name):
    run = QUALITY_RUNS[name]
    config = load_run_config(run.model, list(run.presets), list(run.sets))
    assert config["model"] == run.model
    argv = shlex.split(run.command([1, 2], f"runs/quality/{name}"))
    assert argv[:2] == ["mabsa", "train"]
    ctx = train_command.make_context("train", argv[2:])
    p = ctx.params
    assert (p["model"], p["dataset"], p["task"]) == (run.model, run.dataset, run.task)
    assert load_run_config(p["model"], p["config_file"], p["sets"]) == config
    assert p["seeds"] == "1" and p["extra_seeds"] == ("2",)
