"""Helpers shared by the model tests."""

from __future__ import annotations

import torch

#: A random-init 2-layer MiniLM-shaped encoder: what model tests build instead of real weights.
TINY_ENCODER = {
    "random_init": True,
    "encoder_overrides": {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
    },
}

#: ``--set`` items of a one-epoch engine run of a tiny random-init encoder on 16 training posts.
TINY_RUN_SETS = [
    "model_args.random_init=true",
    'model_args.encoder_overrides={"hidden_size": 32, "num_hidden_layers": 2, '
    '"num_attention_heads": 2, "intermediate_size": 37}',
    "train.max_train_posts=16",
    "train.max_eval_posts=8",
    "train.batch_size=8",
    "train.epochs=1",
    "train.patience=0",
]


def train_steps(model, batch, steps: int, lr: float = 1e-3, head_lr: float = 1e-2):
    """``steps`` AdamW steps of ``model`` on one fixed batch, with the model's own parameter groups.

    Returns the loss before each step, the optimizer and the last forward output.
    """
    opt = torch.optim.AdamW(model.parameter_groups(lr, head_lr, 0.0))
    losses, out = [], None
    for _ in range(steps):
        out = model(batch)
        losses.append(float(out.loss.detach()))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return losses, opt, out
