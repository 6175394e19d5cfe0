"""Cross-modal alignment losses: symmetric InfoNCE and IPOT word-region alignment.

CLAMP section 3.5: global contrastive learning (GCL, eq. 25) on pooled text/image vectors,
and word-region alignment (WRA, eqs. 26-27) by inexact proximal-point optimal transport (IPOT,
Xie et al. 2019) over the cosine cost between tokens and image regions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def symmetric_info_nce(text: Tensor, image: Tensor, temperature: float = 0.07) -> Tensor:
    """Eq. 25: ``-1/N sum_i [log softmax_j(s_ij/t)_i + log softmax_j(s_ji/t)_i]``.

    ``text``, ``image``: (N, d) pooled features of N matching pairs; row i of each is a pair.
    Note the paper *sums* the two directions (CLIP averages them).
    """
    if text.shape != image.shape or text.dim() != 2:
        raise ValueError(f"expected two (N, d) tensors of one shape, got {tuple(text.shape)} and {tuple(image.shape)}")
    s = F.normalize(text, dim=-1) @ F.normalize(image, dim=-1).T / temperature
    target = torch.arange(s.shape[0], device=s.device)
    return F.cross_entropy(s, target) + F.cross_entropy(s.T, target)


def cosine_cost(x: Tensor, y: Tensor) -> Tensor:
    """Eq. 26: ``C_ij = 1 - cos(x_i, y_j)`` for batches (B, n, d) x (B, k, d) -> (B, n, k)."""
    return 1.0 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(-1, -2)


def _uniform(mask: Tensor) -> Tensor:
    m = mask.float()
    return m / m.sum(-1, keepdim=True).clamp_min(1.0)


@torch.no_grad()
def ipot(
    cost: Tensor,
    x_mask: Tensor | None = None,
    y_mask: Tensor | None = None,
    beta: float = 0.5,
    iterations: int = 50,
    inner: int = 1,
) -> Tensor:
    """Transport plan T (B, n, k) between uniform masses on the real rows and columns of ``cost``.

    IPOT: ``A = exp(-C/beta)``; repeat ``Q = A * T``; Sinkhorn-scale Q to the marginals
    (``inner`` steps); ``T = diag(delta) Q diag(sigma)``. The column marginal is met exactly
    after each step, the row marginal approximately (closer with more iterations). Padded rows
    and columns carry no mass. No gradient flows through the plan (the loss is sum T*C).
    """
    b, n, k = cost.shape
    x_mask = torch.ones(b, n, dtype=torch.bool, device=cost.device) if x_mask is None else x_mask.bool()
    y_mask = torch.ones(b, k, dtype=torch.bool, device=cost.device) if y_mask is None else y_mask.bool()
    mu, nu = _uniform(x_mask), _uniform(y_mask)
    valid = (x_mask[:, :, None] & y_mask[:, None, :]).float()
    kernel = torch.exp(-cost / beta) * valid
    plan = valid.clone()
    sigma = nu.clone()
    eps = 1e-30
    for _ in range(iterations):
        q = kernel * plan
        for _ in range(inner):
            delta = mu / (q @ sigma[..., None]).squeeze(-1).clamp_min(eps)
            sigma = nu / (q.transpose(1, 2) @ delta[..., None]).squeeze(-1).clamp_min(eps)
        plan = delta[..., None] * q * sigma[:, None, :]
    return plan


def word_region_alignment_loss(
    words: Tensor,
    regions: Tensor,
    word_mask: Tensor | None = None,
    region_mask: Tensor | None = None,
    beta: float = 0.5,
    iterations: int = 50,
    hard: bool = False,
) -> Tensor:
    """Eq. 27, ``L_WRA = sum_ij T_ij C_ij`` averaged over the batch.

    ``hard=True`` keeps, for each word, only its best-matching region (T_ij in {0, 1}, the
    paper's "optimal matching region of each word element"), weighted by the word's mass.
    Samples without any real word or region contribute zero.
    """
    cost = cosine_cost(words, regions)
    plan = ipot(cost.detach(), word_mask, region_mask, beta, iterations)
    if hard:
        best = plan.argmax(-1, keepdim=True)
        mass = plan.sum(-1, keepdim=True)
        plan = torch.zeros_like(plan).scatter_(-1, best, mass)
    return (plan * cost).sum((1, 2)).mean()
