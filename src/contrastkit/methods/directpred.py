"""DirectPred (Tian, Chen & Ganguli, 2021): BYOL whose linear predictor is set analytically (METHODS.md §9).

From luckmatters `ssl/real-dataset/byol_trainer.py` (`compute_w_corr`, `update`):

    f  = online projector output (the predictor's input), detached, both views
    F̂ ← ρ F̂ + (1 − ρ) · mean_batch(f fᵀ)                  (buffer `corr`; ρ = `dyn_lambda`)
    F̂ = U diag(s) Uᵀ,   p_j = (max(s_j, 0) / max_j s_j)^{1/2} + ε,   W_p = U diag(p) Uᵀ

W_p is written into a bias-free linear predictor every `predictor_freq` steps, from the statistics accumulated
up to the PREVIOUS step, before it is used in that step; the current batch's f is folded into F̂ only after
the predictor has been applied (METHODS §9: a batch is never predicted with statistics that already contain
it). At step 0 there are no statistics yet and the predictor keeps its initial weight, the identity.
The predictor gets no optimiser updates (its parameters do not require gradients; gradients still
flow *through* it into the projector). The rest is BYOL (see byol.py). Pinned: the README-validated run,
`predictor_freq` 1, `dyn_lambda` ρ = 0.3, `dyn_eps` ε = 0.01, square root (`dyn_convert=2`), no centring;
target EMA and optimiser as our BYOL. Under DDP, mean_batch(f fᵀ) is averaged over ranks, so W_p is the
same on every rank.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ContrastkitError
from ..heads import LinearPredictor, directpred_weight
from ..core import distributed
from .base import register_method
from .byol import BYOL, BYOL_DEFAULTS


@register_method("directpred")
class DirectPred(BYOL):
    summary = "BYOL with a linear predictor set from the eigendecomposition of the projection correlation"
    defaults = {**{k: v for k, v in BYOL_DEFAULTS.items() if k != "pred_hidden_dim"},
                "predictor_freq": 1, "dyn_lambda": 0.3, "dyn_eps": 0.01}

    def __init__(self, encoder, info, cfg, train):
        if int(cfg["predictor_freq"]) < 1:
            raise ContrastkitError(f"predictor_freq={cfg['predictor_freq']} must be >= 1 (1 = every step)")
        if not 0.0 <= float(cfg["dyn_lambda"]) < 1.0:
            raise ContrastkitError(f"dyn_lambda={cfg['dyn_lambda']} must be in [0, 1); DirectPred uses 0.3")
        super().__init__(encoder, info, cfg, train)
        d = int(cfg["proj_dim"])
        self.register_buffer("corr", torch.zeros(d, d))  # F̂, the EMA of f fᵀ
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def build_predictor(self, cfg) -> torch.nn.Module:
        return LinearPredictor(int(cfg["proj_dim"]))  # W is a buffer: saved, never seen by the optimiser

    @torch.no_grad()
    def set_predictor(self) -> None:
        """Every `predictor_freq` steps (from step 1 on) set W_p from F̂ as accumulated up to the previous step."""
        step = int(self.step)
        if step > 0 and step % int(self.cfg["predictor_freq"]) == 0:
            self.predictor.set_weight(directpred_weight(self.corr, float(self.cfg["dyn_eps"])))

    @torch.no_grad()
    def update_predictor(self, z: Tensor) -> None:
        """Fold this batch's correlation into F̂ (after the predictor was applied to it)."""
        f = z.detach().float()
        with torch.autocast(f.device.type, enabled=False):
            m = f.T @ f / f.shape[0]
        if distributed.is_distributed():
            m = distributed.all_reduce_sum(m) / distributed.world_size()
        rho = float(self.cfg["dyn_lambda"])
        self.corr.mul_(rho).add_(m, alpha=1.0 - rho)

    def predictor_weight(self) -> Tensor:
        return self.predictor.weight

    def online(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = self.head(self.encoder(x))
        if not self.training:
            return z, self.predictor(z)
        self.set_predictor()
        p = self.predictor(z)
        self.update_predictor(z)
        return z, p

    def after_step(self, step: int, total_steps: int) -> None:
        super().after_step(step, total_steps)
        self.step += 1
