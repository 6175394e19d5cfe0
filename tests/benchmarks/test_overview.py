"""benchmarks/overview.py: an IEA row reads only the full-size runs of its own budget (run-name
suffix), every seed of them; the first-budget row never picks up a later budget's runs. The chosen
budget's run-name items are the packaged preset a user trains with."""

from __future__ import annotations

import json

from benchmark_support import load_script
from mabsa.engine.config import load_run_config


def _record(results, name: str, f1: float, epochs: int) -> None:
    data = {"config": {"train": {"epochs": epochs}}, "test": {"jmasa": {"f1": f1}}}
    (results / f"iea_{name}.json").write_text(json.dumps(data))


def f1(record: dict) -> float:
    return record["test"]["jmasa"]["f1"]


def test_iea_rows_keep_budgets_apart(tmp_path, monkeypatch):
    overview = load_script("overview")
    monkeypatch.setattr(overview, "RESULTS", tmp_path)
    chosen = overview.IEA_CHOSEN
    _record(tmp_path, "twitter2015_nmi_s1_full", 0.467, 1)
    _record(tmp_path, f"twitter2015_nmi_s1_full{chosen}", 0.565, 5)
    _record(tmp_path, f"twitter2015_nmi_s2_full{chosen}", 0.575, 5)
    _record(tmp_path, f"twitter2015_masc_nmi_s1_full{chosen}", 0.99, 5)  # another task: never read
    assert overview._iea("jmasa", f1)("t15") == ([0.467], "all posts, 1 epoch")
    assert overview._iea("jmasa", f1, suffix=chosen)("t15") == ([0.565, 0.575], "all posts, 5 epochs")
    assert overview._iea("jmasa", f1, suffix=chosen)("t17") is None  # no run yet: no fallback row


def test_chosen_iea_budget_is_the_packaged_preset():
    overview = load_script("overview")
    named = load_run_config("iea", sets=[*overview.IEA_CHOSEN_SETS, "train.epochs=5"])
    assert named == load_run_config("iea", ["iea-cpu"])
    assert named != load_run_config("iea", sets=["train.epochs=5"])  # the budget is not the default
