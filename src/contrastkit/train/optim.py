"""Optimizers (SGD, LARS, AdamW) and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratio (You et al., 2017), as used by SimCLR/BYOL/SogCLR.

    Parameters in groups with `lars_exclude=True` (biases, norms) skip both weight decay and adaptation.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 1e-3):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars_exclude=False))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d_p = p.grad
                if not group["lars_exclude"]:
                    if group["weight_decay"]:
                        d_p = d_p.add(p, alpha=group["weight_decay"])
                    p_norm, g_norm = torch.norm(p), torch.norm(d_p)
                    trust = torch.where((p_norm > 0) & (g_norm > 0), group["eta"] * p_norm / g_norm, 1.0)
                    d_p = d_p.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(d_p).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(d_p)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])


def split_decay(groups: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Biases and normalisation parameters (ndim ≤ 1) get no weight decay (and no LARS adaptation), as in the
    SimCLR / BYOL / LARS recipes — except in a group marked ``decay_norm_bias: True``, whose parameters all
    decay: MoCo (and MoCHi, MoCo-FT) and SimSiam mark theirs, because their references apply weight decay to
    every parameter (``SGD(model.parameters(), weight_decay=...)``)."""
    out = []
    for group in groups:
        params = list(group["params"])
        rest = {k: v for k, v in group.items() if k not in ("params", "decay_norm_bias")}
        if group.get("decay_norm_bias"):
            if params:
                out.append({**rest, "params": params})
            continue
        decay = [p for p in params if p.ndim > 1]
        no_decay = [p for p in params if p.ndim <= 1]
        if decay:
            out.append({**rest, "params": decay})
        if no_decay:
            out.append({**rest, "params": no_decay, "weight_decay": 0.0, "lars_exclude": True})
    return out


def scaled_lr(cfg: dict[str, Any]) -> float:
    base, ratio = float(cfg["lr"]), int(cfg["batch_size"]) / 256
    return {"linear": base * ratio, "sqrt": base * math.sqrt(ratio), "none": base}[cfg.get("lr_scaling", "linear")]


def build_optimizer(groups: list[dict[str, Any]], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    lr, wd, name = scaled_lr(cfg), float(cfg["weight_decay"]), cfg["optimizer"]
    groups = split_decay(groups)
    for g in groups:
        g.setdefault("weight_decay", wd)
        g["lr_scale"] = g.get("lr_scale", 1.0)
        g["base_lr"] = lr * g["lr_scale"]
        g["lr"] = g["base_lr"]
    if name == "sgd":
        for g in groups:
            g.pop("lars_exclude", None)
        return torch.optim.SGD(groups, lr=lr, momentum=float(cfg["momentum"]), weight_decay=wd)
    if name == "lars":
        return LARS(groups, lr=lr, momentum=float(cfg["momentum"]), weight_decay=wd)
    for g in groups:
        g.pop("lars_exclude", None)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=wd)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
