"""MoCo's key queue: a FIFO of K normalised keys, kept as registered buffers so checkpoints and DDP cover it.

Following facebookresearch/moco `builder.py` (`_dequeue_and_enqueue`):

* the queue starts as K random unit vectors (`queue` buffer, shape (K, dim)) and a pointer (`ptr`, long);
* `enqueue(keys)` first all-gathers the keys of every rank (rank order = the order of the global batch),
  then writes them at the pointer, wrapping around at K (so K need not be a multiple of the batch size),
  and advances the pointer by the global batch size. Every rank writes the same global batch, so the
  queues stay identical on all ranks (the bug in lightly#1018 and PML#639 was a per-rank bank);
* keys are detached and re-normalised in fp32 before they are stored; the queue never receives gradients.

A global batch larger than K keeps only its last K keys. K = 0 is allowed (no negatives at all).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import distributed

__all__ = ["KeyQueue"]


class KeyQueue(nn.Module):
    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        if size < 0:
            raise ValueError(f"queue size must be >= 0, got {size}")
        init = torch.randn(size, dim, generator=generator)
        self.register_buffer("queue", F.normalize(init, dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.queue.shape[0]

    def negatives(self) -> Tensor:
        """The current queue contents (K, dim), detached (a view; clone it if you enqueue before using it)."""
        return self.queue.detach()

    @torch.no_grad()
    def enqueue(self, keys: Tensor, gather: bool = True) -> None:
        """FIFO-write the (all-gathered when `gather` and distributed) keys at the pointer."""
        keys = F.normalize(keys.detach().float(), dim=1)
        if gather and distributed.is_distributed():
            keys = distributed.all_gather_with_grad(keys)
        size = self.size
        if size == 0:
            return
        n = keys.shape[0]
        if n >= size:  # more keys than slots: the newest K win, pointer back to where it would be
            keys = keys[n - size :]
            start = (int(self.ptr) + n - size) % size
            idx = (start + torch.arange(size, device=keys.device)) % size
        else:
            idx = (int(self.ptr) + torch.arange(n, device=keys.device)) % size
        self.queue[idx] = keys.to(self.queue.dtype)
        self.ptr.fill_((int(self.ptr) + n) % size)

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.queue.shape[1]}"
