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
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from mabsa.data import load_dataset
from mabsa.engine import checkpoint as ckpt
from mabsa.engine.config import ConfigError, TrainConfig, run_differences
from mabsa.engine.distillation import Teacher
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


@dataclass
class EpochResult:
    """What one pass over the training batches produced."""

    loss_sum: float
    n_batches: int
    train_seconds: float
    train_cpu_seconds: float  # CPU time of this process: what the epoch costs on idle cores


class Trainer:
    """One seed of one run, in explicit steps: :meth:`setup`, then per epoch :meth:`train_epoch`,
    :meth:`evaluate` on dev, :meth:`select` (best weights, early stopping) and
    :meth:`save_state` (the resume point), then :meth:`test` once. :meth:`run` does all of it.

    Resuming restores weights, optimizer, scheduler, counters and history from ``last/`` and
    re-seeds each epoch from ``(seed, epoch)``; a mid-epoch save also keeps the dropout RNG state
    and skips the batches already done, so a resumed run continues exactly as an uninterrupted
    one would."""

    def __init__(
        self,
        config: dict[str, Any],
        dataset: str,
        task: str,
        output_dir: str | Path,
        *,
        seed: int | None = None,
        resume: bool = False,
        progress: bool = True,
        accelerator: Any = None,
    ):
        from accelerate import Accelerator

        if Path(str(dataset)).is_file():  # one file has no splits: "test" would be the training posts
            raise MabsaError(
                f"--dataset {dataset}: training needs train/dev/test splits; give a registered "
                "dataset or a dataset directory (jmasa_json/{train,dev,test}.json, see "
                "docs/data.md), not a single file"
            )
        self.config, self.dataset, self.task = config, dataset, task
        self.acc = accelerator or Accelerator()
        self.tc = TrainConfig.from_dict({**config.get("train", {}), **({"seed": seed} if seed is not None else {})})
        self.out = Path(output_dir)
        self.resume, self.progress = resume, progress
        self.main = self.acc.is_main_process
        self.state: dict[str, Any] = {
            "epoch": 0,
            "global_step": 0,
            "best_epoch": None,
            "best_value": -1.0,
            "best_dev": None,
            "bad_epochs": 0,
            "history": [],
            "partial": None,  # a mid-epoch save (train.save_every_steps): how far the epoch got
        }

    # -- the whole run ----------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train, select on dev, test once; returns (and writes to ``metrics.json``) the metrics."""
        from tqdm.auto import tqdm

        finished = self.check_output()
        if finished is not None:
            return finished
        self.setup()
        tc, state = self.tc, self.state
        show = self.progress and self.main and sys.stderr.isatty()  # bars on a terminal only
        lines = self.progress and self.main and not show  # a log file gets one plain line per epoch
        bar = tqdm(total=tc.epochs, initial=state["epoch"], desc="epochs", disable=not show, dynamic_ncols=True)
        for epoch in range(state["epoch"], tc.epochs):
            if tc.patience and state["bad_epochs"] >= tc.patience:
                break
            result = self.train_epoch(epoch)
            t1 = time.perf_counter()
            dev = self.evaluate(self.dev_posts)
            value = self.select(epoch, dev, result, eval_seconds=time.perf_counter() - t1)
            self.save_state()
            if lines:
                best = " (best)" if state["best_epoch"] == epoch + 1 else ""
                print(
                    f"epoch {epoch + 1}/{tc.epochs}: train loss {result.loss_sum / max(result.n_batches, 1):.4f}, "
                    f"dev {100 * value:.2f}{best}, {result.train_seconds / 60:.1f} min",
                    file=sys.stderr,
                    flush=True,
                )
            bar.update(1)
            bar.set_postfix(dev=f"{value:.4f}", best=f"{state['best_value']:.4f}")
        bar.close()
        return self.test()

    def check_output(self) -> dict[str, Any] | None:
        """Refuse to overwrite a run, or to resume one started with other settings; a finished
        run's metrics when resuming it (never re-test)."""
        out = self.out
        if (out / ckpt.CONFIG_FILE).exists() and not self.resume:
            raise MabsaError(f"{out} already holds a run; pass --resume to continue it or pick another --output")
        if self.resume and (out / ckpt.CONFIG_FILE).is_file():
            _check_same_run(out, self.config, self.tc, self.dataset, self.task)
        if self.resume and (out / ckpt.METRICS_FILE).is_file():
            return ckpt.read_json(out / ckpt.METRICS_FILE)
        return None

    # -- steps ------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Model, data, optimizer and schedule; the run's ``config.json``; the resume state."""
        from transformers import get_linear_schedule_with_warmup

        tc, config, out = self.tc, self.config, self.out
        state_exists = (out / ckpt.LAST_DIR / ckpt.STATE_FILE).is_file() or (
            out / (ckpt.LAST_DIR + ".old") / ckpt.STATE_FILE
        ).is_file()
        if tc.num_threads:
            torch.set_num_threads(int(tc.num_threads))
        seed_everything(tc.seed)
        try:
            model = get_model_class(config["model"]).create(config["model_args"], self.task)
        except ValueError as e:  # a building block refusing a setting (heads, fusion kind, ...): a config error
            raise ConfigError(f"model {config['model']!r}: model_args do not fit together: {e}") from None
        processor = model.processor
        self.train_posts = _limit(load_dataset(self.dataset, "train"), tc.max_train_posts)
        self.dev_posts = _limit(load_dataset(self.dataset, "dev"), tc.max_eval_posts)
        features = processor.encode(self.train_posts)
        self.teacher = None if tc.teacher is None else Teacher(tc.teacher, tc.distill_weight, model, self.train_posts)
        self.sampler = LengthGroupedBatchSampler(
            [len(f.input_ids) for f in features], tc.batch_size, tc.seed, tc.group_by_length
        )
        loader: DataLoader[Any] = DataLoader(features, batch_sampler=self.sampler, collate_fn=processor.collate)
        optimizer = torch.optim.AdamW(model.parameter_groups(tc.lr, tc.head_lr, tc.weight_decay, tc.layer_decay))
        total_steps = tc.epochs * len(self.sampler)
        self.scheduler = get_linear_schedule_with_warmup(optimizer, int(tc.warmup_ratio * total_steps), total_steps)
        if self.main:
            out.mkdir(parents=True, exist_ok=True)
            ckpt.write_json(out / ckpt.CONFIG_FILE, self.run_config(processor, features))
            model.save_components(out)
        self.log = RunLog(out / ckpt.LOG_FILE, self.main)
        if self.resume and state_exists:
            restored = ckpt.load_resume_state(out, model, optimizer)
            if restored is not None:
                self.scheduler.load_state_dict(restored.pop("scheduler"))
                self.state.update(restored)
                self.log.write(
                    {
                        "type": "resume",
                        "epoch": self.state["epoch"],
                        "step_in_epoch": (self.state["partial"] or {}).get("steps", 0),
                        "time": time.time(),
                    }
                )
        self.model, self.optimizer, self.loader, self.scheduler_p = self.acc.prepare(
            model, optimizer, loader, self.scheduler
        )
        self.unwrapped = self.acc.unwrap_model(self.model)

    def run_config(self, processor: Any, features: Sequence[Any]) -> dict[str, Any]:
        return {
            "format": ckpt.FORMAT,
            "model": self.config["model"],
            "task": self.task,
            "model_args": self.config["model_args"],
            "train": self.tc.to_dict(),
            "data": {
                "dataset": str(self.dataset),
                "splits": {"train": len(self.train_posts), "dev": len(self.dev_posts)},
                "features": {"train": len(features)},
            },
            "labels": {"id2label": dict(enumerate(processor.labels))},
            "code_version": ckpt.code_version(),
        }

    def train_epoch(self, epoch: int) -> EpochResult:
        """One pass over the training batches (the rest of it, after a mid-epoch resume)."""
        from tqdm.auto import tqdm

        tc, state, model, loader = self.tc, self.state, self.model, self.loader
        self.sampler.set_epoch(epoch)
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
            disable=not (self.progress and self.main and sys.stderr.isatty()),
            dynamic_ncols=True,
            initial=n_batches,
        )
        for k, batch in enumerate(bar):
            if k < n_batches:
                continue  # done before the kill
            if rng_at_kill is not None:  # after the loader drew its seed, as at the kill
                torch.set_rng_state(torch.tensor(rng_at_kill, dtype=torch.uint8))
                rng_at_kill = None
            loss = self.step(batch)
            loss_sum += loss
            n_batches += 1
            bar.set_postfix(loss=f"{loss_sum / n_batches:.4f}")
            if tc.log_every and state["global_step"] % tc.log_every == 0:
                self.log.write(
                    {
                        "type": "step",
                        "epoch": epoch + 1,
                        "step": state["global_step"],
                        "loss": loss,
                        "lr": self.scheduler.get_last_lr()[0],
                    }
                )
            if tc.save_every_steps and n_batches % tc.save_every_steps == 0 and n_batches < len(loader):
                # long epochs (generators on a CPU): a kill loses at most save_every_steps steps
                self.save_state(
                    partial={
                        "steps": n_batches,
                        "loss_sum": loss_sum,
                        "train_seconds": done_seconds + time.perf_counter() - t0,
                        "train_cpu_seconds": done_cpu + time.process_time() - cpu0,
                        "torch_rng": torch.get_rng_state().tolist(),
                    }
                )
        bar.close()
        return EpochResult(
            loss_sum, n_batches, done_seconds + time.perf_counter() - t0, done_cpu + time.process_time() - cpu0
        )

    def step(self, batch: Any) -> float:
        """One optimizer step on one batch; its loss."""
        output = self.model(batch)
        loss = output.loss
        if loss is None:
            raise MabsaError(f"{self.model.name}: forward gave no loss for a labelled batch")
        if self.teacher is not None:
            loss = self.teacher.loss(loss, output.emissions, batch, self.unwrapped.head.crf)
        self.acc.backward(loss)
        if self.tc.max_grad_norm:
            self.acc.clip_grad_norm_(self.model.parameters(), self.tc.max_grad_norm)
        self.optimizer.step()
        self.scheduler_p.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state["global_step"] += 1
        return float(loss.detach())

    def evaluate(self, posts: Sequence[Any]) -> dict[str, Any]:
        """Scores of the task on ``posts`` (each process predicts its shard)."""
        from accelerate.utils import gather_object

        shard = list(posts)[self.acc.process_index :: self.acc.num_processes]
        before = self.unwrapped.prediction_counts()
        preds = predict_posts(self.unwrapped, shard, self.tc.eval_batch_size).posts
        after = self.unwrapped.prediction_counts()
        added = {k: after[k] - before[k] for k in before}
        if self.acc.num_processes > 1:
            preds = gather_object(preds)
            shards = gather_object([added])
            added = {k: sum(s[k] for s in shards) for k in before}
        scores = task_scores(posts, preds, self.task)
        if added:  # a model that counts its invalid answers (IEA): what this evaluation added
            scores["prediction_counts"] = added
        return scores

    def select(self, epoch: int, dev: dict[str, Any], result: EpochResult, eval_seconds: float) -> float:
        """Keep the weights if dev improved (else count towards early stopping); log the epoch.
        Returns the dev selection value."""
        state = self.state
        value = selection_value(dev, self.task)
        improved = value > state["best_value"]
        if improved:
            state.update(best_value=value, best_epoch=epoch + 1, best_dev=dev, bad_epochs=0)
            if self.main:
                ckpt.save_weights(self.unwrapped, self.out / ckpt.WEIGHTS_FILE)
        else:
            state["bad_epochs"] += 1
        record = {
            "type": "epoch",
            "epoch": epoch + 1,
            "train_loss": result.loss_sum / max(result.n_batches, 1),
            "dev": dev,
            "selection": value,
            "best": improved,
            "train_seconds": result.train_seconds,
            "train_cpu_seconds": result.train_cpu_seconds,
            "eval_seconds": eval_seconds,
            "time": time.time(),
        }
        keep = ("epoch", "train_loss", "selection", "train_seconds", "train_cpu_seconds", "eval_seconds")
        state["history"].append({k: record[k] for k in keep})
        self.log.write(record)
        state["epoch"] = epoch + 1
        return value

    def save_state(self, partial: dict[str, Any] | None = None) -> None:
        """The resume point: after an epoch, or ``partial`` way through one."""
        if self.main:
            state = {**self.state, "partial": partial} if partial is not None else self.state
            ckpt.save_resume_state(
                self.out, self.unwrapped, self.optimizer, {**state, "scheduler": self.scheduler.state_dict()}
            )
        if partial is None:
            self.acc.wait_for_everyone()

    def test(self) -> dict[str, Any]:
        """The test split, once, with the best dev epoch's weights; writes ``metrics.json``. A
        dev-only run (``train.test`` false: a sweep point) scores nothing and records test None."""
        state, tc = self.state, self.tc
        test = None
        if tc.test:
            ckpt.load_weights(self.unwrapped, self.out / ckpt.WEIGHTS_FILE)
            test = self.evaluate(_limit(load_dataset(self.dataset, "test"), tc.max_eval_posts))
        seconds = [h["train_seconds"] for h in state["history"]]
        metrics = {
            "model": self.config["model"],
            "dataset": str(self.dataset),
            "task": self.task,
            "seed": tc.seed,
            "best_epoch": state["best_epoch"],
            "epochs_run": state["epoch"],
            "stopped_early": state["epoch"] < tc.epochs,
            "dev": state["best_dev"],
            "test": test,
            "train_seconds_per_epoch": statistics.mean(seconds) if seconds else None,
            "history": state["history"],
        }
        if self.main:
            ckpt.write_json(self.out / ckpt.METRICS_FILE, metrics)
            self.log.write({"type": "test", "best_epoch": state["best_epoch"], "test": test})
            if not tc.keep_last:  # finished: the resume state (as large as weights + optimizer) has done its job
                ckpt.remove_resume_state(self.out)
        self.acc.wait_for_everyone()
        return metrics


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
    """Train one seed (:class:`Trainer`); returns (and writes to ``metrics.json``) best dev and
    test metrics."""
    trainer = Trainer(
        config, dataset, task, output_dir, seed=seed, resume=resume, progress=progress, accelerator=accelerator
    )
    return trainer.run()


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
