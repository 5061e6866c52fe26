"""SogCLR / iSogCLR per-sample state and surrogate gradients (METHODS.md §5, §6)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrastkit.objectives.sogclr import GlobalContrastiveState

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _emb(b, d, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, d, generator=g, dtype=torch.float64),
            torch.randn(b, d, generator=g, dtype=torch.float64))


def _reference_objective(z1, z2, tau, rho=0.0):
    """Σ_views mean_i [ −s_i⁺ + τ_i log mean_z exp(s_iz/τ_i) + τ_i ρ ], by an explicit loop over anchors."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    b = z1.shape[0]
    total = 0.0
    for anchors, other in ((z1, z2), (z2, z1)):
        for i in range(b):
            negs = [other[j] for j in range(b) if j != i] + [anchors[j] for j in range(b) if j != i]
            s = torch.stack([anchors[i] @ n for n in negs])
            t = tau[i]
            total = total - anchors[i] @ other[i] + t * torch.log(torch.exp(s / t).mean()) + t * rho
    return total / b


def test_gamma1_surrogate_gradient_equals_objective_gradient():
    b, d = 6, 5
    z1, z2 = _emb(b, d, 0)
    z1.requires_grad_(True)
    z2.requires_grad_(True)
    state = GlobalContrastiveState(20, tau=0.2, gamma=1.0).double()
    index = torch.tensor([3, 0, 7, 19, 11, 5])
    loss = state(z1, z2, index)
    g1, g2 = torch.autograd.grad(loss, (z1, z2))
    y1, y2 = z1.detach().clone().requires_grad_(True), z2.detach().clone().requires_grad_(True)
    ref = _reference_objective(y1, y2, torch.full((b,), 0.2, dtype=torch.float64))
    r1, r2 = torch.autograd.grad(ref, (y1, y2))
    assert torch.allclose(g1, r1, atol=1e-10) and torch.allclose(g2, r2, atol=1e-10)
    # u > 0 exactly on the visited rows, untouched elsewhere
    visited = torch.zeros(20, dtype=torch.bool)
    visited[index] = True
    assert (state.u[visited] > 0).all() and (state.u[~visited] == 0).all()
    assert torch.allclose(state.tau, torch.full_like(state.tau, 0.2))


def test_u_moving_average_and_untouched_rows():
    state = GlobalContrastiveState(10, tau=0.1, gamma=0.5)
    z1, z2 = (t.float() for t in _emb(4, 3, 1))
    state(z1, z2, torch.tensor([0, 1, 2, 3]))
    u1 = (state.u * torch.exp(state.b)).clone()
    z1b, z2b = (t.float() for t in _emb(4, 3, 2))
    state(z1b, z2b, torch.tensor([2, 3, 4, 5]))
    u2 = state.u * torch.exp(state.b)
    assert torch.equal(u2[:2], u1[:2]) and (u2[6:] == 0).all()
    # γ = 0.5 average of the old value and the new batch estimate (fresh state gives the estimate alone)
    fresh = GlobalContrastiveState(10, tau=0.1, gamma=0.5)
    fresh(z1b, z2b, torch.tensor([2, 3, 4, 5]))
    g = fresh.u * torch.exp(fresh.b)
    assert torch.allclose(u2[2:4], 0.5 * u1[2:4] + 0.5 * g[2:4], rtol=1e-5)
    assert torch.allclose(u2[4:6], g[4:6], rtol=1e-6)


def test_isogclr_tau_gradient_matches_finite_differences():
    b, d, rho = 5, 4, 0.3
    z1, z2 = _emb(b, d, 3)
    tau0 = torch.tensor([0.1, 0.2, 0.3, 0.15, 0.5], dtype=torch.float64)
    state = GlobalContrastiveState(b, tau=0.1, gamma=1.0, learn_tau=True, rho=rho, eta=0.0, beta=1.0,
                                   tau_min=0.01, tau_max=1.0).double()
    state.tau.copy_(tau0)
    index = torch.arange(b)
    state(z1, z2, index)
    grad = state.m.clone()  # β = 1: the momentum equals this step's ∇τ
    assert torch.equal(state.tau, tau0)  # η = 0 ⇒ τ fixed
    eps = 1e-6
    for i in range(b):
        # per-sample objective of anchor i, averaged over its two views (the ∇τ of the reference code)
        hi, lo = _per_anchor(z1, z2, i, tau0[i] + eps, rho), _per_anchor(z1, z2, i, tau0[i] - eps, rho)
        fd = (hi - lo) / (2 * eps)
        assert abs(fd.item() - grad[i].item()) < 1e-6, (i, fd.item(), grad[i].item())


def _per_anchor(z1, z2, i, t, rho):
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    b = z1.shape[0]
    out = 0.0
    for anchors, other in ((z1, z2), (z2, z1)):
        negs = torch.cat([other[[j for j in range(b) if j != i]], anchors[[j for j in range(b) if j != i]]])
        h = negs @ anchors[i] - anchors[i] @ other[i]  # positive-shifted: same τ-derivative
        out = out + t * torch.log(torch.exp(h / t).mean()) + t * rho
    return out / 2


def test_isogclr_tau_in_bounds_and_rho_direction():
    torch.manual_seed(0)
    n, b = 32, 8
    finals = {}
    for rho in (0.0, 1.0):
        state = GlobalContrastiveState(n, tau=0.1, gamma=0.9, learn_tau=True, rho=rho, eta=0.5, beta=0.9,
                                       tau_min=0.05, tau_max=0.7)
        gen = torch.Generator().manual_seed(0)
        for _ in range(30):
            idx = torch.randperm(n, generator=gen)[:b]
            z = torch.randn(b, 6, generator=gen)
            state(z + 0.3 * torch.randn(b, 6, generator=gen), z, idx)
            assert (state.tau >= 0.05).all() and (state.tau <= 0.7).all()
        finals[rho] = state.tau.mean().item()
    # ∇τ = ρ − KL(p_τ ‖ uniform) and KL falls as τ grows, so the stationary τ *decreases* with ρ
    # (METHODS.md §6 says the opposite; the objective's own derivative decides).
    assert finals[1.0] < finals[0.0]


def test_isogclr_eta0_identical_to_sogclr():
    z1, z2 = (t.float() for t in _emb(6, 4, 5))
    a = GlobalContrastiveState(12, tau=0.1, gamma=0.9)
    b = GlobalContrastiveState(12, tau=0.1, gamma=0.9, learn_tau=True, eta=0.0)
    for step in range(3):
        idx = torch.tensor([0, 1, 2, 3, 4, 5]) + 2 * step
        la, lb = a(z1 + step, z2, idx), b(z1 + step, z2, idx)
        assert torch.equal(la, lb)
    assert torch.equal(a.u, b.u) and torch.equal(a.tau, b.tau)


def test_isogclr_stable_at_tiny_temperature():
    z1, z2 = (t.float() for t in _emb(16, 8, 6))
    z1.requires_grad_(True)
    state = GlobalContrastiveState(16, tau=0.005, gamma=0.9, learn_tau=True, tau_min=0.005, tau_max=0.05)
    for _ in range(3):
        loss = state(z1, z2, torch.arange(16))
        (g,) = torch.autograd.grad(loss, z1)
        assert torch.isfinite(loss) and torch.isfinite(g).all()
        assert torch.isfinite(state.u).all() and (state.u > 0).all() and torch.isfinite(state.m).all()


@pytest.mark.parametrize("learn", [False, True])
def test_state_dict_roundtrip(learn):
    state = GlobalContrastiveState(8, learn_tau=learn)
    z1, z2 = (t.float() for t in _emb(4, 3, 7))
    state(z1, z2, torch.tensor([1, 3, 5, 7]))
    other = GlobalContrastiveState(8, learn_tau=learn)
    other.load_state_dict(state.state_dict())
    assert set(state.state_dict()) == {"u", "b", "tau", "m"}
    for k, v in state.state_dict().items():
        assert torch.equal(v, other.state_dict()[k])


def test_loss_math_stays_fp32_under_autocast():
    z1, z2 = (t.float() for t in _emb(8, 6, 8))
    a, b = GlobalContrastiveState(8), GlobalContrastiveState(8)
    ref = a(z1, z2, torch.arange(8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = b(z1, z2, torch.arange(8))
    assert out.dtype == torch.float32 and torch.equal(out, ref) and torch.equal(a.u, b.u)
