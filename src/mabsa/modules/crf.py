"""Linear-chain CRF: batched, masked negative log-likelihood, Viterbi decoding and marginals.

Shapes: ``emissions`` ``(B, T, L)``, ``tags`` ``(B, T)``, ``mask`` ``(B, T)`` bool with every
row a prefix of ones (sequences are left-aligned; a row may not be empty). Scores follow the
usual convention: ``start[y0] + sum_t emit[t, y_t] + sum_t trans[y_{t-1}, y_t] + end[y_last]``.

Optional hard constraints (e.g. BIO: ``I-POS`` may not follow ``O``) are given as a boolean
``allowed`` matrix ``(L, L)`` (from -> to) plus ``allowed_start`` ``(L,)``; forbidden moves get a
large negative score in training, decoding and marginals alike, so the model and the decoder
agree on the space of paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

_FORBIDDEN = -1e4


class CRF(nn.Module):
    def __init__(
        self,
        num_tags: int,
        allowed: torch.Tensor | None = None,
        allowed_start: torch.Tensor | None = None,
    ):
        super().__init__()
        if num_tags < 1:
            raise ValueError("num_tags must be >= 1")
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        trans_pen = torch.zeros(num_tags, num_tags)
        start_pen = torch.zeros(num_tags)
        if allowed is not None:
            trans_pen = trans_pen.masked_fill(~allowed.bool(), _FORBIDDEN)
        if allowed_start is not None:
            start_pen = start_pen.masked_fill(~allowed_start.bool(), _FORBIDDEN)
        # Buffers, not parameters: constraints are fixed, but saved with the weights.
        self.transition_penalty: torch.Tensor
        self.start_penalty: torch.Tensor
        self.register_buffer("transition_penalty", trans_pen)
        self.register_buffer("start_penalty", start_pen)

    # -- effective scores ----------------------------------------------------------------
    def _trans(self) -> torch.Tensor:
        return self.transitions + self.transition_penalty

    def _start(self) -> torch.Tensor:
        return self.start + self.start_penalty

    @staticmethod
    def _check(emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if emissions.dim() != 3:
            raise ValueError(f"emissions must be (B, T, L), got {tuple(emissions.shape)}")
        mask = mask.bool()
        if mask.shape != emissions.shape[:2]:
            raise ValueError("mask must be (B, T) like emissions")
        if mask.shape[1] == 0 or not bool(mask[:, 0].all()):
            raise ValueError("every sequence needs at least one unmasked first position")
        return mask

    # -- training ------------------------------------------------------------------------
    def forward(
        self,
        emissions: torch.Tensor,
        tags: torch.Tensor,
        mask: torch.Tensor,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Negative log-likelihood of ``tags``; ``reduction`` in {"mean", "sum", "none"}
        ("mean" averages over sequences)."""
        mask = self._check(emissions, mask)
        tags = tags.masked_fill(~mask, 0)
        nll = self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)
        if reduction == "none":
            return nll
        if reduction == "sum":
            return nll.sum()
        if reduction == "mean":
            return nll.mean()
        raise ValueError(f"bad reduction {reduction!r}")

    def soft_nll(self, emissions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the CRF under soft per-position targets ``(B, T, L)`` (a teacher's
        label probabilities, rows summing to 1), averaged over sequences: ``log Z`` minus the
        path score expected when each position's label is drawn from its target independently.
        One-hot targets of an allowed path give :meth:`forward`'s NLL exactly; target mass on a
        forbidden transition (a teacher unsure between ``O`` and ``I``) adds nothing."""
        mask = self._check(emissions, mask)
        maskf = mask.to(emissions.dtype)
        q = targets.to(emissions.dtype) * maskf.unsqueeze(-1)
        allowed_trans = torch.where(self.transition_penalty < 0, torch.zeros_like(self.transitions), self.transitions)
        allowed_start = torch.where(self.start_penalty < 0, torch.zeros_like(self.start), self.start)
        score = (q * emissions).sum((1, 2)) + q[:, 0] @ allowed_start
        if emissions.shape[1] > 1:
            pairs = torch.einsum("bti,ij,btj->bt", q[:, :-1], allowed_trans, q[:, 1:])
            score = score + (pairs * maskf[:, 1:]).sum(1)
        last = q.gather(1, (mask.sum(1) - 1).view(-1, 1, 1).expand(-1, 1, q.shape[-1])).squeeze(1)
        score = score + last @ self.end
        return (self.log_partition(emissions, mask) - score).mean()

    def path_score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor):
        mask = mask.bool()
        B, T, _ = emissions.shape
        maskf = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1)  # (B, T)
        score = self._start()[tags[:, 0]] + (emit * maskf).sum(1)
        if T > 1:
            trans = self._trans()[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
            score = score + (trans * maskf[:, 1:]).sum(1)
        last = tags.gather(1, (mask.sum(1) - 1).unsqueeze(1)).squeeze(1)
        return score + self.end[last]

    def _alphas(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        trans = self._trans()
        alpha = self._start() + emissions[:, 0]
        alphas = [alpha]
        for t in range(1, emissions.shape[1]):
            nxt = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t].unsqueeze(1), nxt, alpha)
            alphas.append(alpha)
        return alphas

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = self._check(emissions, mask)
        return torch.logsumexp(self._alphas(emissions, mask)[-1] + self.end, dim=1)

    # -- inference -----------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Viterbi: the best tag sequence of each row, of the row's unmasked length."""
        mask = self._check(emissions, mask)
        B, T, L = emissions.shape
        trans = self._trans()
        score = self._start() + emissions[:, 0]
        backptrs = []
        for t in range(1, T):
            cand = score.unsqueeze(2) + trans.unsqueeze(0)  # (B, from, to)
            best, idx = cand.max(dim=1)
            nxt = best + emissions[:, t]
            m = mask[:, t].unsqueeze(1)
            score = torch.where(m, nxt, score)
            # Past a row's end, point each tag to itself so backtracking passes through.
            ident = torch.arange(L, device=idx.device).expand(B, L)
            backptrs.append(torch.where(m, idx, ident))
        score = score + self.end
        best_last = score.argmax(dim=1)
        lengths = mask.sum(1).tolist()
        path = [best_last]
        for bp in reversed(backptrs):
            path.append(bp.gather(1, path[-1].unsqueeze(1)).squeeze(1))
        full = torch.stack(list(reversed(path)), dim=1).tolist()  # (B, T)
        return [row[:n] for row, n in zip(full, lengths)]

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(y_t = l | x) by forward-backward, ``(B, T, L)``; zeros at masked positions."""
        mask = self._check(emissions, mask)
        B, T, L = emissions.shape
        trans = self._trans()
        alphas = torch.stack(self._alphas(emissions, mask), dim=1)  # (B, T, L)
        lengths = mask.sum(1)
        beta = self.end.expand(B, L).clone()
        betas: list[torch.Tensor] = [beta] * T  # every slot is written below, last first
        for t in range(T - 1, -1, -1):
            is_last = (lengths - 1 == t).unsqueeze(1)
            if t == T - 1:
                cur = beta
            else:
                nxt = torch.logsumexp(trans.unsqueeze(0) + (emissions[:, t + 1] + betas[t + 1]).unsqueeze(1), dim=2)
                cur = torch.where(mask[:, t + 1].unsqueeze(1), nxt, self.end.expand(B, L))
            betas[t] = torch.where(is_last, self.end.expand(B, L), cur)
        beta_t = torch.stack(betas, dim=1)
        log_z = torch.logsumexp(alphas[torch.arange(B), lengths - 1] + self.end, dim=1)
        # clamp: in float32, alpha + beta - log Z of a near-certain label can round above 0
        probs = torch.exp(alphas + beta_t - log_z.view(B, 1, 1)).clamp(max=1.0)
        return probs * mask.unsqueeze(-1).to(probs.dtype)


def mean_crf(states: Sequence[Mapping[str, Any]]) -> CRF:
    """A CRF whose scores are the mean of several CRFs' (their state dicts, tensors or arrays;
    one label set, so the same constraints): with the members' mean emissions, Viterbi under it
    finds the path of highest mean path score. What an ensemble of taggers decodes with."""
    crf = CRF(states[0]["transitions"].shape[0])
    crf.load_state_dict({k: torch.stack([torch.as_tensor(s[k]) for s in states]).mean(0) for k in states[0]})
    return crf


def bio_transition_constraints(labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """BIO(-sentiment) constraints: ``I-X`` only after ``B-X`` or ``I-X``; never first.

    Labels are ``"O"`` or ``"B-…"``/``"I-…"`` (the type may be empty: ``"B"``, ``"I"``).
    Returns ``(allowed, allowed_start)`` for :class:`CRF`.
    """

    def split(label: str) -> tuple[str, str]:
        if label == "O":
            return "O", ""
        head, _, kind = label.partition("-")
        if head not in ("B", "I"):
            raise ValueError(f"not a BIO label: {label!r}")
        return head, kind

    parts = [split(label) for label in labels]
    L = len(labels)
    allowed = torch.ones(L, L, dtype=torch.bool)
    start = torch.ones(L, dtype=torch.bool)
    for j, (head_j, kind_j) in enumerate(parts):
        if head_j != "I":
            continue
        start[j] = False
        for i, (head_i, kind_i) in enumerate(parts):
            allowed[i, j] = head_i in ("B", "I") and kind_i == kind_j
    return allowed, start
