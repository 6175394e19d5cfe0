"""LLM rationales for LRSA: an image description and a sentiment rationale, per (post, aspect)
or per post, generated through Perception's chat backends and cached on disk.

* The prompts live in a template file (default: the packaged ``prompts/lrsa_rationale.txt``;
  sections ``[describe-aspect]``, ``[describe-post]``, ``[aspect]``, ``[post]``);
  :class:`PromptTemplate` parses and checks it.
* :class:`RationaleSource` renders the template and calls
  :class:`mabsa.perception.interpret.RationaleGenerator` on any chat backend spec (``smollm2``,
  ``hf:<dir>``, ``openai:<base url>#<model>``: vLLM, Ollama, llama.cpp server, hosted APIs).
  A VLM backend sees the image when ``Post.image`` is a readable file; otherwise the per-image
  texts (caption + faces) stand for it. Every answer is cached under
  ``<cache>/lrsa-rationale/`` keyed by backend, prompts, mode, post text, aspect and image
  evidence, so a second run generates nothing.
* A backend that cannot be reached is not fatal: the source answers ``None`` (the model then
  predicts without a rationale, which rationale dropout trained it to do), counts the failure,
  and stops calling that backend for the rest of the run.

Leakage rule: a per-aspect rationale names the aspect it was asked about, so it may be input only
where the aspect is given (MASC, the polarity stage of a two-stage JMASA). Per-post rationales
(``mode="post"``) are generated from the post and per-image texts alone and may be input to any
task.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mabsa.data.records import Aspect, Post, Rationale
from mabsa.errors import MabsaError
from mabsa.perception.cache import DiskCache, cache_key
from mabsa.perception.errors import BackendSpecError
from mabsa.perception.interpret import RationaleGenerator
from mabsa.perception.llm import build_chat_backend, mabsa_cache_dir
from mabsa.processing.image_text import describe_faces
from mabsa.processing.images import load_image, post_image

TEMPLATE_FILE = "lrsa_rationale.txt"
MODES = ("aspect", "post")
#: section -> the fields it may use
SECTIONS: dict[str, frozenset[str]] = {
    "describe-aspect": frozenset({"aspect"}),
    "describe-post": frozenset(),
    "aspect": frozenset({"text", "description", "aspect"}),
    "post": frozenset({"text", "description"}),
}
CACHE_KIND = "lrsa-rationale"
CACHE_VERSION = 1


class PromptTemplateError(MabsaError):
    """A rationale prompt template file is malformed."""


@dataclass(frozen=True)
class PromptTemplate:
    sections: Mapping[str, str]
    source: str = "<string>"

    @classmethod
    def load(cls, path: str | Path | None = None) -> PromptTemplate:
        """The template file at ``path``, or the packaged default."""
        if path is None:
            text = (resources.files("mabsa") / "prompts" / TEMPLATE_FILE).read_text(encoding="utf-8")
            return cls.parse(text, f"mabsa/prompts/{TEMPLATE_FILE}")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as e:
            raise PromptTemplateError(f"{path}: cannot read the prompt template ({e.strerror})") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<string>") -> PromptTemplate:
        sections: dict[str, list[str]] = {}
        starts: dict[str, int] = {}
        current = None
        for lineno, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("#"):
                continue
            if stripped.startswith("[") and stripped.endswith("]"):
                current = stripped[1:-1].strip()
                if current not in SECTIONS:
                    raise PromptTemplateError(
                        f"{source}:{lineno}: unknown section [{current}]; expected "
                        + ", ".join(f"[{s}]" for s in SECTIONS)
                    )
                if current in sections:
                    raise PromptTemplateError(f"{source}:{lineno}: section [{current}] appears twice")
                sections[current], starts[current] = [], lineno
                continue
            if current is None:
                if stripped:
                    raise PromptTemplateError(f"{source}:{lineno}: text before the first [section]")
                continue
            sections[current].append(line)
        missing = [s for s in SECTIONS if s not in sections]
        if missing:
            raise PromptTemplateError(f"{source}: missing section(s) {', '.join(f'[{s}]' for s in missing)}")
        out = {}
        for name, lines in sections.items():
            body = "\n".join(lines).strip()
            if not body:
                raise PromptTemplateError(f"{source}:{starts[name]}: section [{name}] is empty")
            try:
                fields = {f for _, f, _, _ in string.Formatter().parse(body) if f is not None}
            except ValueError as e:
                raise PromptTemplateError(f"{source}:{starts[name]}: section [{name}]: {e}") from None
            bad = fields - SECTIONS[name]
            if bad:
                raise PromptTemplateError(
                    f"{source}:{starts[name]}: section [{name}] uses unknown field(s) "
                    f"{', '.join('{' + b + '}' for b in sorted(bad))}; it may use "
                    f"{', '.join('{' + f + '}' for f in sorted(SECTIONS[name])) or 'none'}"
                )
            out[name] = body
        return cls(out, source)

    def render(self, section: str, **fields: Any) -> str:
        return self.sections[section].format(**{k: fields.get(k, "") for k in SECTIONS[section]})


def image_evidence_text(post: Post) -> str:
    """The per-image texts that stand for the image for a text-only backend."""
    parts = [post.caption, describe_faces(post.faces) if post.faces is not None else None]
    return " ".join(p.strip() for p in parts if p and p.strip())


class RationaleSource:
    """Rationales from a chat backend, rendered from a template, cached; ``None`` when the
    backend cannot be reached. Call ``source(post, aspect)`` (``mode="aspect"``) or
    ``source(post)`` (``mode="post"``)."""

    def __init__(
        self,
        backend: Any = "smollm2",
        mode: str = "aspect",
        template: PromptTemplate | str | Path | None = None,
        cache: Any = None,
        max_tokens: int = 96,
        image_root: str | None = None,
    ):
        if mode not in MODES:
            raise MabsaError(f"unknown rationale mode {mode!r}: use one of {', '.join(MODES)}")
        self.mode = mode
        self.template = template if isinstance(template, PromptTemplate) else PromptTemplate.load(template)
        if cache is None:
            cache = mabsa_cache_dir() / "perception"
        self.cache = cache if isinstance(cache, DiskCache) else DiskCache(cache)
        self._backend = backend
        self.max_tokens = int(max_tokens)
        self.image_root = image_root
        self._generator = None
        self.available = True
        self.generated = self.failed = 0
        self.last_error: str | None = None

    @property
    def generator(self):
        if self._generator is None:
            backend = build_chat_backend(self._backend) if isinstance(self._backend, str) else self._backend
            self._generator = RationaleGenerator(
                backend,
                self.max_tokens,
                describe_prompt=self.template.sections[f"describe-{self.mode}"],
                rationale_prompt=self.template.sections[self.mode],
            )
        return self._generator

    @property
    def backend_id(self) -> str:
        return self._backend if isinstance(self._backend, str) else getattr(self._backend, "id", "backend")

    def _image(self, post: Post):
        source = post_image(post, self.image_root)
        return load_image(source) if source is not None else None

    def __call__(self, post: Post, aspect: Aspect | None = None) -> Rationale | None:
        if self.mode == "aspect" and aspect is None:
            raise MabsaError("a per-aspect rationale needs the aspect it is about")
        term = aspect.term if (aspect is not None and self.mode == "aspect") else None
        image = self._image(post)
        evidence = image.digest if image is not None else image_evidence_text(post)
        key = cache_key(
            CACHE_VERSION,
            self.backend_id,
            self.template.sections[f"describe-{self.mode}"],
            self.template.sections[self.mode],
            self.max_tokens,
            self.mode,
            post.text,
            term,
            evidence,
        )
        found = self.cache.get(CACHE_KIND, key)
        if found is not None:
            return Rationale(**found)
        if not self.available:
            return None
        try:
            r = self.generator.rationale(
                post.text or " ".join(post.tokens),
                term,
                image.rgb if image is not None else None,
                image_evidence_text(post) or None,
            )
        except BackendSpecError:  # a misspelt backend is the user's error, not an unreachable LLM
            raise
        except MabsaError as e:  # endpoint down, model missing: predict without it
            self.available, self.last_error = False, str(e)
            self.failed += 1
            return None
        self.generated += 1
        self.cache.put(CACHE_KIND, key, asdict(r))
        return r
