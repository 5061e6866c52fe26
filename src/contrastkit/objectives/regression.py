"""Non-contrastive objectives: a prediction regressed onto a stop-gradient target (BYOL, SimSiam, DirectPred)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["byol_loss", "simsiam_loss"]


def byol_loss(p: Tensor, z: Tensor) -> Tensor:
    """Mean over the batch of ‖p̂ − ẑ‖² = 2 − 2 cos(p, z), with z detached; fp32."""
    return (2 - 2 * F.cosine_similarity(p.float(), z.detach().float(), dim=1)).mean()


def simsiam_loss(p: Tensor, z: Tensor) -> Tensor:
    """D(p, z) = −cos(p, sg z), mean over the batch, fp32."""
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()
