"""byol, simsiam and directpred (METHODS.md §7, §8, §9)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrastkit.heads import directpred_weight
from contrastkit.objectives import byol_loss, simsiam_loss
from test_moco_helpers import batch_of, gen, make_method

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _step(method, batch, seed=0, total=10, step=0):
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.1)
    out = method.training_step(batch, gen(seed))
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    method.after_step(step, total)
    return out


def test_byol_loss_range_and_target_gets_no_gradient():
    p, z = torch.randn(32, 8), torch.randn(32, 8)
    per_pair = 2 - 2 * F.cosine_similarity(p, z)
    assert (per_pair >= 0).all() and (per_pair <= 4).all()
    assert torch.allclose(byol_loss(p, z), (F.normalize(p) - F.normalize(z)).pow(2).sum(1).mean(), atol=1e-6)
    assert byol_loss(p, -p) == 4.0 and abs(byol_loss(p, p).item()) < 1e-6
    method, train = make_method("byol")
    out = method.training_step(batch_of(train, range(16)), gen())
    out["loss"].backward()
    assert 0 <= out["loss"].item() <= 8
    for p in list(method.target_encoder.parameters()) + list(method.target_head.parameters()):
        assert not p.requires_grad and p.grad is None
    assert all(p.grad is not None for p in method.predictor.parameters())


def test_byol_tau_1_freezes_target():
    method, train = make_method("byol", ema_momentum=1.0, ema_momentum_final=1.0)
    before = [p.clone() for p in method.target_encoder.parameters()]
    _step(method, batch_of(train, range(16)))
    assert all(torch.equal(a, b) for a, b in zip(before, method.target_encoder.parameters()))
    method, train = make_method("byol")
    _step(method, batch_of(train, range(16)), step=0, total=10)
    assert method._momentum == 0.99
    method.after_step(10, 10)
    assert method._momentum == 1.0


def test_simsiam_loss_range_stop_gradient_and_fixed_predictor_lr():
    p = torch.randn(16, 8, requires_grad=True)
    z = torch.randn(16, 8, requires_grad=True)
    loss = simsiam_loss(p, z)
    loss.backward()
    assert -1 <= loss.item() <= 1 and z.grad is None and p.grad is not None
    method, train = make_method("simsiam")
    out = method.training_step(batch_of(train, range(16)), gen())
    assert -1 <= out["loss"].item() <= 1
    groups = method.parameter_groups()
    assert len(groups) == 2 and groups[1]["scheduled"] is False
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in method.predictor.parameters()}
    n_all = sum(1 for p in method.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups) == n_all
    # the last BN of the projector has no affine parameters
    last_bn = [m for m in method.head.modules() if isinstance(m, torch.nn.BatchNorm1d)][-1]
    assert last_bn.weight is None


def test_directpred_predictor_is_set_analytically_and_not_trained():
    eps = 0.01
    method, train = make_method("directpred", dyn_eps=eps)
    assert list(method.predictor.parameters()) == []  # W_p is a buffer: the optimiser never sees it
    assert "predictor.weight" in method.state_dict()
    for step in range(4):
        corr_before = method.corr.clone()  # F̂ up to the previous step: what this step's W_p must come from
        _step(method, batch_of(train, range(16 * step, 16 * step + 16)), seed=step, step=step)
        if step == 0:  # no statistics yet: the initial identity predictor
            assert torch.equal(method.predictor_weight(), torch.eye(8))
            continue
        w = method.predictor_weight().detach().double()
        corr = corr_before.double()
        assert torch.allclose(w, w.T, atol=1e-6)
        ev = torch.linalg.eigvalsh(w)
        assert ev.min() >= eps - 1e-5 and ev.max() <= 1 + eps + 1e-5
        assert torch.allclose(w @ corr, corr @ w, atol=1e-5 * corr.abs().max().item())
        assert torch.equal(method.predictor_weight(), directpred_weight(corr_before, eps))
        assert not torch.equal(method.corr, corr_before)  # ... and the batch was folded in after its use
    # F̂ = I  ⇒  W_p = (1 + ε) I
    eye = torch.eye(8)
    assert torch.allclose(directpred_weight(eye, eps), (1 + eps) * eye, atol=1e-6)
    # F̂ follows its EMA: ρ F̂ + (1 − ρ) mean f fᵀ
    before = method.corr.clone()
    batch = batch_of(train, range(8))
    g = gen(9)
    x = torch.cat([method.view1(batch.x, g), method.view2(batch.x, g)])
    state = {k: v.clone() for k, v in method.state_dict().items()}
    with torch.no_grad():
        z = method.head(method.encoder(x)).float()
    method.load_state_dict(state)  # undo the BN running-stat update of the reference forward
    method.training_step(batch, gen(9))
    assert torch.allclose(method.corr, 0.3 * before + 0.7 * (z.T @ z / z.shape[0]), atol=1e-5)


def test_directpred_predicts_a_batch_with_the_previous_steps_statistics():
    """METHODS §9 (corrected): W_p used on batch t comes from F̂ up to step t−1, not from F̂ including batch t."""
    eps = 0.01
    method, train = make_method("directpred", dyn_eps=eps)
    _step(method, batch_of(train, range(16)), seed=0, step=0)
    _step(method, batch_of(train, range(16, 32)), seed=1, step=1)
    corr_before = method.corr.clone()
    used = []
    handle = method.predictor.register_forward_pre_hook(lambda mod, args: used.append(mod.weight.clone()))
    _step(method, batch_of(train, range(32, 48)), seed=2, step=2)
    handle.remove()
    assert len(used) == 1
    torch.testing.assert_close(used[0], directpred_weight(corr_before, eps))
    assert not torch.allclose(used[0], directpred_weight(method.corr, eps))
