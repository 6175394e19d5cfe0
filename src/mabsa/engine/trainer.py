"""The one training loop for every mabsa model.

AdamW (encoder and heads at their own learning rates), linear warmup then linear decay,
gradient clipping, full seeding, model selection on the dev split only, early stopping, and the
test split evaluated once with the best dev epoch's weights. ``accelerate`` handles devices
and processes, so ``accelerate launch -m mabsa.cli train ...`` runs the same loop on N GPUs
or nodes; there is no distributed code of our own besides sharding the evaluation posts.

Resuming (``resume=True``) restores weights, optimizer, scheduler, early-stopping counters
and history from ``last/`` (written after every epoch, and every ``train.save_every_steps``
steps inside one when set), and re-seeds each epoch from ``(seed, epoch)`` (a mid-epoch save
keeps the dropout RNG state and skips the batches already done), so a resumed run continues
exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from mabsa.data import load_dataset
from mabsa.engine import checkpoint as ckpt
from mabsa.engine.config import ConfigError, TrainConfig, run_differences
from mabsa.engine.inference import predict_posts, selection_value, task_scores
from mabsa.errors import MabsaError
from mabsa.models import get_model_class


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of similar length: shuffle, sort within pools of 50 batches, shuffle
    the batches. Deterministic in ``(seed, epoch)``."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, group: bool = True):
        self.lengths = list(lengths)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.group = group
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        if self.group:
            pool = self.batch_size * 50
            order = [
                i
                for start in range(0, len(order), pool)
                for i in sorted(order[start : start + pool], key=lambda k: self.lengths[k])
            ]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.group:
            rng.shuffle(batches)
        return iter(batches)


def seed_everything(seed: int) -> None:
    """python, numpy and torch (all devices) RNGs."""
    from accelerate.utils import set_seed

    set_seed(int(seed))


class RunLog:
    """JSON-lines training log (appended, so a resumed run continues the same file)."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as f:
                f.write(json.dumps(record, default=str) + "\n")


def _limit(posts: list, n: int | None) -> list:
    return posts if n is None else posts[: int(n)]


def _check_same_run(out: Path, config: dict[str, Any], tc: TrainConfig, dataset: Any, task: str) -> None:
    """Resuming (or returning a finished run's metrics) is only right for the run that was
    started there; a changed preset must not be silently answered by an old run."""
    requested = {
        "model": config["model"],
        "task": task,
        "model_args": config["model_args"],
        "train": tc.to_dict(),
        "data": {"dataset": str(dataset)},
    }
    diffs = run_differences(ckpt.read_json(out / ckpt.CONFIG_FILE), requested)
    if diffs:
        raise MabsaError(
            f"{out} holds a run started with other settings, so --resume would mix two runs:\n  "
            + "\n  ".join(diffs)
            + "\nmove that directory away (or pick another --output) to train with the new ones"
        )


def train(
    config: dict[str, Any],
    dataset: str,
    task: str,
    output_dir: str | Path,
    *,
    seed: int | None = None,
    resume: bool = False,
    progress: bool = True,
    accelerator: Any = None,
) -> dict[str, Any]:
    """Train one seed; returns (and writes to ``metrics.json``) best dev and test metrics."""
    from accelerate import Accelerator
    from accelerate.utils import gather_object
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    if Path(str(dataset)).is_file():  # one file has no splits: "test" would be the training posts
        raise MabsaError(
            f"--dataset {dataset}: training needs train/dev/test splits; give a registered "
            "dataset or a dataset directory (jmasa_json/{train,dev,test}.json, see "
            "docs/data.md), not a single file"
        )
    acc = accelerator or Accelerator()
    tc = TrainConfig.from_dict({**config.get("train", {}), **({"seed": seed} if seed is not None else {})})
    out = Path(output_dir)
    main = acc.is_main_process
    state_exists = (out / ckpt.LAST_DIR / ckpt.STATE_FILE).is_file() or (
        out / (ckpt.LAST_DIR + ".old") / ckpt.STATE_FILE
    ).is_file()
    if (out / ckpt.CONFIG_FILE).exists() and not resume:
        raise MabsaError(f"{out} already holds a run; pass --resume to continue it or pick another --output")
    if resume and (out / ckpt.CONFIG_FILE).is_file():
        _check_same_run(out, config, tc, dataset, task)
    if resume and (out / ckpt.METRICS_FILE).is_file():
        return ckpt.read_json(out / ckpt.METRICS_FILE)  # finished: never re-test
    if tc.num_threads:
        torch.set_num_threads(int(tc.num_threads))

    seed_everything(tc.seed)
    model_cls = get_model_class(config["model"])
    try:
        model = model_cls.create(config["model_args"], task)
    except ValueError as e:  # a building block refusing a setting (heads, fusion kind, ...): a config error
        raise ConfigError(f"model {config['model']!r}: model_args do not fit together: {e}") from None
    processor = model.processor

    train_posts = _limit(load_dataset(dataset, "train"), tc.max_train_posts)
    dev_posts = _limit(load_dataset(dataset, "dev"), tc.max_eval_posts)
    features = processor.encode(train_posts)
    sampler = LengthGroupedBatchSampler(
        [len(f.input_ids) for f in features], tc.batch_size, tc.seed, tc.group_by_length
    )
    loader = DataLoader(features, batch_sampler=sampler, collate_fn=processor.collate)
    optimizer = torch.optim.AdamW(model.parameter_groups(tc.lr, tc.head_lr, tc.weight_decay))
    total_steps = tc.epochs * len(sampler)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(tc.warmup_ratio * total_steps), total_steps)

    run_config = {
        "format": ckpt.FORMAT,
        "model": config["model"],
        "task": task,
        "model_args": config["model_args"],
        "train": tc.to_dict(),
        "data": {
            "dataset": str(dataset),
            "splits": {"train": len(train_posts), "dev": len(dev_posts)},
            "features": {"train": len(features)},
        },
        "labels": {"id2label": dict(enumerate(processor.labels))},
        "code_version": ckpt.code_version(),
    }
    if main:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(out / ckpt.CONFIG_FILE, run_config)
        model.save_components(out)
    log = RunLog(out / ckpt.LOG_FILE, main)

    state: dict[str, Any] = {
        "epoch": 0,
        "global_step": 0,
        "best_epoch": None,
        "best_value": -1.0,
        "best_dev": None,
        "bad_epochs": 0,
        "history": [],
        "partial": None,  # a mid-epoch save (train.save_every_steps): how far the epoch got
    }
    if resume and state_exists:
        restored = ckpt.load_resume_state(out, model, optimizer)
        if restored is not None:
            scheduler.load_state_dict(restored.pop("scheduler"))
            state.update(restored)
            log.write(
                {
                    "type": "resume",
                    "epoch": state["epoch"],
                    "step_in_epoch": (state["partial"] or {}).get("steps", 0),
                    "time": time.time(),
                }
            )

    model, optimizer, loader, scheduler_p = acc.prepare(model, optimizer, loader, scheduler)
    unwrapped = acc.unwrap_model(model)

    def dev_eval() -> dict[str, Any]:
        shard = dev_posts[acc.process_index :: acc.num_processes]
        preds = predict_posts(unwrapped, shard, tc.eval_batch_size).posts
        if acc.num_processes > 1:
            preds = gather_object(preds)
        return task_scores(dev_posts, preds, task)

    show = progress and main
    epochs_bar = tqdm(total=tc.epochs, initial=state["epoch"], desc="epochs", disable=not show, dynamic_ncols=True)
    for epoch in range(state["epoch"], tc.epochs):
        if tc.patience and state["bad_epochs"] >= tc.patience:
            break
        sampler.set_epoch(epoch)
        if hasattr(loader, "set_epoch"):  # accelerate's loader re-sets it from its own count
            loader.set_epoch(epoch)
        torch.manual_seed(tc.seed * 100_003 + epoch)  # dropout: same stream after a resume
        model.train()
        t0, cpu0 = time.perf_counter(), time.process_time()
        loss_sum, n_batches = 0.0, 0
        partial, state["partial"] = state["partial"], None
        done_seconds = done_cpu = 0.0
        if partial:  # resumed inside this epoch: same batches, same dropout stream from here on
            loss_sum, n_batches = partial["loss_sum"], partial["steps"]
            done_seconds, done_cpu = partial["train_seconds"], partial["train_cpu_seconds"]
        rng_at_kill = partial["torch_rng"] if partial else None
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{tc.epochs}",
            leave=False,
            disable=not show,
            dynamic_ncols=True,
            initial=n_batches,
        )
        for k, batch in enumerate(bar):
            if k < n_batches:
                continue  # done before the kill
            if rng_at_kill is not None:  # after the loader drew its seed, as at the kill
                torch.set_rng_state(torch.tensor(rng_at_kill, dtype=torch.uint8))
                rng_at_kill = None
            loss = model(batch)["loss"]
            acc.backward(loss)
            if tc.max_grad_norm:
                acc.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            optimizer.step()
            scheduler_p.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach())
            n_batches += 1
            state["global_step"] += 1
            bar.set_postfix(loss=f"{loss_sum / n_batches:.4f}")
            if tc.log_every and state["global_step"] % tc.log_every == 0:
                log.write(
                    {
                        "type": "step",
                        "epoch": epoch + 1,
                        "step": state["global_step"],
                        "loss": float(loss.detach()),
                        "lr": scheduler.get_last_lr()[0],
                    }
                )
            if tc.save_every_steps and n_batches % tc.save_every_steps == 0 and n_batches < len(loader) and main:
                # long epochs (generators on a CPU): a kill loses at most save_every_steps steps
                mid = {
                    **state,
                    "partial": {
                        "steps": n_batches,
                        "loss_sum": loss_sum,
                        "train_seconds": done_seconds + time.perf_counter() - t0,
                        "train_cpu_seconds": done_cpu + time.process_time() - cpu0,
                        "torch_rng": torch.get_rng_state().tolist(),
                    },
                }
                ckpt.save_resume_state(out, unwrapped, optimizer, {**mid, "scheduler": scheduler.state_dict()})
        bar.close()
        train_seconds = done_seconds + time.perf_counter() - t0
        # CPU time of this process: on a shared machine, what the epoch costs on idle cores
        train_cpu_seconds = done_cpu + time.process_time() - cpu0
        t1 = time.perf_counter()
        dev = dev_eval()
        eval_seconds = time.perf_counter() - t1
        value = selection_value(dev, task)
        improved = value > state["best_value"]
        if improved:
            state.update(best_value=value, best_epoch=epoch + 1, best_dev=dev, bad_epochs=0)
            if main:
                ckpt.save_weights(unwrapped, out / ckpt.WEIGHTS_FILE)
        else:
            state["bad_epochs"] += 1
        record = {
            "type": "epoch",
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(n_batches, 1),
            "dev": dev,
            "selection": value,
            "best": improved,
            "train_seconds": train_seconds,
            "train_cpu_seconds": train_cpu_seconds,
            "eval_seconds": eval_seconds,
            "time": time.time(),
        }
        state["history"].append(
            {
                k: record[k]
                for k in ("epoch", "train_loss", "selection", "train_seconds", "train_cpu_seconds", "eval_seconds")
            }
        )
        log.write(record)
        state["epoch"] = epoch + 1
        if main:
            ckpt.save_resume_state(out, unwrapped, optimizer, {**state, "scheduler": scheduler.state_dict()})
        acc.wait_for_everyone()
        epochs_bar.update(1)
        epochs_bar.set_postfix(dev=f"{value:.4f}", best=f"{state['best_value']:.4f}")
    epochs_bar.close()

    # Test: once, with the best dev epoch's weights.
    ckpt.load_weights(unwrapped, out / ckpt.WEIGHTS_FILE)
    test_posts = _limit(load_dataset(dataset, "test"), tc.max_eval_posts)
    shard = test_posts[acc.process_index :: acc.num_processes]
    preds = predict_posts(unwrapped, shard, tc.eval_batch_size)
    test_preds = gather_object(preds.posts) if acc.num_processes > 1 else preds.posts
    test = task_scores(test_posts, test_preds, task)
    seconds = [h["train_seconds"] for h in state["history"]]
    metrics = {
        "model": config["model"],
        "dataset": str(dataset),
        "task": task,
        "seed": tc.seed,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "stopped_early": state["epoch"] < tc.epochs,
        "dev": state["best_dev"],
        "test": test,
        "train_seconds_per_epoch": statistics.mean(seconds) if seconds else None,
        "history": state["history"],
    }
    if main:
        ckpt.write_json(out / ckpt.METRICS_FILE, metrics)
        log.write({"type": "test", "best_epoch": state["best_epoch"], "test": test})
    acc.wait_for_everyone()
    return metrics


# -- several seeds -----------------------------------------------------------------------------
SUMMARY_FILE = "summary.json"


def _flatten(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            if k in ("per_class", "history"):
                continue
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix[:-1]] = float(d)
    return out


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sample std (n-1) over seeds of every numeric dev/test metric."""
    flat = [
        _flatten({"dev": r["dev"], "test": r["test"], "train_seconds_per_epoch": r.get("train_seconds_per_epoch")})
        for r in runs
    ]
    keys = sorted(set.intersection(*(set(f) for f in flat))) if flat else []
    stats = {}
    for key in keys:
        values = [f[key] for f in flat]
        stats[key] = {
            "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values,
        }
    return {"n_seeds": len(runs), "seeds": [r["seed"] for r in runs], "metrics": stats}


def train_seeds(
    config: dict[str, Any],
    dataset: str,
    task: str,
    output_dir: str | Path,
    seeds: Sequence[int],
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """One run per seed under ``output_dir/seed{N}``; ``summary.json`` holds per-seed metrics
    and mean ± std."""
    from accelerate import Accelerator

    acc = Accelerator()
    out = Path(output_dir)
    runs = []
    for s in seeds:
        run_dir = out / f"seed{s}"
        runs.append(train(config, dataset, task, run_dir, seed=s, resume=resume, progress=progress, accelerator=acc))
    summary = {
        "model": config["model"],
        "dataset": str(dataset),
        "task": task,
        "config": config,
        "runs": [{k: r[k] for k in ("seed", "best_epoch", "dev", "test", "train_seconds_per_epoch")} for r in runs],
        **summarize(runs),
    }
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        ckpt.write_json(out / SUMMARY_FILE, summary)
    return summary
