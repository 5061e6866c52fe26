"""moco / mochi / moco-ft: queue contents, key encoder, split BN, symmetric loss (METHODS.md §3, §4, §12)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from contrastkit import objectives
from contrastkit.methods.moco import forward_in_groups
from contrastkit.objectives.mixing import queue_logits
from test_moco_helpers import batch_of, gen, make_method

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _step(method, batch, seed=0, lr=0.1):
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=lr)
    out = method.training_step(batch, gen(seed))
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    method.after_step(0, 10)
    return out


@pytest.mark.parametrize("name", ["moco", "mochi", "moco-ft"])
def test_queue_holds_normalised_keys_and_key_encoder_gets_no_gradient(name):
    method, train = make_method(name, mix_start=0) if name == "mochi" else make_method(name)
    batch = batch_of(train, range(16))
    before = [p.clone() for p in method.key_encoder.parameters()]
    out = method.training_step(batch, gen(1))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    for p in list(method.key_encoder.parameters()) + list(method.key_head.parameters()):
        assert not p.requires_grad and p.grad is None
    assert method.queue.queue.grad is None and not method.queue.queue.requires_grad
    assert all(torch.equal(a, b) for a, b in zip(before, method.key_encoder.parameters()))
    # replay the step's random draws: views, then the key shuffle → the same keys (BN in train mode)
    g = gen(1)
    _ = method.view1(batch.x, g)
    v2 = method.view2(batch.x, g)
    k = method.keys(v2, g)
    assert torch.allclose(method.queue.queue[:16], k, atol=1e-6)  # ptr started at 0, FT enqueues ORIGINAL k
    assert int(method.queue.ptr) == 16
    assert torch.allclose(method.queue.queue[:16].norm(dim=1), torch.ones(16), atol=1e-5)


def test_key_momentum_1_freezes_and_0_copies():
    frozen, train = make_method("moco", ema_momentum=1.0, ema_momentum_final=1.0)
    before = [p.clone() for p in frozen.key_encoder.parameters()]
    _step(frozen, batch_of(train, range(16)))
    assert all(torch.equal(a, b) for a, b in zip(before, frozen.key_encoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before, frozen.encoder.parameters()))
    copy, train = make_method("moco", ema_momentum=0.0, ema_momentum_final=0.0)
    _step(copy, batch_of(train, range(16)))
    for a, b in zip(copy.encoder.parameters(), copy.key_encoder.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(copy.head.parameters(), copy.key_head.parameters()):
        assert torch.equal(a, b)


def test_split_bn_groups_and_key_shuffle_is_undone():
    method, train = make_method("moco", split_bn=4)
    x = torch.randn(16, 1, 8, 8)
    y = forward_in_groups(method._key_net, x, 4)
    ref = torch.cat([method._key_net(c) for c in x.chunk(4)])
    assert torch.allclose(y, ref)
    assert not torch.allclose(y, method._key_net(x), atol=1e-4)  # BN statistics really differ per group
    # in eval mode BN is per-sample, so shuffled + un-shuffled keys equal plain keys
    method.eval()
    k_shuffled = method.keys(x, gen(3))
    method.cfg["shuffle_keys"] = False
    k_plain = method.keys(x, gen(3))
    assert torch.allclose(k_shuffled, k_plain, atol=1e-6)


def test_symmetric_uses_the_old_queue_for_both_terms_then_enqueues_both_views():
    method, train = make_method("moco", symmetric=True, split_bn=1, shuffle_keys=False)
    batch = batch_of(train, range(8))
    queue0 = method.queue.queue.clone()
    out = method.training_step(batch, gen(2))
    g = gen(2)
    v1, v2 = method.view1(batch.x, g), method.view2(batch.x, g)
    with torch.no_grad():
        q1, q2 = method.queries(torch.cat([v1, v2]), views=2).chunk(2)
        k1, k2 = method.keys(v1, g), method.keys(v2, g)
        ref = 0.5 * (objectives.info_nce(q1, k2, queue0, 0.2) + objectives.info_nce(q2, k1, queue0, 0.2))
    assert torch.allclose(out["loss"].detach(), ref, atol=1e-6)
    assert torch.allclose(method.queue.queue[:8], k1, atol=1e-6)
    assert torch.allclose(method.queue.queue[8:16], k2, atol=1e-6)


def test_mochi_without_synthetic_negatives_equals_moco():
    moco, train = make_method("moco", seed=5)
    mochi, _ = make_method("mochi", seed=5, mix_s=0, mix_s_prime=0, mix_start=0)
    mochi.load_state_dict(moco.state_dict(), strict=False)
    for step in range(3):
        batch = batch_of(train, range(16 * step, 16 * step + 16))
        a, b = _step(moco, batch, seed=step), _step(mochi, batch, seed=step)
        assert torch.equal(a["loss"], b["loss"])
    sa, sb = moco.state_dict(), mochi.state_dict()
    assert set(sb) - set(sa) == {"mixing"}
    for k, v in sa.items():
        assert torch.equal(v, sb[k]), k


def test_mochi_warmup_then_mixing_changes_the_loss_only_after_start():
    moco, train = make_method("moco", seed=5)
    mochi, _ = make_method("mochi", seed=5, mix_n=10, mix_s=6, mix_s_prime=3, mix_start=1)
    mochi.load_state_dict(moco.state_dict(), strict=False)
    batch = batch_of(train, range(16))
    a, b = _step(moco, batch), _step(mochi, batch)
    assert torch.equal(a["loss"], b["loss"]) and b["mixing"] == 0  # step 0 < start: plain MoCo
    batch = batch_of(train, range(16, 32))
    a, b = _step(moco, batch, seed=1), _step(mochi, batch, seed=1)
    assert b["mixing"] == 1 and b["loss"] > a["loss"]  # hard synthetic negatives make the task harder
    assert torch.isfinite(b["loss"])


def test_materialised_queue_logits_match_info_nce():
    q, k, negs = (F.normalize(torch.randn(n, 8, generator=gen(i)), dim=1) for i, n in enumerate((6, 6, 30)))
    ce = F.cross_entropy(queue_logits(q, k, negs, 0.2), torch.zeros(6, dtype=torch.long))
    assert torch.allclose(ce, objectives.info_nce(q, k, negs, 0.2), atol=1e-6)


def test_defaults_are_pinned_and_validated():
    from contrastkit.errors import ContrastkitError
    from contrastkit.methods import METHODS

    for name in ("moco", "mochi", "moco-ft"):
        d = METHODS.get(name).defaults
        assert d["queue_size"] == 4096 and d["optimizer"] == "sgd"
        assert d["temperature"] == (0.07 if name == "moco-ft" else 0.2)
    with pytest.raises(ContrastkitError, match="split_bn"):
        make_method("moco", split_bn=0)


def test_mochi_start_as_fraction_of_training():
    method, _ = make_method("mochi", mix_start=0.5)
    assert not bool(method.mixing)
    method.after_step(0, 4)
    assert not bool(method.mixing)  # 1 step done < 0.5 · 4
    method.after_step(1, 4)
    assert bool(method.mixing)


def test_moco_ft_is_moco_v1_plus_ft():
    """METHODS §12: the reference is MoCo v1 + FT — a linear head and τ = 0.07 (issue 17)."""
    method, _ = make_method("moco-ft")
    linears = [m for m in method.head.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].out_features == int(method.cfg["proj_dim"])
    assert float(method.cfg["temperature"]) == 0.07
    moco, _ = make_method("moco")
    assert sum(isinstance(m, torch.nn.Linear) for m in moco.head.modules()) == 2  # v2's MLP head


@pytest.mark.parametrize("name", ["moco", "mochi", "moco-ft", "simsiam", "simclr", "byol"])
def test_weight_decay_reaches_norms_and_biases_exactly_where_the_reference_does(name):
    """MoCo and SimSiam decay every parameter in their references; SimCLR/BYOL (LARS recipes) skip BN/biases."""
    from contrastkit.train.optim import build_optimizer

    method, _ = make_method(name)
    cfg = {**method.cfg, "weight_decay": 1e-3, "optimizer": "sgd", "momentum": 0.9, "batch_size": 256}
    opt = build_optimizer(method.parameter_groups(), cfg)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    trained = [p for p in method.parameters() if p.requires_grad]
    assert set(decay) == {id(p) for p in trained}
    small = [p for p in trained if p.ndim <= 1]
    assert small  # BN weights / biases exist
    everything = name in ("moco", "mochi", "moco-ft", "simsiam")
    assert all(decay[id(p)] == (1e-3 if everything else 0.0) for p in small), name
    assert all(decay[id(p)] == 1e-3 for p in trained if p.ndim > 1)
    assert all("decay_norm_bias" not in g for g in opt.param_groups)
