"""benchmarks/iea.py: invalid-answer counts, answer lengths, the budget sweep table, and each run's
generator and command (its --set items, which also name it: mabsa.engine.reports.set_suffix)."""

from benchmark_support import load_script


def test_invalid_answers_add_up_every_dev_evaluation_and_the_test():
    iea = load_script("iea")
    epochs = [
        {"dev": {"prediction_counts": {"posts": 5, "unparseable": 1, "unmatched_terms": 2, "cut_by_budget": 0}}},
        {"dev": {"prediction_counts": {"posts": 5, "unparseable": 0, "unmatched_terms": 1, "cut_by_budget": 1}}},
        {"dev": {}},  # a record written before the counts were recorded
    ]
    test = {"prediction_counts": {"posts": 4, "unparseable": 2, "unmatched_terms": 0, "cut_by_budget": 3}}
    assert iea._invalid_answers(epochs, test) == {
        "unparseable_generations_dev_and_test": 3,
        "generated_terms_not_in_the_post_dev_and_test": 3,
        "answers_cut_by_budget_dev_and_test": 4,
    }
    assert iea._invalid_answers(epochs, None)["answers_cut_by_budget_dev_and_test"] == 1  # dev-only


def test_invalid_counts_free_and_constrained_answers_of_one_checkpoint(tmp_path, monkeypatch):
    """A random tiny generator writes answers the parser cannot read; constrained, it cannot."""
    import json

    from iea_support import tiny_llama_dir
    from mabsa.engine import trainer
    from mabsa.engine.config import load_run_config
    from mabsa.engine.reports import Workspace

    iea = load_script("iea")
    monkeypatch.setattr(iea, "RESULTS", Workspace(tmp_path).results)
    llama = tiny_llama_dir(tmp_path / "llama")
    sets = [
        f"model_args.generator=hf:{llama}",
        "model_args.random_init=true",
        "model_args.ablation=no_aligner",
        "model_args.max_new_tokens=8",
        "train.max_train_posts=8",
        "train.max_eval_posts=4",
        "train.batch_size=8",
        "train.epochs=1",
    ]
    trainer.train(load_run_config("iea", sets=sets), "twitter2015", "jmasa", tmp_path / "tiny", progress=False)

    class Args:
        checkpoint, split, posts = tmp_path / "tiny", "dev", 6

    iea.invalid(Args)
    record = json.loads((tmp_path / "results" / "iea_invalid_tiny.json").read_text())
    assert record["posts"] == 6
    assert record["free"]["generation_log"]["posts"] == record["constrained"]["generation_log"]["posts"] == 6
    assert record["free"]["generation_log"]["unparseable"] + record["free"]["generation_log"]["unmatched_terms"] > 0
    assert record["constrained"]["generation_log"]["unparseable"] == 0
    assert record["constrained"]["generation_log"]["unmatched_terms"] == 0


def test_pair_end_lengths_count_the_answer_up_to_each_pair():
    """Pairs are written in post order, so the second pair closes after both (one token per word
    here: "(a, positive)" is 2 words, "(a, positive); (b c, negative)" 5)."""
    from mabsa.data.records import Aspect, Polarity

    iea = load_script("iea")
    aspects = [Aspect(3, 5, "b c", Polarity.NEG), Aspect(0, 1, "a", Polarity.POS)]
    assert iea.pair_end_lengths(aspects, lambda text: len(text.split())) == [2, 5]
    assert iea.pair_end_lengths([], lambda text: len(text.split())) == []


def test_sweep_table_lists_dev_scores_best_first_and_no_test_score():
    iea = load_script("iea")

    def point(finetune, lr, curve, cpu):
        return {
            "dataset": "twitter2015",
            "generator": "smollm2",
            "config": {
                "model_args": {"finetune": finetune, "lora": {"r": 8, "target_modules": ["q_proj"]}},
                "train": {"lr": lr},
            },
            "train_posts": 800,
            "eval_posts": 300,
            "dev": {"jmasa": {"f1": max(curve)}},
            "dev_curve": curve,
            "best_epoch": curve.index(max(curve)) + 1,
            "train_cpu_seconds_per_epoch": cpu,
            "command": f"python benchmarks/iea.py run --sweep --set train.lr={lr}",
        }

    rows = iea.sweep_table([point("lora", 1e-3, [0.40, 0.452], 1200.0), point("full", 5e-5, [0.50, 0.48], 1600.0)])
    body = [line for line in rows if line.startswith("| twitter2015")]
    assert len(body) == 2
    assert "| full | 5e-05 | - |" in body[0] and "| 50.0 48.0 | **50.0** (epoch 1) | 2.00 |" in body[0]
    assert "| lora | 0.001 | r=8, q_proj |" in body[1] and "| 40.0 45.2 | **45.2** (epoch 2) | 1.50 |" in body[1]
    assert iea.sweep_table([]) == []
    assert iea.sweep_table([point("lora", 1e-3, [0.40, 0.452], 1200.0)], "masc") == []  # no MASC point
    # a run on all training posts (train_posts None) is priced per post of the whole set
    full = {**point("lora", 3e-3, [0.43, 0.50], 1050.6), "train_posts": None, "eval_posts": None}
    assert "| all | all | 43.0 50.0 | **50.0** (epoch 2) | 0.50 |" in iea.sweep_table([full])[-1]


def test_a_masc_sweep_has_its_own_table_scored_by_dev_accuracy():
    iea = load_script("iea")
    masc = {
        "dataset": "twitter2015",
        "task": "masc",
        "generator": "smollm2",
        "config": {"model_args": {"lora": {"r": 16, "target_modules": ["q_proj"]}}, "train": {"lr": 3e-4}},
        "train_posts": 800,
        "eval_posts": 300,
        "dev": {"masc": {"accuracy": 0.705, "macro_f1": 0.6}},
        "dev_curve": [0.655, 0.705, 0.69],
        "best_epoch": 2,
        "train_cpu_seconds_per_epoch": 800.0,
        "command": "python benchmarks/iea.py run --sweep --task masc",
    }
    assert iea.sweep_table([masc]) == []  # not in the JMASA table
    rows = iea.sweep_table([masc], "masc")
    assert "dev MASC accuracy per epoch" in rows[3]
    body = [line for line in rows if line.startswith("| twitter2015")]
    assert body == [
        "| twitter2015 | smollm2 | lora | 0.0003 | r=16, q_proj | 800 of 2101 | 300 | 65.5 70.5 69.0 "
        "| **70.5** (epoch 2) | 1.00 | `python benchmarks/iea.py run --sweep --task masc` |"
    ]


def test_a_run_names_its_generator_and_repeats_its_set_items():
    """The result tables name each row's generator and tuning, and a row's command repeats the
    run's --set items (a chosen budget is a set of them) and the threads it was given."""
    iea = load_script("iea")
    record = {
        "dataset": "twitter2015",
        "task": "jmasa",
        "ablation": "nmi",
        "seed": 2,
        "train_posts": None,
        "eval_posts": None,
        "generator": "smollm2",
        "sets": ["model_args.finetune=full", "train.lr=5e-5", 'model_args.lora.target_modules=["q_proj"]'],
        "config": {"model_args": {"finetune": "full", "lora": {"r": 8}}, "train": {"lr": 5e-5, "epochs": 3}},
    }
    assert iea._generator(record) == "smollm2, full, lr 5e-05"
    assert iea.run_command(record) == (
        "python benchmarks/iea.py run --dataset twitter2015 --task jmasa --ablation nmi --seed 2 --full --epochs 3"
        " --set model_args.finetune=full --set train.lr=5e-5 --set 'model_args.lora.target_modules=[\"q_proj\"]'"
    )
    lora = {**record, "generator": "gemma3-270m", "sets": []}
    lora["config"] = {"model_args": {"lora": {"r": 16}}, "train": {"lr": 1e-3, "epochs": 1}}
    assert iea._generator(lora) == "gemma3-270m, LoRA r=16, lr 0.001"
    assert iea.run_command(lora).endswith("--epochs 1 --generator gemma3-270m")
    # a run given both cores says so in its command (the thread count is not part of its name)
    assert not iea.run_command(lora).startswith("OMP_NUM_THREADS")
    both_cores = {**lora, "machine": {"torch_threads": 2}}
    assert iea.run_command(both_cores).startswith("OMP_NUM_THREADS=2 python benchmarks/iea.py run ")
