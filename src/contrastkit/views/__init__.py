"""Views: batched augmentation modules with per-sample random parameters from an explicit generator.

`create_views(info, train, cfg, view)` builds the module for view 1 or 2 of a recipe for the data's kind;
`create_preprocess(info)` builds the deterministic transform used for evaluation (no augmentation).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..data.base import DataInfo, Dataset
from ..errors import ContrastkitError


def create_views(info: DataInfo, train: Dataset, cfg: dict[str, Any], view: int = 1) -> nn.Module:
    if info.kind == "image":
        from .image import image_views

        return image_views(info, cfg, view)
    if info.kind == "table":
        from .tabular import table_views

        return table_views(info, train, cfg, view)
    if info.kind == "series":
        from .series import series_views

        return series_views(info, cfg, view)
    if info.kind == "graph":  # row-wise views of node features; GRACE augments the whole graph (views/graph.py)
        from .graph import graph_views

        return graph_views(info, train, cfg, view)
    raise ContrastkitError(f"no views for data of kind {info.kind!r} yet")


def create_preprocess(info: DataInfo) -> nn.Module:
    if info.kind == "image":
        from .image import ImagePreprocess

        return ImagePreprocess(info)
    return nn.Identity()
