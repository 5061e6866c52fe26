"""The one distributed primitive: all-gather with gradient (METHODS.md §17, pattern A).

Every objective that needs global negatives gathers its embeddings with :func:`all_gather_with_grad`
(on by default whenever ``torch.distributed`` is initialised with world size > 1). Each rank then computes
the loss of its *local* anchors against *all* gathered samples.

Gradient semantics. Forward concatenates the tensors of all ranks along dim 0 (sizes may differ between
ranks). Backward all-reduces (sums) the gradient of the whole gathered tensor across ranks and returns
this rank's slice, so the gradient reaching a local sample is the sum of ∂L_r/∂z over every rank's loss
L_r (the bug fixed in lightly#1528 was to return only the local ∂L_rank/∂z). Together with DDP's gradient
averaging this reproduces the single-process gradient of the global loss when each rank's L_r is scaled
so that mean_r(L_r) is the global loss (see ``objectives.functional``).

Works with gloo (CPU) and NCCL (CUDA). Without an initialised process group every function here is a no-op
for a world of one.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "all_gather_sizes",
    "all_gather_with_grad",
    "all_reduce_with_grad",
    "broadcast_object",
    "all_reduce_sum",
    "is_distributed",
    "rank",
    "world_size",
]


def is_distributed() -> bool:
    """True when torch.distributed is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_sum(x: Tensor) -> Tensor:
    """Sum of x over ranks (no gradient; returns a new tensor)."""
    x = x.detach().clone()
    if is_distributed():
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def all_gather_sizes(n: int, device: torch.device | str = "cpu") -> list[int]:
    """The first-dimension size of every rank's tensor, in rank order."""
    if not is_distributed():
        return [int(n)]
    t = torch.tensor([int(n)], dtype=torch.long, device=device)
    out = [torch.zeros_like(t) for _ in range(world_size())]
    dist.all_gather(out, t)
    return [int(o.item()) for o in out]


class _AllGatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, sizes: tuple[int, ...]) -> Tensor:
        ctx.sizes = sizes
        ctx.rank = rank()
        biggest = max(sizes)
        x = x.contiguous()
        if x.shape[0] < biggest:  # all_gather needs equal shapes: pad, then cut
            x = torch.cat([x, x.new_zeros((biggest - x.shape[0],) + tuple(x.shape[1:]))])
        parts = [torch.empty_like(x) for _ in sizes]
        dist.all_gather(parts, x)
        return torch.cat([p[:s] for p, s in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None


def all_gather_with_grad(x: Tensor, sizes: list[int] | None = None) -> Tensor:
    """Concatenate x (first dimension may differ per rank) from all ranks, in rank order, with gradient.

    ``sizes`` (from :func:`all_gather_sizes`) saves one round of communication when already known.
    Returns x itself when not distributed.
    """
    if not is_distributed():
        return x
    if sizes is None:
        sizes = all_gather_sizes(x.shape[0], x.device)
    if not x.requires_grad:
        with torch.no_grad():
            return _AllGatherWithGrad.forward(_Ctx(), x, tuple(sizes))
    return _AllGatherWithGrad.apply(x, tuple(sizes))


class _Ctx:  # stand-in for autograd's ctx when gathering tensors without gradient (labels, weights)
    pass


class _AllReduceWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        x = x.contiguous().clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor):
        # every rank's loss depends on the sum: ∂(Σ_r L_r)/∂x_local = Σ_r ∂L_r/∂sum (same convention as the gather)
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def all_reduce_with_grad(x: Tensor) -> Tensor:
    """Σ over ranks of x, differentiable (batch statistics of a synchronised BatchNorm). x itself when not
    distributed."""
    if not is_distributed():
        return x
    return _AllReduceWithGrad.apply(x)


def broadcast_object(obj):
    """Rank 0's value of a picklable object on every rank (e.g. a run folder name chosen from the clock)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
