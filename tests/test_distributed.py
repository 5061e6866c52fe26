"""2-process (gloo, CPU) runs equal one process on the concatenated batch, for every objective that gathers.

One spawn for all objectives. Rank batch sizes differ on purpose (3 and 5 pairs) so the offset and the
global-mean reduction are exercised. Each rank wraps a tiny nn.Linear in DDP; the loss value each rank
returns and the DDP-averaged parameter gradients must equal the single-process ones.
"""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from contrastkit.objectives import clip_loss, dcl, dclw, nt_xent, supcon
from contrastkit.core import distributed as D

SIZES = (3, 5)
D_IN, D_OUT = 6, 4


def global_batch():
    g = torch.Generator().manual_seed(0)
    n = sum(SIZES)
    return (torch.randn(n, D_IN, generator=g), torch.randn(n, D_IN, generator=g),
            torch.randint(0, 3, (n,), generator=g))


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.lin = nn.Linear(D_IN, D_OUT)
        self.lin2 = nn.Linear(D_IN, D_OUT)
        self.t = nn.Parameter(torch.tensor(math.log(1 / 0.3)))

    def forward(self, x1, x2):
        n = x1.shape[0]
        z = self.lin(torch.cat([x1, x2]))
        return z[:n], z[n:], self.lin2(x2), self.t.exp()


OBJECTIVES = {
    "nt_xent": lambda z1, z2, v, s, y, g: nt_xent(z1, z2, 0.5, gather=g),
    "dcl": lambda z1, z2, v, s, y, g: dcl(z1, z2, 0.2, gather=g),
    "dclw": lambda z1, z2, v, s, y, g: dclw(z1, z2, 0.2, sigma=0.5, gather=g),
    "supcon_out": lambda z1, z2, v, s, y, g: supcon(torch.stack([z1, z2], 1), y, 0.3, "out", gather=g),
    "supcon_in": lambda z1, z2, v, s, y, g: supcon(torch.stack([z1, z2], 1), y, 0.3, "in", gather=g),
    "clip": lambda z1, z2, v, s, y, g: clip_loss(z1, v, s, gather=g),
}


def run(model, x1, x2, y, gather):
    """{objective: (loss, {param name: grad})} for one forward/backward per objective."""
    out = {}
    for name, fn in OBJECTIVES.items():
        model.zero_grad(set_to_none=False)
        z1, z2, v, s = model(x1, x2)
        loss = fn(z1, z2, v, s, y, gather)
        loss.backward()
        inner = model.module if hasattr(model, "module") else model
        grads = {k: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
                 for k, p in inner.named_parameters()}
        out[name] = (loss.detach().clone(), grads)
    return out


def _exit_quietly() -> None:
    """End a worker that succeeded without C++ static destructors: gloo's threads can abort the process there
    ("terminate called without an active exception") after all the work is done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _worker(rank, world, init_file, result_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        assert D.is_distributed() and D.world_size() == world and D.rank() == rank
        x1, x2, y = global_batch()
        start = sum(SIZES[:rank])
        sl = slice(start, start + SIZES[rank])
        model = nn.parallel.DistributedDataParallel(Tower(), find_unused_parameters=True)
        results = {"gather": run(model, x1[sl], x2[sl], y[sl], None)}  # None ⇒ gather on (world size 2)
        # gather=False: plain local loss on this rank's batch (no label offset, lightly#1177)
        z1, z2, _, _ = model.module(x1[sl], x2[sl])
        results["local_nt_xent"] = nt_xent(z1, z2, 0.5, gather=False).detach()
        # the primitive alone: gradient of a gathered tensor is the sum over ranks of every rank's use
        a = torch.full((SIZES[rank], 2), float(rank + 1), requires_grad=True)
        allg = D.all_gather_with_grad(a)
        (allg * torch.arange(allg.shape[0], dtype=torch.float32)[:, None]).sum().backward()
        results["prim"] = (allg.detach(), a.grad.clone())
        torch.save(results, os.path.join(result_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()
    _exit_quietly()


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(tmp / "init"), str(tmp)), nprocs=2, join=True)
    return [torch.load(tmp / f"rank{r}.pt", weights_only=False) for r in range(2)]


def test_primitive_forward_and_backward(spawned):
    n = sum(SIZES)
    for r, res in enumerate(spawned):
        allg, grad = res["prim"]
        assert allg.shape == (n, 2)
        torch.testing.assert_close(allg[:, 0], torch.tensor([1.0] * SIZES[0] + [2.0] * SIZES[1]))
        start = sum(SIZES[:r])
        # each rank's loss gives row i the weight i; summed over 2 ranks ⇒ 2·i
        want = 2 * torch.arange(start, start + SIZES[r], dtype=torch.float32)[:, None].expand(-1, 2)
        torch.testing.assert_close(grad, want)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_two_processes_equal_one_process(spawned, name):
    x1, x2, y = global_batch()
    ref = run(Tower(), x1, x2, y, False)
    loss_ref, grads_ref = ref[name]
    for res in spawned:
        loss, grads = res["gather"][name]
        torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)  # the global mean on every rank
        for k in grads_ref:
            torch.testing.assert_close(grads[k], grads_ref[k], rtol=1e-4, atol=1e-6,
                                       msg=f"{name}: grad of {k}")


def test_gather_off_is_local_loss(spawned):
    x1, x2, _ = global_batch()
    model = Tower()
    for r, res in enumerate(spawned):
        start = sum(SIZES[:r])
        sl = slice(start, start + SIZES[r])
        z1, z2, _, _ = model(x1[sl], x2[sl])
        torch.testing.assert_close(res["local_nt_xent"], nt_xent(z1, z2, 0.5).detach())


def test_not_distributed_helpers():
    assert not D.is_distributed() and D.world_size() == 1 and D.rank() == 0
    x = torch.randn(3, 2)
    assert D.all_gather_with_grad(x) is x
    assert D.all_gather_sizes(3) == [3]
