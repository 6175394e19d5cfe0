"""The benchmark scripts' shared report helpers: number formats, the generated sections of
docs/results.md, run locks and result records, all under a Workspace root."""

from __future__ import annotations

import json

import pytest

from mabsa.engine.reports import (
    DOC_HEADER,
    Workspace,
    claim_run,
    iea_run_name,
    mean_std,
    paired_diffs,
    pm,
    replace_section,
    set_suffix,
)


def test_pm_formats_mean_and_std_in_percent():
    metrics = {
        "two": {"mean": 0.6, "std": 0.014, "values": [0.59, 0.61]},
        "one": {"mean": 0.5, "std": 0.0, "values": [0.5]},
    }
    assert pm(metrics, "two") == "60.0 ± 1.4"
    assert pm(metrics, "one") == "50.0"  # one seed: no spread to report
    assert pm(metrics, "missing") == "-"
    assert pm(metrics, "two", scale=1.0) == "0.6 ± 0.0"


def test_mean_std_is_what_pm_reads():
    assert mean_std([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "values": [1.0, 3.0]}
    assert mean_std([5.0]) == {"mean": 5.0, "std": 0.0, "values": [5.0]}
    assert pm({"d": mean_std([0.1])}, "d") == "10.0"


def test_paired_diffs_pairs_by_seed_and_skips_missing_values():
    a = [{"seed": 1, "x": 5}, {"seed": 2, "x": 7}, {"seed": 3, "x": 9}, {"seed": 4}]
    b = [{"seed": 2, "x": 4}, {"seed": 1, "x": 1}, {"seed": 4, "x": 0}]
    # seed 3: b has no run; seed 4: a's run lacks the value
    assert paired_diffs(a, b, lambda r: r["x"]) == [4, 3]


def test_replace_section_replaces_between_the_markers(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("intro\n\n<!-- a -->\nold\nlines\n<!-- /a -->\ntail\n")
    replace_section("<!-- a -->", "<!-- /a -->", "\n  new\n\n", doc)
    assert doc.read_text() == "intro\n\n<!-- a -->\nnew\n<!-- /a -->\ntail\n"
    assert (tmp_path / "results.md.lock").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md", "results.md.lock"]  # no temp file left


def test_replace_section_appends_a_missing_section(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("intro\n\n\n")
    replace_section("<!-- b -->", "<!-- /b -->", "x", doc)
    assert doc.read_text() == "intro\n\n<!-- b -->\nx\n<!-- /b -->\n"


def test_replace_section_starts_a_missing_doc_with_the_header(tmp_path):
    doc = tmp_path / "results.md"
    replace_section("<!-- b -->", "<!-- /b -->", "x", doc)
    assert doc.read_text() == DOC_HEADER.rstrip("\n") + "\n\n<!-- b -->\nx\n<!-- /b -->\n"


def test_claim_run_lets_one_holder_at_a_time(tmp_path, capsys):
    first = claim_run("r", tmp_path / "runs")
    assert first is not None
    assert claim_run("r", tmp_path / "runs") is None
    assert "r: another process is running it, skipped" in capsys.readouterr().out
    other = claim_run("s", tmp_path / "runs")  # another run name is free
    assert other is not None
    first.close()
    again = claim_run("r", tmp_path / "runs")
    assert again is not None
    again.close()
    other.close()


def test_workspace_paths_default_to_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ws = Workspace()
    assert ws.root == tmp_path
    assert ws.results == tmp_path / "results"
    assert ws.doc == tmp_path / "docs" / "results.md"
    assert ws.runs() == tmp_path / "runs" / "bench"
    assert ws.runs("iea") == tmp_path / "runs" / "iea"


def test_save_result_keeps_a_record_that_only_differs_in_timing(tmp_path):
    ws = Workspace(tmp_path)
    record = {"name": "fite-t15-fite", "metrics": {"m": 1}, "wall_seconds": 10.0, "finished": "then"}
    path = ws.save_result("fite", record)
    assert path == tmp_path / "results" / "fite_t15-fite.json"  # the prefix is not repeated
    # a rerun that only resumed finished seeds: same results, other timing -> the file stays
    ws.save_result("fite", {**record, "wall_seconds": 1.0, "finished": "now"})
    assert json.loads(path.read_text())["wall_seconds"] == 10.0
    # other results replace it
    ws.save_result("fite", {**record, "metrics": {"m": 2}, "wall_seconds": 1.0})
    assert json.loads(path.read_text())["metrics"] == {"m": 2}


def test_a_report_does_not_restamp_a_record_with_its_own_commit(tmp_path):
    # benchmarks/lrsa.py report recomputes its records: same rows -> the training commit stays
    ws = Workspace(tmp_path)
    path = tmp_path / "results" / "lrsa_twitter2015.json"
    ws.write_record(path, {"rows": [1], "code_version": {"git_commit": "trained"}})
    ws.write_record(path, {"rows": [1], "code_version": {"git_commit": "reported"}})
    assert json.loads(path.read_text())["code_version"] == {"git_commit": "trained"}
    ws.write_record(path, {"rows": [2], "code_version": {"git_commit": "reported"}})
    assert json.loads(path.read_text()) == {"rows": [2], "code_version": {"git_commit": "reported"}}


def test_load_results_and_the_text_baselines_by_dataset(tmp_path):
    ws = Workspace(tmp_path)
    for name, dataset in [
        ("t17-jmasa-minilm", "twitter2017"),
        ("t15-jmasa-minilm", "twitter2015"),
        ("t15-jmasa-mpnet", "twitter2015"),
        ("t15-masc-minilm", "twitter2015"),
    ]:
        ws.save_result("baselines", {"name": name, "dataset": dataset})
    assert [r["name"] for r in ws.load_results("baselines")] == [
        "t15-jmasa-minilm",
        "t15-jmasa-mpnet",
        "t15-masc-minilm",
        "t17-jmasa-minilm",
    ]
    found = ws.baselines_by_dataset("jmasa")
    assert {d: r["name"] for d, r in found.items()} == {
        "twitter2015": "t15-jmasa-minilm",
        "twitter2017": "t17-jmasa-minilm",
    }
    assert ws.baselines_by_dataset("jmasa", "mpnet")["twitter2015"]["name"] == "t15-jmasa-mpnet"
    assert ws.load_results("clamp") == []


def test_machine_records_the_load_before_and_after_and_extra_fields():
    from mabsa.engine.reports import machine

    m = machine((1.234, 2.0, 3.0), threads="1")
    assert m["loadavg_before"] == [1.23, 2.0, 3.0]
    assert len(m["loadavg_after"]) == 3 and m["threads"] == "1"
    assert m["cpus"] >= 1 and "python" in m
    assert "loadavg_before" not in machine()


def test_set_items_name_the_run():
    assert set_suffix([]) == ""
    assert set_suffix(["model_args.finetune=full", "train.lr=1e-4"]) == "_finetune-full_lr-1e-4"
    assert set_suffix(['model_args.lora={"r": 16}']) == "_lora-r-16"
    assert set_suffix(["train.lr=1e-4"]) != set_suffix(["train.lr=3e-4"])


def test_iea_run_names_keep_the_first_runs_names_and_glob_every_seed(tmp_path):
    """Names of committed results/: a part appears only away from its first value."""
    assert iea_run_name("twitter2015", "jmasa", 1) == "twitter2015_nmi_s1"
    assert iea_run_name("twitter2015", "jmasa", 1, posts=(400, 120)) == "twitter2015_nmi_s1_400x120"
    assert iea_run_name("twitter2017", "masc", 2, posts=(None, None)) == "twitter2017_masc_nmi_s2_full"
    assert (
        iea_run_name(
            "twitter2015",
            "jmasa",
            1,
            ablation="no_aligner",
            posts=(800, 300),
            generator="gemma3-270m",
            sets=["train.patience=1"],
            sweep=True,
        )
        == "sweep_twitter2015_no_aligner_s1_800x300_gemma3-270m_patience-1"
    )
    for seed in (1, 2):  # a SmolLM2 run of the same budget is not a Gemma run
        for generator in ("smollm2", "gemma3-270m"):
            name = iea_run_name("twitter2015", "jmasa", seed, posts=(None, None), generator=generator)
            (tmp_path / f"{name}.json").write_text("{}")
    pattern = iea_run_name("twitter2015", "jmasa", "*", posts=(None, None), generator="gemma3-270m")
    assert sorted(f.name for f in tmp_path.glob(pattern + ".json")) == [
        "twitter2015_nmi_s1_full_gemma3-270m.json",
        "twitter2015_nmi_s2_full_gemma3-270m.json",
    ]
