"""Encoder registry. Every encoder is an nn.Module with an `out_dim` attribute (the representation size)."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..data.base import DataInfo
from ..registry import Registry


class _EncoderRegistry(Registry):
    """The registry, plus `timm:NAME` / `torchvision:NAME` backbones resolved on use (encoders/external.py)."""

    def get(self, name: str) -> Callable[..., nn.Module]:
        from .external import external_factory, is_external

        if is_external(name):
            return external_factory(name)
        if name not in self:
            from ..errors import ContrastkitError

            raise ContrastkitError(f"unknown encoder {name!r}; valid encoders: {', '.join(self.names())}, or "
                                   "timm:NAME / torchvision:NAME (with timm / torchvision installed), or one a "
                                   "module registers with @register_encoder (--import MODULE)")
        return super().get(name)


ENCODERS: Registry[Callable[..., nn.Module]] = _EncoderRegistry("encoder")


def register_encoder(name: str):
    """`@register_encoder("convnet")` on a factory `f(info: DataInfo, **kwargs) -> nn.Module` with `.out_dim`."""
    return ENCODERS.register(name)


# `encoder: auto` (the default) picks the backbone for the data's kind
DEFAULT_BY_KIND = {"image": "convnet", "table": "mlp", "series": "resnet1d", "graph": "mlp", "paired": "paired"}


def resolve_encoder_name(name: str, info: DataInfo) -> str:
    return DEFAULT_BY_KIND.get(info.kind, "mlp") if name == "auto" else name


def create_encoder(name: str, info: DataInfo, **kwargs: Any) -> nn.Module:
    from .external import ensure_out_dim

    name = resolve_encoder_name(name, info)
    return ensure_out_dim(ENCODERS.get(name)(info, **kwargs), info, name)  # no .out_dim: inferred by a dummy batch


# Importing the modules registers their encoders.
from . import convnet, resnet  # noqa: E402,F401

try:  # tabular encoders live in their own module
    from . import mlp  # noqa: F401
except ImportError:  # pragma: no cover - only while the module is being written
    pass
from . import paired  # noqa: E402,F401  (paired data: one tower per side, encoders/paired.py)

from . import series  # noqa: E402,F401  (resnet1d, tcn)
from . import graph  # noqa: E402,F401  (gcn: sparse GCN over node ids, encoders/graph.py)
