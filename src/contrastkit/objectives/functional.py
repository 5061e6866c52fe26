"""Pure contrastive objectives: tensors in, scalar out (preliminary materialised version)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ContrastkitError

__all__ = ["nt_xent"]


def _check_temperature(temperature: float) -> None:
    if float(temperature) <= 0:
        raise ContrastkitError(f"temperature must be > 0, got {temperature}; use e.g. temperature=0.1")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent (SimCLR) over 2N samples, mean over the 2N anchors. Inputs (N, D), normalised inside, fp32 math."""
    _check_temperature(temperature)
    if z1.shape != z2.shape or z1.dim() != 2:
        raise ContrastkitError(f"z1 and z2 must both have shape (N, D); got {tuple(z1.shape)} and {tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 2:
        raise ContrastkitError(f"nt_xent needs batch size >= 2 to have negatives; got z1 with N={n}. Use a larger batch.")
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)
