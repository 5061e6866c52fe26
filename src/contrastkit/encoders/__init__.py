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


def create_encoder(name: str, info: DataInfo, **kwargs: Any) -> nn.Module:
    return ENCODERS.get(name)(info, **kwargs)


# Importing the modules registers their encoders.
from . import convnet, resnet  # noqa: E402,F401

try:  # tabular encoders live in their own module
    from . import mlp  # noqa: F401
except ImportError:  # pragma: no cover - only while the module is being written
    pass
