"""CLAMP: Contrastive Learning with Adaptive Multi-loss and Progressive fusion (JMASA, MATE).

Reads like the paper's Figure 2 (``../shared/papers/clamp.txt``)::

    text ──encoder──> H^t (words) ───────────────┬──────────────> W_r H^t ─┐
                         │                       │                          + ─> u0 ─> CRF0 (decoded)
    image ─visual stream─> H^v ──> PAF(H^t, H^v) ──> h_PAF ────────────────┘
                         │                       └──────────────> u1 ─> CRF1   (text-only head)
                         └── GCL: InfoNCE(pool H^t, pool H^v)   WRA: IPOT(H^t words, H^v tokens)
    L = AMA(L_CRF = L_CRF0 + L_CRF1, L_CLS, L_GCL, L_WRA)

Choices the paper leaves open, and ours (see ``docs/methods/clamp.md``):

* PAF, CRFs and WRA work on *words* (each word's first subword), the unit of the labels.
* ``L_CLS``, "the text classification loss", is read as token-level cross-entropy of the
  fused head's 7-way scores u0 against the gold tags (the CRF's unary view of the same labels).
* GCL pools text by its ``[CLS]`` state and the image by the visual encoder's pooled vector,
  both projected to ``align_dim``; posts without image evidence are left out of the batch's
  contrast (and of WRA, where they carry no mass).
* Visual stream (``visual_source``): ``image`` -> a vision encoder (embedded EfficientNet-Lite0
  or any HF vision model); ``image-text`` -> the per-image texts through the *same* text
  encoder (the stand-in the benchmarks use here, where tweet images are unavailable).

Ablation switches (model_args): ``paf`` (False: h_PAF is a projection of the text, the image
reaches the model only through MCL), ``gcl``, ``wra`` (both False = "w/o MCL"), ``ama``
(False: the plain sum, the paper's "w/o AMA").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mabsa.data.records import Aspect
from mabsa.encoders.text import TextEncoder
from mabsa.models.base import MabsaModel, register
from mabsa.models.clamp.config import ClampConfig
from mabsa.models.visual_stream import attach_vision_encoder, visual_args
from mabsa.modules.attention import compatible_heads
from mabsa.modules.contrastive import symmetric_info_nce, word_region_alignment_loss
from mabsa.modules.fusion import ProgressiveAttentionFusion
from mabsa.modules.heads import TaggingHead, first_subwords
from mabsa.modules.multiloss import AdaptiveMultiLoss
from mabsa.modules.outputs import ModelOutput
from mabsa.processing.visual import MultimodalProcessor


@register("clamp")
class CLAMP(MabsaModel):
    tasks = ("jmasa", "mate")
    pretrained_prefixes = ("text_encoder.", "vision.")
    processor_class = MultimodalProcessor
    config_class = ClampConfig
    #: before the heads were modules: u0 was ``emissions``/``crf``, u1 ``text_emissions``/``text_crf``
    renamed_weights = {
        "emissions.": "head.emissions.",
        "crf.": "head.crf.",
        "text_emissions.": "text_head.emissions.",
        "text_crf.": "text_head.crf.",
    }

    def __init__(self, config: ClampConfig, task: str, processor: MultimodalProcessor, text_encoder: TextEncoder):
        super().__init__(config, task, processor, text_encoder)
        a = config
        d_text = text_encoder.hidden_size
        dim = a.fusion_dim or d_text
        dropout = a.dropout
        # the fused head u0 -> CRF0, the one decoded (built first: parameter order as before)
        self.head = TaggingHead(dim, task, dropout)

        # visual stream
        self.vision, d_visual = attach_vision_encoder(a, processor, d_text)

        # PAF (or its ablation)
        heads = compatible_heads(dim, a.heads, getattr(text_encoder.config, "num_attention_heads", 1))
        self.use_paf = a.paf
        max_len = a.fusion_max_len
        if self.use_paf:
            self.paf = ProgressiveAttentionFusion(d_text, d_visual, dim, heads, max_len, dropout, stages=a.paf_stages)
        else:
            self.text_projection = nn.Linear(d_text, dim)
        self.residual = nn.Linear(d_text, dim)  # W_r, eq. 28
        # text-only head u1 -> CRF1
        self.text_head = TaggingHead(d_text, task, dropout)

        # MCL
        self.use_gcl, self.use_wra = a.gcl, a.wra
        align_dim = a.align_dim
        self.temperature = a.temperature
        if self.use_gcl or self.use_wra:
            self.text_align = nn.Linear(d_text, align_dim)
            self.visual_align = nn.Linear(d_visual, align_dim)

        # AMA
        names = ["crf", "cls"] + ["gcl"] * self.use_gcl + ["wra"] * self.use_wra
        self.loss_weights = AdaptiveMultiLoss(
            names,
            alpha=a.ama_alpha,
            temperature=a.ama_temperature,
            adaptive=a.ama,
        )

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def _processor(cls, tokenizer: Any, config: ClampConfig, task: str) -> MultimodalProcessor:
        return MultimodalProcessor(
            tokenizer, task, **visual_args(config), max_length=config.max_length, image_text=config.image_text
        )

    # -- the forward pass ------------------------------------------------------------------
    def visual_stream(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Visual tokens (B, K, Dv), their mask (B, K) and a pooled vector (B, Dv)."""
        present = batch["visual_present"].bool()
        if self.vision is not None:
            feats = self.vision(batch["pixel_values"])
            tokens, mask, pooled = feats.tokens, feats.mask.bool(), feats.pooled
        else:
            mask = batch["visual_attention_mask"].bool()
            tokens = self.text_encoder(batch["visual_input_ids"], batch["visual_attention_mask"])
            pooled = tokens[:, 0]
        return tokens, mask & present[:, None], pooled

    def _features(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        hidden = self.encode_text(batch)
        words = first_subwords(hidden, batch)
        word_mask = batch["word_mask"].bool()
        visual, visual_mask, visual_pooled = self.visual_stream(batch)
        if self.use_paf:
            fused = self.paf(words, visual, word_mask, visual_mask)
        else:
            fused = self.text_projection(words)
        fused = fused + self.residual(words)  # eq. 28
        return {
            "hidden": hidden,
            "words": words,
            "word_mask": word_mask,
            "visual": visual,
            "visual_mask": visual_mask,
            "visual_pooled": visual_pooled,
            "fused": fused,
        }

    def word_emissions(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """u0, the fused head's scores: what :meth:`decode` reads."""
        return self.head(self._features(batch)["fused"])

    @torch.no_grad()
    def decode(self, batch: Mapping[str, Any]) -> list[list[Aspect]]:
        return self.head.aspects(self.word_emissions(batch), batch)

    def forward(self, batch: Mapping[str, Any]) -> ModelOutput:
        f = self._features(batch)
        u0 = self.head(f["fused"])
        out = ModelOutput(emissions=u0)
        if "labels" not in batch:
            return out
        labels, mask = batch["labels"], f["word_mask"]
        u1 = self.text_head(f["words"])
        losses = {
            "crf": self.head.loss(u0, batch) + self.text_head.loss(u1, batch),  # eq. 29
            "cls": F.cross_entropy(u0[mask], labels[mask]),
        }
        present = batch["visual_present"].bool()
        if self.use_gcl:
            losses["gcl"] = self._global_contrast(f, present)
        if self.use_wra:
            losses["wra"] = word_region_alignment_loss(
                self.text_align(f["words"]),
                self.visual_align(f["visual"]),
                mask,
                f["visual_mask"],
                beta=self.config.ipot_beta,
                iterations=self.config.ipot_iterations,
            )
        out.loss = self.loss_weights(losses)
        out.losses = {k: v.detach() for k, v in losses.items()}
        return out

    def _global_contrast(self, f: Mapping[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        if int(present.sum()) < 2:  # a contrast needs at least one negative
            return f["fused"].new_zeros(())
        text = self.text_align(f["hidden"][present, 0])
        image = self.visual_align(f["visual_pooled"][present])
        return symmetric_info_nce(text, image, self.temperature)
