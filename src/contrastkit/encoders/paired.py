"""The `paired` encoder: one tower per side of paired data, each a backbone + a linear projection (as in CLIP).

`PairEncoder.encode(i, x)` maps raw side-i input (table rows, uint8 images, text bucket ids) to its embedding
in the shared space (dimension `embed_dim`); `forward(x)` takes either the pair `(a, b)` or the packed
`PairedDataset.x` (both sides flattened and concatenated, what `embed` and the monitors pass) and returns the
two embeddings concatenated, (B, 2·embed_dim) — so `contrastkit embed` writes both sides' embeddings, first
side first. The projections are part of the encoder (CLIP's image and text encoders include theirs): the
cross-modal space is where retrieval happens, so it is what gets saved and evaluated.

Backbones by side kind (override with encoder_kwargs `a` / `b` = an encoder name such as mlp, resmlp,
convnet): table → `mlp` (width 256, depth 2, out_dim 256, LayerNorm, dropout 0.3), image → `convnet`, text →
`TextEncoder` (hashed n-grams). The dropout matters on small paired sets: on mfeat pix↔fou (1,600 pairs)
recall@1 goes from ~11 % without it to ~24 % with 0.3 (bench/pairs.py).
"""

from __future__ import annotations

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ContrastkitError
from . import create_encoder, register_encoder
from .text import DEFAULT_BUCKETS, ByteTransformer, TextEncoder

__all__ = ["PairEncoder"]


class _Tower(nn.Module):
    def __init__(self, info: DataInfo, backbone: nn.Module, embed_dim: int):
        super().__init__()
        self.kind = info.kind
        self.shape = tuple(info.shape)
        self.numel = 1
        for s in self.shape:
            self.numel *= int(s)
        self.preprocess = None
        if info.kind == "image":
            from ..views.image import ImagePreprocess

            self.preprocess = ImagePreprocess(info)
        self.backbone = backbone
        self.proj = nn.Linear(backbone.out_dim, embed_dim, bias=False)

    def unpack(self, flat: torch.Tensor) -> torch.Tensor:
        x = flat.reshape(flat.shape[0], *self.shape)
        if self.kind == "image":
            return x.round().clamp(0, 255).to(torch.uint8)
        if self.kind == "text":
            return x.round().long()
        return x

    def forward(self, x: torch.Tensor, raw: bool = True) -> torch.Tensor:
        """`raw`: uint8 images get normalised here; views hand in images already normalised (raw=False)."""
        if self.preprocess is not None and raw:
            x = self.preprocess(x)
        return self.proj(self.backbone(x))


class PairEncoder(nn.Module):
    def __init__(self, info: DataInfo, a: str | None = None, b: str | None = None, embed_dim: int = 128,
                 width: int = 256, depth: int = 2, out_dim: int = 256, norm: str = "layer", text_dim: int = 128,
                 dropout: float = 0.3):
        super().__init__()
        if info.kind != "paired" or "sides" not in (info.extra or {}):
            raise ContrastkitError(f"the paired encoder needs paired data (e.g. --data mfeat); got kind {info.kind!r}")
        from ..data.paired import side_info

        towers = []
        for i, name in enumerate((a, b)):
            si = side_info(info, i)
            if name is None:
                name = {"table": "mlp", "image": "convnet", "text": "text"}[si.kind]
            if name == "text":
                if si.kind != "text":
                    raise ContrastkitError(f"side {i} is {si.kind}; the text encoder needs a text side")
                if si.extra.get("tokens") == "bytes":
                    backbone = ByteTransformer(text_dim, out_dim=out_dim)
                else:
                    backbone = TextEncoder(int(si.extra.get("buckets", DEFAULT_BUCKETS)), text_dim, width, out_dim)
            elif name in ("mlp", "resmlp"):
                backbone = create_encoder(name, si, width=width, depth=depth, out_dim=out_dim, norm=norm,
                                          dropout=dropout)
            else:
                backbone = create_encoder(name, si)
            towers.append(_Tower(si, backbone, embed_dim))
        self.towers = nn.ModuleList(towers)
        self.embed_dim = int(embed_dim)
        self.out_dim = 2 * self.embed_dim

    def encode(self, i: int, x: torch.Tensor, raw: bool = True) -> torch.Tensor:
        return self.towers[i](x, raw=raw)

    def split(self, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        na = self.towers[0].numel
        if packed.dim() != 2 or packed.shape[1] != na + self.towers[1].numel:
            raise ContrastkitError(f"packed paired input must be (B, {na + self.towers[1].numel}); "
                                   f"got {tuple(packed.shape)}")
        return self.towers[0].unpack(packed[:, :na]), self.towers[1].unpack(packed[:, na:])

    def forward(self, x) -> torch.Tensor:
        a, b = x if isinstance(x, (tuple, list)) else self.split(x)
        return torch.cat([self.encode(0, a), self.encode(1, b)], 1)


@register_encoder("paired")
def paired(info: DataInfo, **kwargs) -> PairEncoder:
    """One tower per side (backbone chosen by side kind, or encoder_kwargs a/b) + linear projection."""
    return PairEncoder(info, **kwargs)
