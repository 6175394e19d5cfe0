"""A trained model on disk: ``config.json`` + ``model.safetensors`` + the files its class's
``save_components`` writes. What :func:`load_model` needs to rebuild it without the original
weights; training state (``last/``, metrics, logs) is the engine's (:mod:`mabsa.engine.checkpoint`).
No pickle: weights go to safetensors, everything else to JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mabsa import __version__
from mabsa.errors import MabsaError
from mabsa.models.base import MabsaModel, get_model_class

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "mabsa-checkpoint/1"


class CheckpointError(MabsaError):
    pass


def code_version() -> dict[str, Any]:
    """mabsa version, plus the git commit (and whether the tree had changes) when known."""
    out: dict[str, Any] = {"mabsa": __version__}
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
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
    os.chmod(tmp, default_file_mode())  # safetensors writes 0600; a checkpoint is shared like any file
    os.replace(tmp, path)


def default_file_mode() -> int:
    """0666 less the process umask: what ``open(path, "w")`` would give."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def load_weights(model: torch.nn.Module, path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file missing")
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not fit the model (missing: {missing[:5]}, unexpected: {unexpected[:5]})"
        )


def model_config(model: MabsaModel, **extra: Any) -> dict[str, Any]:
    """What ``config.json`` says of a model: enough for :func:`load_model` to rebuild it."""
    return {
        "format": FORMAT,
        "model": model.name,
        "task": model.task,
        "model_args": model.config.to_dict(),
        "labels": {"id2label": dict(enumerate(model.processor.labels))},
        **extra,
        "code_version": code_version(),
    }


def save_model(model: MabsaModel, directory: str | Path, **extra: Any) -> Path:
    """Write a trained model that :func:`load_model` rebuilds (``extra`` goes into its config)."""
    directory = Path(directory)
    if (directory / CONFIG_FILE).exists():
        raise CheckpointError(f"{directory} already holds a checkpoint; pick another output")
    directory.mkdir(parents=True, exist_ok=True)
    model.save_components(directory)
    save_weights(model, directory / WEIGHTS_FILE)
    write_json(directory / CONFIG_FILE, model_config(model, **extra))
    return directory


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
        raise CheckpointError(f"{directory}: no {WEIGHTS_FILE} (training has not finished a dev evaluation yet?)")
    return config


def load_model(directory: str | Path, task: str | None = None) -> tuple[MabsaModel, dict[str, Any]]:
    """Rebuild the model saved in ``directory``; ``task`` (if given) must match."""
    directory = Path(directory)
    config = read_checkpoint_config(directory)
    if task is not None and config["task"] != task:
        raise CheckpointError(
            f"{directory} is a {config['task']} checkpoint (model {config['model']}); it cannot do {task}"
        )
    cls = get_model_class(config["model"])
    model = cls.restore(config["model_args"], config["task"], directory)
    load_weights(model, directory / WEIGHTS_FILE)
    model.eval()
    return model, config
