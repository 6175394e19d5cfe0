"""mabsa.engine.experiment_runs.run_seeds adds seeds to a result whose checkpoints are gone (a new
checkout has results/ but not runs/): it trains only the missing seeds and summarises all of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark_support import load_script
from mabsa.engine.config import load_run_config
from mabsa.engine.experiment_runs import run_seeds
from mabsa.engine.reports import Workspace


def seed_run(seed: int, acc: float) -> dict:
    return {
        "seed": seed,
        "best_epoch": 1,
        "dev": {"masc": {"accuracy": acc}},
        "test": {"masc": {"accuracy": acc - 0.1}},
        "train_seconds_per_epoch": 10.0,
    }


@pytest.fixture
def ws(tmp_path):
    return Workspace(tmp_path)


@pytest.fixture
def bench(monkeypatch):
    trained: list[list[int]] = []

    def fake_train_seeds(config, dataset, task, out, seeds, **kw):
        trained.append(list(seeds))
        for s in seeds:  # what train() leaves behind for a finished seed
            (Path(out) / f"seed{s}").mkdir(parents=True, exist_ok=True)
            (Path(out) / f"seed{s}" / "config.json").write_text('{"code_version": {"git_commit": "at-start"}}')
            (Path(out) / f"seed{s}" / "metrics.json").write_text("{}")
        return {"runs": [seed_run(s, 0.5 + s / 10) for s in seeds]}

    monkeypatch.setattr("mabsa.engine.trainer.train_seeds", fake_train_seeds)
    return trained


def earlier_record(config: dict) -> dict:
    return {
        "name": "r",
        "seeds": [1, 2],
        "config": config,
        "code_version": "old",
        "finished": "then",
        "runs": [seed_run(1, 0.6), seed_run(2, 0.7)],
    }


def test_missing_seeds_are_trained_and_all_are_summarised(bench, ws):
    config = load_run_config("text-cls", None, [])
    rec = run_seeds(ws, "r", "text-cls", "twitter2015", "masc", None, [], [1, 2, 3], recorded=earlier_record(config))
    assert bench == [[3]]
    assert [r["seed"] for r in rec["runs"]] == [1, 2, 3]
    m = rec["metrics"]["dev.masc.accuracy"]
    assert m["values"] == [0.6, 0.7, 0.8]
    assert m["mean"] == pytest.approx(0.7) and m["std"] == pytest.approx(0.1)
    assert rec["seed_provenance"]["1"] == {"code_version": "old", "finished": "then"}
    # a seed trained here: the code its checkpoint recorded when it started, not HEAD at the end
    assert rec["seed_provenance"]["3"]["code_version"] == {"git_commit": "at-start"}
    assert rec["command"].endswith("--seeds 1 2 3 --output runs/bench/r")  # relative to the workspace
    assert (ws.root / "runs" / "bench" / "r" / "seed3" / "metrics.json").is_file()


def test_a_seed_with_its_checkpoint_is_not_taken_from_the_record(bench, ws):
    config = load_run_config("text-cls", None, [])
    first = run_seeds(ws, "r", "text-cls", "twitter2015", "masc", None, [], [1, 2, 3], recorded=earlier_record(config))
    # seed 3's checkpoint is here: a rerun resumes it through train_seeds, and keeps 1-2 from the record
    again = run_seeds(ws, "r", "text-cls", "twitter2015", "masc", None, [], [1, 2, 3], recorded=first)
    assert bench == [[3], [3]]
    assert again["seed_provenance"]["1"] == {"code_version": "old", "finished": "then"}


def test_a_record_of_another_config_is_refused(bench, ws):
    other = load_run_config("text-cls", None, ["train.epochs=7"])
    with pytest.raises(SystemExit, match="another config"):
        run_seeds(ws, "r", "text-cls", "twitter2015", "masc", None, [], [1, 2, 3], recorded=earlier_record(other))
    assert bench == []


# benchmarks/baselines.py keeps recorded seeds the same way
def test_baselines_train_only_the_seeds_results_lacks(tmp_path, monkeypatch):
    import json

    baselines = load_script("baselines")
    monkeypatch.setattr(baselines, "WS", Workspace(tmp_path))
    trained: list[list[int]] = []

    def fake_train_seeds(config, dataset, task, out, seeds, **kw):
        trained.append(list(seeds))
        for s in seeds:
            assert Path(out).parent == tmp_path / "runs" / "bench"
            (Path(out) / f"seed{s}").mkdir(parents=True)
            metrics = {**seed_run(s, 0.5 + s / 10), "history": [{"train_seconds": 30.0, "train_cpu_seconds": 29.0}]}
            (Path(out) / f"seed{s}" / "metrics.json").write_text(json.dumps(metrics))

    monkeypatch.setattr("mabsa.engine.trainer.train_seeds", fake_train_seeds)
    monkeypatch.setattr(
        baselines,
        "measure_speed",
        lambda run_dir, dataset: {"predict_posts_per_s": 99.0, "measured_on": Path(run_dir).name},
    )
    name = "t15-masc-minilm"
    config = load_run_config("text-cls", sets=baselines.train_sets(baselines.spec(name), 2, 1))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / f"baselines_{name}.json").write_text(
        json.dumps({**earlier_record(config), "name": name, "predict_posts_per_s": 5.0})
    )

    rec = baselines.run_one(name, [1, 2, 3], 2, 1)
    assert trained == [[3]]
    assert rec["seeds"] == [1, 2, 3] and not rec["partial"]
    assert rec["metrics"]["dev.masc.accuracy"]["values"] == [0.6, 0.7, 0.8]
    assert rec["train_seconds_per_epoch_all"] == [30.0, 10.0, 10.0]  # seed 3's epoch, then 1-2's recorded means
    assert rec["measured_on"] == "seed3"  # speed from the checkpoint that is here
    assert list(rec["machine"]) == ["cpus", "python", "torch", "torch_threads", "loadavg_before", "loadavg_after"]
    saved = json.loads((tmp_path / "results" / f"baselines_{name}.json").read_text())
    assert saved["seeds"] == [1, 2, 3]
