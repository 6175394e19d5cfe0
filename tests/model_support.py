"""Helpers shared by the model tests."""

from __future__ import annotations

import torch


def train_steps(model, batch, steps: int, lr: float = 1e-3, head_lr: float = 1e-2):
    """``steps`` AdamW steps of ``model`` on one fixed batch, with the model's own parameter groups.

    Returns the loss before each step, the optimizer and the last forward output.
    """
    opt = torch.optim.AdamW(model.parameter_groups(lr, head_lr, 0.0))
    losses, out = [], None
    for _ in range(steps):
        out = model(batch)
        losses.append(float(out["loss"].detach()))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return losses, opt, out
