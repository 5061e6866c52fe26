"""Queue, EMA and mixing pieces of the MoCo family (METHODS.md §3, §4, §12)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.objectives.mixing import beta_sample, ft_transform, mochi_negatives, queue_logits
from contrastkit.objectives.queue import KeyQueue
from contrastkit.core.ema import cosine_momentum, ema_update, frozen_copy

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


# ----------------------------------------------------------------------------------------------- queue


def test_queue_init_unit_norm_and_buffers():
    q = KeyQueue(64, 8)
    assert torch.allclose(q.queue.norm(dim=1), torch.ones(64), atol=1e-6)
    assert set(q.state_dict()) == {"queue", "ptr"}
    assert not q.queue.requires_grad


@pytest.mark.parametrize("size,batch", [(16, 4), (10, 4), (5, 8)])
def test_queue_fifo_with_wraparound(size, batch):
    q = KeyQueue(size, 3)
    written = []
    for step in range(5):
        keys = torch.randn(batch, 3) * (step + 1)
        q.enqueue(keys)
        written.append(F.normalize(keys, dim=1))
        # the most recent min(batch, size) entries equal the normalised keys, FIFO order
        allk = torch.cat(written)[-size:]
        ptr = int(q.ptr)
        order = (ptr - len(allk) + torch.arange(len(allk))) % size
        assert torch.allclose(q.queue[order], allk, atol=1e-6)
        assert ptr == (batch * (step + 1)) % size


def test_queue_no_gradient_and_zero_size():
    q = KeyQueue(8, 4)
    k = torch.randn(4, 4, requires_grad=True)
    q.enqueue(k)
    assert not q.queue.requires_grad and q.queue.grad_fn is None
    empty = KeyQueue(0, 4)
    empty.enqueue(k)
    assert empty.queue.shape == (0, 4)
    # K = 0: a 1-positive CE with no negatives is 0
    logits = queue_logits(_unit(4, 4), _unit(4, 4, seed=1), empty.negatives(), 0.2)
    assert logits.shape == (4, 1)
    assert F.cross_entropy(logits, torch.zeros(4, dtype=torch.long)).item() == 0.0


# ------------------------------------------------------------------------------------------------- EMA


def test_cosine_momentum_endpoints():
    assert cosine_momentum(0, 100, 0.99) == pytest.approx(0.99)
    assert cosine_momentum(100, 100, 0.99) == pytest.approx(1.0)
    assert cosine_momentum(50, 100, 0.99) == pytest.approx(0.995)
    assert cosine_momentum(0, 100, 0.996, 0.996) == pytest.approx(0.996)
    vals = [cosine_momentum(s, 20, 0.9) for s in range(21)]
    assert all(a <= b for a, b in zip(vals, vals[1:]))


def test_ema_m1_freezes_m0_copies():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    target = frozen_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    with torch.no_grad():
        for p in online.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, 1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, target.parameters()))
    ema_update(target, online, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(online.parameters(), target.parameters()))
    # in between: exact convex combination
    t2 = frozen_copy(online)
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    ema_update(t2, online, 0.75)
    for t, o in zip(t2.parameters(), online.parameters()):
        assert torch.allclose(t, o - 0.75, atol=1e-6)


# ---------------------------------------------------------------------------------------------- MoCHi


def test_mochi_unit_norm_topn_and_no_grad():
    b, k, d, n = 6, 50, 8, 5
    q = _unit(b, d).requires_grad_(True)
    queue = _unit(k, d, seed=1)
    g = torch.Generator().manual_seed(3)
    h, (ia, ib, ic) = mochi_negatives(q, queue, n, 7, 4, g, return_indices=True)
    assert h.shape == (b, 11, d)
    assert not h.requires_grad
    assert torch.allclose(h.norm(dim=2), torch.ones(b, 11), atol=1e-5)
    top = (q.detach() @ queue.T).topk(n, dim=1).indices
    for i in range(b):
        chosen = set(torch.cat([ia[i], ib[i], ic[i]]).tolist())
        assert chosen <= set(top[i].tolist())
    # hardness invariants (METHODS §4, item 3)
    sim = q.detach() @ queue.T
    qh = torch.einsum("bd,bsd->bs", q.detach(), h)
    for i in range(b):
        for t in range(4):
            c = ic[i, t]
            if sim[i, c] >= 0:
                assert qh[i, 7 + t] >= sim[i, c] - 1e-5
        for t in range(7):
            a, bb = ia[i, t], ib[i, t]
            if sim[i, a] >= 0 and sim[i, bb] >= 0:
                assert qh[i, t] >= min(sim[i, a], sim[i, bb]) - 1e-5
    # gradient reaches q only through the logits, never the queue
    queue.requires_grad_(True)
    logits = queue_logits(q, _unit(b, d, seed=2), queue.detach(), 0.1, extra=h)
    logits.sum().backward()
    assert q.grad is not None and queue.grad is None


def test_mochi_zero_synthetic_equals_moco_logits():
    q, k, queue = _unit(4, 8), _unit(4, 8, seed=1), _unit(20, 8, seed=2)
    h = mochi_negatives(q, queue, 5, 0, 0)
    assert h.shape == (4, 0, 8)
    assert torch.equal(queue_logits(q, k, queue, 0.2, extra=h), queue_logits(q, k, queue, 0.2))


# ------------------------------------------------------------------------------------------------- FT


def test_ft_invariants():
    q, k, queue = _unit(5, 8), _unit(5, 8, seed=1), _unit(30, 8, seed=2)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(0))
    for lam, mu in [(1.0, 1.0), (1.3, 0.4), (2.0, 0.0)]:
        qh, kh, nh = ft_transform(q, k, queue, lam, mu, perm)
        assert torch.allclose(qh + kh, q + k, atol=1e-6)
        assert torch.allclose(qh - kh, (2 * lam - 1) * (q - k), atol=1e-5)
        assert (nh.norm(dim=1) <= 1 + 1e-6).all()
        if lam == 1.0 and mu == 1.0:
            assert torch.equal(qh, q) and torch.equal(kh, k) and torch.equal(nh, queue)
        # re-normalised, the transformed positive is no easier
        assert ((F.normalize(qh, dim=1) * F.normalize(kh, dim=1)).sum(1) <= (q * k).sum(1) + 1e-6).all()


def test_beta_sample_reproducible_and_in_range():
    a = [beta_sample(2.0, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert a[0] == a[1] and 0.0 <= a[0] <= 1.0
    g = torch.Generator().manual_seed(1)
    xs = [beta_sample(1.6, g) for _ in range(400)]
    assert abs(sum(xs) / len(xs) - 0.5) < 0.05 and math.isfinite(sum(xs))


def test_mixing_math_stays_fp32_under_autocast():
    q, k, queue = _unit(4, 8), _unit(4, 8, seed=1), _unit(20, 8, seed=2)
    h0 = mochi_negatives(q, queue, 5, 3, 2, torch.Generator().manual_seed(0))
    ref = queue_logits(q, k, queue, 0.2, extra=h0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = mochi_negatives(q, queue, 5, 3, 2, torch.Generator().manual_seed(0))
        out = queue_logits(q, k, queue, 0.2, extra=h)
    assert out.dtype == torch.float32 and torch.equal(out, ref)
