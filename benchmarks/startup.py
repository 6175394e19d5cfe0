"""Start-up time of the command line (issue #28 item 19): ``mabsa --help`` and one
``mabsa predict --text`` call with a quickstart-shaped checkpoint, each in a fresh process, with the
floor set by importing torch and transformers' model code on the same machine.

    python benchmarks/startup.py [--checkpoint DIR] [--repeats 5] [--output results/startup.json]

Without ``--checkpoint`` a checkpoint of the quickstart's shape (``text-crf``, MiniLM-L6, JMASA) is
trained for one epoch on 32 posts in a temporary folder: start-up does not depend on its quality.
Run it on an idle machine (the script prints the load average it saw).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mabsa.engine.reports import MABSA, machine

POST = "RT @ltsChuckBass: Chuck Bass is everything #MCM"
#: (name, argv); each is timed from process start to exit
STEPS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import torch": [sys.executable, "-c", "import torch"],
    "import torch + transformers BertModel": [sys.executable, "-c", "import torch; from transformers import BertModel"],
    "mabsa --help": [MABSA, "--help"],
}


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def quickstart_checkpoint(folder: Path) -> Path:
    out = folder / "quickstart-shaped"
    sets = ["train.epochs=1", "train.max_train_posts=32", "train.num_threads=2"]
    argv = [MABSA, "train", "--model", "text-crf", "--dataset", "twitter2015"]
    argv += ["--task", "jmasa", *[a for s in sets for a in ("--set", s)], "--output", str(out)]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("results/startup.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or quickstart_checkpoint(Path(tmp))
        steps = dict(STEPS)
        steps["mabsa predict --text (one post)"] = [
            MABSA, "predict", "--checkpoint", str(checkpoint), "--text", POST,
        ]  # fmt: skip
        load_before = os.getloadavg()
        timings = {}
        for name, argv in steps.items():
            wall(argv)  # warm the page cache: the first call after install is not what is measured
            runs = [wall(argv) for _ in range(args.repeats)]
            timings[name] = {"median_s": round(statistics.median(runs), 3), "runs_s": [round(r, 3) for r in runs]}
            print(f"{name:<42} {timings[name]['median_s']:6.2f} s")
    report = {
        "command": "python benchmarks/startup.py " + " ".join(sys.argv[1:]),
        "machine": machine(load_before),
        "repeats": args.repeats,
        "timings": timings,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
