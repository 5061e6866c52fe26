"""Backbones from the ecosystem: `--encoder timm:NAME` and `--encoder torchvision:NAME`, and `.out_dim` for any
backbone that lacks it.

Neither timm nor torchvision is a dependency: the name is resolved when it is used, and a missing package is
one clear error ("pip install timm"). The backbone is built without pretrained weights unless the
encoder options ask for them (`--encoder-kwargs '{pretrained: true}'`, which downloads from the package's hub).

* `timm:NAME` → `timm.create_model(NAME, num_classes=0, in_chans=C, pretrained=False, **kwargs)`: the pooled
  features, any channel count.
* `torchvision:NAME` → `torchvision.models.get_model(NAME, weights=None, **kwargs)` with its classification
  head (`fc`, `classifier`, `head` or `heads`) replaced by the identity; 1-channel images are repeated to the
  3 channels torchvision's stems expect.

The representation size (`out_dim`) is taken from the module (`out_dim`, then timm's `num_features`) or, when
it has neither, inferred by one forward pass of a dummy batch (in eval mode, no gradients, BatchNorm statistics
untouched). `create_encoder` does the same for any registered factory whose module has no `out_dim`, so a
plug-in backbone registered with `@register_encoder` needs no extra attribute.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ContrastkitError

PREFIXES = {"timm": "timm", "torchvision": "torchvision"}  # prefix → the package it needs


def is_external(name: str) -> bool:
    return isinstance(name, str) and ":" in name


def _require(package: str, name: str):
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ContrastkitError(f"--encoder {name} needs the {package} package, which is not installed: "
                               f"pip install {package}") from None


def external_factory(name: str) -> Callable[..., nn.Module]:
    """The factory `f(info, **kwargs)` for `prefix:NAME`; checks the prefix and the package now (before any run
    folder is written)."""
    prefix, _, model = name.partition(":")
    if prefix not in PREFIXES:
        raise ContrastkitError(f"--encoder {name}: unknown prefix {prefix!r}; use timm:NAME or torchvision:NAME "
                               "(or a registered encoder name)")
    if not model:
        raise ContrastkitError(f"--encoder {name}: name the model after the colon, e.g. {prefix}:resnet18")
    _require(PREFIXES[prefix], name)

    def factory(info: DataInfo, **kwargs: Any) -> nn.Module:
        build = _timm if prefix == "timm" else _torchvision
        return ExternalEncoder(build(model, info, name, **kwargs), info, name)

    factory.__name__ = f"external[{name}]"
    return factory


def _channels(info: DataInfo) -> int:
    if info.kind != "image" or len(info.shape) != 3:
        raise ContrastkitError(f"--encoder timm:NAME / torchvision:NAME backbones are image models; {info.name!r} is "
                               f"{info.kind} data of shape {tuple(info.shape)}")
    return int(info.shape[0])


def _timm(model: str, info: DataInfo, name: str, **kwargs: Any) -> nn.Module:
    timm = _require("timm", name)
    kwargs = {"pretrained": False, "num_classes": 0, "in_chans": _channels(info), **kwargs}
    try:
        return timm.create_model(model, **kwargs)
    except RuntimeError as e:  # timm: "Unknown model (...)"
        raise ContrastkitError(f"--encoder {name}: {e} (timm.list_models() lists the names)") from None


_HEADS = ("fc", "classifier", "head", "heads")


def _torchvision(model: str, info: DataInfo, name: str, **kwargs: Any) -> nn.Module:
    tv = _require("torchvision", name)
    channels = _channels(info)
    models = importlib.import_module("torchvision.models") if not hasattr(tv, "models") else tv.models
    try:
        net = models.get_model(model, **{"weights": None, **kwargs})
    except (ValueError, KeyError) as e:  # torchvision: "Unknown model name"
        raise ContrastkitError(f"--encoder {name}: {e} (torchvision.models.list_models() lists the names)") from None
    for attr in _HEADS:
        if isinstance(getattr(net, attr, None), nn.Module):
            setattr(net, attr, nn.Identity())
            break
    return _RepeatChannels(net) if channels == 1 else net


class _RepeatChannels(nn.Module):
    """Grey images → the 3 channels a torchvision stem expects."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.expand(-1, 3, -1, -1))


class ExternalEncoder(nn.Module):
    """A third-party backbone as a contrastkit encoder: (N, ...) → (N, out_dim) features."""

    def __init__(self, net: nn.Module, info: DataInfo, name: str = "external"):
        super().__init__()
        self.net = net
        self.out_dim = out_dim_of(self, info, name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten(1)


def dummy_input(info: DataInfo, n: int = 2) -> torch.Tensor:
    """A float batch shaped like the encoder's input (what the views / preprocessing produce)."""
    return torch.zeros((n, *tuple(int(s) for s in info.shape)))


@torch.no_grad()
def infer_out_dim(module: nn.Module, info: DataInfo, name: str = "encoder",
                  forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """The feature size of `module` from one dummy forward pass (eval mode, restored afterwards)."""
    if info.kind == "paired":
        raise ContrastkitError(f"encoder {name!r} has no out_dim attribute, and paired data has no single input "
                               "to infer it from; set `self.out_dim` in the module")
    forward = forward or module
    param = next(iter(module.parameters()), None)
    x = dummy_input(info).to(param.device if param is not None else "cpu")
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        out = forward(x)
    except Exception as e:
        raise ContrastkitError(f"encoder {name!r} has no out_dim attribute and a dummy batch of shape "
                               f"{tuple(x.shape)} did not pass through it ({type(e).__name__}: {e}); set "
                               "`self.out_dim` in the module") from None
    finally:
        for m, mode in modes:
            m.training = mode
    if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != x.shape[0]:
        raise ContrastkitError(f"encoder {name!r} returned {type(out).__name__} "
                               f"{tuple(out.shape) if isinstance(out, torch.Tensor) else ''} for a batch of "
                               f"{x.shape[0]}; an encoder returns one feature tensor (N, D)")
    return int(out.flatten(1).shape[1])


def out_dim_of(module: nn.Module, info: DataInfo, name: str = "encoder",
               forward: Callable[[torch.Tensor], torch.Tensor] | None = None) -> int:
    """`module.out_dim`, else timm's `num_features` (for a pooled, headless timm model), else inferred."""
    if getattr(module, "out_dim", None) is not None:
        return int(module.out_dim)
    inner = getattr(module, "net", None)
    if inner is not None and isinstance(getattr(inner, "num_features", None), int) \
            and getattr(inner, "num_classes", None) == 0:
        return int(inner.num_features)
    return infer_out_dim(module, info, name, forward)


def ensure_out_dim(module: nn.Module, info: DataInfo, name: str) -> nn.Module:
    """Give a backbone without `.out_dim` the inferred one (instead of an AttributeError later)."""
    if not hasattr(module, "out_dim"):
        try:
            module.out_dim = out_dim_of(module, info, name)
        except AttributeError:  # a read-only property that is not an int
            raise ContrastkitError(f"encoder {name!r}: out_dim is {getattr(module, 'out_dim', None)!r}; it must be "
                                   "the feature size (an int)") from None
    return module
