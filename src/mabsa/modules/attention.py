"""Multi-head attention with padding masks and an optional additive score bias.

One implementation serves self- and cross-attention in every fusion block, so masking works
the same everywhere: a query whose keys are all padding (e.g. a post without an image) gets a
zero output instead of NaN.
"""

from __future__ import annotations

from torch import Tensor, nn


def compatible_heads(dim: int, wanted: int, fallback: int = 1) -> int:
    """``wanted`` heads when ``dim`` divides by it (e.g. a paper's 12), else ``fallback``, else 1."""
    for h in (wanted, fallback, 1):
        if h and dim % h == 0:
            return h
    return 1


def masked_softmax(scores: Tensor, key_mask: Tensor | None) -> Tensor:
    """Softmax over the last dim; ``key_mask`` (B, Lk) is True for real keys.

    Rows with no real key return all zeros (not NaN).
    """
    if key_mask is None:
        return scores.softmax(-1)
    keep = key_mask[:, None, None, :]
    scores = scores.masked_fill(~keep, float("-inf"))
    probs = scores.softmax(-1)
    return probs.nan_to_num(0.0)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over ``heads`` heads.

    ``bias`` (broadcastable to (B, heads, Lq, Lk)) is added to the scores before the softmax,
    as CLAMP's relative position bias P is (its eq. 15).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, kv_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden size {dim} is not divisible by {heads} heads")
        kv_dim = kv_dim or dim
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(kv_dim, dim)
        self.v = nn.Linear(kv_dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor | None = None,
        key_mask: Tensor | None = None,
        bias: Tensor | None = None,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        value = key if value is None else value
        q, k, v = self._split(self.q(query)), self._split(self.k(key)), self._split(self.v(value))
        scores = q @ k.transpose(-1, -2) / self.head_dim**0.5
        if bias is not None:
            scores = scores + bias
        weights = masked_softmax(scores, key_mask)
        out = self.dropout(weights) @ v
        out = self.out(out.transpose(1, 2).reshape(query.shape[0], query.shape[1], -1))
        return (out, weights) if return_weights else out
