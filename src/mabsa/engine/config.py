"""Run configuration: the model's packaged JSON, then each ``--config FILE_OR_PRESET`` in turn
(later ones win), then ``--set k=v``.

A run config has three sections::

    {"model": "text-crf",
     "model_args": {...},   # the model's typed config (models/<method>/config.py)
     "train": {...}}        # TrainConfig fields

The typed config classes hold every default; the packaged ``configs/<model>.json`` holds only
what differs from them (mostly the training budget) and presets (``configs/presets/*.json``)
what differs from that. ``--set`` keys are dotted paths (``train.lr=3e-5``,
``model_args.encoder=mpnet-base``); a bare key is accepted when exactly one section has it
(``lr=3e-5``). Values are parsed as JSON when they can be (``3e-5``, ``true``, ``["caption"]``;
``True``/``False``/``None`` too) and kept as strings otherwise; then every option is checked
against its section's typed fields: an unknown key is an error naming it, and each value takes
its field's type (``model_args.image_text=caption`` -> ``["caption"]``) or fails with its name.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from mabsa.errors import ConfigError
from mabsa.models import available_models, get_model_class
from mabsa.models.config import coerce


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 16
    eval_batch_size: int = 64
    lr: float = 8e-5  # encoder
    head_lr: float = 1e-3  # task heads, CRF transitions
    layer_decay: float = 1.0  # layer-wise lr decay of the text encoder (1: every layer at lr)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 3  # epochs without dev improvement before stopping; 0 = never stop early
    seed: int = 1
    group_by_length: bool = True  # batches of similar length (less padding, same epochs)
    max_train_posts: int | None = None  # first N training posts (smoke runs)
    max_eval_posts: int | None = None  # first N dev/test posts (smoke runs)
    num_threads: int | None = None  # torch intra-op threads; None = leave as is
    log_every: int = 50  # steps between JSONL step records
    save_every_steps: int = 0  # also save the resume state every N steps inside an epoch (0: epoch ends only)
    keep_last: bool = False  # keep the resume state (last/: weights + optimizer) once the run has finished
    test: bool = True  # score the test split once at the end; False for dev-only sweep points (no test cost)
    teacher: str | None = None  # a teacher's soft JMASA tags of the training posts (mabsa.engine.distillation)
    distill_weight: float = 0.5  # with a teacher: loss = (1 - w) * gold NLL + w * the teacher's soft NLL

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown train option(s) {unknown}; known: {sorted(known)}")
        hints = typing.get_type_hints(cls)
        out = cls(**{k: coerce(f"train.{k}", v, hints[k]) for k, v in d.items()})
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(out, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, not {getattr(out, name)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_BOOL_WORDS = {"true": True, "false": False}


def model_arg_defaults(model: str) -> dict[str, Any]:
    """Every ``model_args`` option of ``model`` with the value a run gets when it gives none:
    the typed config's default, or the packaged JSON's where that differs."""
    typed = get_model_class(model).config_class().to_dict()
    return {**typed, **packaged_config(model).get("model_args", {})}


def packaged_config(model: str) -> dict[str, Any]:
    """The JSON config shipped for ``model`` (``mabsa/configs/MODEL.json``): what differs from
    the typed defaults for a training run."""
    path = resources.files("mabsa") / "configs" / f"{model}.json"
    if not path.is_file():
        raise ConfigError(f"no packaged config for model {model!r}; models: {', '.join(available_models())}")
    return json.loads(path.read_text())


def deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.lr=3e-5")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = {**_BOOL_WORDS, "none": None}.get(raw.strip().lower(), raw)  # Python spellings
    return key.strip(), value


def apply_sets(config: dict[str, Any], items: Iterable[str]) -> dict[str, Any]:
    config = copy.deepcopy(config)
    sections = {
        "model_args": set(config.get("model_args", {}))
        | set(get_model_class(config["model"]).config_class.field_names()),
        "train": set(config.get("train", {})) | {f.name for f in fields(TrainConfig)},
    }
    for item in items:
        key, value = parse_set(item)
        path = key.split(".")
        if len(path) == 1:
            owners = [section for section, keys in sections.items() if key in keys]
            if key == "model" or len(owners) != 1:
                raise ConfigError(
                    f"--set {item!r}: give the section, e.g. train.{key}=... or "
                    f"model_args.{key}=... (found in: {owners or 'none'})"
                )
            path = [owners[0], key]
        node = config
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node[path[-1]] = value
    return config


def resolve_config_file(name: str | Path) -> Path:
    """A path, or the name of a preset shipped in ``mabsa/configs/presets/`` (``clamp-cpu``)."""
    path = Path(name)
    if path.exists() or path.suffix:
        return path
    preset = resources.files("mabsa") / "configs" / "presets" / f"{name}.json"
    if preset.is_file():
        return Path(str(preset))
    raise ConfigError(f"config {str(name)!r} is neither a file nor a packaged preset ({', '.join(presets())})")


def presets() -> list[str]:
    folder = resources.files("mabsa") / "configs" / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json")) if folder.is_dir() else []


def read_config_file(name: str | Path) -> dict[str, Any]:
    path = resolve_config_file(name)
    try:
        user = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(user, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return user


def load_run_config(
    model: str | None = None,
    config_file: str | Path | Sequence[str | Path] | None = None,
    sets: Iterable[str] = (),
) -> dict[str, Any]:
    """Resolve the run config; ``model`` may come from the files instead. Several config files
    (or preset names) stack, later ones winning."""
    files = [config_file] if isinstance(config_file, (str, Path)) else list(config_file or ())
    user: dict[str, Any] = {}
    for file in files:
        layer = read_config_file(file)
        if user.get("model") and layer.get("model") and layer["model"] != user["model"]:
            raise ConfigError(f"{file} is a config for {layer['model']!r}, the ones before it for {user['model']!r}")
        user = deep_merge(user, layer)
    name = model or user.get("model")
    if not name:
        raise ConfigError('no model given: use --model NAME or a config file with "model"')
    if model and user.get("model") and user["model"] != model:
        raise ConfigError(f"--model {model} disagrees with the config file(s): {user['model']}")
    config = deep_merge(packaged_config(name), user)
    config["model"] = name
    config = apply_sets(config, sets)
    unknown = sorted(set(config) - {"model", "model_args", "train"})
    if unknown:
        raise ConfigError(f"unknown config section(s) {unknown}: use model, model_args, train")
    train = config.get("train", {})
    typed = TrainConfig.from_dict(train).to_dict()  # validate early; keep the keys given, typed
    config["train"] = {k: typed[k] for k in train}
    # every option, typed: what the checkpoint records and the model is built from
    config["model_args"] = get_model_class(name).config_class.from_dict(config.get("model_args", {})).to_dict()
    return config


# Train options that change speed or logging, not what a run learns: a resume may change them.
RESUME_FREE_TRAIN_OPTIONS = frozenset(
    {"num_threads", "eval_batch_size", "log_every", "save_every_steps", "keep_last", "test"}
)


def run_differences(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """What differs between a checkpoint's ``config.json`` and the run config asked for now,
    as ``"section.key: stored -> requested"`` lines. Both sides hold ``model``, ``task``,
    ``model_args``, ``train`` and ``data.dataset``. A key that one side lacks (an option added to
    mabsa after the run started) counts as its packaged default."""
    diffs = [
        f"{key}: {stored.get(key)!r} -> {requested.get(key)!r}"
        for key in ("model", "task")
        if stored.get(key) != requested.get(key)
    ]
    datasets = (stored.get("data", {}).get("dataset"), requested.get("data", {}).get("dataset"))
    if datasets[0] != datasets[1]:
        diffs.append(f"data.dataset: {datasets[0]!r} -> {datasets[1]!r}")
    if diffs:
        return diffs
    try:
        arg_defaults = model_arg_defaults(str(requested["model"]))
    except ConfigError:
        arg_defaults = {}
    train_defaults = TrainConfig().to_dict()
    for section, defaults, free in (
        ("model_args", arg_defaults, frozenset()),
        ("train", train_defaults, RESUME_FREE_TRAIN_OPTIONS),
    ):
        old, new = stored.get(section, {}), requested.get(section, {})
        for key in sorted((set(old) | set(new)) - free):
            before, after = old.get(key, defaults.get(key)), new.get(key, defaults.get(key))
            if before != after:
                diffs.append(f"{section}.{key}: {before!r} -> {after!r}")
    return diffs
