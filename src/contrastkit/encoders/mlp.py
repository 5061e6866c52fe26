"""MLP encoders for tables (`mlp`, `resmlp`).

Input: the float table of `contrastkit.data.table` — numeric columns go in as they are (standardised),
categorical columns (positions and cardinalities from `info.extra`) go through one `nn.Embedding` each.
Any other input is flattened and treated as all-numeric, so the MLPs also run on small images or .npy data.

* `mlp`:    [Linear → norm → ReLU] × depth → Linear(width, out_dim)
* `resmlp`: Linear(in, width) stem → depth residual blocks h ← h + ReLU(norm(Linear(h))) (optional dropout)
            → norm → Linear(width, out_dim). The residual MLP is CLAN's encoder (4 × 1024 there); the
            defaults here (width 256, depth 3, out_dim 128) are sized for CPU runs.

`norm` is "layer" (default: no batch statistics, so train and eval behave the same and tiny batches work),
"batch" or "none". The output is the representation `h` (no final activation); `.out_dim` is its size.
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ContrastkitError
from . import register_encoder

__all__ = ["TableInput", "MLPEncoder", "ResidualBlock"]


def _norm(kind: str, dim: int) -> nn.Module:
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind in ("none", None):
        return nn.Identity()
    raise ContrastkitError(f"norm={kind!r}; valid: layer, batch, none")


def _layout(info: DataInfo) -> tuple[int, list[int], list[int], list[int]]:
    extra = info.extra or {}
    n_in = 1
    for s in info.shape:
        n_in *= int(s)
    if info.kind == "table" and "numeric_index" in extra:
        return n_in, list(extra["numeric_index"]), list(extra["categorical_index"]), list(extra["cardinalities"])
    return n_in, list(range(n_in)), [], []


class TableInput(nn.Module):
    """(B, F) table → (B, n_numeric + Σ embedding dims): numerics as they are, categorical codes embedded."""

    def __init__(self, info: DataInfo, cat_embed_dim: int = 8):
        super().__init__()
        n_in, numeric, categorical, cards = _layout(info)
        self.register_buffer("numeric", torch.as_tensor(numeric, dtype=torch.long), persistent=False)
        self.register_buffer("categorical", torch.as_tensor(categorical, dtype=torch.long), persistent=False)
        self.register_buffer("max_code", torch.as_tensor([c - 1 for c in cards], dtype=torch.long), persistent=False)
        dims = [min(int(cat_embed_dim), max(2, (c + 1) // 2)) for c in cards]
        self.embeddings = nn.ModuleList(nn.Embedding(c, d) for c, d in zip(cards, dims))
        self.all_numeric = not categorical and numeric == list(range(n_in))
        self.out_dim = len(numeric) + sum(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).float() if x.dim() != 2 or not x.is_floating_point() else x
        if self.all_numeric:
            return x
        parts = [x[:, self.numeric]]
        if len(self.embeddings):
            codes = x[:, self.categorical].round().long()
            codes = torch.minimum(codes.clamp_min(0), self.max_code)  # unseen → reserved code, never out of range
            parts += [emb(codes[:, k]) for k, emb in enumerate(self.embeddings)]
        return torch.cat(parts, dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, norm: str = "layer", dropout: float = 0.0):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = _norm(norm, width)
        self.act = nn.ReLU(inplace=True)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.drop(self.act(self.norm(self.linear(h))))


class MLPEncoder(nn.Module):
    def __init__(self, info: DataInfo, width: int = 256, depth: int = 3, out_dim: int = 128,
                 residual: bool = False, norm: str = "layer", dropout: float = 0.0, cat_embed_dim: int = 8):
        super().__init__()
        if int(width) < 1 or int(depth) < 1 or int(out_dim) < 1:
            raise ContrastkitError(f"MLP encoder needs width, depth, out_dim >= 1; got {width}, {depth}, {out_dim}")
        self.input = TableInput(info, cat_embed_dim)
        d = self.input.out_dim
        layers: list[nn.Module] = []
        if residual:
            layers += [nn.Linear(d, width)]
            layers += [ResidualBlock(width, norm, dropout) for _ in range(depth)]
            layers += [_norm(norm, width)]
        else:
            for i in range(depth):
                layers += [nn.Linear(d if i == 0 else width, width), _norm(norm, width), nn.ReLU(inplace=True)]
                if dropout > 0:
                    layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(width, out_dim))
        self.body = nn.Sequential(*layers)
        self.out_dim = int(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.input(x))


@register_encoder("mlp")
def mlp(info: DataInfo, width: int = 256, depth: int = 3, out_dim: int = 128, norm: str = "layer",
        dropout: float = 0.0, cat_embed_dim: int = 8) -> MLPEncoder:
    """Plain MLP: [Linear → norm → ReLU] × depth → Linear(width, out_dim)."""
    return MLPEncoder(info, width, depth, out_dim, residual=False, norm=norm, dropout=dropout,
                      cat_embed_dim=cat_embed_dim)


@register_encoder("resmlp")
def resmlp(info: DataInfo, width: int = 256, depth: int = 3, out_dim: int = 128, norm: str = "layer",
           dropout: float = 0.0, cat_embed_dim: int = 8) -> MLPEncoder:
    """Residual MLP: stem → depth × (h + ReLU(norm(Linear h))) → norm → Linear(width, out_dim)."""
    return MLPEncoder(info, width, depth, out_dim, residual=True, norm=norm, dropout=dropout,
                      cat_embed_dim=cat_embed_dim)
