"""embed(): eval mode during evaluation, previous modes restored, BatchNorm statistics untouched."""

import pytest
import torch
from torch import nn

from contrastkit.errors import ContrastkitError
from contrastkit.evaluate import embed


def make_encoder():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6), nn.BatchNorm1d(6))


def to_float(x):
    return x.float().div(255.0).sub(0.5)


def test_embed_eval_mode_restores_modes_and_keeps_bn_stats():
    enc = make_encoder()
    x = torch.randint(0, 256, (37, 1, 8, 8), dtype=torch.uint8)
    enc.train()
    enc[3].eval()  # a submodule deliberately in eval mode must stay so
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    h = embed(enc, x, to_float, batch_size=10)
    assert h.shape == (37, 6) and h.dtype == torch.float32 and h.device.type == "cpu"
    assert not h.requires_grad
    assert enc.training and enc[1].training and enc[7].training and not enc[3].training
    after = enc.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]), f"{k} changed during evaluation"
    # eval-mode result: deterministic (no dropout), independent of batch size (running BN stats)
    assert torch.allclose(h, embed(enc, x, to_float, batch_size=37), atol=1e-6)
    enc.eval()
    with torch.no_grad():
        ref = enc(to_float(x))
    assert torch.allclose(h, ref, atol=1e-6)
    assert not enc.training  # eval stays eval


def test_embed_restores_mode_on_error_and_checks_input():
    enc = make_encoder().train()

    def boom(x):
        raise RuntimeError("bad preprocess")

    with pytest.raises(RuntimeError):
        embed(enc, torch.zeros(4, 1, 8, 8, dtype=torch.uint8), boom)
    assert enc.training and enc[1].training
    with pytest.raises(ContrastkitError):
        embed(enc, torch.zeros(0, 1, 8, 8))
    # float tables through an MLP, no preprocess
    mlp = nn.Sequential(nn.Linear(5, 3))
    assert embed(mlp, torch.randn(9, 5).numpy(), batch_size=4).shape == (9, 3)
