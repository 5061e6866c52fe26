"""BYOL (Grill et al., 2020): an online network predicts an EMA target network's projection (METHODS.md §7).

    online:  y = f_θ(x),  z = g_θ(y),  p = q_θ(z)          target: z' = g_ξ(f_ξ(x'))  (no gradient)
    ℓ(p, z') = ‖p/‖p‖ − z'/‖z'‖‖² = 2 − 2 cos(p, z')
    L = ℓ(p(v₁), sg z'(v₂)) + ℓ(p(v₂), sg z'(v₁))          (the paper's symmetrised sum; each ℓ ∈ [0, 4])
    ξ ← τ_k ξ + (1 − τ_k) θ,   τ_k = 1 − (1 − τ_base)(cos(π k / K) + 1) / 2    (after every optimizer step)

Pinned choices: τ_base (`ema_momentum`) 0.99 → 1.0 (`ema_momentum_final`), as lightly's 100-epoch
benchmark and solo-learn CIFAR (the paper's 0.996 is for 1000 epochs); heads Linear → BN → ReLU → Linear
scaled from 4096 → 256 to `proj_hidden_dim` 1024 → `proj_dim` 256 so a small CPU encoder is not dominated
by its heads; SGD lr 0.12 at batch 256 with wd 5e-4 (lightly's CIFAR-10 benchmark, 6e-2 × batch/128) —
Adam at the paper's LARS rates collapses (byol-pytorch#44). Both views go through each network in one
forward (BN sees the 2B views), as in SimCLR. (`momentum` stays the optimiser's momentum, 0.9.)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.ema import cosine_momentum, ema_update, frozen_copy
from ..data.base import Batch
from ..errors import ContrastkitError
from ..heads import PredictionHead, ProjectionHead
from ..objectives.regression import byol_loss
from .base import Method, register_method

BYOL_DEFAULTS: dict[str, Any] = {
    "ema_momentum": 0.99,  # target EMA τ_base at step 0 ...
    "ema_momentum_final": 1.0,  # ... rising to this at the last step (cosine)
    "proj_hidden_dim": 1024,
    "proj_dim": 256,
    "pred_hidden_dim": 1024,
    "optimizer": "sgd",
    "lr": 0.12,
    "weight_decay": 5e-4,
}


@register_method("byol")
class BYOL(Method):
    summary = "online network predicts an EMA target's projection (no negatives)"
    # BYOL's asymmetric views (paper, table 6): jitter (0.4, 0.4, 0.2, 0.1), solarize p (0, 0.2), blur p (1, 0.1)
    image_recipe = {"jitter_strength": (0.4, 0.4, 0.2, 0.1), "solarize_p": (0.0, 0.2)}
    image_recipe_large = {"blur_p": (1.0, 0.1)}
    defaults = dict(BYOL_DEFAULTS)

    def __init__(self, encoder, info, cfg, train):
        super().__init__(encoder, info, cfg, train)
        for key in ("ema_momentum", "ema_momentum_final"):
            if not 0.0 <= float(cfg[key]) <= 1.0:
                raise ContrastkitError(f"{key}={cfg[key]} must be in [0, 1]; BYOL uses 0.99 → 1.0")
        self.head = ProjectionHead(encoder.out_dim, int(cfg["proj_hidden_dim"]), int(cfg["proj_dim"]))
        self.predictor = self.build_predictor(cfg)
        self.target_encoder = frozen_copy(self.encoder)
        self.target_head = frozen_copy(self.head)
        self._momentum = float(cfg["ema_momentum"])
        self.view1, self.view2 = self.make_views(train)

    def build_predictor(self, cfg) -> torch.nn.Module:
        d = int(cfg["proj_dim"])
        return PredictionHead(d, int(cfg["pred_hidden_dim"]), d)

    def online(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(projection z, prediction p) of the online network."""
        z = self.head(self.encoder(x))
        return z, self.predictor(z)

    @torch.no_grad()
    def target(self, x: Tensor) -> Tensor:
        return self.target_head(self.target_encoder(x))

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        v1, v2 = self.view1(batch.x, generator), self.view2(batch.x, generator)
        x = torch.cat([v1, v2])
        z, p = self.online(x)
        t1, t2 = self.target(x).chunk(2)
        p1, p2 = p.chunk(2)
        loss = byol_loss(p1, t2) + byol_loss(p2, t1)
        out = {"loss": loss, "ema_momentum": torch.tensor(self._momentum)}
        out.update(self.extra_logs(z.detach()))
        return out

    def extra_logs(self, z: Tensor) -> dict[str, Tensor]:
        return {"z_std": F.normalize(z.float(), dim=1).std(0).mean()}  # → 0 when collapsed (≈ 1/√d healthy)

    def after_step(self, step: int, total_steps: int) -> None:
        self._momentum = cosine_momentum(step, total_steps, float(self.cfg["ema_momentum"]),
                                         float(self.cfg["ema_momentum_final"]))
        ema_update(self.target_encoder, self.encoder, self._momentum)
        ema_update(self.target_head, self.head, self._momentum)
