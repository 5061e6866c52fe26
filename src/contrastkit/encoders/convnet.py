"""The default encoder: a small ResNet-style CNN that trains fast on a few CPU cores.

Layout with the defaults (``width=24``, ``depth=1``, ``num_stages=3``, ``stem_stride=2``, ``pool_size=2``),
1×28×28 input:

    stem   3×3 conv, 24 ch, stride 2 (28×28 → 14×14) + BN + ReLU
    stage1 1 residual block, 24 ch                           (14×14)
    stage2 1 residual block, 48 ch, stride 2                 (7×7)
    stage3 1 residual block, 96 ch, stride 2                 (4×4)
    average pool to a 2×2 grid → (N, out_dim),  out_dim = width · 2^(num_stages − 1) · 2² = 384

Residual blocks are ResNet basic blocks (3×3 conv-BN-ReLU-3×3 conv-BN, + shortcut, ReLU); the shortcut
is a 1×1 conv + BN where the shape changes. Works for any (C, H, W): global pooling takes whatever
spatial size survives the strides. ~5.7 M multiply-adds and 0.17 M parameters per 28×28 image.

How the default was chosen (``bench/encoders.py --sweep``, 2-core AMD EPYC (AVX2), batch 256, forward +
backward, channels_last, fp32 — bf16 autocast is emulated on AVX2 and ~8–10× *slower* there):

    width 16 (out 64)   ~2,400 img/s per core    width 32 (out 128)            ~  800 img/s per core
    width 24 (out 96)   ~1,300 img/s per core    width 32, depth (0,1,1)       ~1,130 img/s per core
    2 threads, lightly loaded machine: width 24 → 2,420 img/s, width 32 → 1,340 img/s

and SimCLR on Fashion-MNIST for about the same compute (~320 CPU-seconds, 1 thread) gave kNN(k=20)
83.8 % (width 16, 6 epochs), 84.1 % (width 24, 4 epochs), 83.9 % (width 32, 2 epochs), 83.8 % (width 32,
depth (0,1,1), 3 epochs) — equal within single-seed noise. Width 24 is the smallest model that is not worse
and the only one of the 128-ish-dim candidates that clears the 2,000 img/s the 10-minute default job needs.
Keeping stage 1 at full resolution (``stem_stride=1``) costs ~4× the compute. ``width=32`` gives the
out_dim-128 variant (32→64→128) when time is not the constraint.

Pooling to a 2×2 grid instead of one global average (``pool_size=2``, the default) keeps where in the image a
feature was, for almost no compute (only the projection head's first layer grows). SimCLR on Fashion-MNIST,
4 epochs, the same seed (``bench/image_recipe.py``): kNN k=20 on the backbone 86.4 % with the grid against
83.7 % with global pooling (temperature 0.1–0.5, DCL, AdamW, batch 128 all gave 83.7–84.2 % with global
pooling: the pooling was the lever, not the loss). ``pool_size=1`` is the classic global-average head.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from ..data.base import DataInfo
from ..errors import ContrastkitError
from . import register_encoder
from .resnet import _image_info, init_conv_bn


class ResidualBlock(nn.Module):
    """Post-activation basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ConvNet(nn.Module):
    """Stem + stages of residual blocks (channels double and resolution halves per stage) + GAP."""

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 24,
        depth: Union[int, Sequence[int]] = 1,
        num_stages: int = 3,
        stem_stride: int = 2,
        zero_init_residual: bool = False,
        pool_size: int = 2,
    ):
        super().__init__()
        depths = [int(depth)] * num_stages if isinstance(depth, int) else [int(d) for d in depth]
        if width < 1 or not depths or any(d < 0 for d in depths) or stem_stride not in (1, 2):
            raise ContrastkitError(
                f"convnet: width must be ≥ 1 (got {width}), depth ≥ 0 per stage (got {depth}), "
                f"stem_stride 1 or 2 (got {stem_stride})"
            )
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages = []
        cin = width
        for i, d in enumerate(depths):
            cout = width * 2**i
            blocks = [ResidualBlock(cin if j == 0 else cout, cout, 2 if (i > 0 and j == 0) else 1)
                      for j in range(d)]
            if d == 0 and cin != cout:  # an empty stage still has to change the width and resolution
                blocks = [nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))]
            stages.append(nn.Sequential(*blocks))
            cin = cout
        self.stages = nn.Sequential(*stages)
        if pool_size < 1:
            raise ContrastkitError(f"convnet: pool_size must be ≥ 1 (got {pool_size})")
        self.pool = nn.AdaptiveAvgPool2d(pool_size)  # pool_size > 1 keeps a coarse spatial layout
        self.out_dim = cin * pool_size**2

        init_conv_bn(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, ResidualBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)


@register_encoder("convnet")
def convnet(
    info: DataInfo,
    width: int = 24,
    depth: Union[int, Sequence[int]] = 1,
    num_stages: int = 3,
    stem_stride: int = 2,
    zero_init_residual: bool = False,
    pool_size: int = 2,
) -> ConvNet:
    """The default image encoder. ``out_dim`` = ``width`` · 2^(num_stages − 1) · ``pool_size``² (384 by default).

    ``width``: channels of the stem and stage 1; ``depth``: residual blocks per stage (an int, or one per
    stage); ``stem_stride``: 2 (default, fast) or 1 (keeps full resolution in stage 1, ~4× the compute);
    ``pool_size``: the final feature map is average-pooled to a pool_size × pool_size grid (1: global pooling).
    """
    c, _, _ = _image_info(info, "convnet")
    return ConvNet(c, width, depth, num_stages, stem_stride, zero_init_residual, pool_size)
