"""Training the benchmark scripts share: seeded runs recorded as result records (seeds add up
across checkouts) and dev-only preset sweeps.

Apart from :mod:`mabsa.engine.experiments` (the tables) and :mod:`mabsa.engine.reports` (records
and docs, no training) because it loads torch and the trainer: a script imports it where it
trains, after setting its thread count and ``HF_HUB_OFFLINE``.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mabsa.engine import checkpoint as ckpt
from mabsa.engine import trainer
from mabsa.engine.config import load_run_config, run_differences
from mabsa.engine.experiments import train_command
from mabsa.engine.reports import Workspace, machine


def seeds_from_record(record: dict | None, out: Path, seeds: Sequence[int], config: dict) -> list[int]:
    """The seeds of ``seeds`` to take from an earlier result ``record`` rather than train: those it
    reports whose checkpoints are gone (runs/ is not committed, so a new checkout has only the
    JSON). A record trained with another config cannot be extended: its seeds would not be runs
    of one setting."""
    if not record:
        return []
    kept = [s for s in seeds if s in record.get("seeds", ()) and not (out / f"seed{s}" / "metrics.json").is_file()]
    same = {"task": record.get("task"), "data": {"dataset": record.get("dataset")}}
    if kept and run_differences({**record.get("config", {}), **same}, {**config, **same}):
        raise SystemExit(
            f"{record['name']}: results/ holds seeds {record['seeds']} of another config; "
            "move that result aside to train this config from scratch"
        )
    return kept


def run_seeds(
    ws: Workspace,
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
    """Train ``seeds`` runs under ``ws.runs()/name`` (resuming finished ones) and return the
    result record.

    ``recorded``: the run's earlier result; its seeds whose checkpoints are gone are kept from it
    (``seeds_from_record``) and only the others are trained, so seeds add up across checkouts."""
    config = load_run_config(model, config_file, sets)
    out = ws.runs() / name
    kept = seeds_from_record(recorded, out, seeds, config)
    t0, load_before = time.time(), os.getloadavg()
    todo = [s for s in seeds if s not in kept]
    trained = trainer.train_seeds(config, dataset, task, out, todo, resume=True, progress=False)["runs"] if todo else []
    by_seed = {r["seed"]: r for r in trained}
    by_seed.update({r["seed"]: r for r in (recorded or {}).get("runs", []) if r["seed"] in kept})
    runs = [by_seed[s] for s in seeds]
    command = train_command(
        model,
        dataset,
        task,
        [config_file] if config_file else [],
        sets,
        seeds,
        out.relative_to(ws.root).as_posix(),
        preset_option="--config",
    )
    record = {
        "name": name,
        "model": model,
        "dataset": dataset,
        "task": task,
        "seeds": list(seeds),
        "command": command,
        "config": config,
        "metrics": trainer.summarize(runs)["metrics"],
        "runs": runs,
        "wall_seconds": time.time() - t0,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "machine": machine(load_before),
        "code_version": ckpt.code_version(),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        **(extra or {}),
    }
    # which code trained each seed: kept seeds keep the provenance their record gave them
    earlier = (recorded or {}).get("seed_provenance", {})
    record["seed_provenance"] = {
        str(s): earlier.get(str(s), {k: (recorded or {}).get(k) for k in ("code_version", "finished")})
        if s in kept
        else seed_provenance(out / f"seed{s}", record)
        for s in seeds
    }
    return record


def seed_provenance(seed_dir: Path, fallback: dict) -> dict:
    """The code that trained one seed's checkpoint, as its config recorded at the start (a seed
    resumed here may have been trained by an earlier process, and HEAD may move while one
    trains), and when its metrics were written; ``fallback``'s fields where the files lack them."""
    config, metrics = seed_dir / ckpt.CONFIG_FILE, seed_dir / ckpt.METRICS_FILE
    version = ckpt.read_json(config).get("code_version") if config.is_file() else None
    return {
        "code_version": version or fallback.get("code_version"),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(metrics.stat().st_mtime))
        if metrics.is_file()
        else fallback.get("finished"),
    }


def dev_sweep(
    ws: Workspace,
    prefix: str,
    configs: dict[str, dict],
    dataset: str,
    task: str,
    seed: int,
    command: str,
    work: Path | None = None,
) -> dict:
    """Train each named run config once (``configs``: name -> full run config) under ``work``
    (default ``ws.runs()``) and record its dev scores in ``results/<prefix>_sweep.json``,
    resumably: a preset is chosen on dev only, so these runs never score the test split."""
    work = ws.runs() if work is None else work
    path = ws.results / f"{prefix}_sweep.json"
    done = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    for name, config in configs.items():
        key = f"{dataset}-{name}-seed{seed}"
        if key in done["runs"]:
            continue
        t0 = time.time()
        dev_only = {**config, "train": {**config["train"], "test": False}}
        m = trainer.train(
            dev_only, dataset, task, work / f"{prefix}-sweep" / key, seed=seed, resume=True, progress=False
        )
        done["runs"][key] = {
            "config": config,
            "best_epoch": m["best_epoch"],
            "epochs_run": m["epochs_run"],
            "dev": {k: v for k, v in m["dev"][task].items() if isinstance(v, float)},
            "seconds": round(time.time() - t0),
        }
        done["command"] = command
        ws.results.mkdir(exist_ok=True)
        path.write_text(json.dumps(done, indent=2) + "\n")
        print(time.strftime("%H:%M:%S"), key, json.dumps(done["runs"][key]["dev"]), flush=True)
    return done
