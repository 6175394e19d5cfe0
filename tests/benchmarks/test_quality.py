"""benchmarks/quality.py pipeline: each seed's best term and polarity stages composed into one
pipeline and scored once per split, their seed ensembles too; the record's means are the seeds'."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from benchmark_support import load_script
from mabsa.data import load_dataset
from mabsa.engine.distillation import load_targets
from mabsa.engine.inference import evaluate
from mabsa.engine.reports import Workspace
from mabsa.engine.stage_outputs import load_records
from mabsa.models import get_model_class
from mabsa.models.pipeline.model import compose_pipeline
from mabsa.models.saving import load_model, save_model
from model_support import TINY_ENCODER

POSTS = {split: load_dataset("twitter2015", split)[:6] for split in ("train", "dev", "test")}


def tiny(model: str, task: str, seed: int):
    torch.manual_seed(seed)
    return get_model_class(model).create(dict(TINY_ENCODER), task).eval()


@pytest.fixture
def quality(tmp_path, monkeypatch):
    module = load_script("quality")
    ws = Workspace(tmp_path)
    monkeypatch.setattr(module, "WS", ws)
    monkeypatch.setattr(module, "RESULTS", ws.results)
    monkeypatch.setattr("mabsa.data.load_dataset", lambda dataset, split: POSTS[split])
    return module


def record_stages(quality, runs, seeds):
    """Tiny checkpoints of both stages per seed, recorded as a final run records them: the term
    stage first (the polarity stage answers for the terms it finds)."""
    for s in seeds:
        for stage, model, seed in (("mate", "text-crf", s), ("masc", "text-cls", 10 + s)):
            checkpoint = runs / f"t15-{stage}-best" / f"seed{s}"
            save_model(tiny(model, stage, seed=seed), checkpoint)
            (checkpoint / "metrics.json").write_text("{}")  # what a finished run leaves
    for stage in ("mate", "masc"):
        name = f"t15-{stage}-best"
        for s in seeds:
            quality.record_stage_outputs(name, quality.QUALITY_RUNS[name], s, runs)


def test_pipeline_scores_each_seed_and_the_ensemble(quality, tmp_path):
    runs = tmp_path / "runs"
    record_stages(quality, runs, [1, 2])
    for s in (1, 2):  # the checkpoints are gone: the records are enough
        shutil.rmtree(runs / "t15-masc-best" / f"seed{s}")

    record = quality.pipeline("t15", [1, 2], True)

    saved = json.loads((tmp_path / "results" / "best_twitter2015.json").read_text())
    assert saved["seeds"] == [1, 2] and saved["task"] == "jmasa"
    # seed 2's row is the score of that seed's two stages composed by hand
    save_model(tiny("text-cls", "masc", seed=12), tmp_path / "masc2")
    by_hand, _ = load_model(compose_pipeline(runs / "t15-mate-best" / "seed2", tmp_path / "masc2", tmp_path / "hand"))
    expected = evaluate(by_hand, POSTS["test"])
    assert expected["mate"]["n_pred"] > 0
    assert record["runs"][1]["test"]["jmasa"] == expected["jmasa"]
    assert record["runs"][1]["test"]["mate"] == expected["mate"]
    values = [r["test"]["jmasa"]["f1"] for r in record["runs"]]
    assert saved["metrics"]["test.jmasa.f1"]["values"] == values
    assert saved["metrics"]["test.jmasa.f1"]["mean"] == pytest.approx(sum(values) / 2)
    assert set(saved["ensemble"]) >= {"dev", "test"}
    assert any("mabsa ensemble" in c for c in saved["commands"])

    # results/best.json and the docs block: the pipeline's scores, the stages' training cost
    for stage, cpu in (("mate", 1.5), ("masc", 0.25)):
        metrics = {"test.masc.accuracy": {"mean": 0.8, "std": 0.01, "values": [0.79, 0.81]}}
        (tmp_path / "results" / f"quality_t15-{stage}-best.json").write_text(
            json.dumps({"cpu_hours": cpu, "metrics": metrics})
        )
    summary = quality.best_summary()["twitter2015"]
    assert summary["jmasa_f1"] == {
        "mean": round(100 * sum(values) / 2, 1),
        "std": round(100 * saved["metrics"]["test.jmasa.f1"]["std"], 1),
        "seeds": 2,
    }
    assert summary["masc_acc"] == {"mean": 80.0, "std": 1.0, "seeds": 2} and summary["cpu_hours_to_train"] == 1.75
    assert summary["ensemble_jmasa_f1"] == round(100 * saved["ensemble"]["test"]["jmasa"]["f1"], 1)
    block = quality.best_block({"twitter2015": summary})
    assert "| twitter2015 | **" in block and "66.0 / 68.9" in block and "mabsa pipeline" in block


def test_target_lines_say_what_is_missed_and_which_stage_holds_the_points(quality):
    def m(mean):
        return {"mean": mean, "std": 0.5, "seeds": 3}

    summary = {
        "twitter2015": {
            "jmasa_f1": m(67.2),
            "mate_f1": m(85.0),
            "sentiment_acc_on_found": m(79.0),
            "masc_acc": m(79.5),
            "ensemble_jmasa_f1": 69.0,
        }
    }
    (line,) = [x for x in quality.target_lines(summary) if x.startswith("- twitter2015")]
    assert "JMASA 67.2 vs 66.0 (met)" in line and "stretch 67.2 vs 68.9 (missed by 1.7)" in line
    assert "MATE 85.0 vs 85.0 (met)" in line and "MASC 79.5 vs 80.5 (missed by 1.0)" in line
    assert "85.0 x 79.0% = 67.2" in line and "needs 81.1% sentiment on found terms" in line  # 68.9 / 85.0
    assert "scores 69.0" in line


def test_teacher_is_the_seed_ensemble_pipeline_on_the_training_posts(quality, tmp_path):
    record_stages(quality, tmp_path / "runs", [1, 2])
    path = quality.teacher("t15", tmp_path / "teacher.npz")
    targets = load_targets(path)
    assert list(targets) == [p.id for p in POSTS["train"]]
    assert all(
        t.shape == (len(p.tokens), 7) and np.allclose(t.sum(1), 1) for p, t in zip(POSTS["train"], targets.values())
    )
    quality.stage_outputs_path("t15-masc-best", 2).unlink()
    with pytest.raises(SystemExit, match="t15-masc-best seeds \\[2\\]"):
        quality.teacher("t15", tmp_path / "teacher.npz")


def test_a_checkpoint_still_training_is_not_recorded(quality, tmp_path):
    """A run in progress already holds an early epoch's weights: recording them would leave a
    record that looks final."""
    runs = tmp_path / "runs"
    record_stages(quality, runs, [1])
    save_model(tiny("text-cls", "masc", seed=12), runs / "t15-masc-best" / "seed2")
    quality.record_stage_outputs("t15-masc-best", quality.QUALITY_RUNS["t15-masc-best"], 2, runs)
    assert not quality.stage_outputs_path("t15-masc-best", 2).exists()
    assert quality.stage_outputs_path("t15-masc-best", 1).is_file()


def test_pipeline_names_missing_stage_records(quality, tmp_path):
    with pytest.raises(SystemExit, match="no recorded outputs of t15-mate-best seeds \\[1\\]"):
        quality.pipeline("t15", [1], False)
    record_stages(quality, tmp_path / "runs", [1])
    quality.stage_outputs_path("t15-masc-best", 1).unlink()
    with pytest.raises(SystemExit, match="no recorded outputs of t15-masc-best seeds \\[1\\]"):
        quality.pipeline("t15", [1], False)


def test_a_run_merges_its_seeds_and_rerecords_a_stale_polarity_stage(quality, tmp_path, monkeypatch):
    """Seeds run in different sessions end in one record; a polarity record made before a term
    seed was recorded is redone while its checkpoint exists."""
    runs = tmp_path / "runs"
    record_stages(quality, runs, [1])
    trained = []

    def train_seeds(config, dataset, task, out, seeds, **kwargs):
        trained.extend(seeds)
        for s in seeds:
            scores = {"masc": {"accuracy": 0.7 + s / 100}}
            history = [{"selection": 0.7, "train_cpu_seconds": 1800, "eval_seconds": 0}]
            metrics = {"best_epoch": 1, "dev": scores, "test": scores, "history": history}
            (out / f"seed{s}" / "metrics.json").write_text(json.dumps(metrics))

    monkeypatch.setattr("mabsa.engine.trainer.train_seeds", train_seeds)
    name, run = "t15-masc-best", quality.QUALITY_RUNS["t15-masc-best"]
    quality.record(name, run, [1], runs)
    save_model(tiny("text-crf", "mate", seed=2), runs / "t15-mate-best" / "seed2")
    (runs / "t15-mate-best" / "seed2" / "metrics.json").write_text("{}")
    quality.record_stage_outputs("t15-mate-best", quality.QUALITY_RUNS["t15-mate-best"], 2, runs)
    save_model(tiny("text-cls", "masc", seed=12), runs / name / "seed2")
    out = quality.record(name, run, [2], runs)
    assert trained == [1, 2] and out["seeds"] == [1, 2] and [r["seed"] for r in out["runs"]] == [1, 2]
    assert out["metrics"]["test.masc.accuracy"]["values"] == pytest.approx([0.71, 0.72])
    assert out["cpu_hours"] == 1.0 and "--seeds 1 2" in out["command"]
    for s in (1, 2):
        _, meta = load_records(quality.stage_outputs_path(name, s))
        assert meta["term_seeds"] == [1, 2] and meta["seed"] == s


def test_masc_candidates_are_ordered_by_t15_dev(quality):
    """The MASC answer is the model T15 dev selects, whatever its test score; a dataset without a
    record is 'not run', a model without a T15 record is left out."""
    quality.RESULTS.mkdir(parents=True)

    def record(name: str, dev: list[float], test: list[float]) -> None:
        def summary(values):
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5
            return {"mean": mean, "std": std, "values": values}

        metrics = {"dev.masc.accuracy": summary(dev), "test.masc.accuracy": summary(test)}
        (quality.RESULTS / name).write_text(json.dumps({"metrics": metrics}))

    record("quality_t15-masc-best.json", [0.75, 0.77], [0.81, 0.80])
    record("fite_t15-fite-de.json", [0.78], [0.79])
    record("fite_t17-fite-de.json", [0.70], [0.72])
    record("fite_t17-fite.json", [0.90], [0.90])  # no T15 record: not a candidate
    rows = quality.masc_candidates()
    assert [r["model"].split(" ")[0] for r in rows] == ["FITE-DE", "MPNet"]
    assert rows[0]["t15"]["dev"] == {"mean": 78.0, "std": 0.0, "seeds": 1}
    assert rows[1]["t15"]["test"] == {"mean": 80.5, "std": 0.7, "seeds": 2} and "t17" not in rows[1]
