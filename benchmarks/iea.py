"""IEA benchmark: FGCA + aligner, then the CPU-path generator on Twitter-2015/2017 and ablations.

    python benchmarks/iea.py aligner                      # FGCA 2000/500/500, train + span accuracy
    python benchmarks/iea.py run --dataset twitter2015 [--task jmasa|mate|masc] [--ablation nmi|no_aligner|no_interpretation|random_regions]
    python benchmarks/iea.py run --sweep --train-posts 800 --eval-posts 300 --epochs 3 --set ...  # a budget point, dev only
    python benchmarks/iea.py report                       # the IEA section of docs/results.md
    python benchmarks/iea.py lengths [--generator gemma3-270m]  # gold answers vs the generation budget

Heavy: run one at a time under the shared lock, one torch thread (OMP_NUM_THREADS=2 gives a run
alone on the machine both cores; the thread count is recorded in the result, not in its name):
    OMP_NUM_THREADS=1 nohup nice flock /tmp/mabsa-bench.lock python benchmarks/iea.py ... > runs/iea_X.log 2>&1 &
Checkpoints go to runs/iea/ (gitignored); results/iea_*.json hold the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

from mabsa.engine.experiments import DATASETS, DEV_ONLY, PAPER
from mabsa.engine.reports import Workspace, claim_run, iea_run_name, machine, pm

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
THREADS = int(os.environ["OMP_NUM_THREADS"])  # torch's own pool follows it (default 1: runs share the cores)

ROOT = Path(__file__).resolve().parents[1]
WS = Workspace(ROOT)
RUNS = WS.runs("iea")
RESULTS = WS.results
FGCA_DIR = RUNS / "fgca"
ALIGNER_DIR = RUNS / "aligner"
#: the IEA paper's scores of its full model, by the names results/iea_*.json record them under
PAPER_FIELDS = {"jmasa_f1": "jmasa.f1", "mate_f1": "mate.f1", "masc_acc": "masc.accuracy", "masc_f1": "masc.macro_f1"}


def paper(dataset: str, field: str = "jmasa_f1", row: str = "nmi") -> float | None:
    """An IEA paper number (:data:`mabsa.engine.experiments.PAPER`): ``field`` of :data:`PAPER_FIELDS`
    for the full model (``row`` ``nmi``) or one of its ablations, None where the paper has none."""
    return PAPER.get(("iea", row, dataset, PAPER_FIELDS[field]))


def _command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])


def _write(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    data = {
        **data,
        "command": _command(),
        "machine": machine(threads=os.environ.get("OMP_NUM_THREADS")),
        "written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def aligner(args) -> None:
    import torch

    from mabsa.engine.config import load_run_config
    from mabsa.engine.trainer import train
    from mabsa.models.iea.aligner import Aligner, evaluate_aligner
    from mabsa.models.iea.fgca import make_fgca, read_fgca, stats, write_fgca

    torch.set_num_threads(THREADS)
    data = make_fgca(seed=args.seed)
    write_fgca(data, FGCA_DIR)
    config = load_run_config(config_file="iea-aligner", sets=[f"train.epochs={args.epochs}"])
    t0 = time.perf_counter()
    metrics = train(config, str(FGCA_DIR), "mate", ALIGNER_DIR, resume=True, progress=False)
    train_seconds = time.perf_counter() - t0
    al = Aligner.from_checkpoint(ALIGNER_DIR)
    out = {
        "fgca": {k: stats(v) for k, v in data.items()},
        "seed": args.seed,
        "train_seconds": train_seconds,
        "best_epoch": metrics["best_epoch"],
        "engine_dev": metrics["dev"],
        "engine_test": metrics["test"],
    }
    for split in ("dev", "test"):
        t1 = time.perf_counter()
        out[split] = evaluate_aligner(al, read_fgca(FGCA_DIR, split))
        out[split]["seconds"] = time.perf_counter() - t1
    _write("iea_aligner.json", out)


RUN_DEFAULTS = {"train_posts": 200, "eval_posts": 120, "epochs": 1}


def run(args) -> None:
    """Train IEA (CPU path) with the engine's loop: first N train posts, 1 epoch, dev and test =
    the first M posts of each split (one test evaluation, with the dev-selected weights)."""
    from mabsa.engine.config import load_run_config
    from mabsa.engine.trainer import train

    if args.full:
        args.train_posts = args.eval_posts = None
    name = iea_run_name(
        args.dataset,
        args.task,
        args.seed,
        ablation=args.ablation,
        posts=(args.train_posts, args.eval_posts),
        generator=args.generator,
        sets=args.set,
        sweep=args.sweep,
    )
    if (RESULTS / f"iea_{name}.json").is_file():  # finished: keep its timings (delete the file to redo)
        print(f"{name}: done, results/iea_{name}.json")
        return
    lock = claim_run(name, RUNS)  # noqa: F841 (held until this run returns)
    if lock is None:
        return
    # every 25 steps (200 posts, a few CPU-minutes): a full-size epoch survives a kill
    sets = [
        f"model_args.ablation={args.ablation}",
        f"model_args.generator={args.generator}",
        f"train.max_train_posts={json.dumps(args.train_posts)}",
        f"train.max_eval_posts={json.dumps(args.eval_posts)}",
        f"train.epochs={args.epochs}",
        f"train.seed={args.seed}",
        "train.save_every_steps=25",
        f"train.num_threads={THREADS}",  # speed only: not in the run's name, may change on resume
        *([DEV_ONLY] if args.sweep else []),
        *args.set,
    ]
    if args.ablation not in ("no_aligner", "text_only"):
        sets.append(f"model_args.aligner={ALIGNER_DIR}")
    config = load_run_config("iea", sets=sets)
    t0 = time.perf_counter()
    metrics = train(config, args.dataset, args.task, RUNS / name, resume=True, progress=False)
    wall = time.perf_counter() - t0
    hist = metrics["history"][-1] if metrics["history"] else {}
    n_dev = min(args.eval_posts or 10**9, {"twitter2015": 727, "twitter2017": 577}[args.dataset])
    _write(
        f"iea_{name}.json",
        {
            "dataset": args.dataset,
            "task": args.task,
            "ablation": args.ablation,
            "seed": args.seed,
            "config": config,
            "train_posts": args.train_posts,
            "eval_posts": args.eval_posts,
            "best_epoch": metrics["best_epoch"],
            "dev": metrics["dev"],
            "dev_curve": [h["selection"] for h in metrics["history"]],
            # a budget sweep point is chosen on dev alone: its test score is never reported
            **({"sweep": True} if args.sweep else {"test": metrics["test"]}),
            "name": name,
            "train_seconds_per_epoch": metrics["train_seconds_per_epoch"],
            "train_cpu_seconds_per_epoch": _cpu_seconds_per_epoch(name),
            "generation_posts_per_second": n_dev / hist["eval_seconds"] if hist.get("eval_seconds") else None,
            "generation_note": "dev evaluation: instruction building + alignment + greedy batched "
            f"generation + parsing, per post, {THREADS} torch thread(s)",
            # the generator's invalid answers over every dev evaluation (one per epoch) and the test
            **_invalid_answers(_epoch_records(name), metrics["test"]),
            "generator": args.generator,
            "sets": args.set,
            "wall_seconds": wall,
            "paper": {field: paper(args.dataset, field) for field in PAPER_FIELDS},
        },
    )


def invalid(args) -> None:
    """Issue #30 item 2, before and after: the same trained checkpoint decodes the first
    ``--posts`` posts of a split freely and then constrained; counts answers the parser cannot
    read and generated terms that are not in the post, and the scores of both.
    Writes results/iea_invalid_<checkpoint name>.json."""
    import torch

    from mabsa.data import load_dataset
    from mabsa.engine import checkpoint as ckpt
    from mabsa.engine.inference import evaluate

    torch.set_num_threads(THREADS)
    model, config = ckpt.load_model(args.checkpoint)
    posts = load_dataset(config["data"]["dataset"], args.split)[: args.posts]
    out: dict = {"checkpoint": str(args.checkpoint), "split": args.split, "posts": len(posts)}
    for constrained in (False, True):
        model.constrained = constrained
        model.generation_log = dict.fromkeys(model.generation_log, 0)
        t0 = time.process_time()
        scores = evaluate(model, posts, batch_size=16)
        out["constrained" if constrained else "free"] = {
            "generation_log": dict(model.generation_log),
            "jmasa_f1": scores.get("jmasa", {}).get("f1"),
            "mate_f1": scores.get("mate", {}).get("f1"),
            "cpu_seconds": round(time.process_time() - t0, 1),
        }
    _write(f"iea_invalid_{Path(args.checkpoint).name}.json", out)


def coverage(args) -> None:
    """How the aligner places the stand-in regions on real posts (dev splits): share of regions
    aligned to a phrase, and share of aligned phrases that overlap a gold aspect (the paper's
    "cover rate" idea; gold is read only to score)."""
    from mabsa.data import load_dataset
    from mabsa.models.iea.aligner import Aligner
    from mabsa.models.iea.interpretations import stand_in_view

    al = Aligner.from_checkpoint(ALIGNER_DIR)
    out = {}
    for dataset in DATASETS.values():
        posts = load_dataset(dataset, "dev")
        pairs, owners = [], []
        for p in posts:
            for u in stand_in_view(p.extraction_input()).regions:
                pairs.append((p.tokens, u.interpretation))
                owners.append(p)
        spans = al.align(pairs)
        aligned = [(s, p) for s, p in zip(spans, owners) if s is not None]
        hits = sum(any(a.start < s[1] and s[0] < a.end for a in p.aspects) for s, p in aligned)
        out[dataset] = {
            "posts": len(posts),
            "posts_with_regions": len(set(id(p) for p in owners)),
            "regions": len(spans),
            "aligned": len(aligned),
            "aligned_share": len(aligned) / max(1, len(spans)),
            "aligned_on_gold_aspect": hits,
            "cover_rate": hits / max(1, len(aligned)),
        }
    _write("iea_coverage.json", out)


def pair_end_lengths(aspects, count_tokens) -> list[int]:
    """For each gold aspect of a post, in answer order, how many answer tokens the generator must
    write before that aspect's pair is closed (``count_tokens``: the answer text's token count)."""
    from mabsa.models.iea.parser import format_target

    ordered = sorted(aspects, key=lambda a: (a.start, a.end))
    return [count_tokens(format_target(ordered[: k + 1])) for k in range(len(ordered))]


def lengths(args) -> None:
    """The gold answers' lengths in generator tokens against the generation budget
    (``model_args.max_new_tokens``): the share of gold aspects whose pair a budget cuts, which no
    training can recover."""
    from mabsa.data import load_dataset
    from mabsa.models.iea.config import IEAConfig

    if args.generator == "smollm2":
        from mabsa.perception.llm import load_smollm2

        tokenizer = load_smollm2().tokenizer
    else:
        from transformers import AutoTokenizer

        from mabsa.embedded import embedded_path

        tokenizer = AutoTokenizer.from_pretrained(embedded_path(args.generator).parent)

    def count(answer: str) -> int:  # as the generator's training targets are encoded
        return len(tokenizer(" " + answer, add_special_tokens=False)["input_ids"])

    default = IEAConfig().max_new_tokens
    budgets = sorted({24, default})
    out: dict = {"generator": args.generator, "default_max_new_tokens": default}
    for dataset in DATASETS.values():
        for split in ("train", "dev", "test"):
            ends = [pair_end_lengths(p.aspects, count) for p in load_dataset(dataset, split)]
            flat = [n for post in ends for n in post]
            out[f"{dataset}/{split}"] = {
                "aspects": len(flat),
                "longest_answer": max(max(post, default=0) for post in ends),
                **{f"aspects_cut_by_{b}_tokens": sum(n > b for n in flat) / len(flat) for b in budgets},
            }
            print(dataset, split, out[f"{dataset}/{split}"])
    _write(f"iea_answer_lengths_{args.generator}.json", out)


BEGIN, END = "<!-- iea:begin (generated by benchmarks/iea.py report) -->", "<!-- iea:end -->"
LABELS = {
    "nmi": "IEA (NMI)",
    "no_aligner": "no aligner (regions + interpretations at the end)",
    "no_interpretation": "no interpretations (aligned `<region k>` markers only)",
    "random_regions": "random regions (another post's faces, aligned as usual)",
    "text_only": "text only (no image part)",
}
FULL_SIZE = {"twitter2015": 2101, "twitter2017": 1746}
GPU_COMMAND = (
    "accelerate launch -m mabsa.cli train --model iea --task jmasa --dataset twitter2015 "
    "--set model_args.generator=vlm:Qwen/Qwen3-VL-8B-Instruct --set model_args.aligner=checkpoints/iea-aligner "
    "--set model_args.regions=perceive --set model_args.segmenter=sam:facebook/sam-vit-huge "
    "--set model_args.interpreter=openai:http://localhost:8001/v1#Qwen/Qwen3-VL-2B-Instruct "
    "--set train.epochs=30 --set train.lr=1e-4 --set train.batch_size=4 --output checkpoints/iea-t15-qwen3vl8b"
)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _interval(f1: float, n: int) -> str:
    """Half-width of a rough 95% interval of a score over ``n`` gold items (normal approximation)."""
    return f"±{196 * (f1 * (1 - f1) / max(1, n)) ** 0.5:.0f}"


def _cpu_seconds_per_epoch(name: str) -> float | None:
    """Training CPU-seconds per epoch from the run's train log: unlike wall time, this does not
    depend on what else shared the cores (a run that waited at low priority looks 2-6x slower)."""
    cpu = [e["train_cpu_seconds"] for e in _epoch_records(name) if "train_cpu_seconds" in e]
    return sum(cpu) / len(cpu) if cpu else None


def _epoch_records(name: str) -> list[dict]:
    """The epoch lines of a run's train log (each with that epoch's dev scores)."""
    log_file = RUNS / name / "train_log.jsonl"
    if not log_file.is_file():
        return []
    return [e for e in map(json.loads, log_file.read_text().splitlines()) if e.get("type") == "epoch"]


def _invalid_answers(epochs: list[dict], test: dict | None) -> dict[str, int]:
    """What the generator's prediction counts (the trainer records them per evaluation) add up to
    over the dev evaluations of ``epochs`` and the ``test`` one (None: a dev-only run)."""
    total: Counter[str] = Counter()
    for scores in [e["dev"] for e in epochs] + ([test] if test else []):
        total.update(scores.get("prediction_counts", {}))
    return {
        "unparseable_generations_dev_and_test": total["unparseable"],
        "generated_terms_not_in_the_post_dev_and_test": total["unmatched_terms"],
        "answers_cut_by_budget_dev_and_test": total["cut_by_budget"],
    }


def _invalid(r: dict) -> str:
    """Answers that lose points before scoring: unparseable (free decoding) and, constrained,
    cut by max_new_tokens before their first pair (counted since 2026-12-04)."""
    cut = r.get("answers_cut_by_budget_dev_and_test")
    unparseable = r["unparseable_generations_dev_and_test"]
    return str(unparseable) if cut is None else f"{unparseable} unparseable, {cut} cut"


def _train_post_count(r: dict) -> int:
    """How many training posts a run used (``train_posts`` is None for all of them)."""
    return r["train_posts"] or FULL_SIZE[r["dataset"]]


def _size(r: dict) -> str:
    full = FULL_SIZE[r["dataset"]]
    return "all" if r["train_posts"] is None or r["train_posts"] >= full else f"{r['train_posts']} of {full}"


def _eval_size(r: dict) -> str:
    return "all" if r["eval_posts"] is None else str(r["eval_posts"])


def _tuning(r: dict) -> tuple[str, str, dict]:
    """How a record's generator was tuned: fine-tuning ("lora" / "full"), learning rate, and the
    LoRA settings (unused by full fine-tuning)."""
    args = r["config"]["model_args"]
    return args.get("finetune", "lora"), f"{r['config']['train']['lr']:g}", args.get("lora", {})


def _generator(r: dict) -> str:
    """A record's generator and its tuning in a few words: ``smollm2, LoRA r=8, lr 0.001``."""
    finetune, lr, lora = _tuning(r)
    tuning = f"LoRA r={lora.get('r')}" if finetune == "lora" else "full"
    return f"{r.get('generator', 'smollm2')}, {tuning}, lr {lr}"


def _threads(r: dict) -> int:
    """The torch threads a run used (results written before the option existed used 1)."""
    return int(r.get("machine", {}).get("torch_threads", 1))


def _thread_mark(r: dict) -> str:
    return "" if _threads(r) == 1 else f", {_threads(r)} threads alone on the machine"


def run_command(r: dict) -> str:
    """The full command of a result (sizes spelled out: the defaults may change)."""
    size = "--full" if r["train_posts"] is None else f"--train-posts {r['train_posts']} --eval-posts {r['eval_posts']}"
    threads = _threads(r)
    return (
        ("" if threads == 1 else f"OMP_NUM_THREADS={threads} ")
        + f"python benchmarks/iea.py run --dataset {r['dataset']} --task {r.get('task', 'jmasa')} "
        f"--ablation {r['ablation']} --seed {r['seed']} {size} --epochs {r['config']['train']['epochs']}"
        + (f" --generator {r['generator']}" if r.get("generator", "smollm2") != "smollm2" else "")
        + "".join(f" --set {shlex.quote(item)}" for item in r.get("sets", []))
    )


#: the name of the dev score each task's runs are selected on (``engine.inference.selection_value``)
SELECTION_LABELS = {"jmasa": "JMASA F1", "masc": "MASC accuracy"}


def sweep_table(sweep: list[dict], task: str = "jmasa") -> list[str]:
    """The generator budget sweep of one task (``run --sweep --task``): dev scores only, by the
    metric the trainer selects on (JMASA F1, MASC accuracy), the best first."""
    points = [r for r in sweep if r.get("task", "jmasa") == task]
    if not points:
        return []
    from mabsa.engine.inference import selection_value  # imports torch: only when there is a table

    label = SELECTION_LABELS[task]
    lines = [
        "",
        f"**Generator budget sweep, {task.upper()}** (`run --sweep --task {task}`: chosen on dev alone, no test "
        "score; one seed; CPU-s per training post is the training process's CPU time, so it does not depend on "
        "the load):",
        "",
        f"| dataset | generator | fine-tuning | lr | LoRA | train posts | dev posts | dev {label} per epoch "
        f"| best dev {label} | CPU-s per training post | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(points, key=lambda r: (r["dataset"], -selection_value(r["dev"], task))):
        finetune, lr, lora = _tuning(r)
        lora_text = f"r={lora.get('r')}, {'/'.join(lora.get('target_modules', []))}" if finetune == "lora" else "-"
        cpu = r.get("train_cpu_seconds_per_epoch")
        per_post = f"{cpu / _train_post_count(r):.2f}" if cpu else "-"
        curve = " ".join(_pct(v) for v in r["dev_curve"])
        lines.append(
            f"| {r['dataset']} | {r['generator']} | {finetune} | {lr} | {lora_text} | {_size(r)} | "
            f"{_eval_size(r)} | {curve} | **{_pct(selection_value(r['dev'], task))}** (epoch {r['best_epoch']}) | "
            f"{per_post} | `{r['command']}` |"
        )
    return lines


def _row_order(r: dict) -> tuple:
    """The full-size block first (per dataset and generator: NMI, then its ablations, as the
    paper's Table 3), then the partial-size block."""
    return (r["train_posts"] is not None, r["dataset"], _generator(r), list(LABELS).index(r["ablation"]), r["seed"])


def report_text() -> str:
    runs = [
        {"name": p.stem.removeprefix("iea_"), **json.loads(p.read_text())}
        for p in sorted(RESULTS.glob("iea_twitter*.json"))
    ]
    sweep = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("iea_sweep_*.json"))]
    extraction = [r for r in runs if r.get("task", "jmasa") == "jmasa"]
    masc = [r for r in runs if r.get("task") == "masc"]
    extraction.sort(key=_row_order)
    lines = [
        "## IEA (CPU path: SmolLM2-135M-Instruct or Gemma-3-270M generator)",
        "",
        "The generator and its tuning are given per row (SmolLM2's first runs: LoRA r=8 on q/k/v/o, lr 1e-3; "
        "batch 8 throughout), trained on the training posts given per row, one seed per row; dev "
        "selects the epoch and test is evaluated once. The paper LoRA-tunes Qwen3-VL-8B for 30 epochs on "
        "all posts with the real images; rows trained on part of the data are **not comparable to the "
        "paper**. Tweet images are not available: I = the shipped caption, regions = the faces of "
        "`face_attributes` (one region per face with its box, FITE face template + a rating from the "
        "expression); per-aspect texts never reach the aligner or the generator. Scores in %; "
        "± = half-width of a rough 95% interval from the number of gold aspects.",
        "",
        "| dataset | instruction | generator | train posts | epochs | seed | test posts | JMASA P | JMASA R | JMASA F1 | "
        "MATE F1 (P / R) | polarity acc. on extracted gold spans | dev JMASA F1 | paper JMASA F1 | Δ F1 vs NMI (paper Δ) "
        "| invalid answers (dev+test) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    nmi = {
        (r["dataset"], _generator(r), r["train_posts"], r["eval_posts"], r["seed"]): r["test"]["jmasa"]["f1"]
        for r in extraction
        if r["ablation"] == "nmi"
    }
    for r in extraction:
        t, d = r["test"], r["dev"]
        paper_f1 = paper(r["dataset"], row=r["ablation"])  # IEA paper, Table 3 for the ablations
        base = nmi.get((r["dataset"], _generator(r), r["train_posts"], r["eval_posts"], r["seed"]))  # same seed
        delta = (
            "-"
            if r["ablation"] == "nmi" or base is None
            else f"{100 * (t['jmasa']['f1'] - base):+.1f}"
            + (f" ({paper_f1 - paper(r['dataset']):+.1f})" if paper_f1 else "")
        )
        pol = f"{_pct(t['jmasa']['n_correct'] / max(1, t['mate']['n_correct']))} ({t['jmasa']['n_correct']}/{t['mate']['n_correct']})"
        lines.append(
            f"| {r['dataset']} | {LABELS[r['ablation']]} | {_generator(r)} | {_size(r)} | "
            f"{r['config']['train']['epochs']} | {r['seed']} | {_eval_size(r)} | {_pct(t['jmasa']['precision'])} | {_pct(t['jmasa']['recall'])} | "
            f"**{_pct(t['jmasa']['f1'])}** {_interval(t['jmasa']['f1'], t['jmasa']['n_gold'])} | "
            f"{_pct(t['mate']['f1'])} ({_pct(t['mate']['precision'])} / {_pct(t['mate']['recall'])}) | {pol} | "
            f"{_pct(d['jmasa']['f1'])} | {paper_f1 if paper_f1 else '-'} | {delta} | {_invalid(r)} |"
        )
    spread = {}
    for r in extraction:
        spread.setdefault((r["dataset"], LABELS[r["ablation"]], _generator(r), _size(r)), []).append(r)
    spread = {k: v for k, v in spread.items() if len(v) > 1}
    if spread:
        lines += [
            "",
            "Seed to seed (same data, instruction and generator): "
            + "; ".join(
                f"{d}, {label}, {generator}, {size} train posts: JMASA F1 "
                + ", ".join(f"{_pct(r['test']['jmasa']['f1'])} (seed {r['seed']})" for r in rs)
                + f", mean {_pct(sum(r['test']['jmasa']['f1'] for r in rs) / len(rs))}"
                for (d, label, generator, size), rs in spread.items()
            )
            + ".",
        ]
    lines += [
        "",
        "Where the points are: JMASA F1 ≈ MATE F1 x the polarity column, so MATE recall counts "
        "the terms never written, MATE precision the spans written that are not aspects, and the "
        "polarity column the sentiment wrong on terms found; invalid answers score nothing. "
        "The polarity column is JMASA-correct / MATE-correct, not the paper's MASC. Paper MATE F1: "
        f"{paper('twitter2015', 'mate_f1')} / {paper('twitter2017', 'mate_f1')} (T15 / T17). Paper ablation "
        "rows (Table 3): - Image Segmentation = random regions, - Region Interpretation = no "
        "interpretations, - Fine-Grained Aligner & NMI = no aligner.",
    ]

    def for_scale(task: str, baseline: str, metric: str) -> list[str]:
        """The text-only baseline's score on the same full test sets, one sentence."""
        found, key = WS.baselines_by_dataset(task), {"jmasa": "test.jmasa.f1", "masc": "test.masc.accuracy"}[task]
        scores = [f"{pm(b['metrics'], key)} ({d}, {len(b['seeds'])} seeds)" for d, b in sorted(found.items())]
        return (
            ["", f"For scale, on the same full test sets the text-only {baseline} gets {metric} {', '.join(scores)}."]
            if found
            else []
        )

    lines += for_scale("jmasa", "`text-crf` baseline (MiniLM + CRF, benchmarks/baselines.py)", "JMASA F1")
    if masc:
        lines += [
            "",
            "MASC (`--task masc`: one instruction per given aspect, the answer is one polarity word; "
            "an answer without one counts as wrong):",
            "",
            "| dataset | instruction | generator | train posts | epochs | seed | test posts | test aspects | MASC acc "
            "| MASC macro-F1 | unparseable answers (dev+test) | paper acc / F1 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        masc.sort(key=_row_order)
        for r in masc:
            t = r["test"]["masc"]
            lines.append(
                f"| {r['dataset']} | {LABELS[r['ablation']]} | {_generator(r)} | {_size(r)} | "
                f"{r['config']['train']['epochs']} | {r['seed']} | {_eval_size(r)} | {t['n']} | **{_pct(t['accuracy'])}** {_interval(t['accuracy'], t['n'])} | "
                f"{_pct(t['macro_f1'])} | {r['unparseable_generations_dev_and_test']} | "
                f"{paper(r['dataset'], 'masc_acc')} / {paper(r['dataset'], 'masc_f1')} |"
            )
        lines += for_scale("masc", "`text-cls` baseline (fine-tuned MiniLM, benchmarks/baselines.py)", "MASC accuracy")
    al = RESULTS / "iea_aligner.json"
    if al.is_file():
        a = json.loads(al.read_text())
        lines += [
            "",
            f"**Aligner** (FGCA from templates, 59 PASCAL-Context classes, "
            f"{'/'.join(str(a['fgca'][s]['samples']) for s in ('train', 'dev', 'test'))}; "
            f"`text-crf` MiniLM on O/B/I, best dev epoch {a['best_epoch']}, {a['train_seconds']:.0f} s training): "
            f'span accuracy (exact span, "none" counted as a label) **{_pct(a["dev"]["span_accuracy"])}% dev, '
            f"{_pct(a['test']['span_accuracy'])}% test** (test: {_pct(a['test']['accuracy_with_phrase'])}% on the "
            f"{a['test']['n_with_phrase']} regions with a phrase, {_pct(a['test']['accuracy_none'])}% on the "
            f"{a['test']['n_none']} without). FGCA's template texts are easy: this says the aligner learned the "
            "task format, not how well it aligns real tweets.",
        ]
    cov = RESULTS / "iea_coverage.json"
    if cov.is_file():
        c = json.loads(cov.read_text())
        lines += [
            "",
            "On the real dev posts (stand-in face regions), it aligns "
            + " / ".join(f"{_pct(c[d]['aligned_share'])}%" for d in DATASETS.values())
            + " (T15 / T17) of the regions to a phrase, and "
            + " / ".join(f"{_pct(c[d]['cover_rate'])}%" for d in DATASETS.values())
            + ' of those phrases overlap a gold aspect (the paper\'s "cover rate" idea; gold read only to '
            "score): `python benchmarks/iea.py coverage`.",
        ]
    for path in sorted(RESULTS.glob("iea_invalid_*.json")):
        r = json.loads(path.read_text())
        free, constrained = (r[k]["generation_log"] for k in ("free", "constrained"))
        lines += [
            "",
            f"**Invalid answers, free vs constrained decoding** (one checkpoint, `{r['checkpoint']}`, first "
            f"{r['posts']} {r['split']} posts): answers the parser cannot read {free['unparseable']} -> "
            f"{constrained['unparseable']}, generated terms not in the post {free['unmatched_terms']} -> "
            f"{constrained['unmatched_terms']}; JMASA F1 {_pct(r['free']['jmasa_f1'])} -> "
            f"{_pct(r['constrained']['jmasa_f1'])} (a term the free decoder invents scores nothing; constrained, "
            f"the same answer must name a span of the post): `{r['command']}`.",
        ]
    for path in sorted(RESULTS.glob("iea_answer_lengths_*.json")):
        r = json.loads(path.read_text())
        cut = " / ".join(f"{_pct(r[f'{d}/test']['aspects_cut_by_24_tokens'])}%" for d in DATASETS.values())
        longest = " / ".join(
            str(max(r[f"{d}/{s}"]["longest_answer"] for s in ("train", "dev", "test"))) for d in DATASETS.values()
        )
        lines += [
            "",
            f"**Generation budget ({r['generator']})**: the longest gold answer is {longest} tokens (T15 / T17); "
            "a budget of 24 new tokens (`model_args.max_new_tokens` before 2026-12-04, which every run above "
            f"used) cuts the pairs of {cut} of the test aspects, a recall no training recovers; the default "
            f"is now {r['default_max_new_tokens']}, which cuts none: `{r['command']}`.",
        ]
    lines += sweep_table(sweep) + sweep_table(sweep, "masc")
    speed = [r for r in extraction if r["ablation"] == "nmi" and r.get("generation_posts_per_second")]
    if speed:
        lines += [
            "",
            "**Speed** (1 torch thread unless marked, 2 shared cores with other jobs running; varies about 2x with the "
            "load): end-to-end dev prediction (instruction building + alignment + greedy batched generation + "
            "parsing) "
            + ", ".join(
                f"**{r['generation_posts_per_second']:.2f} posts/s** ({r['dataset']}, {_generator(r)}, "
                f"{_size(r)} train posts, seed {r['seed']}{_thread_mark(r)})"
                for r in speed
            )
            + "; generator training "
            + ", ".join(
                f"{r['train_cpu_seconds_per_epoch'] / _train_post_count(r):.2f} CPU-s per post "
                f"({r['dataset']}, {_generator(r)}, {_size(r)}, seed {r['seed']}{_thread_mark(r)})"
                for r in speed
                if r.get("train_cpu_seconds_per_epoch")
            )
            + " (CPU time of the training process, so it does not depend on the load; the wall time "
            "was 1-6x that, depending on what shared the cores).",
        ]
    lines += [
        "",
        "Commands (each under its own lock, `OMP_NUM_THREADS=1` unless the command sets it; raw JSON in `results/iea_*.json`, "
        "checkpoints in `runs/iea/`):",
        "",
        "- `python benchmarks/iea.py aligner` (= `mabsa iea make-fgca --output runs/iea/fgca` + "
        "`mabsa iea train-aligner --fgca runs/iea/fgca --output runs/iea/aligner`)",
        "- `python benchmarks/iea.py coverage`",
    ]
    lines += [f"- `{run_command(r)}`" for r in extraction + masc]
    lines += [
        "- `python benchmarks/iea.py report` writes this section.",
        "",
        'Full GPU path (not run here; see `docs/methods/iea.md`, "Full path"; posts must carry image paths):',
        "",
        f"`{GPU_COMMAND}`",
    ]
    return "\n".join(lines)


def report(args) -> None:
    WS.write_section(BEGIN, END, report_text())


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("aligner")
    a.add_argument("--seed", type=int, default=13)
    a.add_argument("--epochs", type=int, default=4)
    r = sub.add_parser("run")
    r.add_argument("--dataset", default="twitter2015", choices=list(DATASETS.values()))
    r.add_argument("--task", default="jmasa", choices=["jmasa", "mate", "masc"])
    r.add_argument(
        "--ablation", default="nmi", choices=["nmi", "no_aligner", "no_interpretation", "random_regions", "text_only"]
    )
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--train-posts", type=int, default=RUN_DEFAULTS["train_posts"])
    r.add_argument("--eval-posts", type=int, default=RUN_DEFAULTS["eval_posts"])
    r.add_argument("--epochs", type=int, default=RUN_DEFAULTS["epochs"])
    r.add_argument("--full", action="store_true", help="all training posts, whole dev and test splits")
    r.add_argument("--generator", default="smollm2", help="model_args.generator: smollm2 (default) or gemma3-270m")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--sweep", action="store_true", help="a dev-only budget sweep point (no test score is reported)")
    inv = sub.add_parser("invalid", help="invalid answers of one checkpoint, decoded freely and constrained")
    inv.add_argument("checkpoint", type=Path)
    inv.add_argument("--split", default="dev", choices=["dev", "test"])
    inv.add_argument("--posts", type=int, default=120)
    sub.add_parser("report")
    sub.add_parser("coverage")
    ln = sub.add_parser("lengths", help="gold answers' lengths in generator tokens against the generation budget")
    ln.add_argument("--generator", default="smollm2", choices=["smollm2", "gemma3-270m"])
    args = ap.parse_args()
    commands = {
        "aligner": aligner,
        "run": run,
        "invalid": invalid,
        "report": report,
        "coverage": coverage,
        "lengths": lengths,
    }
    commands[args.cmd](args)


if __name__ == "__main__":
    main()
