"""Encoder registry. Every encoder is an nn.Module with an `out_dim` attribute (the representation size)."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..data.base import DataInfo
from ..registry import Registry

ENCODERS: Registry[Callable[..., nn.Module]] = Registry("encoder")


def register_encoder(name: str):
    """`@register_encoder("convnet")` on a factory `f(info: DataInfo, **kwargs) -> nn.Module` with `.out_dim`."""
    return ENCODERS.register(name)


# The encoder a data kind gets when the name is the trainer's default "convnet" (an image-only encoder).
KIND_DEFAULT_ENCODERS = {"series": "resnet1d"}


def create_encoder(name: str, info: DataInfo, **kwargs: Any) -> nn.Module:
    if name == "convnet" and info.kind in KIND_DEFAULT_ENCODERS:
        name = KIND_DEFAULT_ENCODERS[info.kind]
    return ENCODERS.get(name)(info, **kwargs)


# Importing the modules registers their encoders.
from . import convnet, resnet  # noqa: E402,F401

try:  # tabular encoders live in their own module
    from . import mlp  # noqa: F401
except ImportError:  # pragma: no cover - only while the module is being written
    pass
from . import paired  # noqa: E402,F401  (paired data: one tower per side, encoders/paired.py)

from . import series  # noqa: E402,F401  (resnet1d, tcn)
from . import graph  # noqa: E402,F401  (gcn: sparse GCN over node ids, encoders/graph.py)
