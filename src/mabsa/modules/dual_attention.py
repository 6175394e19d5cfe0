"""Dual cross-attention (LRSA): text attends to the image, the image attends to the text, fused.

::

    T (B, Lt, Dt) ──proj──> t ──MHA(q=t, kv=v, mask_v)──> t2v ─┐
    V (B, Lv, Dv) ──proj──> v ──MHA(q=v, kv=t, mask_t)──> v2t ──masked mean──> g (B, D)
                                                                │
    m = gate ⊙ t2v + (1 - gate) ⊙ g,   gate = σ(W [t ; t2v ; g])      (fusion="gate")
    m = t2v + g                                                       (fusion="sum")
    out = LN(T + W_o m)          (B, Lt, Dt): a residual update of the text states

``dim`` (the attention width) may be smaller than the text's: the block then costs less and
still returns text-sized states.

Both attentions are masked (:class:`~mabsa.modules.attention.MultiHeadAttention`), the image->text
summary ``g`` is a masked mean over real visual tokens, and everything else is per position, so
padding in either stream never changes the output at a real text position. A post without image
evidence (all visual positions masked) gets no message: its output is ``LN(T)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mabsa.modules.attention import MultiHeadAttention

FUSIONS = ("gate", "sum")


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``x`` (B, L, D) over positions where ``mask`` (B, L) is True; zeros if none."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class DualCrossAttention(nn.Module):
    def __init__(
        self,
        text_dim: int,
        visual_dim: int,
        dim: int | None = None,
        heads: int = 4,
        dropout: float = 0.1,
        fusion: str = "gate",
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}: use one of {', '.join(FUSIONS)}")
        dim = dim or text_dim
        self.fusion = fusion
        self.text_in = nn.Identity() if text_dim == dim else nn.Linear(text_dim, dim)
        self.visual_in = nn.Identity() if visual_dim == dim else nn.Linear(visual_dim, dim)
        self.text_to_image = MultiHeadAttention(dim, heads, dropout)
        self.image_to_text = MultiHeadAttention(dim, heads, dropout)
        self.visual_norm = nn.LayerNorm(dim)
        self.gate = nn.Linear(3 * dim, dim) if fusion == "gate" else None
        self.out = nn.Linear(dim, text_dim)
        self.norm = nn.LayerNorm(text_dim)
        self.dropout = nn.Dropout(dropout)
        self.dim = dim

    def forward(self, text: Tensor, visual: Tensor, text_mask: Tensor, visual_mask: Tensor, return_parts: bool = False):
        """``text`` (B, Lt, Dt), ``visual`` (B, Lv, Dv), masks True for real positions ->
        (B, Lt, Dt). ``return_parts`` also returns ``t2v`` (B, Lt, dim), the image tokens after
        attending to the text (B, Lv, dim), and ``g`` (B, dim)."""
        text_mask, visual_mask = text_mask.bool(), visual_mask.bool()
        has_image = visual_mask.any(1)[:, None, None].to(text.dtype)
        t, v = self.text_in(text), self.visual_in(visual)
        t2v = self.text_to_image(t, v, key_mask=visual_mask) * has_image  # no image: no message
        v2t = self.visual_norm(v + self.image_to_text(v, t, key_mask=text_mask))
        g = masked_mean(v2t, visual_mask).unsqueeze(1).expand_as(t)
        t2v, g = self.dropout(t2v), self.dropout(g)
        if self.gate is not None:
            gate = torch.sigmoid(self.gate(torch.cat([t, t2v, g], dim=-1)))
            message = gate * t2v + (1 - gate) * g
        else:
            message = t2v + g
        out = self.norm(text + self.out(message) * has_image)
        return (out, t2v, v2t, g[:, 0]) if return_parts else out
