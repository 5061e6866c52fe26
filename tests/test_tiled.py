"""The tiled log-sum-exp kernel against a dense reference, gradcheck through tiles, memory bound."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from contrastkit.objectives.tiled import (
    SAFE_SCALE,
    _tiles,
    contrastive_rows,
    logsumexp_rows,
    logsumexp_rows_cols,
)

NEG_INF = float("-inf")


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def dense_lse(q, k, scale, *, exclude_self=False, self_offset=0, pos_index=None, labels=None, k_labels=None,
              positives="keep"):
    """Obviously-correct dense reference: build the masked logit matrix, torch.logsumexp."""
    keys = q if k is None else k
    if k is None:
        self_offset = 0
        k_labels = labels if k_labels is None else k_labels
    sc = scale if torch.is_tensor(scale) else torch.tensor(scale, dtype=q.dtype)
    logits = (q @ keys.T) * (sc[:, None] if sc.dim() else sc)
    m, n = logits.shape
    drop = torch.zeros(m, n, dtype=torch.bool)
    if labels is not None:
        same = labels[:, None] == k_labels[None, :]
        if positives == "exclude":
            drop |= same
        elif positives == "only":
            drop |= ~same
    elif pos_index is not None and positives == "exclude":
        drop[torch.arange(m), pos_index] = True
    if exclude_self:
        for i in range(m):
            if 0 <= i + self_offset < n:
                drop[i, i + self_offset] = True
    return logits.masked_fill(drop, NEG_INF).logsumexp(1)


def unit(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


def pair_index(n):
    i = torch.arange(n)
    return torch.cat([i + n, i])


LABELS11 = torch.tensor([0, 1, 2, 0, 1, 2, 0, 3, 3, 1, 4])

CASES = {
    # name: (m, n or None (self), kwargs)
    "self": (10, None, dict(exclude_self=True)),
    "self_no_exclude": (9, None, dict()),
    "self_pos_exclude": (10, None, dict(exclude_self=True, pos_index=pair_index(5), positives="exclude")),
    "self_labels_exclude": (11, None, dict(exclude_self=True, labels=LABELS11, positives="exclude")),
    "self_labels_only": (11, None, dict(exclude_self=True, labels=LABELS11, positives="only")),
    "cross": (7, 12, dict()),
    "cross_self_offset": (6, 13, dict(exclude_self=True, self_offset=5)),
    "cross_pos_exclude": (6, 13, dict(exclude_self=True, self_offset=4,
                                      pos_index=torch.tensor([0, 1, 2, 12, 11, 10]), positives="exclude")),
    "cross_labels": (6, 9, dict(labels=torch.tensor([0, 1, 1, 2, 3, 0]),
                                k_labels=torch.tensor([0, 0, 1, 2, 2, 5, 1, 0, 3]), positives="only")),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("tile", [None, 3, (4, 5), (2, 7)])
@pytest.mark.parametrize("scale_kind", ["float", "scalar_grad", "rows_grad", "large"])
def test_lse_matches_dense(name, tile, scale_kind):
    m, n, kw = CASES[name]
    q = unit(m, 8, dtype=torch.float64, seed=1).requires_grad_()
    k = None if n is None else unit(n, 8, dtype=torch.float64, seed=2).requires_grad_()
    if scale_kind == "float":
        scale = 2.0
    elif scale_kind == "scalar_grad":
        scale = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    elif scale_kind == "rows_grad":
        g = torch.Generator().manual_seed(3)
        scale = (torch.rand(m, dtype=torch.float64, generator=g) * 5 + 0.5).requires_grad_()
    else:  # online-max path: scale above SAFE_SCALE (CLIP-like s = 100)
        scale = torch.tensor(100.0, dtype=torch.float64, requires_grad=True)
    got = logsumexp_rows(q, k, scale, tile=tile, **kw)
    want = dense_lse(q, k, scale, **kw)
    assert torch.equal(torch.isfinite(got), torch.isfinite(want))
    fin = torch.isfinite(want)
    torch.testing.assert_close(got[fin], want[fin], rtol=1e-10, atol=1e-10)
    w = torch.randn(m, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    inputs = [t for t in (q, k, scale) if torch.is_tensor(t) and t.requires_grad]
    g_got = torch.autograd.grad((got[fin] * w[fin]).sum(), inputs)
    g_want = torch.autograd.grad((want[fin] * w[fin]).sum(), inputs)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("tile", [None, 3, (2, 5)])
@pytest.mark.parametrize("scale", [2.0, 60.0])
def test_rows_cols_matches_dense(tile, scale):
    u = unit(7, 5, dtype=torch.float64, seed=5).requires_grad_()
    v = unit(7, 5, dtype=torch.float64, seed=6).requires_grad_()
    s = torch.tensor(scale, dtype=torch.float64, requires_grad=True)
    r, c = logsumexp_rows_cols(u, v, s, tile=tile)
    logits = s * u @ v.T
    torch.testing.assert_close(r, logits.logsumexp(1))
    torch.testing.assert_close(c, logits.logsumexp(0))
    w1, w2 = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    ga = torch.autograd.grad((r * w1).sum() + (c * w2).sum(), (u, v, s))
    gb = torch.autograd.grad((logits.logsumexp(1) * w1).sum() + (logits.logsumexp(0) * w2).sum(), (u, v, s))
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------------------- gradcheck


def _gc(fn, *inputs):
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_symmetric_path_with_diagonal_tiles():
    z = unit(9, 4, dtype=torch.float64, seed=7).requires_grad_()
    s = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    p = torch.tensor([5, 6, 7, 8, 4, 0, 1, 2, 3])  # involution
    for kw in (dict(exclude_self=True), dict(exclude_self=True, pos_index=p, positives="exclude"),
               dict(exclude_self=True, labels=torch.tensor([0, 1, 0, 2, 1, 0, 2, 3, 3]), positives="only")):
        _gc(lambda z, s: logsumexp_rows(z, None, s, tile=(2, 3), **kw), z, s)


def test_gradcheck_general_path_per_anchor_temperature_and_online():
    q = unit(5, 3, dtype=torch.float64, seed=8).requires_grad_()
    k = unit(8, 3, dtype=torch.float64, seed=9).requires_grad_()
    tau_inv = torch.tensor([1.0, 2.0, 5.0, 0.5, 3.0], dtype=torch.float64, requires_grad=True)
    _gc(lambda q, k, t: logsumexp_rows(q, k, t, exclude_self=True, self_offset=2, tile=(2, 3)), q, k, tau_inv)
    big = torch.tensor(55.0, dtype=torch.float64, requires_grad=True)  # > SAFE_SCALE: online path
    assert float(big.detach()) > SAFE_SCALE
    _gc(lambda q, k, s: logsumexp_rows(q, k, s, tile=(2, 3)), q, k, big)


def test_gradcheck_rows_cols_and_contrastive_rows():
    u = unit(6, 3, dtype=torch.float64, seed=10).requires_grad_()
    v = unit(6, 3, dtype=torch.float64, seed=11).requires_grad_()
    s = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)
    _gc(lambda u, v, s: torch.cat(logsumexp_rows_cols(u, v, s, tile=(2, 4))), u, v, s)
    labels = torch.tensor([0, 1, 0, 2, 1, 5])  # label 2 and 5: anchors without positives
    for variant in ("out", "in"):
        _gc(lambda u, s: contrastive_rows(u, None, s, exclude_self=True, labels=labels,
                                          multi_positive=variant, tile=(2, 2))[0], u, s)


def test_empty_rows_give_minus_inf_and_zero_gradient():
    q = unit(4, 3, dtype=torch.float64).requires_grad_()
    labels = torch.tensor([0, 1, 1, 2])
    lse = logsumexp_rows(q, None, 2.0, exclude_self=True, labels=labels, positives="only", tile=2)
    assert torch.isinf(lse[[0, 3]]).all() and torch.isfinite(lse[[1, 2]]).all()
    (g,) = torch.autograd.grad(torch.where(torch.isfinite(lse), lse, 0.0).sum(), q)
    assert torch.isfinite(g).all()
    loss, valid = contrastive_rows(q, None, 2.0, exclude_self=True, labels=labels, multi_positive="in")
    assert valid.tolist() == [False, True, True, False] and loss[~valid].eq(0).all()


def test_no_keys_gives_minus_inf():
    q = unit(3, 4).requires_grad_()
    out = logsumexp_rows(q, q.new_zeros(0, 4), 5.0)
    assert torch.isinf(out).all() and out.shape == (3,)


def test_half_precision_inputs_accumulate_in_fp32():
    q32 = unit(40, 16, seed=12)
    for dt in (torch.bfloat16, torch.float16):
        q = q32.to(dt).requires_grad_()
        out = logsumexp_rows(q, None, 10.0, exclude_self=True, tile=(16, 16))
        assert out.dtype == torch.float32
        ref = dense_lse(q.detach().float(), None, 10.0, exclude_self=True)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        out.sum().backward()
        assert q.grad.dtype == dt and torch.isfinite(q.grad.float()).all()


def test_tile_choice_is_bounded():
    budget = 1 << 22
    for m, n in [(10, 10), (16384, 16384), (131072, 131072), (256, 65536), (65536, 7)]:
        r, c = _tiles(m, n, budget, None)
        assert 1 <= r <= m and 1 <= c <= n
        assert r * c <= budget


def test_extra_memory_is_not_quadratic(tmp_path):
    """N = 3072 pairs (6144 rows): one logit matrix is 144 MiB and a materialised loss needs several; the
    kernel with 4 MiB tiles must stay far below one. Measured as the growth of VmHWM in a fresh process."""
    code = textwrap.dedent(
        """
        import os, torch
        torch.manual_seed(0)
        from contrastkit.objectives import nt_xent
        def hwm():
            for line in open('/proc/self/status'):
                if line.startswith('VmHWM'):
                    return int(line.split()[1]) * 1024
        z1 = torch.randn(3072, 32, requires_grad=True); z2 = torch.randn(3072, 32, requires_grad=True)
        nt_xent(z1[:64], z2[:64]).backward()
        before = hwm()
        nt_xent(z1, z2, 0.5).backward()
        print((hwm() - before) / 2**20)
        """
    )
    env = dict(os.environ, CONTRASTKIT_TILE_MB="4", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    grew = float(out.stdout.strip().splitlines()[-1])
    assert grew < 48, f"peak memory grew by {grew:.1f} MiB"


# ---------------------------------------------------------------- non-finite inputs propagate (issue 17, item 1)

def _nonfinite_losses(bad, both_views=False):
    """Each objective of the family on a batch whose row 3 is `bad` (nan / inf), with small tiles too."""
    from contrastkit.objectives import functional as O

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    z1[3, 1] = bad
    if both_views:
        z2[3, 0] = bad
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 3])
    both = torch.cat([z1, z2])
    return {
        "nt_xent": O.nt_xent(z1, z2, 0.5),
        "nt_xent_tiled": O.nt_xent(z1, z2, 0.5, tile=(3, 3)),
        "nt_xent_online": O.nt_xent(z1, z2, 0.01),
        "dcl": O.dcl(z1, z2, 0.1),
        "dclw": O.dclw(z1, z2, 0.1),
        "supcon_out": O.supcon(both, torch.cat([labels, labels]), 0.1),
        "supcon_in": O.supcon(both, torch.cat([labels, labels]), 0.1, variant="in"),
        "clip": O.clip_loss(z1, z2, torch.tensor(10.0)),
        "clip_large_scale": O.clip_loss(z1, z2, torch.tensor(100.0)),
        "moco_info_nce": O.info_nce(z1, z2, torch.randn(16, 5, generator=g), 0.2),
        "moco_info_nce_bad_queue": O.info_nce(z2, z2, torch.cat([z1, z1]), 0.2),
    }


@pytest.mark.parametrize("both_views", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_nonfinite_embedding_gives_nonfinite_loss(bad, both_views):
    """One NaN/inf anywhere must make the loss NaN/inf, never a silent 0 (the divergence would be hidden)."""
    for name, loss in _nonfinite_losses(bad, both_views).items():
        assert not torch.isfinite(loss), f"{name}: loss {float(loss)} hides a non-finite embedding"


def test_nonfinite_rows_are_not_treated_as_empty():
    q = unit(6, 4)
    q[2] = float("nan")
    loss, valid = contrastive_rows(q, None, 2.0, exclude_self=True, pos_index=pair_index(3))
    assert valid.all() and torch.isnan(loss).all()
    labels = torch.tensor([0, 1, 1, 2, 0, 3])  # rows 3 and 5 have no positive: still invalid (empty), loss 0
    loss, valid = contrastive_rows(q, None, 2.0, exclude_self=True, labels=labels)
    assert valid.tolist() == [True, True, True, False, True, False]
    assert torch.isnan(loss[valid]).all() and loss[~valid].eq(0).all()


def test_nonfinite_gradient_is_not_zeroed():
    from contrastkit.objectives import functional as O

    z1 = torch.randn(6, 4, requires_grad=True)
    z2 = torch.randn(6, 4)
    with torch.no_grad():
        z2[1, 0] = float("nan")
    O.nt_xent(z1, z2, 0.5).backward()
    assert not torch.isfinite(z1.grad).all()
