"""IEA benchmark: FGCA + aligner, then the CPU-path generator on Twitter-2015/2017 and ablations.

    python benchmarks/iea.py aligner                      # FGCA 2000/500/500, train + span accuracy
    python benchmarks/iea.py run --dataset twitter2015 [--task jmasa|mate|masc] [--ablation nmi|no_aligner|no_interpretation|random_regions]
    python benchmarks/iea.py report                       # markdown table from results/iea_*.json

Heavy: run one at a time under the shared lock, one torch thread:
    OMP_NUM_THREADS=1 nohup nice flock /tmp/mabsa-bench.lock python benchmarks/iea.py ... > runs/iea_X.log 2>&1 &
Checkpoints go to runs/iea/ (gitignored); results/iea_*.json hold the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "iea"
RESULTS = ROOT / "results"
FGCA_DIR = RUNS / "fgca"
ALIGNER_DIR = RUNS / "aligner"
PAPER = {"twitter2015": {"jmasa_f1": 71.7, "mate_f1": 88.5, "masc_acc": 83.4, "masc_f1": 78.3},
         "twitter2017": {"jmasa_f1": 72.1, "mate_f1": 94.0, "masc_acc": 77.8, "masc_f1": 78.4}}


def _command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]])


def _write(name: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / name
    data = {**data, "command": _command(), "machine": {"python": platform.python_version(),
            "threads": os.environ.get("OMP_NUM_THREADS")}, "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def aligner(args) -> None:
    import torch

    from mabsa.engine.config import load_run_config
    from mabsa.engine.trainer import train
    from mabsa.iea.aligner import Aligner, evaluate_aligner
    from mabsa.iea.fgca import make_fgca, read_fgca, stats, write_fgca

    torch.set_num_threads(1)
    data = make_fgca(seed=args.seed)
    write_fgca(data, FGCA_DIR)
    config = load_run_config(config_file=ROOT / "src/mabsa/configs/iea-aligner.json",
                             sets=[f"train.epochs={args.epochs}"])
    t0 = time.perf_counter()
    metrics = train(config, str(FGCA_DIR), "mate", ALIGNER_DIR, resume=True, progress=False)
    train_seconds = time.perf_counter() - t0
    al = Aligner.from_checkpoint(ALIGNER_DIR)
    out = {"fgca": {k: stats(v) for k, v in data.items()}, "seed": args.seed,
           "train_seconds": train_seconds, "best_epoch": metrics["best_epoch"],
           "engine_dev": metrics["dev"], "engine_test": metrics["test"]}
    for split in ("dev", "test"):
        t1 = time.perf_counter()
        out[split] = evaluate_aligner(al, read_fgca(FGCA_DIR, split))
        out[split]["seconds"] = time.perf_counter() - t1
    _write("iea_aligner.json", out)


RUN_DEFAULTS = {"train_posts": 200, "eval_posts": 120, "epochs": 1}


def run(args) -> None:
    """Train IEA (CPU path) with the engine's loop: first N train posts, 1 epoch, dev and test =
    the first M posts of each split (one test evaluation, with the dev-selected weights)."""
    import torch

    from mabsa.engine.config import load_run_config
    from mabsa.engine.trainer import train

    torch.set_num_threads(1)
    task = "" if args.task == "jmasa" else f"{args.task}_"  # jmasa runs keep their first names
    name = f"{args.dataset}_{task}{args.ablation}_s{args.seed}"
    sets = [f"model_args.ablation={args.ablation}", f"train.max_train_posts={args.train_posts}",
            f"train.max_eval_posts={args.eval_posts}", f"train.epochs={args.epochs}",
            f"train.seed={args.seed}", *args.set]
    if args.ablation not in ("no_aligner", "text_only"):
        sets.append(f"model_args.aligner={ALIGNER_DIR}")
    config = load_run_config("iea", sets=sets)
    import logging

    class Count(logging.Handler):
        n = 0

        def emit(self, record):
            if "unparseable" in record.getMessage():
                Count.n += 1

    logging.getLogger("mabsa.iea").addHandler(Count())
    t0 = time.perf_counter()
    metrics = train(config, args.dataset, args.task, RUNS / name, resume=True, progress=False)
    wall = time.perf_counter() - t0
    hist = metrics["history"][-1] if metrics["history"] else {}
    n_dev = min(args.eval_posts, {"twitter2015": 727, "twitter2017": 577}[args.dataset])
    _write(f"iea_{name}.json", {
        "dataset": args.dataset, "task": args.task, "ablation": args.ablation, "seed": args.seed,
        "config": config, "train_posts": args.train_posts, "eval_posts": args.eval_posts,
        "best_epoch": metrics["best_epoch"], "dev": metrics["dev"], "test": metrics["test"],
        "train_seconds_per_epoch": metrics["train_seconds_per_epoch"],
        "generation_posts_per_second": n_dev / hist["eval_seconds"] if hist.get("eval_seconds") else None,
        "generation_note": "dev evaluation: instruction building + alignment + greedy batched "
                           "generation + parsing, per post, 1 torch thread",
        "unparseable_generations_dev_and_test": Count.n,
        "wall_seconds": wall, "paper": PAPER.get(args.dataset)})


def coverage(args) -> None:
    """How the aligner places the stand-in regions on real posts (dev splits): share of regions
    aligned to a phrase, and share of aligned phrases that overlap a gold aspect (the paper's
    "cover rate" idea; gold is read only to score)."""
    from mabsa.data import load_dataset
    from mabsa.iea.aligner import Aligner
    from mabsa.iea.interpretations import stand_in_view

    al = Aligner.from_checkpoint(ALIGNER_DIR)
    out = {}
    for dataset in ("twitter2015", "twitter2017"):
        posts = load_dataset(dataset, "dev")
        pairs, owners = [], []
        for p in posts:
            for u in stand_in_view(p.extraction_input()).regions:
                pairs.append((p.tokens, u.interpretation))
                owners.append(p)
        spans = al.align(pairs)
        aligned = [(s, p) for s, p in zip(spans, owners) if s is not None]
        hits = sum(any(a.start < s[1] and s[0] < a.end for a in p.aspects) for s, p in aligned)
        out[dataset] = {"posts": len(posts), "posts_with_regions": len(set(id(p) for p in owners)),
                        "regions": len(spans), "aligned": len(aligned),
                        "aligned_share": len(aligned) / max(1, len(spans)),
                        "aligned_on_gold_aspect": hits, "cover_rate": hits / max(1, len(aligned))}
    _write("iea_coverage.json", out)


def report(args) -> None:
    rows, masc = [], []
    for path in sorted(RESULTS.glob("iea_twitter*.json")):
        r = json.loads(path.read_text())
        t = r["test"]
        if r.get("task") == "masc":
            masc.append(f"| {r['dataset']} | {r['ablation']} | {r['train_posts']} | {r['eval_posts']} | "
                        f"{t['masc']['n']} | {100 * t['masc']['accuracy']:.1f} | {100 * t['masc']['macro_f1']:.1f} | "
                        f"{r['unparseable_generations_dev_and_test']} | {PAPER[r['dataset']]['masc_acc']} / "
                        f"{PAPER[r['dataset']]['masc_f1']} |")
            continue
        rows.append(f"| {r['dataset']} | {r['ablation']} | {r['train_posts']} | {r['eval_posts']} | "
                    f"{100 * t['jmasa']['precision']:.1f} | {100 * t['jmasa']['recall']:.1f} | "
                    f"{100 * t['jmasa']['f1']:.1f} | {100 * t['mate']['f1']:.1f} | "
                    f"{(r.get('generation_posts_per_second') or 0):.2f} |")
    print("| dataset | instruction | train posts | dev/test posts | JMASA P | JMASA R | JMASA F1 | "
          "MATE F1 | posts/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if masc:
        print("\n| dataset | instruction | train posts | dev/test posts | test aspects | MASC acc | "
              "MASC macro-F1 | unparseable answers (dev+test) | paper acc / F1 |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(masc))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("aligner")
    a.add_argument("--seed", type=int, default=13)
    a.add_argument("--epochs", type=int, default=4)
    r = sub.add_parser("run")
    r.add_argument("--dataset", default="twitter2015", choices=["twitter2015", "twitter2017"])
    r.add_argument("--task", default="jmasa", choices=["jmasa", "mate", "masc"])
    r.add_argument("--ablation", default="nmi",
                   choices=["nmi", "no_aligner", "no_interpretation", "random_regions", "text_only"])
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--train-posts", type=int, default=RUN_DEFAULTS["train_posts"])
    r.add_argument("--eval-posts", type=int, default=RUN_DEFAULTS["eval_posts"])
    r.add_argument("--epochs", type=int, default=RUN_DEFAULTS["epochs"])
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    sub.add_parser("report")
    sub.add_parser("coverage")
    args = ap.parse_args()
    {"aligner": aligner, "run": run, "report": report, "coverage": coverage}[args.cmd](args)


if __name__ == "__main__":
    main()
