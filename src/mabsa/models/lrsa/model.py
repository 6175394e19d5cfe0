"""LRSA: LLM-generated rationales injected into a small LM, with dual image<->text cross-attention
(``../shared/papers/lrsa.txt``; design and measured choices in ``docs/methods/lrsa.md``)::

    post ─┬─ [CLS] post [SEP] rationale [SEP] ──encoder──> H           (injection="segment")
          └─ [CLS] post [SEP] ──encoder──> H ──MHA(H, R)──> H            (injection="encoder")
    rationale ────────────────────encoder──> R ─────┘
    image ─visual stream─> V ──DualCrossAttention(H, V)──> H_fused ─┬─> first subwords ─> CRF   (jmasa, mate)
                                                                    └─> [CLS ; aspect mean] ─> softmax (masc)

* ``rationale``: ``"aspect"`` (``Aspect.rationale``, the shipped miniGPT-4 texts, or generated
  for the given aspect: MASC only, leakage rule), ``"post"`` (a per-post rationale generated
  without aspects: any task) or ``"none"``. A missing rationale is simply absent.
* ``rationale_dropout``: during training a present rationale is withheld with this probability,
  so the model also predicts well when no LLM is reachable. Withholding is exact: the input is
  then what it would be without a rationale.
* ``dual``: the visual stream of :class:`~mabsa.processing.visual.MultimodalProcessor` (real image
  tokens, or the per-image texts through the same encoder) fused by
  :class:`~mabsa.modules.dual_attention.DualCrossAttention`.
* ``freeze_encoder`` (the CPU preset): the text encoder is frozen and its outputs cached per
  distinct input, so the encoder runs once per text over all epochs and seeds of a process;
  ``adapter_layers`` trainable transformer layers then sit on top of it.

The heads are :mod:`mabsa.modules.heads`' (as in ``text-crf`` / ``text-cls``; this module
builds only the hidden states they read), so decoding, scores and truncation behave the same.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import nn

from mabsa.data.records import Aspect, Post, Rationale
from mabsa.encoders.text import TextEncoder
from mabsa.errors import MabsaError
from mabsa.models.base import MabsaModel, register
from mabsa.models.config import ModelConfig
from mabsa.models.lrsa.config import LRSAConfig
from mabsa.models.lrsa.rationales import RationaleSource
from mabsa.models.text.model import CLASSIFIER_WEIGHTS_BEFORE_HEADS, TAGGER_WEIGHTS_BEFORE_HEADS
from mabsa.models.visual_stream import attach_vision_encoder, visual_args
from mabsa.modules.attention import MultiHeadAttention, compatible_heads
from mabsa.modules.dual_attention import DualCrossAttention
from mabsa.modules.heads import ClassificationHead, TaggingHead, cls_and_aspect, first_subwords
from mabsa.modules.outputs import ModelOutput
from mabsa.processing.errors import LeakageError
from mabsa.processing.processor import EXTRACTION_TASKS
from mabsa.processing.visual import MultimodalProcessor

RATIONALE_SOURCES = ("none", "aspect", "post")
INJECTIONS = ("segment", "encoder")
RATIONALE_PARTS = ("reason", "description")
BACKEND_ENV = "MABSA_RATIONALE_BACKEND"


class RationaleNotice(UserWarning):
    """Says, for a prediction call, how many inputs were read with a rationale."""


class LRSAProcessor(MultimodalProcessor):
    """A :class:`MultimodalProcessor` whose features also carry a rationale: as the second text
    segment (``injection="segment"``) or as its own sequence (``"encoder"``)."""

    def __init__(
        self,
        tokenizer: Any,
        task: str,
        rationale: str = "aspect",
        injection: str = "segment",
        rationale_max_length: int = 96,
        rationale_parts: Sequence[str] = RATIONALE_PARTS,
        **kwargs: Any,
    ):
        super().__init__(tokenizer, task, **kwargs)
        if rationale not in RATIONALE_SOURCES:
            raise MabsaError(f"unknown rationale source {rationale!r}: use one of {', '.join(RATIONALE_SOURCES)}")
        if injection not in INJECTIONS:
            raise MabsaError(f"unknown injection {injection!r}: use one of {', '.join(INJECTIONS)}")
        bad = [p for p in rationale_parts if p not in RATIONALE_PARTS]
        if bad or not rationale_parts:
            raise MabsaError(f"rationale_parts {list(rationale_parts)}: use some of {', '.join(RATIONALE_PARTS)}")
        if rationale == "aspect" and task in EXTRACTION_TASKS:
            raise LeakageError(
                f"rationale='aspect' reads per-aspect rationales, which were built with the gold "
                f"aspects; a {task} model may read only per-post rationales (rationale='post') - "
                "or use a two-stage JMASA whose polarity stage reads them"
            )
        self.rationale = rationale
        self.injection = injection
        self.rationale_max_length = int(rationale_max_length)
        self.rationale_parts = tuple(rationale_parts)
        #: called for an input that has no rationale: (post, aspect or None) -> Rationale | None
        self.rationale_source: Callable[[Post, Aspect | None], Rationale | None] | None = None
        self.last_report: dict[str, Any] = {}
        self._inject = False
        self._texts: dict[tuple, tuple[str | None, Rationale | None]] = {}
        self._generated = 0

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(
            rationale=self.rationale,
            injection=self.injection,
            rationale_max_length=self.rationale_max_length,
            rationale_parts=list(self.rationale_parts),
        )
        return out

    # -- rationale text ------------------------------------------------------------------
    def _find(self, post: Post, aspect: Aspect | None) -> tuple[Rationale | None, bool]:
        """(rationale, generated?) for one input."""
        if self.rationale == "aspect":
            if aspect is not None and aspect.rationale is not None:
                return aspect.rationale, False
            if self.rationale_source is not None and aspect is not None:
                return self.rationale_source(post, aspect), True
            return None, False
        if self.rationale == "post" and self.rationale_source is not None:
            return self.rationale_source(post, None), True
        return None, False

    def _cut(self, text: str) -> str | None:
        """The leading whole words of ``text`` that fit in ``rationale_max_length`` subwords."""
        words = text.split()[: self.rationale_max_length]  # a word is at least one subword
        if not words:
            return None
        enc = self.tokenizer([words], is_split_into_words=True, add_special_tokens=False)
        counts = [0] * len(words)
        for w in enc.word_ids(0):
            if w is not None:
                counts[w] += 1
        total, keep = 0, 0
        for c in counts:
            if total + c > self.rationale_max_length:
                break
            total, keep = total + c, keep + 1
        return " ".join(words[:keep]) or None

    def rationale_for(self, post: Post, aspect: Aspect | None) -> tuple[str | None, Rationale | None]:
        """(the text the model reads, the rationale it came from) for one input."""
        key = (post.id, post.text, aspect.span if aspect is not None else None)
        if key not in self._texts:
            found, generated = self._find(post, aspect)
            text = None
            if found is not None:
                text = " ".join(
                    getattr(found, p).strip()
                    for p in self.rationale_parts
                    if getattr(found, p) and getattr(found, p).strip()
                )
                text = self._cut(text) if text else None
            self._texts[key] = (text, found if text else None)
            self._generated += int(generated and text is not None)
        return self._texts[key]

    def image_text_for(self, post: Post, aspect: Aspect | None = None) -> str:
        base = super().image_text_for(post, aspect)
        if not self._inject:
            return base
        r, _ = self.rationale_for(post, aspect)
        return " ".join(t for t in (r, base) if t)

    # -- encoding ------------------------------------------------------------------------
    def encode(self, posts: Sequence[Post], with_labels: bool = True) -> list:
        self._texts, self._generated = {}, 0
        features: list[Any] = super().encode(posts, with_labels)  # with the rationale fields set below
        for f in features:
            if f.aspect_index is None:  # extraction: the post as a term extractor sees it
                post, aspect = f.post, None
            else:
                post = posts[f.post_index]
                aspect = post.aspects[f.aspect_index]
            f.rationale_text, f.rationale = (
                (None, None) if self.rationale == "none" else self.rationale_for(post, aspect)
            )
            f.plain_input_ids, f.plain_token_type_ids = f.input_ids, f.token_type_ids
        if self.injection == "segment" and any(f.rationale_text for f in features):
            self._inject = True
            try:
                joint = super().encode(posts, with_labels)
            finally:
                self._inject = False
            for f, j in zip(features, joint):
                assert j.word_positions == f.word_positions and j.aspect_positions == f.aspect_positions
                f.input_ids, f.token_type_ids = j.input_ids, j.token_type_ids
        n = len(features)
        used = sum(f.rationale_text is not None for f in features)
        self.last_report = {"inputs": n, "with_rationale": used, "generated": self._generated, "source": self.rationale}
        if self.rationale != "none":  # training too: a run without its rationales must say so
            unit = "aspect" if self.task == "masc" else "post"
            why = ""
            failed = getattr(self.rationale_source, "last_error", None)
            if used < n:
                why = (
                    f"; no LLM reachable ({failed})"
                    if failed
                    else "; no rationale given and no rationale backend configured"
                    if self.rationale_source is None
                    else ""
                )
            warnings.warn(
                RationaleNotice(
                    f"LRSA: a rationale was used for {used} of {n} {unit}(s) (source: {self.rationale}, "
                    f"{self._generated} generated by an LLM){why}"
                ),
                stacklevel=2,
            )
        return features

    def collate(self, features: Sequence[Any]) -> dict[str, Any]:
        batch = super().collate(features)
        B, T = batch["input_ids"].shape
        batch["rationale_present"] = torch.tensor([getattr(f, "rationale_text", None) is not None for f in features])
        if self.injection == "segment":  # the same features without their rationale, as wide

            def padded(rows: list[list[int]], value: int) -> torch.Tensor:
                out = torch.full((B, T), value, dtype=torch.long)
                for i, row in enumerate(rows):
                    out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
                return out

            ids = padded([f.plain_input_ids for f in features], self.tokenizer.pad_token_id or 0)
            lengths = torch.tensor([len(f.plain_input_ids) for f in features])
            batch.update(
                plain_input_ids=ids,
                plain_token_type_ids=padded([f.plain_token_type_ids for f in features], 0),
                plain_attention_mask=(torch.arange(T)[None, :] < lengths[:, None]).long(),
            )
        elif self.rationale != "none":
            texts = [getattr(f, "rationale_text", None) or "" for f in features]
            enc = self.tokenizer(
                texts, padding=True, truncation=True, max_length=self.rationale_max_length + 2, return_tensors="pt"
            )
            batch.update(rationale_input_ids=enc["input_ids"], rationale_attention_mask=enc["attention_mask"])
        return batch


#: Frozen-encoder outputs a model keeps ({(ids, types): (L, H) tensor}), bounded so that a
#: long-lived predictor (a server) does not grow without limit: past the bound, no new entries.
FROZEN_CACHE_MAX_ENTRIES = 400_000


@register("lrsa")
class LRSA(MabsaModel):
    """``mabsa train --model lrsa``: fused hidden states (below), then text-crf's tagging head for
    jmasa/mate or text-cls's classification head for masc."""

    tasks = ("jmasa", "mate", "masc")
    config_class: ClassVar[type[ModelConfig]] = LRSAConfig
    renamed_weights = {**TAGGER_WEIGHTS_BEFORE_HEADS, **CLASSIFIER_WEIGHTS_BEFORE_HEADS}

    def __init__(self, config: LRSAConfig, task: str, processor: LRSAProcessor, text_encoder: TextEncoder):
        super().__init__(config, task, processor, text_encoder)
        a = config
        d = text_encoder.hidden_size
        dropout = a.dropout
        self.head: TaggingHead | ClassificationHead = (
            TaggingHead(d, task, dropout) if task in EXTRACTION_TASKS else ClassificationHead(2 * d, dropout)
        )
        heads = compatible_heads(d, a.heads, getattr(text_encoder.config, "num_attention_heads", 1))
        self.rationale_dropout = a.rationale_dropout
        self.injection = processor.injection
        self.use_rationale = processor.rationale != "none"

        self.freeze_encoder = a.freeze_encoder
        if self.freeze_encoder:
            for p in self.text_encoder.parameters():
                p.requires_grad_(False)
            # the encoder is a fixed function: each input's states are computed once per model
            self._frozen_cache: dict[tuple, torch.Tensor] = {}
        n_adapter = a.adapter_layers
        self.adapter = nn.ModuleList(
            nn.TransformerEncoderLayer(d, heads, 2 * d, dropout, batch_first=True) for _ in range(n_adapter)
        )

        if self.use_rationale and self.injection == "encoder":
            self.rationale_attention = MultiHeadAttention(d, heads, dropout)
            self.rationale_norm = nn.LayerNorm(d)

        self.dual = a.dual
        self.vision = None
        if self.dual:
            self.vision, d_visual = attach_vision_encoder(a, processor, d)
            dim = a.fusion_dim or d
            self.dual_attention = DualCrossAttention(
                d, d_visual, dim, compatible_heads(dim, heads, 1), dropout, fusion=a.dual_fusion
            )
        processor.rationale_source = build_rationale_source(a, processor)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def _processor(cls, tokenizer: Any, config: LRSAConfig, task: str) -> LRSAProcessor:
        return LRSAProcessor(
            tokenizer,
            task,
            rationale=config.rationale or ("aspect" if task == "masc" else "none"),
            injection=config.injection,
            rationale_max_length=config.rationale_max_length,
            rationale_parts=config.rationale_parts,
            **visual_args(config),
            max_length=config.max_length,
            image_text=config.image_text,
            aspect_markers=config.aspect_markers,
        )

    pretrained_prefixes = ("text_encoder.", "vision.")  # at lr; fusion and heads at head_lr
    processor_class = LRSAProcessor

    def train(self, mode: bool = True) -> LRSA:
        super().train(mode)
        if self.freeze_encoder:
            self.text_encoder.eval()  # a frozen encoder is a fixed function: no dropout
        return self

    # -- hidden states ---------------------------------------------------------------------
    def _encode(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor | None = None) -> torch.Tensor:
        if not self.freeze_encoder:
            return self.text_encoder(ids, mask, types)
        cache = self._frozen_cache
        lengths = mask.sum(1).tolist()
        keys = [
            (tuple(ids[i, :n].tolist()), tuple(types[i, :n].tolist()) if types is not None else ())
            for i, n in enumerate(lengths)
        ]
        todo = [i for i, k in enumerate(keys) if k not in cache]
        fresh = {}
        if todo:
            width = max(lengths[i] for i in todo)
            with torch.no_grad():
                out = self.text_encoder(
                    ids[todo, :width], mask[todo, :width], types[todo, :width] if types is not None else None
                )
            fresh = {keys[i]: out[j, : lengths[i]].clone() for j, i in enumerate(todo)}
            if len(cache) + len(fresh) <= FROZEN_CACHE_MAX_ENTRIES:
                cache.update(fresh)
        hidden = ids.new_zeros((*ids.shape, self.text_encoder.hidden_size), dtype=torch.float32)
        for i, k in enumerate(keys):
            hidden[i, : lengths[i]] = fresh[k] if k in fresh else cache[k]
        return hidden

    def _use_rationale(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """(B,) True where the rationale is read: present, and not dropped in training."""
        use = batch["rationale_present"].bool()
        if self.training and self.rationale_dropout > 0:
            use = use & (torch.rand(use.shape) >= self.rationale_dropout)
        return use

    def visual_stream(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        present = batch["visual_present"].bool()
        if self.vision is not None:
            feats = self.vision(batch["pixel_values"])
            return feats.tokens, feats.mask.bool() & present[:, None]
        mask = batch["visual_attention_mask"]
        return self._encode(batch["visual_input_ids"], mask), mask.bool() & present[:, None]

    def encode_text(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The fused hidden states the text-crf / text-cls heads read."""
        ids, types, mask = batch["input_ids"], batch.get("token_type_ids"), batch["attention_mask"]
        use = self._use_rationale(batch) if self.use_rationale else None
        if use is not None and self.injection == "segment":
            keep = use[:, None]
            ids = torch.where(keep, ids, batch["plain_input_ids"])
            types = torch.where(keep, batch["token_type_ids"], batch["plain_token_type_ids"])
            mask = torch.where(keep, mask, batch["plain_attention_mask"])
            width = int(mask.sum(1).max())  # rows without rationale may leave trailing padding only
            ids, types, mask = ids[:, :width], types[:, :width], mask[:, :width]
        hidden = self._encode(ids, mask, types)
        text_mask = mask.bool()
        for layer in self.adapter:
            hidden = layer(hidden, src_key_padding_mask=~text_mask)
        hidden = hidden.masked_fill(~text_mask[..., None], 0.0)  # padding never carries NaN/noise
        if use is not None and self.injection == "encoder":
            r_mask = batch["rationale_attention_mask"]
            r = self._encode(batch["rationale_input_ids"], r_mask)
            attended = self.rationale_norm(hidden + self.rationale_attention(hidden, r, key_mask=r_mask.bool()))
            hidden = torch.where(use[:, None, None], attended, hidden)
        if self.dual:
            visual, visual_mask = self.visual_stream(batch)
            hidden = self.dual_attention(hidden, visual, text_mask, visual_mask)
        return hidden

    # -- heads -------------------------------------------------------------------------------
    def word_emissions(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.head(first_subwords(self.encode_text(batch), batch))

    def logits(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.head(cls_and_aspect(self.encode_text(batch), batch))

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        scores = self.word_emissions(batch) if isinstance(self.head, TaggingHead) else self.logits(batch)
        return self.head.output(scores, batch)

    @torch.no_grad()
    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        if isinstance(self.head, TaggingHead):
            return self.head.aspects(self.word_emissions(batch), batch)
        return self.aspects_from_probs(self.logits(batch).softmax(-1), batch)

    def aspects_from_probs(self, probs: torch.Tensor, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        """text-cls's prediction, reporting the rationale read (``None``: predicted without one)."""
        return [
            [replace(a, rationale=getattr(f, "rationale", None)) for a in aspects]
            for f, aspects in zip(batch["features"], ClassificationHead.aspects(probs, batch))
        ]


def build_rationale_source(config: LRSAConfig, processor: LRSAProcessor):
    """The LLM that fills in missing rationales: ``$MABSA_RATIONALE_BACKEND`` or
    ``model_args.rationale_backend`` (a chat spec); none when neither is set."""
    spec = os.environ.get(BACKEND_ENV) or config.rationale_backend
    if not spec or processor.rationale == "none":
        return None

    return RationaleSource(
        spec,
        mode=processor.rationale,
        template=config.rationale_template,
        cache=config.rationale_cache,
        image_root=config.image_root,
    )


# -- benchmarks' labelled two-stage rows ------------------------------------------------------------
def shipped_rationale_lookup(gold: Sequence[Post]) -> Callable[[Post, Aspect], Rationale | None]:
    """For benchmark runs: the shipped rationale of an *extracted* term, found only when the term
    exactly matches a gold aspect span of the same post; nothing else about the gold is used."""
    table = {(p.id, a.span): a.rationale for p in gold for a in p.aspects}
    return lambda post, aspect: table.get((post.id, aspect.span))
