"""Pieces every benchmark script shares: seeded training runs and the docs/results.md sections."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import resource
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
RUNS = ROOT / "runs" / "bench"
DOC = ROOT / "docs" / "results.md"
DOC_HEADER = (
    "# Results\n\nEvery number here comes from a committed script; raw JSON is under "
    "`results/`. Later methods append their own sections below.\n\n"
)


def pm(metrics: dict, key: str, scale: float = 100.0) -> str:
    """``mean ± std`` of a summarised metric, in % by default; ``-`` when absent."""
    m = metrics.get(key)
    if m is None:
        return "-"
    if len(m.get("values", ())) < 2:  # one seed has no spread to report
        return f"{scale * m['mean']:.1f}"
    return f"{scale * m['mean']:.1f} ± {scale * m['std']:.1f}"


def paired_diffs(runs_a: Sequence[dict], runs_b: Sequence[dict], value) -> list[float]:
    """value(a's run) - value(b's run) for every seed both ran (runs carry a ``seed`` key); a
    pair where either run lacks the value (``value`` raises KeyError) is skipped."""
    by_seed = {r["seed"]: r for r in runs_b}
    diffs = []
    for r in runs_a:
        try:
            diffs.append(value(r) - value(by_seed[r["seed"]]))
        except KeyError:
            continue
    return diffs


def replace_section(begin: str, end: str, block: str, doc: Path = DOC) -> None:
    """Put ``block`` between the ``begin``/``end`` markers of ``doc`` (appended if absent).

    Several benchmark processes report into the same file: the read-modify-write holds a lock
    and the new text replaces the file atomically, so no process reads a half-written file."""
    with open(doc.with_name(doc.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = doc.read_text() if doc.exists() else DOC_HEADER
        block = f"{begin}\n{block.strip()}\n{end}"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + block + rest.split(end, 1)[1]
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
        tmp = doc.with_name(f".{doc.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, doc)


def claim_run(name: str, where: Path = RUNS):
    """A non-blocking lock on one run name: two benchmark processes whose plans list the same run
    split the work instead of training into the same directory. Returns the open lock file (keep
    it referenced while the run trains; the lock goes when it is closed or the process ends), or
    None when another process holds it."""
    where.mkdir(parents=True, exist_ok=True)
    lock = open(where / f"{name}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        print(f"{name}: another process is running it, skipped", flush=True)
        return None
    return lock


def train_command(
    model: str, dataset: str, task: str, config: str | None, sets: Sequence[str], seeds: Sequence[int], output: str
) -> str:
    """The ``mabsa train`` command line equivalent to a benchmark run."""
    parts = ["mabsa", "train", "--model", model, "--dataset", dataset, "--task", task]
    if config:
        parts += ["--config", config]
    for s in sets:
        parts += ["--set", s]
    parts += ["--seeds", *map(str, seeds), "--output", output]
    return shlex.join(parts)


def seeds_from_record(record: dict | None, out: Path, seeds: Sequence[int], config: dict) -> list[int]:
    """The seeds of ``seeds`` to take from an earlier result ``record`` rather than train: those it
    reports whose checkpoints are gone (runs/ is not committed, so a new checkout has only the
    JSON). A record trained with another config cannot be extended: its seeds would not be runs
    of one setting."""
    if not record:
        return []
    from mabsa.engine.config import run_differences

    kept = [s for s in seeds if s in record.get("seeds", ()) and not (out / f"seed{s}" / "metrics.json").is_file()]
    same = {"task": record.get("task"), "data": {"dataset": record.get("dataset")}}
    if kept and run_differences({**record.get("config", {}), **same}, {**config, **same}):
        raise SystemExit(
            f"{record['name']}: results/ holds seeds {record['seeds']} of another config; "
            "move that result aside to train this config from scratch"
        )
    return kept


def run_seeds(
    name: str,
    model: str,
    dataset: str,
    task: str,
    config_file: str | None,
    sets: Sequence[str],
    seeds: Sequence[int],
    extra: dict[str, Any] | None = None,
    recorded: dict | None = None,
) -> dict:
    """Train ``seeds`` runs (resuming finished ones) and return the result record.

    ``recorded``: the run's earlier result; its seeds whose checkpoints are gone are kept from it
    (``seeds_from_record``) and only the others are trained, so seeds add up across checkouts."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from mabsa.engine.checkpoint import code_version
    from mabsa.engine.config import load_run_config
    from mabsa.engine.trainer import summarize, train_seeds

    config = load_run_config(model, config_file, sets)
    out = RUNS / name
    kept = seeds_from_record(recorded, out, seeds, config)
    t0, load_before = time.time(), os.getloadavg()
    todo = [s for s in seeds if s not in kept]
    trained = train_seeds(config, dataset, task, out, todo, resume=True, progress=False)["runs"] if todo else []
    by_seed = {r["seed"]: r for r in trained}
    by_seed.update({r["seed"]: r for r in (recorded or {}).get("runs", []) if r["seed"] in kept})
    runs = [by_seed[s] for s in seeds]
    record = {
        "name": name,
        "model": model,
        "dataset": dataset,
        "task": task,
        "seeds": list(seeds),
        "command": train_command(model, dataset, task, config_file, sets, seeds, f"runs/bench/{name}"),
        "config": config,
        "metrics": summarize(runs)["metrics"],
        "runs": runs,
        "wall_seconds": time.time() - t0,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "machine": {
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "code_version": code_version(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        **(extra or {}),
    }
    # which code trained each seed: kept seeds keep the provenance their record gave them
    earlier = (recorded or {}).get("seed_provenance", {})
    record["seed_provenance"] = {
        str(s): earlier.get(str(s), {k: recorded.get(k) for k in ("code_version", "finished")})
        if s in kept
        else seed_provenance(out / f"seed{s}", record)
        for s in seeds
    }
    return record


def seed_provenance(seed_dir: Path, fallback: dict) -> dict:
    """The code that trained one seed's checkpoint, as its config recorded at the start (a seed
    resumed here may have been trained by an earlier process, and HEAD may move while one
    trains), and when its metrics were written; ``fallback``'s fields where the files lack them."""
    from mabsa.engine import checkpoint as ckpt

    config, metrics = seed_dir / ckpt.CONFIG_FILE, seed_dir / ckpt.METRICS_FILE
    version = ckpt.read_json(config).get("code_version") if config.is_file() else None
    return {
        "code_version": version or fallback.get("code_version"),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(metrics.stat().st_mtime))
        if metrics.is_file()
        else fallback.get("finished"),
    }


def baselines_by_dataset(task: str, encoder: str = "minilm") -> dict[str, dict]:
    """The text-baseline result of ``task`` (``jmasa`` / ``masc``) with ``encoder`` (a
    benchmarks/baselines.py name part: ``minilm``, ``mpnet``) per dataset name: the text-only
    reference row of the method reports."""
    return {r["dataset"]: r for r in load_results("baselines") if r.get("name", "").endswith(f"-{task}-{encoder}")}


def dev_sweep(
    prefix: str, configs: dict[str, dict], dataset: str, task: str, seed: int, command: str, work: Path = RUNS
) -> dict:
    """Train each named run config once (``configs``: name -> full run config) and record its
    dev scores in ``results/<prefix>_sweep.json``, resumably: a preset is chosen on dev only.
    (``train`` also scores the test split of each run; those numbers are not reported.)"""
    from mabsa.engine.trainer import train

    path = RESULTS / f"{prefix}_sweep.json"
    done = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    for name, config in configs.items():
        key = f"{dataset}-{name}-seed{seed}"
        if key in done["runs"]:
            continue
        t0 = time.time()
        m = train(config, dataset, task, work / f"{prefix}-sweep" / key, seed=seed, resume=True, progress=False)
        done["runs"][key] = {
            "config": config,
            "best_epoch": m["best_epoch"],
            "epochs_run": m["epochs_run"],
            "dev": {k: v for k, v in m["dev"][task].items() if isinstance(v, float)},
            "seconds": round(time.time() - t0),
        }
        done["command"] = command
        RESULTS.mkdir(exist_ok=True)
        path.write_text(json.dumps(done, indent=2) + "\n")
        print(time.strftime("%H:%M:%S"), key, json.dumps(done["runs"][key]["dev"]), flush=True)
    return done


#: Fields that describe the process that wrote a record, not its results.
VOLATILE = frozenset({"wall_seconds", "peak_rss_bytes", "machine", "finished", "code_version"})


def save_result(prefix: str, record: dict) -> Path:
    """Write ``results/<prefix>_<name>.json``, unless it already holds these results: a rerun that
    only resumed finished seeds must not replace the timing and machine of the run that trained."""
    RESULTS.mkdir(exist_ok=True)
    name = record["name"].removeprefix(f"{prefix}-")
    path = RESULTS / f"{prefix}_{name}.json"
    if path.is_file():
        old = json.loads(path.read_text())
        same = {k: v for k, v in old.items() if k not in VOLATILE} == json.loads(
            json.dumps({k: v for k, v in record.items() if k not in VOLATILE})
        )
        if same:
            return path
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_results(prefix: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{prefix}_*.json"))]
