"""Typed model configs: the only source of defaults, read in full by their models, strict about
keys and types; the packaged JSON and presets hold only what differs and all load."""

import ast
import dataclasses
import inspect
import json
from importlib import resources
from pathlib import Path

import pytest

from mabsa.engine.config import TrainConfig, load_run_config, packaged_config, presets
from mabsa.errors import ConfigError
from mabsa.models import available_models, get_model_class
from mabsa.models.config import ModelConfig

MODELS_DIR = Path(inspect.getfile(ModelConfig)).parent
#: shared helpers a model reads its visual-stream fields through
SHARED = [MODELS_DIR / "base.py", MODELS_DIR / "visual_stream.py"]


def attributes_read(cls) -> set[str]:
    """Every ``x.name`` in the source of the model class's own modules (its folder, its bases'
    modules) and the shared helpers: where a config field can be read."""
    files = {Path(inspect.getfile(k)) for k in cls.__mro__ if k.__module__.startswith("mabsa.models")}
    files |= {f for folder in {p.parent for p in files} for f in folder.glob("*.py") if f.name != "config.py"}
    names = set()
    for path in files | set(SHARED):
        names |= {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
    return names


@pytest.mark.parametrize("name", available_models())
def test_every_declared_field_is_read_by_the_model(name):
    cls = get_model_class(name)
    assert cls.config_class is not ModelConfig, f"{name} has no config class of its own"
    declared = set(cls.config_class.field_names()) - ModelConfig.TEST_ONLY
    unread = declared - attributes_read(cls)
    assert not unread, f"{name} declares {sorted(unread)} but its code never reads them"


@pytest.mark.parametrize("name", available_models())
def test_unknown_keys_and_wrong_types_are_errors_naming_the_key(name):
    config_class = get_model_class(name).config_class
    with pytest.raises(ConfigError, match=r"unknown model_args option\(s\) \['no_such_option'\]"):
        config_class.from_dict({"no_such_option": 1})
    hints = {f.name: f.type for f in dataclasses.fields(config_class)}
    for field, hint in hints.items():
        if hint in ("int", "float", "bool"):
            with pytest.raises(ConfigError, match=f"model_args.{field}: expected"):
                config_class.from_dict({field: "not-a-value"})


def test_defaults_round_trip_and_coerce():
    config_class = get_model_class("clamp").config_class
    config = config_class.from_dict({"image_text": "caption", "paf": "false", "heads": 4.0, "fusion_dim": None})
    assert config.image_text == ("caption",) and config.paf is False and config.heads == 4
    assert config_class.from_dict(config.to_dict()) == config
    assert config.replace(heads=2).heads == 2 and config.heads == 4  # frozen: a copy


def test_object_options_merge_over_their_defaults():
    lora = get_model_class("iea").config_class.from_dict({"lora": {"r": 16}}).lora
    assert lora["r"] == 16 and lora["alpha"] == 16 and lora["target_modules"]


def shipped_configs() -> list[tuple[str, Path]]:
    root = resources.files("mabsa") / "configs"
    out = [(p.name, Path(str(p))) for p in root.iterdir() if p.name.endswith(".json")]
    return out + [(f"presets/{name}", Path(str(root / "presets" / f"{name}.json"))) for name in presets()]


@pytest.mark.parametrize("label, path", shipped_configs(), ids=[label for label, _ in shipped_configs()])
def test_every_shipped_config_and_preset_loads_typed(label, path):
    raw = json.loads(path.read_text())
    config = load_run_config(raw["model"], path if label.startswith("presets/") else None)
    typed = get_model_class(raw["model"]).config_class.from_dict(config["model_args"])
    assert typed.to_dict() == config["model_args"]
    TrainConfig.from_dict(config["train"])


@pytest.mark.parametrize("name", [n for n in available_models() if not get_model_class(n).composed])
def test_packaged_json_holds_only_what_differs(name):
    packaged = packaged_config(name)
    defaults = get_model_class(name).config_class().to_dict()
    same = [k for k, v in packaged.get("model_args", {}).items() if defaults.get(k) == v]
    train_defaults = TrainConfig().to_dict()
    same += [f"train.{k}" for k, v in packaged.get("train", {}).items() if train_defaults.get(k) == v]
    assert not same, f"configs/{name}.json repeats defaults: {same}"
