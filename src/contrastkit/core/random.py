"""Per-sample random draws that do not depend on how many processes share a batch.

Views draw one row of random numbers per sample from an explicit generator. Under multi-process training
each rank holds a slice of the global batch; if every rank drew only rows for its own slice, K processes
would draw different augmentations than one process with the same global batch. Instead, inside
`sample_shard(offset, local, total)` (the engine opens it around each training step) a draw of `local` rows
draws all `total` rows from the generator (every rank's generator has the same seed and state) and keeps
rows [offset, offset + local). Drawing a few numbers per sample for the whole global batch is cheap; the
views themselves still run on the local slice only. Outside a shard, or for draws whose first dimension is
not the local batch size, these functions are exactly torch.rand / randn / randint.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator, Optional, Sequence

import torch

_SHARD: contextvars.ContextVar[Optional[tuple[int, int, int]]] = contextvars.ContextVar("sample_shard", default=None)


@contextlib.contextmanager
def sample_shard(offset: int, local: int, total: int) -> Iterator[None]:
    """Within the block, per-sample draws of `local` rows are rows [offset, offset+local) of a `total`-row draw."""
    token = _SHARD.set((int(offset), int(local), int(total)) if total != local else None)
    try:
        yield
    finally:
        _SHARD.reset(token)


def _rows(shape: Sequence[int]) -> tuple[tuple[int, ...], Optional[slice]]:
    shape = tuple(int(s) for s in shape)
    shard = _SHARD.get()
    if shard is None or not shape or shape[0] != shard[1]:
        return shape, None
    offset, local, total = shard
    return (total,) + shape[1:], slice(offset, offset + local)


def _draw(fn, shape, keep, generator, device, **kw) -> torch.Tensor:
    gdev = generator.device if generator is not None else device
    out = fn(shape, generator=generator, device=gdev, **kw)
    if keep is not None:
        out = out[keep]
    return out.to(device)


def rand(shape: Sequence[int], generator: Optional[torch.Generator], device=None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform [0, 1) of `shape` (first dimension = samples), drawn on the generator's device, moved to `device`."""
    full, keep = _rows(shape)
    return _draw(lambda s, **kw: torch.rand(s, **kw), full, keep, generator, device, dtype=dtype)


def randn(shape: Sequence[int], generator: Optional[torch.Generator], device=None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    full, keep = _rows(shape)
    return _draw(lambda s, **kw: torch.randn(s, **kw), full, keep, generator, device, dtype=dtype)


def randint(high: int, shape: Sequence[int], generator: Optional[torch.Generator], device=None) -> torch.Tensor:
    full, keep = _rows(shape)
    return _draw(lambda s, **kw: torch.randint(0, int(high), s, **kw), full, keep, generator, device)
