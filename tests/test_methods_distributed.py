"""Two gloo processes on CPU vs one process on the concatenated batch (METHODS.md §17, LESSONS.md #1).

One spawn runs every check (spawning is the slow part): the MoCo queue and the SogCLR/iSogCLR per-sample
state must be identical on both ranks and equal to the single-process result; losses and (DDP-averaged)
gradients must match too. Keys are shuffled across ranks (MoCo's shuffle BN) inside the method check.
"""

from __future__ import annotations

import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from contrastkit.objectives.queue import KeyQueue
from contrastkit.objectives.sogclr import GlobalContrastiveState
from test_moco_helpers import RawView, batch_of, make_method

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

WORLD, B = 2, 6  # local batch; global batch 12


def _data():
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(2, WORLD * B, 5, generator=g)
    z1 = torch.randn(WORLD * B, 5, generator=g)
    z2 = z1 + 0.5 * torch.randn(WORLD * B, 5, generator=g)
    index = torch.randperm(30, generator=g)[: WORLD * B]
    return keys, z1, z2, index


def _state():
    return GlobalContrastiveState(30, tau=0.1, gamma=0.8, learn_tau=True, rho=0.4, eta=0.05, beta=0.5,
                                  tau_min=0.05, tau_max=1.0)


def _method(name):
    kw = {"queue_size": 20, "split_bn": 1} if name == "moco" else {}
    method, train = make_method(name, seed=1, n=40, **kw)
    method.view1 = method.view2 = RawView()
    method.eval()  # BN on running statistics: per-sample, so batch splits cannot change the result
    return method, train


def _run_all(rank: int, world: int, sl: slice) -> dict:
    """Every check's tensors for the rows `sl` of the global batch (sl = everything in one process)."""
    out = {}
    keys, z1, z2, index = _data()
    queue = KeyQueue(16, 5, generator=torch.Generator().manual_seed(1))
    for step in range(2):
        queue.enqueue(keys[step, sl])
    out["queue"], out["ptr"] = queue.queue.clone(), queue.ptr.clone()

    state = _state()
    for step in range(2):
        a = z1[sl].clone().requires_grad_(True)
        b = (z2[sl] + step).clone().requires_grad_(True)
        loss = state(a, b, index[sl])
        loss.backward()
        out[f"gcl_loss{step}"] = loss.detach()
        out[f"gcl_grad{step}"] = torch.cat([a.grad, b.grad], 1) / world  # Σ_r ∂L_r/∂z = W ∂L/∂z on each rank
    for key in ("u", "b", "tau", "m"):
        out[f"gcl_{key}"] = getattr(state, key).clone()

    for name in ("moco", "isogclr"):
        method, train = _method(name)
        rows = torch.arange(12)[sl] * 3  # dataset rows of this rank's part of the global batch
        for step in range(2):
            res = method.training_step(batch_of(train, rows + step), torch.Generator().manual_seed(step))
            method.zero_grad()
            res["loss"].backward()
            grads = torch.cat([p.grad.flatten() for p in method.parameters() if p.grad is not None])
            if world > 1:
                dist.all_reduce(grads)
                grads /= world  # what DDP does
            out[f"{name}_grad{step}"] = grads
            method.after_step(step, 2)
        out[f"{name}_state"] = {k: v.clone() for k, v in method.state_dict().items()
                                if k.startswith(("queue.", "state."))}
    return out


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        res = _run_all(rank, world, slice(rank * B, (rank + 1) * B))
        torch.save(res, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _close(a, b, what, atol=1e-5):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            _close(a[k], b[k], f"{what}.{k}", atol)
        return
    assert a.shape == b.shape, what
    assert torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4), (what, (a - b).abs().max())


def _equal(a, b, what):
    if isinstance(a, dict):
        for k in a:
            _equal(a[k], b[k], f"{what}.{k}")
        return
    assert torch.equal(a, b), what


def test_two_gloo_ranks_match_one_process_on_the_concatenated_batch():
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "init")
        # fork, not spawn: a spawned child re-imports torch (seconds each on shared cores); forking is
        # safe here because the parent has no process group and torch makes forked children single-threaded
        mp.start_processes(_worker, args=(WORLD, init_file, tmp), nprocs=WORLD, join=True,
                           start_method="fork")
        r0, r1 = (torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=True) for r in range(WORLD))
    single = _run_all(0, 1, slice(0, WORLD * B))
    # state that every rank writes from gathered values: identical on both ranks, bit for bit
    for key in ("queue", "ptr", "gcl_u", "gcl_b", "gcl_tau", "gcl_m", "moco_state", "isogclr_state"):
        _equal(r0[key], r1[key], key)
    for key in ("gcl_loss0", "gcl_loss1", "moco_grad0", "moco_grad1", "isogclr_grad0", "isogclr_grad1"):
        _equal(r0[key], r1[key], key)  # loss value: global mean; gradients after the DDP average
    # and equal to one process on the concatenated batch
    assert torch.equal(r0["queue"], single["queue"]) and torch.equal(r0["ptr"], single["ptr"])
    for key in single:
        if key.endswith("grad0") or key.endswith("grad1"):
            if key.startswith("gcl"):
                rows = torch.cat([r0[key], r1[key]])
                _close(rows, single[key], key)
            else:
                _close(r0[key], single[key], key)
        else:
            _close(r0[key], single[key], key)
