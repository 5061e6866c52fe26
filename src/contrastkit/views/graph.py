"""Graph views (GRACE, Zhu et al. 2020): edge dropping and feature masking, with an explicit generator.

* `drop_edges(edge_index, edge_weight, p, generator)` — removes each UNDIRECTED edge with probability p (both
  of its directions together, so the view stays symmetric and its Â stays the symmetric-normalised one; GRACE's
  `dropout_adj` drops the two directions independently). p = 0 returns the input.
* `mask_features(x, p, generator)` — zeroes each feature COLUMN with probability p, the same columns for every
  node (GRACE's `drop_feature`). p = 0 returns the input.
* `graph_views(info, train, cfg, view)` — what `create_views` returns for data of kind "graph" to methods that
  see node feature rows (SimCLR & co. on `graph_x: features`): per-node feature masking (`mask_rate`,
  default 0.3 for view 1 and 0.4 for view 2, GRACE's Cora rates) — no structure, since a row-wise method only
  sees rows. GRACE itself uses the two functions above on the whole graph.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.base import DataInfo, Dataset
from ..errors import ContrastkitError

__all__ = ["FeatureMask", "drop_edges", "graph_views", "mask_features"]


def _check_p(p: float, name: str) -> float:
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ContrastkitError(f"{name}={p} must be in [0, 1)")
    return p


def drop_edges(edge_index: torch.Tensor, edge_weight: torch.Tensor, p: float,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep each undirected edge (listed in both directions in edge_index) with probability 1 − p."""
    p = _check_p(p, "drop_edge")
    if p == 0.0:
        return edge_index, edge_weight
    one = edge_index[0] < edge_index[1]
    e, w = edge_index[:, one], edge_weight[one]
    keep = torch.rand(e.shape[1], generator=generator, device=e.device) >= p
    e, w = e[:, keep], w[keep]
    return torch.cat([e, e.flip(0)], dim=1), torch.cat([w, w])


def mask_features(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each feature column with probability p (the same columns for all nodes)."""
    p = _check_p(p, "mask_feature")
    if p == 0.0:
        return x
    keep = torch.rand(x.shape[1], generator=generator, device=x.device) >= p
    return x * keep.to(x.dtype)


class FeatureMask(nn.Module):
    """Per-node feature masking for row-wise methods: each entry zeroed with probability `rate`."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = _check_p(rate, "mask_rate")

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.rate == 0.0:
            return x
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= self.rate
        return x * keep.to(x.dtype)

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


def graph_views(info: DataInfo, train: Dataset, cfg: dict[str, Any], view: int = 1) -> nn.Module:
    if (info.extra or {}).get("graph_x") == "ids":
        raise ContrastkitError("samples are node ids (graph_x: ids): row-wise views do not apply; use method "
                               "grace, or load the graph with --graph-x features")
    rate = cfg.get("mask_rate")
    return FeatureMask(float(rate) if rate is not None else (0.3 if view == 1 else 0.4))
