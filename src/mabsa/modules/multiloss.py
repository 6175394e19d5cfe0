"""Adaptive Multi-loss Aggregation (CLAMP section 3.6, eqs. 30-32).

``w = softmax(pi / tau)``, ``w_hat = (1 - alpha) / M + alpha * w``,
``L = sum_i w_hat_i * (L_i / (2 sigma_i^2) + log sigma_i)``, with learnable sigma_i > 0
(stored as log sigma, so it stays positive) and priorities pi_i. With ``adaptive=False`` it is
the paper's "w/o AMA" ablation: the plain sum of the losses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


class AdaptiveMultiLoss(nn.Module):
    def __init__(
        self,
        names: Sequence[str],
        alpha: float = 0.5,
        temperature: float = 1.0,
        adaptive: bool = True,
        learn_priority: bool = True,
    ):
        super().__init__()
        if not 0.0 <= alpha <= 1.0 or temperature <= 0:
            raise ValueError("AMA needs 0 <= alpha <= 1 and temperature > 0")
        self.names = tuple(names)
        self.alpha, self.temperature, self.adaptive = alpha, temperature, adaptive
        m = len(self.names)
        self.log_sigma = nn.Parameter(torch.zeros(m))  # sigma = 1 at the start
        self.priority = nn.Parameter(torch.zeros(m), requires_grad=learn_priority)  # uniform at the start

    def weights(self) -> Tensor:
        """w_hat (eq. 31); sums to 1."""
        omega = torch.softmax(self.priority / self.temperature, dim=0)
        return (1 - self.alpha) / len(self.names) + self.alpha * omega

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        missing = [n for n in self.names if n not in losses]
        if missing:
            raise KeyError(f"losses missing for {missing}")
        stacked = torch.stack([losses[n] for n in self.names])
        if not self.adaptive:
            return stacked.sum()
        sigma2 = torch.exp(2 * self.log_sigma)
        return (self.weights() * (stacked / (2 * sigma2) + self.log_sigma)).sum()
