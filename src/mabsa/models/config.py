"""Typed model configs: one frozen dataclass per model, whose field defaults are the defaults.

A model's ``config_class`` turns the ``model_args`` of a run config (JSON, a preset, ``--set``)
into a typed, validated object: an unknown key is an error naming it, and each value is coerced
to its field's type or refused with the key's name (``--set model_args.paf=False`` must not
become the truthy string ``"False"``; ``image_text=caption`` means ``("caption",)``). The
packaged ``configs/<model>.json`` holds only what differs from these defaults.

Field groups several models share are mixins below (the text encoder, the visual stream);
each model's own config lives in its folder (``models/<method>/config.py``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar, Union

from mabsa.errors import ConfigError

C = TypeVar("C", bound="ModelConfig")

_BOOL_WORDS = {"true": True, "false": False}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Options every model has (both for tests and smoke runs)."""

    #: random weights instead of pretrained ones (tests, smoke runs)
    random_init: bool = False
    #: Hugging Face config fields set on a random-init encoder (tiny test models)
    encoder_overrides: dict[str, Any] | None = None

    #: fields that only tests and smoke runs set: not listed in docs, never required to be read
    TEST_ONLY: ClassVar[frozenset[str]] = frozenset({"random_init", "encoder_overrides"})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any] | None, where: str = "model_args") -> C:
        values = dict(values or {})
        hints = typing.get_type_hints(cls)
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(
                f"unknown {where} option(s) {unknown} for {cls.__name__}; known: {sorted(cls.field_names())}"
            )
        defaults = {
            f.name: f.default_factory() for f in dataclasses.fields(cls) if f.default_factory is not dataclasses.MISSING
        }
        for key, default in defaults.items():  # an object-valued option: given keys over the default's
            if isinstance(default, dict) and isinstance(values.get(key), Mapping):
                values[key] = {**default, **values[key]}
        return cls(**{k: coerce(f"{where}.{k}", v, hints[k]) for k, v in values.items()})

    @classmethod
    def of(cls: type[C], args: ModelConfig | Mapping[str, Any] | None) -> C:
        """``args`` as this config: a mapping is validated, an instance of it is kept."""
        if isinstance(args, cls):
            return args
        if isinstance(args, ModelConfig):
            args = args.to_dict()
        return cls.from_dict(args)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists), every field: what a checkpoint's config records."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self: C, **changes: Any) -> C:
        return type(self).from_dict({**self.to_dict(), **changes})


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` or a :class:`ConfigError` naming ``name``."""

    def fail(kind: str):
        raise ConfigError(f"{name}: expected {kind}, got {value!r}")

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if len(options) == 1:
            return coerce(name, value, options[0])
        for option in options:  # str | tuple[str, ...] and the like: the first that fits
            try:
                return coerce(name, value, option)
            except ConfigError:
                pass
        fail(" or ".join(getattr(o, "__name__", str(o)) for o in options))
    if hint is Any:
        return value
    if origin is typing.Literal:
        if value not in args:
            fail("one of " + ", ".join(repr(a) for a in args))
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        fail("true or false")
    if hint is int:
        if isinstance(value, bool):
            fail("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            fail("an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value).strip())
        except ValueError:
            fail("a number")
    if hint is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [value]  # image_text=caption means ["caption"]
        if not isinstance(value, (list, tuple)):
            fail("a list")
        item = args[0] if args else Any
        return tuple(coerce(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            fail("an object")
        return dict(value)
    raise TypeError(f"{name}: unsupported config type {hint!r}")  # a mistake in a config class


@dataclasses.dataclass(frozen=True)
class TextEncoderFields:
    """The text encoder and how posts become its input."""

    #: embedded name (minilm, mpnet-base, embeddinggemma-300m), a local directory or an HF id
    encoder: str = "minilm"
    #: subwords per feature (post, plus image text in a second segment)
    max_length: int = 128
    #: per-image texts read as a second segment (caption, faces); see processing.image_text
    image_text: tuple[str, ...] = ()
    dropout: float = 0.1
    #: keep the token embedding table fixed (a quarter faster on EmbeddingGemma's 262k vocabulary)
    freeze_embeddings: bool = False


@dataclasses.dataclass(frozen=True)
class AspectMarkerFields:
    """MASC: how the given aspect is marked in the sentence."""

    aspect_markers: tuple[str, ...] = ("<", ">")


@dataclasses.dataclass(frozen=True)
class VisualStreamFields:
    """Where a fusion model's image evidence comes from (``processing.visual``)."""

    #: "image-text" (the image's shipped texts, the benchmarks' stand-in) or "image" (pixels)
    visual_source: str = "image-text"
    #: per-image texts that make the visual stream with visual_source="image-text"
    visual_text: tuple[str, ...] = ("caption", "faces")
    visual_max_length: int = 64
    #: the vision encoder with visual_source="image"
    vision_encoder: str = "efficientnet-lite0"
    #: folder that dataset image names are relative to
    image_root: str | None = None
