"""Checkpoint directories: everything to rebuild, resume and report a run, no pickle.

Layout of ``DIR``::

    config.json             model name, model_args, train config, task, data, labels, code version
    model.safetensors       weights of the best dev epoch
    processor_config.json   + tokenizer/   how posts become tensors
    text_encoder/config.json               encoder shapes (the model is rebuilt from it)
    metrics.json            best dev metrics, test metrics (evaluated once), timings
    train_log.jsonl         one record per logged step and per epoch
    last/                   resumable state after the last finished epoch:
        model.safetensors  optimizer.safetensors  trainer_state.json

Optimizer tensors go to safetensors and the rest of its state (param groups, step counts) to
JSON, so loading a checkpoint never unpickles anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mabsa import __version__
from mabsa.errors import MabsaError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
LOG_FILE = "train_log.jsonl"
LAST_DIR = "last"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
FORMAT = "mabsa-checkpoint/1"


class CheckpointError(MabsaError):
    pass


def code_version() -> dict[str, Any]:
    """mabsa version, plus the git commit (and whether the tree had changes) when known."""
    out: dict[str, Any] = {"mabsa": __version__}
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here, capture_output=True, text=True, timeout=5,
            )
            out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None


# -- weights ---------------------------------------------------------------------------------
def save_weights(model: torch.nn.Module, path: Path) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path)


def load_weights(model: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file missing")
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the model (missing: {missing[:5]}, "
            f"unexpected: {unexpected[:5]})"
        )


# -- optimizer state (safetensors + JSON) ----------------------------------------------------
def optimizer_state_to_files(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_state_from_files(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta.get("scalars", {}).items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_resume_state(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
) -> None:
    """Write ``last/`` atomically: a kill mid-write leaves the previous epoch's state."""
    tmp = directory / (LAST_DIR + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_weights(model, tmp / WEIGHTS_FILE)
    tensors, meta = optimizer_state_to_files(optimizer)
    save_file(tensors, str(tmp / OPTIMIZER_FILE))
    write_json(tmp / STATE_FILE, {**trainer_state, "optimizer": meta})
    final = directory / LAST_DIR
    old = directory / (LAST_DIR + ".old")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def load_resume_state(
    directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any] | None:
    """Restore ``last/`` into model and optimizer; ``None`` if there is nothing to resume."""
    last = directory / LAST_DIR
    if not (last / STATE_FILE).is_file():
        old = directory / (LAST_DIR + ".old")  # killed between the two renames
        if (old / STATE_FILE).is_file():
            last = old
        else:
            return None
    state = read_json(last / STATE_FILE)
    load_weights(model, last / WEIGHTS_FILE)
    tensors = load_file(str(last / OPTIMIZER_FILE))
    optimizer.load_state_dict(optimizer_state_from_files(tensors, state.pop("optimizer")))
    return state


# -- loading a trained model -----------------------------------------------------------------
def read_checkpoint_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory}")
    if not directory.is_dir() or not (directory / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{directory}: not a mabsa checkpoint (no {CONFIG_FILE}); pass the directory that "
            "`mabsa train` wrote (with --seeds, one of its seed*/ subdirectories)"
        )
    config = read_json(directory / CONFIG_FILE)
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{directory / CONFIG_FILE}: not a {FORMAT} config")
    if not (directory / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"{directory}: no {WEIGHTS_FILE} (training has not finished a dev evaluation yet?)"
        )
    return config


def load_model(directory: str | Path, task: str | None = None):
    """Rebuild the model saved in ``directory``; ``task`` (if given) must match."""
    from mabsa.models import get_model_class

    directory = Path(directory)
    config = read_checkpoint_config(directory)
    if task is not None and config["task"] != task:
        raise CheckpointError(
            f"{directory} is a {config['task']} checkpoint (model {config['model']}); "
            f"it cannot do {task}"
        )
    cls = get_model_class(config["model"])
    model = cls.restore(config["model_args"], config["task"], directory)
    load_weights(model, directory / WEIGHTS_FILE)
    model.eval()
    return model, config
