"""SimCLR (Chen et al., 2020): two views, encoder + projection MLP, InfoNCE over the 2N views of a batch.

`objective` selects NT-Xent (the paper), DCL or DCLW (decoupled: the positive leaves the denominator).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import objectives
from ..data.base import Batch, Dataset
from ..errors import ContrastkitError
from ..heads import ProjectionHead
from ..views import create_views
from .base import Method, register_method


@register_method("simclr")
class SimCLR(Method):
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

    def __init__(self, encoder, info, cfg):
        super().__init__(encoder, info, cfg)
        if cfg["objective"] not in ("ntxent", "dcl", "dclw"):
            raise ContrastkitError(f"objective={cfg['objective']!r}; valid objectives for simclr: dcl, dclw, ntxent")
        self.head = ProjectionHead(
            encoder.out_dim, cfg["proj_hidden_dim"], cfg["proj_dim"], num_layers=cfg["proj_layers"]
        )

    def setup(self, train: Dataset) -> None:
        self.view1 = create_views(self.info, train, self.cfg, view=1)
        self.view2 = create_views(self.info, train, self.cfg, view=2)

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        tau = float(self.cfg["temperature"])
        name = self.cfg["objective"]
        if name == "dcl":
            return objectives.dcl(z1, z2, tau)
        if name == "dclw":
            return objectives.dclw(z1, z2, tau, sigma=float(self.cfg["sigma"]))
        return objectives.nt_xent(z1, z2, tau)

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = self.view1(batch.x, generator), self.view2(batch.x, generator)
        h = self.encoder(torch.cat([v1, v2]))  # one forward: BN sees both views, as in the reference code
        z1, z2 = self.head(h).float().chunk(2)
        loss = self.loss(z1, z2)
        with torch.no_grad():
            pos = F.cosine_similarity(z1, z2).mean()
        return {"loss": loss, "pos_sim": pos}
