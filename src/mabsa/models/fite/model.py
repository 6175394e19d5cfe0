"""FITE (Yang et al., EMNLP 2022): facial expressions turned into text, fused with a caption
through a gate. MASC only (the aspect is given). Paper: ``../shared/papers/fite.txt``.

Two text encoders read two pair inputs (eqs. 7-8)::

    face branch     [CLS] T [SEP] A [SEP] D [SEP]     D = the aspect's face description
    caption branch  [CLS] T [SEP] A [SEP] C [SEP]     C = the image caption

and their ``[CLS]`` states are fused (eqs. 9-10) and classified (eq. 11)::

    g = tanh(W_D h_D + W_C h_C + b),   H = g * h_D + (1 - g) * h_C,   p = softmax(W H + b')

``pooling``: ``"cls"`` (the paper: ``h`` = the ``[CLS]`` state) or ``"cls+aspect"`` (``h`` =
``[CLS]`` state and the mean of the aspect's subword states in T, as ``text-cls`` pools; chosen
for the MiniLM CPU preset on dev, see docs/methods/fite.md).

Variants (``model_args``): ``fusion="concat"`` (w/o gate: ``[h_D ; h_C]``), ``branches=["face"]``
(w/o caption), ``branches=["caption"]`` (w/o face description), ``encoder`` (FITE-DE: another
backbone). ``face_source``: ``"auto"`` reads the shipped per-aspect description
(``Post.aspect_face_description``) when a post has one and otherwise builds it from ``Post.faces``
with :mod:`mabsa.perception.face_text` (face matched to the aspect, rewritten); ``"faces"`` always
builds it. ``similarity``: the image-text model that matches faces to aspects (``None`` = the
embedded most-confident-face rule).

The face description the model read is returned with each prediction as
``Aspect.rationale`` (``source`` = ``"fite:face-description"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig

from mabsa.data.records import Aspect, Post, Rationale
from mabsa.encoders.text import TextEncoder, load_tokenizer
from mabsa.errors import MabsaError
from mabsa.models.base import ENCODER_CONFIG_DIR, MabsaModel, register
from mabsa.models.config import ModelConfig
from mabsa.models.fite.config import FiteConfig
from mabsa.models.text.model import TextClassifier
from mabsa.modules.heads import ClassificationHead, cls_and_aspect
from mabsa.perception.face_text import FaceTextBuilder
from mabsa.processing.image_text import MIN_ATTRIBUTE_CONFIDENCE
from mabsa.processing.images import post_image
from mabsa.processing.processor import Feature, Processor

#: branch -> the per-image Post field it reads (what a predictor must perceive for it)
BRANCH_SOURCES = {"face": "faces", "caption": "caption"}
FACE_SOURCES = ("auto", "faces")
POOLINGS = ("cls", "cls+aspect")
RATIONALE_SOURCE = "fite:face-description"


class GatedFusion(nn.Module):
    """Eqs. 9-10: ``g = tanh(W_D h_D + W_C h_C + b)``, ``H = g * h_D + (1 - g) * h_C``."""

    def __init__(self, dim: int):
        super().__init__()
        self.w_d = nn.Linear(dim, dim, bias=False)
        self.w_c = nn.Linear(dim, dim)  # carries b

    def forward(self, h_d: torch.Tensor, h_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.tanh(self.w_d(h_d) + self.w_c(h_c))
        return g * h_d + (1 - g) * h_c, g


@dataclass
class FiteFeature(Feature):
    branch_inputs: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    face_text: str | None = None  # the face description the face branch read
    cut: bool = False  # words of the post did not fit

    @property
    def truncated(self) -> bool:
        return self.cut


class _BranchProcessor(Processor):
    """``[CLS] T [SEP] A [SEP] X [SEP]``: the engine's masc encoding (aspect span kept in the
    window, second segment cut first) with ``A [SEP] X`` as its second segment."""

    def __init__(self, tokenizer: Any, max_length: int, text_for, word_alignment: str):
        super().__init__(tokenizer, "masc", max_length, aspect_markers=("", ""), word_alignment=word_alignment)
        self.text_for = text_for

    def image_text_for(self, post: Post, aspect: Aspect | None = None) -> str:
        assert aspect is not None  # masc: one feature per given aspect
        extra = self.text_for(post, aspect) or ""
        # Gemma-style tokenizers have no [SEP]; their end-of-sequence token separates as well
        sep = self.tokenizer.sep_token or self.tokenizer.eos_token
        return f"{aspect.term} {sep} {extra}".strip()


class FiteProcessor(Processor):
    """One masc feature per (post, aspect) holding both branches' token ids."""

    def __init__(
        self,
        tokenizer: Any,
        task: str = "masc",
        max_length: int = 128,
        image_text: Sequence[str] | None = None,  # derived from branches; kept for from_pretrained
        aspect_markers: Sequence[str] = ("", ""),
        branches: Sequence[str] = ("face", "caption"),
        face_source: str = "auto",
        similarity: str | None = None,
        min_attribute_confidence: float = MIN_ATTRIBUTE_CONFIDENCE,
        image_root: str | None = None,
        word_alignment: str | None = None,
    ):
        branches = tuple(branches)
        if not branches or len(set(branches)) != len(branches) or any(b not in BRANCH_SOURCES for b in branches):
            raise MabsaError(f"fite: branches must be distinct names from {list(BRANCH_SOURCES)}, got {list(branches)}")
        if face_source not in FACE_SOURCES:
            raise MabsaError(f"fite: face_source must be one of {FACE_SOURCES}, got {face_source!r}")
        if task != "masc":
            raise MabsaError(f"fite classifies given aspects (masc); task {task!r} is not supported")
        super().__init__(
            tokenizer,
            task,
            max_length,
            image_text=tuple(BRANCH_SOURCES[b] for b in branches),
            aspect_markers=("", ""),
            word_alignment=word_alignment,
        )
        self.branches = branches
        self.face_source = face_source
        self.similarity, self.image_root = similarity, image_root
        self.min_attribute_confidence = float(min_attribute_confidence)
        self.face_texts = FaceTextBuilder(similarity, self.min_attribute_confidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "branches": list(self.branches),
            "face_source": self.face_source,
            "similarity": self.similarity,
            "min_attribute_confidence": self.min_attribute_confidence,
            "image_root": self.image_root,
        }

    def face_text(self, post: Post, aspect: Aspect) -> str | None:
        """D for one aspect: the shipped description (``auto``) or one built from the faces."""
        if self.face_source == "auto" and post.aspect_face_description is not None:
            return post.aspect_face_description.strip()
        # the similarity backend needs the photo: dataset posts name it relative to image_root
        image = post_image(post, self.image_root) or post.image
        return self.face_texts.build(post.faces, aspect.term, image)[0]

    def _encode_masc(self, posts: Sequence[Post], with_labels: bool) -> list[Feature]:  # FiteFeatures
        face_texts: dict[tuple[int, tuple[int, int]], str | None] = {}

        def face_for(post: Post, aspect: Aspect) -> str | None:
            key = (id(post), aspect.span)
            if key not in face_texts:
                face_texts[key] = self.face_text(post, aspect)
            return face_texts[key]

        readers = {"face": face_for, "caption": lambda post, aspect: post.caption}
        per_branch = [
            _BranchProcessor(self.tokenizer, self.max_length, readers[b], self.word_alignment)._encode_masc(
                posts, with_labels
            )
            for b in self.branches
        ]
        features: list[Feature] = []
        for group in zip(*per_branch):
            first = group[0]
            post = posts[first.post_index]
            aspect = post.aspects[first.aspect_index]
            # The (empty) aspect markers take no subword: a right marker closing the post is
            # never "kept", which is no truncation.
            closing = 1 if aspect.end == len(post.tokens) else 0
            features.append(
                FiteFeature(
                    **vars(first),
                    cut=len(first.word_positions) < first.n_words - closing,
                    branch_inputs={b: (f.input_ids, f.token_type_ids) for b, f in zip(self.branches, group)},
                    face_text=face_for(post, aspect) if "face" in self.branches else None,
                )
            )
        return features

    def collate(self, features: Sequence[Any]) -> dict[str, Any]:  # FiteFeatures
        batch = super().collate(features)
        for b in self.branches:
            sub = super().collate(
                [replace(f, input_ids=f.branch_inputs[b][0], token_type_ids=f.branch_inputs[b][1]) for f in features]
            )
            batch[b] = {k: sub[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
        return batch


@register("fite")
class Fite(TextClassifier):
    """text-cls's loss and decoding over FITE's fused representation (``logits``)."""

    tasks = ("masc",)
    config_class = FiteConfig

    def __init__(self, config: FiteConfig, task: str, processor: FiteProcessor, text_encoder: nn.ModuleDict):
        MabsaModel.__init__(self, config, task, processor, text_encoder)  # own heads, below
        encoders: Any = text_encoder
        hidden: int = next(iter(encoders.values())).hidden_size
        self.fusion_kind = config.fusion
        if self.fusion_kind not in ("gate", "concat"):
            raise MabsaError(f"fite: fusion must be 'gate' or 'concat', got {self.fusion_kind!r}")
        self.pooling = config.pooling
        if self.pooling not in POOLINGS:
            raise MabsaError(f"fite: pooling must be one of {POOLINGS}, got {self.pooling!r}")
        per_branch = hidden * (2 if self.pooling == "cls+aspect" else 1)
        two = len(processor.branches) == 2
        self.fusion = GatedFusion(per_branch) if two and self.fusion_kind == "gate" else None
        width = 2 * per_branch if two and self.fusion_kind == "concat" else per_branch
        self.head = ClassificationHead(width, config.dropout)

    # -- construction: one encoder per branch -------------------------------------------------
    @classmethod
    def _processor(cls, tokenizer: Any, config: FiteConfig, task: str) -> FiteProcessor:
        return FiteProcessor(
            tokenizer,
            task,
            max_length=config.max_length,
            branches=config.branches,
            face_source=config.face_source,
            similarity=config.similarity,
            image_root=config.image_root,
            min_attribute_confidence=config.min_attribute_confidence,
        )

    @classmethod
    def create(cls, args: Mapping[str, Any] | ModelConfig, task: str) -> Fite:
        cls.check_task(task)
        config = FiteConfig.of(args)
        processor = cls._processor(load_tokenizer(config.encoder), config, task)
        encoders = nn.ModuleDict(
            {
                b: TextEncoder.from_config(config.encoder, config.encoder_overrides)
                if config.random_init
                else TextEncoder.from_pretrained(config.encoder)
                for b in processor.branches
            }
        )
        return cls(config, task, processor, encoders)

    @classmethod
    def restore(cls, args: Mapping[str, Any] | ModelConfig, task: str, directory: str | Path) -> Fite:
        cls.check_task(task)
        directory = Path(directory)
        processor = FiteProcessor.from_pretrained(directory)
        encoders = nn.ModuleDict(
            {
                b: TextEncoder.from_config(AutoConfig.from_pretrained(str(directory / ENCODER_CONFIG_DIR / b)))
                for b in processor.branches
            }
        )
        return cls(FiteConfig.of(args), task, processor, encoders)

    def save_components(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.processor.save_pretrained(directory)
        for b, encoder in self.text_encoder.items():
            encoder.config.save_pretrained(str(directory / ENCODER_CONFIG_DIR / b))

    # -- forward ------------------------------------------------------------------------------
    def branch_states(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """Pooled state of each branch: ``(B, H)`` for ``cls``, ``(B, 2H)`` for ``cls+aspect``
        (both branches start with the same ``[CLS] T``, so the aspect positions are shared)."""
        out = {}
        for b, encoder in self.text_encoder.items():
            x = batch[b]
            hidden = encoder(x["input_ids"], x["attention_mask"], x["token_type_ids"])
            out[b] = cls_and_aspect(hidden, batch) if self.pooling == "cls+aspect" else hidden[:, 0]
        return out

    def logits(self, batch: Mapping[str, Any]) -> torch.Tensor:
        h = self.branch_states(batch)
        if self.fusion is not None:
            fused, _ = self.fusion(h["face"], h["caption"])
        elif len(h) == 2:
            fused = torch.cat([h["face"], h["caption"]], dim=-1)
        else:
            fused = next(iter(h.values()))
        return self.head(fused)

    def aspects_from_probs(self, probs: torch.Tensor, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        """text-cls's decoding, plus the face description the model read as the rationale."""
        return [
            [
                replace(a, rationale=Rationale(description=f.face_text, source=RATIONALE_SOURCE)) if f.face_text else a
                for a in aspects
            ]
            for f, aspects in zip(batch["features"], super().aspects_from_probs(probs, batch))
        ]
