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

The first five are a trained model (:mod:`mabsa.models.saving` writes and loads them); the rest
is training state. Optimizer tensors go to safetensors and the rest of its state (param groups,
step counts) to JSON, so loading a checkpoint never unpickles anything.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

# The trained-model half of a checkpoint directory is the models layer's (a pipeline model
# loads its stages with it); the engine adds training state beside it.
from mabsa.models.saving import (
    CONFIG_FILE,
    FORMAT,
    WEIGHTS_FILE,
    CheckpointError,
    code_version,
    default_file_mode,
    load_model,
    load_weights,
    read_checkpoint_config,
    read_json,
    save_weights,
    write_json,
)

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "LAST_DIR",
    "LOG_FILE",
    "METRICS_FILE",
    "OPTIMIZER_FILE",
    "STATE_FILE",
    "WEIGHTS_FILE",
    "CheckpointError",
    "code_version",
    "load_model",
    "load_resume_state",
    "load_weights",
    "remove_resume_state",
    "read_checkpoint_config",
    "read_json",
    "save_resume_state",
    "save_weights",
    "write_json",
]

METRICS_FILE = "metrics.json"
LOG_FILE = "train_log.jsonl"
LAST_DIR = "last"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


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
    os.chmod(tmp / OPTIMIZER_FILE, default_file_mode())
    write_json(tmp / STATE_FILE, {**trainer_state, "optimizer": meta})
    final = directory / LAST_DIR
    old = directory / (LAST_DIR + ".old")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def remove_resume_state(directory: Path) -> None:
    for name in (LAST_DIR, LAST_DIR + ".old", LAST_DIR + ".tmp"):
        shutil.rmtree(directory / name, ignore_errors=True)


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
