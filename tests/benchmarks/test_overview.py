"""benchmarks/overview.py: an IEA row reads only the full-size runs of its own budget (run-name
suffix), every seed of them; the first-budget row never picks up a later budget's runs. The chosen
budget's run-name items are the packaged preset a user trains with."""

from __future__ import annotations

import json

import pytest

from benchmark_support import load_script
from mabsa.engine.config import load_run_config
from mabsa.engine.reports import set_suffix


def _record(results, name: str, f1: float, epochs: int) -> None:
    data = {"config": {"train": {"epochs": epochs}}, "test": {"jmasa": {"f1": f1}}}
    (results / f"iea_{name}.json").write_text(json.dumps(data))


def f1(record: dict) -> float:
    return record["test"]["jmasa"]["f1"]


def test_iea_rows_keep_budgets_apart(tmp_path, monkeypatch):
    overview = load_script("overview")
    monkeypatch.setattr(overview, "RESULTS", tmp_path)
    chosen = set_suffix(overview.IEA_CHOSEN_SETS["jmasa"])
    _record(tmp_path, "twitter2015_nmi_s1_full", 0.467, 1)
    _record(tmp_path, f"twitter2015_nmi_s1_full{chosen}", 0.565, 5)
    _record(tmp_path, f"twitter2015_nmi_s2_full{chosen}", 0.575, 5)
    _record(tmp_path, f"twitter2015_masc_nmi_s1_full{chosen}", 0.99, 5)  # another task: never read
    assert overview._iea("jmasa", f1)("t15") == ([0.467], "all posts, 1 epoch")
    chosen_row = overview._iea("jmasa", f1, sets=overview.IEA_CHOSEN_SETS["jmasa"])
    assert chosen_row("t15") == ([0.565, 0.575], "all posts, 5 epochs")
    assert chosen_row("t17") is None  # no run yet: no fallback row


@pytest.mark.parametrize("task", ["jmasa", "masc"])
def test_chosen_iea_budget_is_the_packaged_preset(task):
    overview = load_script("overview")
    preset, epochs, _ = overview.IEA_PRESETS[task]
    named = load_run_config("iea", sets=[*overview.IEA_CHOSEN_SETS[task], f"train.epochs={epochs}"])
    assert named == load_run_config("iea", [preset])
    assert named != load_run_config("iea", sets=[f"train.epochs={epochs}"])  # the budget is not the default


def test_gemma_jmasa_budget_is_its_packaged_preset():
    overview = load_script("overview")
    preset, epochs = overview.IEA_GEMMA_PRESET
    sets, _ = overview.IEA_GEMMA_BUDGETS["jmasa"]
    named = load_run_config("iea", sets=[*sets, f"train.epochs={epochs}", "model_args.generator=gemma3-270m"])
    assert named == load_run_config("iea", [preset])
    assert named["model_args"]["generator"] == "gemma3-270m" and named["train"]["lr"] == 1e-3


def test_each_task_reads_its_own_chosen_budget(tmp_path, monkeypatch):
    """MASC's budget (lr 1e-3) is not JMASA's (lr 3e-3): each row reads the runs named by its own."""
    overview = load_script("overview")
    monkeypatch.setattr(overview, "RESULTS", tmp_path)
    jmasa, masc = (set_suffix(overview.IEA_CHOSEN_SETS[t]) for t in ("jmasa", "masc"))
    assert jmasa != masc
    for name, accuracy in ((f"s1_full{masc}", 0.74), (f"s2_full{jmasa}", 0.27)):  # s2: the collapsed budget
        data = {"config": {"train": {"epochs": 3}}, "test": {"masc": {"accuracy": accuracy}}}
        (tmp_path / f"iea_twitter2015_masc_nmi_{name}.json").write_text(json.dumps(data))
    rows = overview._iea_rows("MASC acc", "masc", lambda d: d["test"]["masc"]["accuracy"])
    chosen = next(source for label, _, _, source in rows if "chosen on dev" in label)
    assert chosen("t15") == ([0.74], "all posts, 3 epochs")


def test_the_gemma_rows_read_only_gemma_runs_of_their_task(tmp_path, monkeypatch):
    overview = load_script("overview")
    monkeypatch.setattr(overview, "RESULTS", tmp_path)
    gemma_budget = set_suffix(["train.patience=1", *overview._R16_ALL])  # lr 1e-3, both tasks
    _record(tmp_path, f"twitter2015_nmi_s1_full_gemma3-270m{gemma_budget}", 0.55, 5)
    _record(tmp_path, f"twitter2015_nmi_s1_full{gemma_budget}", 0.50, 3)  # SmolLM2 at Gemma's budget
    _record(tmp_path, f"twitter2015_masc_nmi_s1_full_gemma3-270m{gemma_budget}", 0.77, 3)
    lr_3e3 = set_suffix(overview.IEA_CHOSEN_SETS["jmasa"])  # another budget: another row
    _record(tmp_path, f"twitter2015_masc_nmi_s2_full_gemma3-270m{lr_3e3}", 0.30, 3)

    def gemma_row(metric, task):
        return next(source for label, _, _, source in overview._iea_rows(metric, task, f1) if "Gemma" in label)

    assert gemma_row("JMASA F1", "jmasa")("t15") == ([0.55], "all posts, 5 epochs")
    assert gemma_row("MASC acc", "masc")("t15") == ([0.77], "all posts, 3 epochs")
    assert gemma_row("MASC acc", "masc")("t17") is None
