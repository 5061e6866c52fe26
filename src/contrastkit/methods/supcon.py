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

    def objective(self, z1: torch.Tensor, z2: torch.Tensor, batch: Batch) -> torch.Tensor:
        z = torch.stack([z1, z2], dim=1)  # (N, 2 views, D)
        return objectives.supcon(z, batch.y, float(self.cfg["temperature"]), variant=self.cfg["variant"])

    def logs(self, z1, z2, batch):
        return {}
