"""clip / cleanclip: the symmetric loss against a slow reference (values and gradients, logit scale included),
the CLIP clamp, and two gloo processes against one process on the concatenated batch."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

import contrastkit  # noqa: F401  (before anything that builds models)
from contrastkit import objectives
from contrastkit.config import resolve_config
from contrastkit.data.paired import RawSide, paired_splits
from contrastkit.methods import create_method

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def slow_clip(u, v, t):
    """½[CE(s U Vᵀ, i) + CE(s V Uᵀ, i)], s = exp(t), written out with full matrices."""
    u, v = F.normalize(u, dim=1), F.normalize(v, dim=1)
    logits = t.exp() * u @ v.T
    target = torch.arange(u.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@pytest.mark.parametrize("n,d,tile", [(7, 5, None), (33, 8, 4), (16, 3, (5, 3))])
def test_clip_loss_matches_slow_reference_with_logit_scale_gradient(n, d, tile):
    g = torch.Generator().manual_seed(n)
    u0 = torch.randn(n, d, generator=g, dtype=torch.float64)
    v0 = u0 + 0.7 * torch.randn(n, d, generator=g, dtype=torch.float64)
    grads = []
    for fn in ("fast", "slow"):
        u, v = u0.clone().requires_grad_(True), v0.clone().requires_grad_(True)
        t = torch.tensor(math.log(1 / 0.07), dtype=torch.float64, requires_grad=True)
        loss = objectives.clip_loss(u, v, t.exp(), tile=tile) if fn == "fast" else slow_clip(u, v, t)
        loss.backward()
        grads.append((loss.detach(), u.grad, v.grad, t.grad))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-8), (a, b)
    assert grads[0][3].abs() > 1e-6  # the logit scale really receives a gradient


def _tiny_pairs(n=48, seed=0, kinds=("table", "table")):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 4))
    a = z @ rng.normal(size=(4, 9)) + 0.1 * rng.normal(size=(n, 9))
    b = np.tanh(z @ rng.normal(size=(4, 6)))
    return paired_splits("tiny", RawSide("left", "table", a), RawSide("right", "table", b),
                         rng.integers(0, 3, n), {"test_fraction": 0.25})


def _method(name="clip", **kw):
    splits = _tiny_pairs()
    cfg = resolve_config({"method": name, "data": "mfeat", "encoder_kwargs": {"width": 16, "depth": 1,
                          "out_dim": 8, "embed_dim": 6, "dropout": 0.0}, **kw})
    torch.manual_seed(0)
    return create_method(cfg, splits.info, splits.train), splits


def test_clip_training_step_is_the_symmetric_loss_of_the_two_towers():
    method, splits = _method()
    batch = splits.train.batch(torch.arange(10))
    out = method.training_step(batch, torch.Generator().manual_seed(0))
    out["loss"].backward()
    g_fast = method.logit_scale.grad.clone()
    method.zero_grad()
    za, zb = method.encoder.encode(0, batch.x[0]), method.encoder.encode(1, batch.x[1])
    ref = slow_clip(za, zb, method.logit_scale)
    ref.backward()
    assert torch.allclose(out["loss"], ref, atol=1e-5)
    assert torch.allclose(g_fast, method.logit_scale.grad, atol=1e-5)
    assert abs(float(out["logit_scale"]) - 1 / 0.07) < 1e-3


def test_logit_scale_clamped_at_100_after_each_step_and_no_weight_decay():
    method, _ = _method()
    with torch.no_grad():
        method.logit_scale.fill_(math.log(250.0))
    method.after_step(0, 1)
    assert float(method.scale().detach()) == pytest.approx(100.0, rel=1e-6)
    from contrastkit.train.optim import split_decay

    groups = split_decay(method.parameter_groups())
    assert any(g.get("weight_decay") == 0.0 and any(p is method.logit_scale for p in g["params"]) for g in groups)


def test_fixed_logit_scale_is_a_buffer():
    method, _ = _method(learn_logit_scale=False, logit_scale_init=20.0)
    assert all(p is not method.logit_scale for p in method.parameters())
    assert float(method.scale().detach()) == pytest.approx(20.0)


def test_cleanclip_adds_each_sides_own_term():
    method, splits = _method("cleanclip", inmodal_weight=0.0)
    batch = splits.train.batch(torch.arange(12))
    out = method.training_step(batch, torch.Generator().manual_seed(0))
    assert torch.allclose(out["loss"], out["clip"], atol=1e-6)
    method, _ = _method("cleanclip")
    out = method.training_step(batch, torch.Generator().manual_seed(0))
    assert torch.allclose(out["loss"], out["clip"] + out["inmodal"], atol=1e-5)
    out["loss"].backward()
    assert method.logit_scale.grad is not None


def test_clip_refuses_unpaired_data_and_other_encoders():
    from contrastkit.errors import ContrastkitError

    splits = _tiny_pairs()
    cfg = resolve_config({"method": "clip", "data": "mfeat", "encoder": "mlp"})
    with pytest.raises(ContrastkitError, match="encoder paired"):
        create_method(cfg, splits.info, splits.train)


# ------------------------------------------------------------------------------------- two processes
WORLD, B = 2, 6


def _run(world: int, sl: slice) -> dict:
    out = {}
    for name in ("clip", "isogclr_clip"):
        method, splits = _method(name)
        rows = torch.arange(WORLD * B)[sl] * 2
        for step in range(2):
            res = method.training_step(splits.train.batch(rows + step), torch.Generator().manual_seed(step))
            method.zero_grad()
            res["loss"].backward()
            grads = torch.cat([p.grad.flatten() for p in method.parameters() if p.grad is not None])
            if world > 1:
                dist.all_reduce(grads)
                grads /= world  # what DDP does
            out[f"{name}_loss{step}"] = res["loss"].detach()
            out[f"{name}_grad{step}"] = grads
            with torch.no_grad():  # a plain SGD step, identical on every rank after the average
                offset = 0
                for p in method.parameters():
                    if p.grad is not None:
                        p -= 0.1 * grads[offset:offset + p.numel()].view_as(p)
                        offset += p.numel()
            method.after_step(step, 2)
        for k, v in method.state_dict().items():
            if k.startswith("state."):
                out[f"{name}_{k}"] = v.clone()
    return out


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save(_run(world, slice(rank * B, (rank + 1) * B)), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process_on_the_concatenated_batch():
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        mp.start_processes(_worker, args=(WORLD, init_file, tmp), nprocs=WORLD, join=True, start_method="fork")
        r0, r1 = (torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=True) for r in range(WORLD))
    single = _run(1, slice(0, WORLD * B))
    for key in single:
        assert torch.equal(r0[key], r1[key]), key  # every rank holds the global value / averaged gradient
        assert torch.allclose(r0[key], single[key], atol=1e-5, rtol=1e-4), (key, (r0[key] - single[key]).abs().max())


def test_cleanclip_on_images_and_captions_and_init_from(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, size=(24, 3, 12, 12), dtype=np.uint8)
    caps = [f"a {c} thing number {i}" for i, c in enumerate(["red", "green", "blue"] * 8)]
    splits = paired_splits("pics", RawSide("pics", "image", imgs), RawSide("caps", "text", caps), None, {})
    cfg = resolve_config({"method": "cleanclip", "data": "mfeat", "encoder_kwargs": {"embed_dim": 8}})
    torch.manual_seed(0)
    method = create_method(cfg, splits.info, splits.train)
    out = method.training_step(splits.train.batch(torch.arange(8)), torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["inmodal"] > 0
    from contrastkit.methods.clip import TokenDropout

    ids = splits.train.b[:4]
    dropped = TokenDropout(0.9)(ids, torch.Generator().manual_seed(0))
    assert ((dropped == ids) | (dropped == 0)).all() and (dropped != 0).any(1).all()
    # init_from: a run folder's towers are loaded
    from contrastkit.run import save_encoder

    save_encoder(tmp_path / "encoder.pt", method.encoder, splits.info, cfg)
    torch.manual_seed(1)
    again = create_method({**cfg, "init_from": str(tmp_path)}, splits.info, splits.train)
    for (k, v), w in zip(method.encoder.state_dict().items(), again.encoder.state_dict().values()):
        assert torch.equal(v, w), k


def test_bimodal_global_loss_with_gamma_1_has_the_dcl_form_gradient():
    from contrastkit.methods.clip import BimodalGlobalState

    g = torch.Generator().manual_seed(3)
    a0, b0 = torch.randn(9, 4, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    tau = 0.3
    state = BimodalGlobalState(20, tau=tau, gamma=0.5).double()
    index = torch.arange(9) * 2
    a, b = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    state(a, b, index).backward()  # first visit: gamma is 1 for every sample
    ra, rb = a0.clone().requires_grad_(True), b0.clone().requires_grad_(True)
    s = F.normalize(ra, dim=1) @ F.normalize(rb, dim=1).T
    off = ~torch.eye(9, dtype=torch.bool)
    ref = 0.0
    for m in (s, s.T):
        lse = torch.logsumexp((m / tau).masked_fill(~off, float("-inf")), 1) - math.log(8)
        ref = ref + (-m.diagonal() + tau * lse)
    ref.mean().backward()
    assert torch.allclose(a.grad, ra.grad, atol=1e-10) and torch.allclose(b.grad, rb.grad, atol=1e-10)
    assert (state.u_a[index] > 0).all() and (state.u_b[index] > 0).all() and (state.u_a[index + 1] == 0).all()


def test_isogclr_clip_learns_per_sample_temperatures_per_side():
    method, splits = _method("isogclr_clip")
    assert not any(p is method.logit_scale for p in method.parameters())
    for step in range(3):
        out = method.training_step(splits.train.batch(torch.arange(12)), torch.Generator().manual_seed(step))
        out["loss"].backward()
    t = method.temperatures()
    assert t.shape == (len(splits.train), 2)
    assert not torch.allclose(t[:12], torch.full_like(t[:12], 0.1)) and torch.equal(t[12:], torch.full_like(t[12:], 0.1))


def test_byte_level_text_tower():
    from contrastkit.encoders.text import ByteTransformer, byte_tokens

    ids = byte_tokens(["ab", "héllo"])
    assert ids.tolist()[0][:3] == [ord("a") + 1, ord("b") + 1, 0] and ids.shape == (2, 6)
    rng = np.random.default_rng(0)
    caps = [f"item {i} is {c}" for i, c in enumerate(["red", "green", "blue"] * 6)]
    splits = paired_splits("t", RawSide("x", "table", rng.normal(size=(18, 4))), RawSide("caps", "text", caps),
                           None, {"text_tokens": "bytes"})
    assert splits.info.extra["sides"][1]["extra"]["tokens"] == "bytes"
    cfg = resolve_config({"method": "clip", "data": "mfeat", "encoder_kwargs": {"embed_dim": 8, "width": 16}})
    method = create_method(cfg, splits.info, splits.train)
    assert isinstance(method.encoder.towers[1].backbone, ByteTransformer)
    out = method.training_step(splits.train.batch(torch.arange(6)), torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    # padding does not change a row's embedding
    enc = method.encoder.towers[1].backbone.eval()
    one = byte_tokens(["item 1"])
    padded = torch.nn.functional.pad(one, (0, 5))
    assert torch.allclose(enc(one), enc(padded), atol=1e-5)
