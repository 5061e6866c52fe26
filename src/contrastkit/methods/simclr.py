"""SimCLR (Chen et al., 2020): two views, encoder + projection MLP, InfoNCE over the 2N views of a batch.

`objective` selects NT-Xent (the paper), DCL or DCLW (decoupled: the positive leaves the denominator).
"""

from __future__ import annotations

import torch

from .. import objectives
from ..data.base import Batch
from ..errors import ContrastkitError
from .base import TwoViewMethod, register_method


@register_method("simclr")
class SimCLR(TwoViewMethod):
    summary = "two views, projection MLP, NT-Xent / DCL / DCLW over the global batch"
    defaults = {
        "objective": "ntxent",  # ntxent | dcl | dclw
        "temperature": 0.5,
        "sigma": 0.5,  # DCLW weighting
        "proj_hidden_dim": 512,
        "proj_dim": 128,
        "proj_layers": 2,
        "optimizer": "sgd",
        "lr": 0.3,
        "weight_decay": 1e-4,
    }

    @classmethod
    def defaults_for(cls, given):
        # DCL/DCLW's recipe uses τ = 0.1 (NT-Xent's SimCLR default is 0.5)
        if given.get("objective") in ("dcl", "dclw") and "temperature" not in given:
            return {"temperature": 0.1}
        return {}

    def __init__(self, encoder, info, cfg, train):
        if cfg["objective"] not in ("ntxent", "dcl", "dclw"):
            raise ContrastkitError(f"objective={cfg['objective']!r}; valid objectives for simclr: dcl, dclw, ntxent")
        super().__init__(encoder, info, cfg, train)

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        tau = float(self.cfg["temperature"])
        name = self.cfg["objective"]
        if name == "dcl":
            return objectives.dcl(z1, z2, tau)
        if name == "dclw":
            return objectives.dclw(z1, z2, tau, sigma=float(self.cfg["sigma"]))
        return objectives.nt_xent(z1, z2, tau)

    def objective(self, z1: torch.Tensor, z2: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.loss(z1, z2)
