"""Progressive Attention Fusion (CLAMP, section 3.4).

Text tokens are refined by the image in three stages: two :class:`AttentionStage` s (text
self-attention, text->image cross-attention, GELU feed-forward, residual LayerNorm; eqs. 7-13)
and one :class:`RelativeBiasCrossAttention` (multi-head cross-attention with a learnable
position bias P and a gated residual; eqs. 14-21). Equation numbers refer to the paper
(``../shared/papers/clamp.txt``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mabsa.modules.attention import MultiHeadAttention


class AttentionStage(nn.Module):
    """One progressive stage: SelfATT(text) -> CrossATT(text, image) -> FFN -> LN(text + .)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, heads, dropout)  # eq. 7
        self.cross_attn = MultiHeadAttention(dim, heads, dropout)  # eqs. 8-11
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))  # eq. 12
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)  # eq. 13

    def forward(self, text: Tensor, image: Tensor, text_mask: Tensor | None, image_mask: Tensor | None) -> Tensor:
        h = self.self_attn(text, text, key_mask=text_mask)
        h = self.cross_attn(h, image, key_mask=image_mask)
        h = self.out_proj(self.ffn(h))
        return self.norm(text + self.dropout(h))


class RelativeBiasCrossAttention(nn.Module):
    """Stage 3: cross-attention with a learnable bias P (L_max x L_max) and a gated residual.

    ``A_h = Q_h K_h^T / sqrt(d_k) + P[:Lq, :Lk]`` (eq. 15), ``g = sigmoid(w_g)`` (eq. 16),
    ``O = g * Concat(O_h) W_o + (1 - g) * r`` (eqs. 17-18), then one LayerNorm (eq. 19).
    P starts at zero (plain attention) and ``w_g`` at ``gate_init`` (0 -> g = 0.5: new and
    old features weighted equally at the start).
    """

    def __init__(self, dim: int, heads: int, max_len: int = 256, dropout: float = 0.1, gate_init: float = 0.0):
        super().__init__()
        self.attn = MultiHeadAttention(dim, heads, dropout)
        self.max_len = max_len
        self.position_bias = nn.Parameter(torch.zeros(max_len, max_len))  # P, eq. 14
        self.gate = nn.Parameter(torch.full((dim,), float(gate_init)))  # w_g, eq. 16
        self.norm = nn.LayerNorm(dim)

    def forward(self, text: Tensor, image: Tensor, image_mask: Tensor | None) -> Tensor:
        lq, lk = text.shape[1], image.shape[1]
        if max(lq, lk) > self.max_len:
            raise ValueError(
                f"sequence of {max(lq, lk)} tokens exceeds the position-bias size {self.max_len}; "
                "raise fusion max_len in the model config"
            )
        bias = self.position_bias[:lq, :lk]
        h = self.attn(text, image, key_mask=image_mask, bias=bias)
        g = torch.sigmoid(self.gate)
        return self.norm(g * h + (1 - g) * text)


class ProgressiveAttentionFusion(nn.Module):
    """PAF: normalise and project both streams (eqs. 3-6), then three progressive stages.

    Returns text-length features of size ``dim`` (h_PAF).
    """

    def __init__(
        self,
        text_dim: int,
        image_dim: int,
        dim: int,
        heads: int,
        max_len: int = 256,
        dropout: float = 0.1,
        stages: int = 2,
        gate_init: float = 0.0,
    ):
        super().__init__()
        self.text_in = nn.Sequential(nn.Dropout(dropout), nn.LayerNorm(text_dim), nn.Linear(text_dim, dim))
        self.image_in = nn.Sequential(nn.Dropout(dropout), nn.LayerNorm(image_dim), nn.Linear(image_dim, dim))
        self.stages = nn.ModuleList(AttentionStage(dim, heads, dropout) for _ in range(stages))
        self.enhanced = RelativeBiasCrossAttention(dim, heads, max_len, dropout, gate_init)

    def forward(
        self, text: Tensor, image: Tensor, text_mask: Tensor | None = None, image_mask: Tensor | None = None
    ) -> Tensor:
        t, v = self.text_in(text), self.image_in(image)
        for stage in self.stages:
            t = stage(t, v, text_mask, image_mask)
        return self.enhanced(t, v, image_mask)
