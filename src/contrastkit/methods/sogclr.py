"""SogCLR and iSogCLR: the global contrastive loss optimised with per-sample state (METHODS.md §5, §6).

SogCLR (Yuan et al., 2022) replaces InfoNCE's mini-batch normaliser by a per-sample moving average u_i of
it, so small batches do not bias the gradient; iSogCLR (Qiu et al., 2023) also learns a temperature τ_i
per sample by a distributionally-robust objective. The state (u, its log-shift b, τ, τ-momentum m; one
entry per training row, indexed by `batch.index`) is built with the method, from `train`, as registered buffers, so
checkpoints hold it and DDP keeps it identical on every rank (see `objectives/sogclr.py` for the math).

Pinned defaults:
* sogclr — LibAUC `GCLoss_v1` / official SogCLR: τ = 0.1, γ = 0.9; LARS with lr 0.075·√B (= 1.2 at
  batch 256 with `lr_scaling: sqrt`), wd 1e-6 (official ImageNet recipe); 2-layer head 512 → 128.
* isogclr — the official unimodal CIFAR script (closest to our small-image setting): τ_init 0.1,
  τ ∈ [0.05, 1.0], γ 0.8, ρ 0.4, β 0.5, η 0.03, τ-gradient clipped to ±3 (official code); optimiser as
  sogclr so the two differ only by the individual temperatures (the script's lr 0.8 at batch 128 is close).

`method.temperatures()` returns the current per-sample τ (n,) for reports.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..data.base import Batch
from ..errors import ContrastkitError
from ..objectives.sogclr import GlobalContrastiveState
from .base import TwoViewMethod, register_method

_COMMON: dict[str, Any] = {
    "gamma": 0.9,
    "proj_hidden_dim": 512,
    "proj_dim": 128,
    "optimizer": "lars",
    "lr": 1.2,
    "lr_scaling": "sqrt",
    "weight_decay": 1e-6,
}


@register_method("sogclr")
class SogCLR(TwoViewMethod):
    summary = "global contrastive loss with a per-sample moving-average normaliser (small batches OK)"
    defaults: dict[str, Any] = {**_COMMON, "temperature": 0.1}

    def __init__(self, encoder, info, cfg, train):
        if not 0.0 < float(cfg["gamma"]) <= 1.0:
            raise ContrastkitError(f"gamma={cfg['gamma']} must be in (0, 1]; SogCLR uses 0.9")
        super().__init__(encoder, info, cfg, train)
        self.state = self.make_state(len(train))  # one entry per training row, keyed by Batch.index

    def make_state(self, n: int) -> GlobalContrastiveState:
        return GlobalContrastiveState(n, tau=float(self.cfg["temperature"]), gamma=float(self.cfg["gamma"]))

    def temperatures(self) -> Tensor:
        """Per-sample temperatures (n,), one per training row."""
        return self.state.temperatures()

    def objective(self, z1: Tensor, z2: Tensor, batch: Batch) -> Tensor:
        return self.state(z1, z2, batch.index)

    @torch.no_grad()
    def logs(self, z1: Tensor, z2: Tensor, batch: Batch) -> dict[str, Tensor]:
        out = super().logs(z1, z2, batch)
        if self.state.learn_tau:
            out["tau_mean"] = self.state.tau[batch.index.to(self.state.tau.device)].mean()
        return out


@register_method("isogclr")
class ISogCLR(SogCLR):
    summary = "SogCLR with a learned temperature per sample (robust global contrastive loss)"
    defaults: dict[str, Any] = {**_COMMON, "gamma": 0.8, "tau_init": 0.1, "tau_min": 0.05, "tau_max": 1.0,
                                "rho": 0.4, "tau_lr": 0.03, "tau_beta": 0.5, "tau_grad_clip": 3.0}

    def __init__(self, encoder, info, cfg, train):
        lo, hi, t0 = float(cfg["tau_min"]), float(cfg["tau_max"]), float(cfg["tau_init"])
        if not 0.0 < lo <= t0 <= hi:
            raise ContrastkitError(f"need 0 < tau_min <= tau_init <= tau_max, got {lo}, {t0}, {hi}")
        super().__init__(encoder, info, cfg, train)

    def make_state(self, n: int) -> GlobalContrastiveState:
        c = self.cfg
        clip = c.get("tau_grad_clip")
        return GlobalContrastiveState(
            n, tau=float(c["tau_init"]), gamma=float(c["gamma"]), learn_tau=True, rho=float(c["rho"]),
            eta=float(c["tau_lr"]), beta=float(c["tau_beta"]), tau_min=float(c["tau_min"]),
            tau_max=float(c["tau_max"]), grad_clip=None if clip is None else float(clip))
