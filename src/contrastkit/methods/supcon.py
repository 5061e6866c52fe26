"""Supervised contrastive learning (Khosla et al., 2020): SimCLR's recipe with positives = same label.

Uses labels, so it refuses unlabelled data. Both views of every sample are anchors (METHODS.md §10).
"""

from __future__ import annotations

import torch

from .. import objectives
from ..data.base import Batch
from .base import register_method
from .simclr import SimCLR


@register_method("supcon")
class SupCon(SimCLR):
    summary = "supervised contrastive: SimCLR views, positives are all samples of the same label"
    needs_labels = True
    defaults = {**SimCLR.defaults, "temperature": 0.1, "variant": "out"}

    def training_step(self, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = self.view1(batch.x, generator), self.view2(batch.x, generator)
        z1, z2 = self.head(self.encoder(torch.cat([v1, v2]))).float().chunk(2)
        z = torch.stack([z1, z2], dim=1)  # (N, 2 views, D)
        loss = objectives.supcon(z, batch.y, float(self.cfg["temperature"]), variant=self.cfg["variant"])
        return {"loss": loss}
