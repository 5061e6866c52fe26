"""Exponential moving averages of weights (MoCo key encoder, BYOL/DirectPred target) and their schedule.

    θ_target ← m · θ_target + (1 − m) · θ_online

`ema_update` uses `lerp`, which is exact at both ends: m = 1 leaves the target bit-for-bit unchanged and
m = 0 makes it a bit-for-bit copy of the online weights. Only parameters are averaged; buffers (BatchNorm
running statistics) belong to the target, which computes them on its own batches — as in
facebookresearch/moco (`_momentum_update_key_encoder`) and lightly's `update_momentum`.

`cosine_momentum` is BYOL's schedule τ_k = 1 − (1 − τ_base)(cos(π k / K) + 1) / 2, generalised to an
arbitrary end value: it starts at `base` (k = 0) and reaches `final` (k = K).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["cosine_momentum", "ema_update", "frozen_copy"]


def cosine_momentum(step: int, total_steps: int, base: float, final: float = 1.0) -> float:
    """Momentum at `step` of `total_steps`: `base` at 0, `final` at total_steps, cosine in between."""
    if total_steps <= 0:
        return float(final)
    progress = min(max(step / total_steps, 0.0), 1.0)
    return float(final - (final - base) * (math.cos(math.pi * progress) + 1.0) / 2.0)


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """θ_target ← m θ_target + (1 − m) θ_online for every parameter (same structure required)."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    if len(t_params) != len(o_params):
        raise ValueError("ema_update: target and online modules have different parameter lists")
    if not t_params:
        return
    weight = 1.0 - float(momentum)
    if weight == 0.0:
        return  # m = 1: frozen (also avoids touching the tensors at all)
    torch._foreach_lerp_(t_params, [p.detach() for p in o_params], weight)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy whose parameters never require gradients (target / key network)."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target
