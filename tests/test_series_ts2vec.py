"""TS2Vec: the hierarchical loss against a slow per-row reference; the crops; one training step."""

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.config import TRAINER_DEFAULTS
from contrastkit.data.base import Batch, DataInfo
from contrastkit.methods import METHODS, create_method, method_defaults
from contrastkit.methods.ts2vec import hierarchical_contrastive_loss, take_per_row

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def slow_contrast(rows_by_group):
    """rows_by_group: list of (2n, D) tensors; each row's positive is its partner (i ↔ i ± n); candidates are
    all other rows of its group. Mean −log p(positive) over every row of every group."""
    total, count = 0.0, 0
    for z in rows_by_group:
        n = z.shape[0] // 2
        for i in range(2 * n):
            partner = i + n if i < n else i - n
            others = [j for j in range(2 * n) if j != i]
            logits = torch.stack([z[i] @ z[j] for j in others]).double()
            total += -(logits[others.index(partner)] - torch.logsumexp(logits, 0)).item()
            count += 1
    return total / count


def slow_hierarchical(z1, z2, alpha):
    losses = []
    while True:
        b, t, _ = z1.shape
        inst = slow_contrast([torch.cat([z1[:, s], z2[:, s]]) for s in range(t)]) if b > 1 else 0.0
        if t > 1:
            temp = slow_contrast([torch.cat([z1[k], z2[k]]) for k in range(b)])
            losses.append(alpha * inst + (1 - alpha) * temp)
            z1 = F.max_pool1d(z1.transpose(1, 2), 2).transpose(1, 2)
            z2 = F.max_pool1d(z2.transpose(1, 2), 2).transpose(1, 2)
        else:
            losses.append(alpha * inst)
            return sum(losses) / len(losses)


@pytest.mark.parametrize("shape,alpha", [((3, 5, 4), 0.5), ((4, 8, 3), 0.3), ((2, 1, 4), 0.5), ((1, 6, 3), 0.5)])
def test_hierarchical_loss_matches_slow_reference(shape, alpha):
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)
    got = float(hierarchical_contrastive_loss(z1, z2, alpha))
    assert math.isclose(got, slow_hierarchical(z1, z2, alpha), rel_tol=1e-5, abs_tol=1e-6)


def test_take_per_row():
    x = torch.arange(10.0).expand(2, 1, 10).clone()
    out = take_per_row(x, torch.tensor([-2, 7]), 5)
    assert torch.equal(torch.nan_to_num(out[0, 0], -1), torch.tensor([-1, -1, 0, 1, 2.0]))
    assert torch.equal(torch.nan_to_num(out[1, 0], -1), torch.tensor([7, 8, 9, -1, -1.0]))


def test_crops_overlap_and_a_training_step_learns():
    info = DataInfo("s", "series", (2, 32), extra={"min_length": 32})
    cfg = {**TRAINER_DEFAULTS, **method_defaults("ts2vec"), "method": "ts2vec",
           "encoder_kwargs": {"hidden": 8, "out_dim": 16, "depth": 3}}
    assert METHODS.get("ts2vec").defaults["encoder"] == "tcn"
    torch.manual_seed(0)
    x = torch.randn(6, 2, 32)
    method = create_method(cfg, info, None)  # ts2vec builds no view modules: no training split needed
    for seed in range(5):
        v1, v2, crop_l = method.views(x, torch.Generator().manual_seed(seed))
        a, b = v1[..., -crop_l:], v2[..., :crop_l]
        assert torch.equal(torch.nan_to_num(a, 99.0), torch.nan_to_num(b, 99.0))  # the same steps in both views
        assert 2 <= crop_l <= 32
    opt = torch.optim.Adam(method.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    first = None
    for step in range(15):
        out = method.training_step(Batch(x, torch.arange(6)), g)
        assert torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else float(out["loss"].detach())
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        later = sum(float(method.training_step(Batch(x, torch.arange(6)), gen)["loss"]) for _ in range(3)) / 3
    assert later < first
