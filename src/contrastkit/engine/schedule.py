"""The learning-rate schedule the loop applies every step: linear warm-up, then cosine decay to 0."""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at total_steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * (factor if g.get("scheduled", True) else 1.0)
    return optimizer.param_groups[0]["lr"]
