"""ResNet-18 / ResNet-50 written from scratch (no torchvision), with the classifier removed.

Module names follow torchvision (`conv1`, `bn1`, `layer1`…`layer4`, `downsample`) so a torchvision
state dict (minus `fc.*`) loads with `load_state_dict(..., strict=False)` when the stems match.

Two stems:

* ``"imagenet"``: 7×7 conv stride 2 + 3×3 max-pool stride 2 (input downsampled 4× before layer1).
* ``"cifar"``: 3×3 conv stride 1, no max-pool — what small images need (lightly#1419: CIFAR SimCLR stuck
  at 76.5 % kNN until the CIFAR stem was used).

The default stem is chosen from the input size: H ≤ 64 → ``"cifar"``, otherwise ``"imagenet"``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Type, Union

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ContrastkitError
from . import register_encoder

STEMS = ("cifar", "imagenet")


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


def init_conv_bn(module: nn.Module) -> None:
    """He (fan-out) init for every conv, BN scale 1 and shift 0 — torchvision's ResNet initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class BasicBlock(nn.Module):
    """Two 3×3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1×1 reduce → 3×3 (carries the stride, "ResNet v1.5") → 1×1 expand ×4 (ResNet-50/101/152)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


Block = Union[Type[BasicBlock], Type[Bottleneck]]


class ResNet(nn.Module):
    """ResNet trunk: stem → 4 stages → global average pool → (N, out_dim). No fc layer."""

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        in_channels: int = 3,
        stem: str = "cifar",
        width: int = 64,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if stem not in STEMS:
            raise ContrastkitError(f"unknown ResNet stem {stem!r}; valid stems: {', '.join(STEMS)}")
        self.stem = stem
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)

        self._cin = width
        self.layer1 = self._make_layer(block, width, layers[0], stride=1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = width * 8 * block.expansion

        init_conv_bn(self)
        if zero_init_residual:
            # Each residual branch starts as zero, so every block starts as the identity (Goyal et al. 2017).
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.last_bn().weight)

    def _make_layer(self, block: Block, width: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._cin != width * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._cin, width * block.expansion, stride), nn.BatchNorm2d(width * block.expansion)
            )
        layers = [block(self._cin, width, stride, downsample)]
        self._cin = width * block.expansion
        layers += [block(self._cin, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def _image_info(info: DataInfo, encoder: str) -> tuple[int, int, int]:
    if len(info.shape) != 3:
        raise ContrastkitError(
            f"encoder {encoder!r} needs images shaped (C, H, W), but data {info.name!r} has sample shape "
            f"{tuple(info.shape)}; use an encoder for {info.kind} data (e.g. 'mlp' for tables)"
        )
    c, h, w = (int(s) for s in info.shape)
    return c, h, w


def default_stem(info: DataInfo) -> str:
    """``"cifar"`` for images with H ≤ 64, ``"imagenet"`` for larger ones."""
    _, h, _ = _image_info(info, "resnet")
    return "cifar" if h <= 64 else "imagenet"


@register_encoder("resnet18")
def resnet18(
    info: DataInfo, stem: Optional[str] = None, zero_init_residual: bool = False, width: int = 64
) -> ResNet:
    """ResNet-18 without fc; ``out_dim`` 512 (at width 64). ``stem`` None → chosen from the image size."""
    c, _, _ = _image_info(info, "resnet18")
    return ResNet(BasicBlock, (2, 2, 2, 2), c, stem or default_stem(info), width, zero_init_residual)


@register_encoder("resnet50")
def resnet50(
    info: DataInfo, stem: Optional[str] = None, zero_init_residual: bool = False, width: int = 64
) -> ResNet:
    """ResNet-50 without fc; ``out_dim`` 2048 (at width 64). ``stem`` None → chosen from the image size."""
    c, _, _ = _image_info(info, "resnet50")
    return ResNet(Bottleneck, (3, 4, 6, 3), c, stem or default_stem(info), width, zero_init_residual)
