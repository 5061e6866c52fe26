"""Multi-process training through torchrun: the process group from torchrun's environment, synchronised
BatchNorm, and the end of the group.

    torchrun --standalone --nproc_per_node K $(which contrastkit) pretrain ...     # one machine, K processes
    torchrun --nnodes N --node_rank R --master_addr HOST --master_port P --nproc_per_node K ...

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init_from_env` reads them (gloo on
CPU, NCCL on CUDA). Without them (a plain `contrastkit pretrain`) it does nothing: a world of one.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from ..core import distributed
from ..errors import ContrastkitError


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(device: torch.device, timeout_s: float = 1800) -> None:
    """Join the process group torchrun describes (once); a no-op for a single process."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return
    if not dist.is_available():
        raise ContrastkitError("this PyTorch build has no torch.distributed; run a single process")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))


def wrap_ddp(method: nn.Module, device: torch.device, options: dict | None = None) -> nn.Module:
    """DistributedDataParallel around the method (its forward is a training step). Buffers are not broadcast
    every step: methods keep their own state (queues, per-sample state) in sync from gathered values."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel).parameters
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return DistributedDataParallel(method, device_ids=[device.index] if device.type == "cuda" else None,
                                   **{no_sync: False, **(options or {})})


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose batch statistics are those of the global batch (all ranks), on any backend (gloo
    included, which torch.nn.SyncBatchNorm does not support). The per-rank sums are all-reduced with a
    gradient (`core.distributed.all_reduce_with_grad`), so the backward pass is that of BatchNorm over the
    concatenated batch. With one process it is plain BatchNorm."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and distributed.is_distributed()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        stats = distributed.all_reduce_with_grad(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
        c = x.shape[1]
        n = stats[2 * c]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / max(float(n) - 1, 1.0), alpha=m)
                self.num_batches_tracked.add_(1)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)

    def _check_input_dim(self, x):  # any (N, C, ...) input
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer of `module` by SyncBatchNorm (same parameters and running statistics)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncBatchNorm):
        new = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        new.requires_grad_(any(p.requires_grad for p in module.parameters()) if module.affine else False)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_sync_batchnorm(child))
    return module
