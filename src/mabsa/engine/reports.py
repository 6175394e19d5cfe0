"""What the benchmark scripts share that does not train: result records on disk, the generated
sections of docs/results.md, and the number formats of their tables.

Paths are resolved from a :class:`Workspace` root: a ``benchmarks/*.py`` script passes its own
checkout (``Workspace(Path(__file__).resolve().parents[1])``), anything else gets the current
directory. Nothing here assumes where the package is installed. Training helpers that write these
records are in :mod:`mabsa.engine.experiment_runs`.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import re
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

#: What a new docs/results.md starts with.
DOC_HEADER = (
    "# Results\n\nEvery number here comes from a committed script; raw JSON is under "
    "`results/`. Later methods append their own sections below.\n\n"
)
#: The ``mabsa`` console script pip installed beside this interpreter (what a user runs).
MABSA = str(Path(sys.executable).with_name("mabsa"))
#: Fields that describe the process that wrote a record, not its results.
VOLATILE = frozenset({"wall_seconds", "peak_rss_bytes", "machine", "finished", "code_version"})


def machine(load_before: Sequence[float] | None = None, **extra: Any) -> dict[str, Any]:
    """The ``machine`` field of a result record: the cores this process may use, the Python and
    (when loaded) torch it ran on, the load average before (``load_before``, taken when the work
    started) and now (a load above the cores slows every timing), and ``extra`` fields."""
    info: dict[str, Any] = {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()}
    torch = sys.modules.get("torch")  # not imported here: report-only scripts never load it
    if torch is not None:
        info |= {"torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    if load_before is not None:
        info["loadavg_before"] = [round(x, 2) for x in load_before]
    return info | {"loadavg_after": [round(x, 2) for x in os.getloadavg()], **extra}


def pm(metrics: dict, key: str, scale: float = 100.0) -> str:
    """``mean ± std`` of a summarised metric, in % by default; ``-`` when absent."""
    m = metrics.get(key)
    if m is None:
        return "-"
    if len(m.get("values", ())) < 2:  # one seed has no spread to report
        return f"{scale * m['mean']:.1f}"
    return f"{scale * m['mean']:.1f} ± {scale * m['std']:.1f}"


def mean_std(values: Sequence[float]) -> dict:
    """A summarised metric (``pm`` reads it): mean, sample std (0 for one value) and the values."""
    return {
        "mean": statistics.mean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "values": list(values),
    }


def paired_diffs(runs_a: Sequence[dict], runs_b: Sequence[dict], value: Callable[[dict], float]) -> list[float]:
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


def replace_section(begin: str, end: str, block: str, doc: Path) -> None:
    """Put ``block`` between the ``begin``/``end`` markers of ``doc`` (appended if absent; a
    missing ``doc`` starts with :data:`DOC_HEADER`).

    Several benchmark processes report into the same file: the read-modify-write holds a lock
    (``<doc>.lock``) and the new text replaces the file atomically, so no process reads a
    half-written file."""
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


def set_suffix(items: Sequence[str]) -> str:
    """A run name's part for its ``--set`` items, so each budget a benchmark tries gets records of
    its own: ``["model_args.finetune=full", "train.lr=1e-4"]`` -> ``_finetune-full_lr-1e-4``."""
    parts = []
    for item in items:
        key, _, value = item.partition("=")
        parts.append(re.sub(r"[^A-Za-z0-9.+]+", "-", f"{key.rsplit('.', 1)[-1]}-{value}").strip("-"))
    return "".join(f"_{p}" for p in parts)


def iea_run_name(
    dataset: str,
    task: str,
    seed: int | str,
    *,
    ablation: str = "nmi",
    posts: tuple[int | None, int | None] = (200, 120),
    generator: str = "smollm2",
    sets: Sequence[str] = (),
    sweep: bool = False,
) -> str:
    """The name of one ``benchmarks/iea.py run`` (its ``results/iea_<name>.json`` and run
    directory), which the overview reads back. The first runs' names are kept, so a part is left
    out at its first value: the task for JMASA, the size for 200 train x 120 eval posts, the
    generator for SmolLM2. ``posts`` = (None, None) is every post (``_full``); ``seed`` may be
    ``"*"`` to match every seed in a glob."""
    task_part = "" if task == "jmasa" else f"{task}_"
    size = {(200, 120): "", (None, None): "_full"}.get(posts, f"_{posts[0]}x{posts[1]}")
    generator_part = "" if generator == "smollm2" else f"_{generator}"
    sweep_part = "sweep_" if sweep else ""
    return f"{sweep_part}{dataset}_{task_part}{ablation}_s{seed}{size}{generator_part}{set_suffix(sets)}"


def claim_run(name: str, where: Path) -> IO[str] | None:
    """A non-blocking lock on one run name: two benchmark processes whose plans list the same run
    split the work instead of training into the same directory. Returns the open lock file (keep
    it referenced while the run trains; the lock goes when it is closed or the process ends), or
    None when another process holds it."""
    where.mkdir(parents=True, exist_ok=True)
    lock = open(where / f"{name}.lock", "w")  # the caller holds it open while the run trains
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        print(f"{name}: another process is running it, skipped", flush=True)
        return None
    return lock


@dataclass(frozen=True)
class Workspace:
    """Where benchmark results live: ``results/`` (the JSON records, committed), ``runs/<group>/``
    (checkpoints, not committed) and ``docs/results.md`` (the generated sections), under ``root``."""

    root: Path = field(default_factory=Path.cwd)

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def doc(self) -> Path:
        return self.root / "docs" / "results.md"

    def runs(self, group: str = "bench") -> Path:
        """Checkpoint folder of one group of runs (``bench``: the runs of the method scripts)."""
        return self.root / "runs" / group

    def write_section(self, begin: str, end: str, block: str) -> None:
        """:func:`replace_section` on this workspace's docs/results.md."""
        replace_section(begin, end, block, self.doc)

    def save_result(self, prefix: str, record: dict[str, Any]) -> Path:
        """Write ``results/<prefix>_<name>.json``, unless it already holds these results: a rerun
        that only resumed finished seeds must not replace the timing and machine of the run that
        trained."""
        name = record["name"].removeprefix(f"{prefix}-")
        return self.write_record(self.results / f"{prefix}_{name}.json", record)

    def write_record(self, path: Path, record: dict[str, Any]) -> Path:
        """Write ``record`` as JSON to ``path``, unless the file already holds the same results
        (fields of :data:`VOLATILE` aside): a report that recomputes a record must not stamp it
        with the reporting checkout's commit."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            old = json.loads(path.read_text())
            same = {k: v for k, v in old.items() if k not in VOLATILE} == json.loads(
                json.dumps({k: v for k, v in record.items() if k not in VOLATILE})
            )
            if same:
                return path
        path.write_text(json.dumps(record, indent=2) + "\n")
        return path

    def load_results(self, prefix: str) -> list[dict]:
        """Every ``results/<prefix>_*.json``, in file-name order."""
        return [json.loads(p.read_text()) for p in sorted(self.results.glob(f"{prefix}_*.json"))]

    def baselines_by_dataset(self, task: str, encoder: str = "minilm") -> dict[str, dict]:
        """The text-baseline result of ``task`` (``jmasa`` / ``masc``) with ``encoder`` (a
        benchmarks/baselines.py name part: ``minilm``, ``mpnet``) per dataset name: the text-only
        reference row of the method reports."""
        return {
            r["dataset"]: r for r in self.load_results("baselines") if r.get("name", "").endswith(f"-{task}-{encoder}")
        }
