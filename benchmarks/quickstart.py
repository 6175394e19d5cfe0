"""What the README's quickstart gives (issue #28 item 20): its exact training command run for seeds
1, 2 and 3 (the quickstart itself is seed 1, the default), each scored on the Twitter-2015 test
split once, and seed 1's answer for the README's example posts.

    python benchmarks/quickstart.py [--output-dir checkpoints/quickstart-seeds] [--output results/quickstart.json]

About 5 minutes per seed on 2 cores. ``--output-dir`` keeps the checkpoints (``seed1/`` is the
quickstart's own); a killed run continues with the same command (``--resume``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from mabsa.engine.reports import MABSA, machine

#: the README's quickstart training command, seeds added
TRAIN = ["train", "--model", "text-crf", "--dataset", "twitter2015", "--task", "jmasa", "--set", "train.epochs=2"]
SEEDS = ("1", "2", "3")
#: the README's example post first, then ordinary posts with an obvious sentiment
POSTS = (
    "RT @ltsChuckBass: Chuck Bass is everything #MCM",
    "Great game by Messi tonight",
    "Worst customer service ever from @Comcast , two hours on hold",
)
#: the headline scores kept per seed: (summary key, name in the report)
SCORES = (
    ("test.jmasa.f1", "jmasa_f1"),
    ("test.jmasa.precision", "jmasa_precision"),
    ("test.jmasa.recall", "jmasa_recall"),
    ("test.mate.f1", "mate_f1"),
    ("test.polarity.sentiment_acc_on_found", "sentiment_acc_on_found"),
    ("dev.jmasa.f1", "dev_jmasa_f1"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("checkpoints/quickstart-seeds"))
    parser.add_argument("--output", type=Path, default=Path("results/quickstart.json"))
    args = parser.parse_args()
    train = [MABSA, *TRAIN, "--seeds", *SEEDS, "--output", str(args.output_dir), "--no-progress", "--resume"]
    start = time.perf_counter()
    subprocess.run(train, check=True)
    wall = time.perf_counter() - start
    summary = json.loads((args.output_dir / "summary.json").read_text())
    metrics = summary["metrics"]
    missing = [key for key, _ in SCORES if key not in metrics]
    if missing:
        sys.exit(f"error: {args.output_dir / 'summary.json'} has no {', '.join(missing)}")
    scores = {
        name: {
            "mean": round(100 * metrics[key]["mean"], 1),
            "std": round(100 * metrics[key]["std"], 1),
            "per_seed": [round(100 * v, 1) for v in metrics[key]["values"]],
        }
        for key, name in SCORES
    }
    examples = []
    for text in POSTS:
        argv = [MABSA, "predict", "--checkpoint", str(args.output_dir / "seed1"), "--text", text]
        answer = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        examples.append({"command": " ".join(argv[1:]), "output": answer.strip()})
    report = {
        "command": "python benchmarks/quickstart.py " + " ".join(sys.argv[1:]),
        "train_command": "mabsa " + " ".join(TRAIN) + " --seeds " + " ".join(SEEDS),
        "machine": machine(),
        "wall_seconds_all_seeds": round(wall, 1),
        "train_seconds_per_epoch": [round(r["train_seconds_per_epoch"], 1) for r in summary["runs"]],
        "best_epoch": [r["best_epoch"] for r in summary["runs"]],
        "seeds": summary["seeds"],
        "scores_percent": scores,
        "examples_seed1": examples,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for name, s in scores.items():
        print(f"{name:<24} {s['mean']:5.1f} ± {s['std']:.1f}  {s['per_seed']}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
