"""Tiny encoders, data and configs shared by the method tests (no tests here; imported by the others)."""

from __future__ import annotations

import torch
from torch import nn

from contrastkit.config import TRAINER_DEFAULTS
from contrastkit.data.base import Batch, DataInfo, Dataset
from contrastkit.methods import METHODS


INFO = DataInfo(name="tiny", kind="image", shape=(1, 8, 8), mean=(0.3,), std=(0.3,))


class TinyEncoder(nn.Module):
    """Conv(1→4) → [BN] → ReLU → pool 2×2 → Linear(16 → out_dim)."""

    def __init__(self, out_dim: int = 12, bn: bool = True):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4) if bn else nn.Identity(),
                                 nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, out_dim))
        self.out_dim = out_dim

    def forward(self, x):
        return self.net(x)


def tiny_data(n: int = 64, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    return Dataset(x, None, INFO)


def make_cfg(name: str, **overrides) -> dict:
    cls = METHODS.get(name)
    small = {"proj_hidden_dim": 16, "proj_dim": 8}
    if "pred_hidden_dim" in cls.defaults:
        small["pred_hidden_dim"] = 8
    if "queue_size" in cls.defaults:
        small["queue_size"] = 40
    return {**TRAINER_DEFAULTS, **cls.defaults, "method": name, **small, **overrides}


def make_method(name: str, seed: int = 0, n: int = 64, bn: bool = True, **overrides):
    torch.manual_seed(seed)
    cfg = make_cfg(name, **overrides)
    train = tiny_data(n)
    method = METHODS.get(name)(TinyEncoder(bn=bn), INFO, cfg, train)
    return method, train


def batch_of(train: Dataset, index) -> Batch:
    index = torch.as_tensor(index)
    return Batch(train.x[index], index)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class RawView(nn.Module):
    """Deterministic 'view' for tests that compare runs on different batch splits: uint8 → float."""

    def forward(self, x, generator=None):
        return x.float() / 255.0
