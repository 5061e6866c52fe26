"""Every objective against a naive per-row reference loop, plus the invariants of METHODS.md §1–3, 10, 16."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.errors import ContrastkitError
from contrastkit.objectives import (
    clip_loss,
    contrastive_rows,
    dcl,
    dclw,
    dclw_weights,
    info_nce,
    nt_xent,
    supcon,
)

NS = [1, 2, 3, 17, 64]
DS = [1, 2, 16, 128]
TAUS = [0.05, 0.5, 2.0]
GRID = [(n, d, t) for n in NS for d in DS for t in TAUS]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def data(*shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


# ------------------------------------------------------------------------------ naive references (fp64)


def _n(x):
    return F.normalize(x.double(), dim=-1)


def ref_two_view(z1, z2, tau, *, drop_positive=False, weights=None):
    """Per-row loop over the 2N stacked samples (METHODS.md §1 and §2)."""
    z = _n(torch.cat([z1, z2]))
    n = z1.shape[0]
    rows = []
    for k in range(2 * n):
        p = (k + n) % (2 * n)
        others = [j for j in range(2 * n) if j != k and not (drop_positive and j == p)]
        den = torch.exp(z[others] @ z[k] / tau).sum()
        w = 1.0 if weights is None else weights[k % n]
        rows.append(-w * (z[k] @ z[p]) / tau + torch.log(den))
    return torch.stack(rows).mean()


def ref_dclw_weights(z1, z2, sigma):
    s = (_n(z1) * _n(z2)).sum(1).detach()
    e = torch.exp(s / sigma)
    return 2 - e / e.mean()


def ref_supcon(z, labels, tau, variant):
    if z.dim() == 2:
        z = z[:, None]
    n, v, _ = z.shape
    zz = _n(z.transpose(0, 1).reshape(n * v, -1))
    ll = labels.repeat(v).tolist()
    rows = []
    for i in range(n * v):
        others = [a for a in range(n * v) if a != i]
        pos = [p for p in others if ll[p] == ll[i]]
        if not pos:
            continue
        den = torch.exp(zz[others] @ zz[i] / tau).sum()
        e_pos = torch.exp(zz[pos] @ zz[i] / tau)
        if variant == "out":
            rows.append(-torch.log(e_pos / den).mean())
        else:
            rows.append(-torch.log(e_pos.mean() / den))
    return torch.stack(rows).mean() if rows else zz.sum() * 0


def ref_clip(u, v, s):
    un, vn = _n(u), _n(v)
    n = u.shape[0]
    rows = []
    for i in range(n):
        rows.append(-torch.log(torch.exp(s * un[i] @ vn[i]) / torch.exp(s * vn @ un[i]).sum()))
    for j in range(n):
        rows.append(-torch.log(torch.exp(s * vn[j] @ un[j]) / torch.exp(s * un @ vn[j]).sum()))
    return torch.stack(rows).mean()


def ref_info_nce(q, k, neg, tau):
    qn, kn = _n(q), _n(k)
    nn_ = _n(neg) if neg.shape[0] else neg.double()
    rows = []
    for i in range(q.shape[0]):
        pos = torch.exp(qn[i] @ kn[i] / tau)
        den = pos + torch.exp(nn_ @ qn[i] / tau).sum()
        rows.append(-torch.log(pos / den))
    return torch.stack(rows).mean()


def check(fn, ref, inputs, rtol=2e-5, atol=2e-5, grad_atol=1e-4):
    """Value and gradient of fn (fp32) equal the fp64 reference (gradients of order 1/τ: fp32 rounding)."""
    xs = [x.clone().requires_grad_() for x in inputs]
    xr = [x.double().clone().requires_grad_() for x in inputs]
    got, want = fn(*xs), ref(*xr)
    assert got.dtype == torch.float32 and got.dim() == 0
    torch.testing.assert_close(got.double(), want.detach(), rtol=rtol, atol=atol)
    g_got = torch.autograd.grad(got, xs, allow_unused=True)
    g_want = torch.autograd.grad(want, xr, allow_unused=True)
    for a, b in zip(g_got, g_want):
        b = torch.zeros_like(a, dtype=torch.float64) if b is None else b
        a = torch.zeros_like(b) if a is None else a
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=grad_atol)


# ------------------------------------------------------------------------------------ grid: values+grad


@pytest.mark.parametrize("n,d,tau", GRID)
def test_nt_xent_matches_reference(n, d, tau):
    z1, z2 = data(n, d, seed=1), data(n, d, seed=2)
    if n == 1:
        with pytest.raises(ContrastkitError, match="batch size must be >= 2"):
            nt_xent(z1, z2, tau)
        return
    check(lambda a, b: nt_xent(a, b, tau), lambda a, b: ref_two_view(a, b, tau), [z1, z2])


@pytest.mark.parametrize("n,d,tau", GRID)
def test_dcl_matches_reference(n, d, tau):
    z1, z2 = data(n, d, seed=3), data(n, d, seed=4)
    if n == 1:
        with pytest.raises(ContrastkitError, match="batch size must be >= 2"):
            dcl(z1, z2, tau)
        return
    check(lambda a, b: dcl(a, b, tau), lambda a, b: ref_two_view(a, b, tau, drop_positive=True), [z1, z2])


@pytest.mark.parametrize("n,d,tau", GRID)
def test_dclw_matches_reference(n, d, tau):
    z1, z2 = data(n, d, seed=5), data(n, d, seed=6)
    if n == 1:
        with pytest.raises(ContrastkitError, match="batch size must be >= 2"):
            dclw(z1, z2, tau, sigma=0.5)
        return
    check(lambda a, b: dclw(a, b, tau, sigma=0.5),
          lambda a, b: ref_two_view(a, b, tau, drop_positive=True, weights=ref_dclw_weights(a, b, 0.5)),
          [z1, z2])


@pytest.mark.parametrize("variant", ["out", "in"])
@pytest.mark.parametrize("n,d,tau", GRID)
def test_supcon_matches_reference(n, d, tau, variant):
    if n == 64 and d in (1, 2):
        pytest.skip("covered by the other sizes; keeps the reference loop fast")
    z = data(n, 2, d, seed=7)
    labels = torch.randint(0, max(1, n // 2), (n,), generator=torch.Generator().manual_seed(8))
    check(lambda a: supcon(a, labels, tau, variant), lambda a: ref_supcon(a, labels, tau, variant), [z])


@pytest.mark.parametrize("n,d,tau", GRID)
def test_supcon_single_view_matches_reference(n, d, tau):
    z = data(n, d, seed=9)
    labels = torch.arange(n) % 3
    if n == 1:
        with pytest.raises(ContrastkitError, match="at least 2"):
            supcon(z, labels, tau)
        return
    check(lambda a: supcon(a, labels, tau, "out"), lambda a: ref_supcon(a, labels, tau, "out"), [z])


@pytest.mark.parametrize("n,d,tau", GRID)
def test_clip_matches_reference(n, d, tau):
    u, v = data(n, d, seed=10), data(n, d, seed=11)
    s = torch.tensor(1.0 / tau)
    if n == 1:
        with pytest.raises(ContrastkitError, match="batch size >= 2"):
            clip_loss(u, v, s)
        return
    check(lambda a, b, c: clip_loss(a, b, c), lambda a, b, c: ref_clip(a, b, c), [u, v, s])


@pytest.mark.parametrize("n,d,tau", GRID)
def test_info_nce_matches_reference(n, d, tau):
    q, k, neg = data(n, d, seed=12), data(n, d, seed=13), data(max(0, 2 * n - 3), d, seed=14)
    check(lambda a, b, c: info_nce(a, b, c, tau), lambda a, b, c: ref_info_nce(a, b, c, tau), [q, k, neg])


def test_large_scale_clip_uses_online_path_and_matches():
    u, v = data(9, 8, seed=15), data(9, 8, seed=16)
    check(lambda a, b, c: clip_loss(a, b, c), lambda a, b, c: ref_clip(a, b, c), [u, v, torch.tensor(100.0)],
          rtol=1e-4, atol=1e-4)


def test_forced_small_tiles_match_default():
    z1, z2 = data(21, 6, seed=17), data(21, 6, seed=18)
    labels = torch.arange(21) % 4
    for fn in (lambda t: nt_xent(z1, z2, 0.3, tile=t), lambda t: dcl(z1, z2, 0.3, tile=t),
               lambda t: dclw(z1, z2, 0.3, tile=t),
               lambda t: supcon(torch.stack([z1, z2], 1), labels, tile=t),
               lambda t: supcon(torch.stack([z1, z2], 1), labels, variant="in", tile=t),
               lambda t: clip_loss(z1, z2, torch.tensor(7.0), tile=t)):
        torch.testing.assert_close(fn(4), fn(None))
        torch.testing.assert_close(fn((5, 3)), fn(None))


# --------------------------------------------------------------------------------- invariants (§1)


def test_nt_xent_symmetric_in_views():
    z1, z2 = data(13, 16, seed=20), data(13, 16, seed=21)
    torch.testing.assert_close(nt_xent(z1, z2, 0.2), nt_xent(z2, z1, 0.2))
    torch.testing.assert_close(dcl(z1, z2, 0.2), dcl(z2, z1, 0.2))


@pytest.mark.parametrize("n", [2, 5, 64])
def test_nt_xent_identical_embeddings_is_log_2n_minus_1(n):
    z = data(1, 8).expand(n, 8)
    torch.testing.assert_close(nt_xent(z, z, 0.1), torch.tensor(math.log(2 * n - 1)))


def test_nt_xent_rotation_and_permutation_invariant():
    z1, z2 = data(11, 16, seed=22), data(11, 16, seed=23)
    rot, _ = torch.linalg.qr(data(16, 16, seed=24))
    perm = torch.randperm(11, generator=torch.Generator().manual_seed(25))
    base = nt_xent(z1, z2, 0.3)
    torch.testing.assert_close(nt_xent(z1 @ rot, z2 @ rot, 0.3), base, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(nt_xent(z1[perm], z2[perm], 0.3), base, rtol=1e-5, atol=1e-6)


def test_nt_xent_to_zero_when_positives_coincide_and_negatives_are_orthogonal():
    z = torch.eye(4)
    assert float(nt_xent(z, z, 0.01)) < 1e-6


def _positive_logit_grad(tau, exclude_positives):
    """d loss / d s(q, k_p) for one anchor against distinct keys: keys[p] only enters through s_qp, so
    (d loss / d keys[p]) · q recovers the derivative w.r.t. the positive similarity."""
    q = F.normalize(data(1, 8, seed=26, dtype=torch.float64), dim=1)
    keys = F.normalize(data(6, 8, seed=27, dtype=torch.float64), dim=1).requires_grad_()
    loss, _ = contrastive_rows(q, keys, 1.0 / tau, pos_index=torch.tensor([2]),
                               exclude_positives=exclude_positives)
    (g,) = torch.autograd.grad(loss.sum(), keys)
    prob = torch.softmax((q @ keys.T / tau)[0], 0)[2]
    return float(g[2] @ q[0]), float(prob.detach())


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_positive_logit_gradient_nt_xent_and_dcl(tau):
    g, prob = _positive_logit_grad(tau, exclude_positives=False)
    assert g == pytest.approx(-(1 - prob) / tau, rel=1e-9)
    g, _ = _positive_logit_grad(tau, exclude_positives=True)
    assert g == pytest.approx(-1 / tau, rel=1e-9)


# --------------------------------------------------------------------------------- invariants (§2)


def test_dcl_below_nt_xent_per_anchor_and_can_be_negative():
    for seed in range(5):
        z1, z2 = data(9, 4, seed=30 + seed), data(9, 4, seed=40 + seed)
        assert float(dcl(z1, z2, 0.5)) < float(nt_xent(z1, z2, 0.5))
        q = F.normalize(torch.cat([z1, z2]), dim=1)
        pos = torch.cat([torch.arange(9, 18), torch.arange(9)])
        a, _ = contrastive_rows(q, None, 2.0, exclude_self=True, pos_index=pos)
        b, _ = contrastive_rows(q, None, 2.0, exclude_self=True, pos_index=pos, exclude_positives=True)
        assert (b < a).all()
    z = data(3, 4, seed=50)
    assert float(dcl(z, z + 1e-3, 0.05)) < 0


def test_dclw_weights_properties():
    for seed in range(5):
        s = torch.rand(32, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        w = dclw_weights(s, 0.5)
        assert float(w.mean()) == pytest.approx(1.0, abs=1e-6) and (w < 2).all()
    torch.testing.assert_close(dclw_weights(torch.full((7,), 0.3), 0.5), torch.ones(7))


def test_dclw_equals_dcl_when_all_positive_similarities_equal():
    z = data(10, 16, seed=51)
    torch.testing.assert_close(dclw(z, z, 0.1), dcl(z, z, 0.1))  # s_i = 1 for every pair
    u = F.normalize(data(10, 15, seed=55), dim=1)  # z_i = (cos θ, sin θ u_i), z2_i = (cos θ, −sin θ u_i)
    c, si = math.cos(0.7), math.sin(0.7)
    z = torch.cat([torch.full((10, 1), c), si * u], 1)
    z2 = torch.cat([torch.full((10, 1), c), -si * u], 1)
    s = (z * z2).sum(1)
    assert torch.allclose(s, s[0].expand_as(s))  # = cos 1.4 for every pair, but the negatives differ
    torch.testing.assert_close(dclw(z, z2, 0.1), dcl(z, z2, 0.1))


def test_dclw_weights_receive_no_gradient():
    z1, z2 = data(6, 4, seed=53).requires_grad_(), data(6, 4, seed=54)
    (g,) = torch.autograd.grad(dclw(z1, z2, 0.3), z1)
    w = ref_dclw_weights(z1.detach(), z2, 0.5)
    (g_ref,) = torch.autograd.grad(ref_two_view(z1, z2, 0.3, drop_positive=True, weights=w).float(), z1)
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6)


# -------------------------------------------------------------------------------- invariants (§10, 16, 3)


@pytest.mark.parametrize("variant", ["out", "in"])
def test_supcon_with_instance_labels_equals_nt_xent(variant):
    z1, z2 = data(12, 8, seed=60), data(12, 8, seed=61)
    got = supcon(torch.stack([z1, z2], 1), torch.arange(12), 0.3, variant)
    torch.testing.assert_close(got, nt_xent(z1, z2, 0.3))


def test_supcon_skips_anchors_without_positive():
    z = data(6, 8, seed=62).requires_grad_()
    labels = torch.tensor([0, 0, 1, 2, 3, 3])  # anchors 2 and 3 have no positive
    loss = supcon(z, labels, 0.2)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss.double(), ref_supcon(z.detach(), labels, 0.2, "out"))
    (g,) = torch.autograd.grad(loss, z)
    assert torch.isfinite(g).all()
    alone = supcon(z, torch.arange(6), 0.2)  # no anchor has a positive: 0, no NaN
    assert float(alone.detach()) == 0.0 and torch.isfinite(torch.autograd.grad(alone, z)[0]).all()


def test_clip_symmetric_and_scale_gradient():
    u, v = data(10, 8, seed=63), data(10, 8, seed=64)
    t = torch.tensor(math.log(1 / 0.07), requires_grad=True)
    a = clip_loss(u, v, t.exp())
    torch.testing.assert_close(a, clip_loss(v, u, t.exp()))
    (g,) = torch.autograd.grad(a, t)
    tr = t.detach().double().requires_grad_()
    (gr,) = torch.autograd.grad(ref_clip(u, v, tr.exp()), tr)
    torch.testing.assert_close(g.double(), gr, rtol=1e-4, atol=1e-6)


def test_info_nce_empty_queue_is_zero():
    q, k = data(5, 8, seed=65).requires_grad_(), data(5, 8, seed=66)
    loss = info_nce(q, k, torch.zeros(0, 8))
    assert float(loss.detach()) == 0.0
    (g,) = torch.autograd.grad(loss, q)
    assert torch.equal(g, torch.zeros_like(g))


def test_info_nce_queue_gets_no_gradient_when_detached():
    q, k, queue = data(4, 8, seed=67).requires_grad_(), data(4, 8, seed=68), data(16, 8, seed=69)
    info_nce(q, k, queue).backward()
    assert q.grad is not None and queue.grad is None


# -------------------------------------------------------------------------------- dtypes and errors


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_give_fp32_loss_close_to_fp32(dtype):
    z1, z2 = data(64, 32, seed=70), data(64, 32, seed=71)
    labels = torch.arange(64) % 8
    pairs = [
        (lambda a, b: nt_xent(a, b, 0.1)),
        (lambda a, b: dcl(a, b, 0.1)),
        (lambda a, b: dclw(a, b, 0.1)),
        (lambda a, b: supcon(torch.stack([a, b], 1), labels, 0.1)),
        (lambda a, b: clip_loss(a, b, torch.tensor(14.3))),
        (lambda a, b: info_nce(a, b, b.flip(0), 0.2)),
    ]
    for fn in pairs:
        ref = fn(z1, z2)
        a = z1.to(dtype).requires_grad_()
        got = fn(a, z2.to(dtype))
        assert got.dtype == torch.float32
        assert abs(float(got.detach()) - float(ref)) < 2e-2 * max(1.0, abs(float(ref)))
        got.backward()
        assert a.grad.dtype == dtype and torch.isfinite(a.grad.float()).all()


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan")])
def test_bad_temperature_raises(bad):
    z = data(4, 3)
    for call in (lambda: nt_xent(z, z, bad), lambda: dcl(z, z, bad), lambda: dclw(z, z, bad),
                 lambda: supcon(z, torch.arange(4), bad), lambda: info_nce(z, z, z, bad),
                 lambda: clip_loss(z, z, torch.tensor(bad))):
        with pytest.raises(ContrastkitError, match="> 0"):
            call()


def test_shape_errors_name_the_input():
    with pytest.raises(ContrastkitError, match="z1 and z2"):
        nt_xent(data(4, 3), data(5, 3))
    with pytest.raises(ContrastkitError, match="labels"):
        supcon(data(4, 3), torch.arange(5))
    with pytest.raises(ContrastkitError, match="negatives"):
        info_nce(data(4, 3), data(4, 3), data(7, 2))
    assert issubclass(ContrastkitError, ValueError)
