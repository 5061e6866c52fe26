"""Compute embeddings of raw samples with a frozen encoder (evaluation mode, no views)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from ..errors import ContrastkitError
from ._common import progress_task

__all__ = ["embed"]


@torch.no_grad()
def embed(
    encoder: nn.Module,
    x: Any,
    preprocess: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    batch_size: int = 1024,
    device: Optional[torch.device | str] = None,
) -> torch.Tensor:
    """Embed every row of `x` (uint8 images, float tables, …): returns fp32 CPU features (n, d).

    The encoder runs in eval() mode — BatchNorm uses (and does not update) its running statistics, dropout is
    off (lightly PR #1444) — and every submodule's previous train/eval flag is restored
    afterwards, even on error. Each chunk of `batch_size` rows is moved to `device` (default: the encoder's
    parameter device), passed through `preprocess` (e.g. uint8 → normalised float; identity when None) and
    the encoder; outputs with more than two dims are flattened. The output is allocated once (n × d fp32) and
    filled chunk by chunk, so the peak is the embeddings plus one chunk, not twice the embeddings.
    """
    if batch_size < 1:
        raise ContrastkitError(f"batch_size={batch_size}: must be >= 1")
    if isinstance(x, (list, tuple)) or type(x).__module__ == "numpy":
        x = torch.as_tensor(x)  # (a streamed split's rows stay lazy: sliced chunk by chunk below)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ContrastkitError(f"x: expected a non-empty batch of samples, got shape {tuple(x.shape)}")
    if device is None:
        p = next(iter(encoder.parameters()), None)
        if p is None:
            p = next(iter(encoder.buffers()), None)
        device = p.device if p is not None else torch.device("cpu")
    modes = [(m, m.training) for m in encoder.modules()]
    encoder.eval()
    n = x.shape[0]
    try:
        out = None
        with progress_task(f"embedding {n:,} rows", total=n) as task:
            for s in range(0, n, batch_size):
                xb = x[s : s + batch_size].to(device, non_blocking=True)
                if preprocess is not None:
                    xb = preprocess(xb)
                h = encoder(xb).flatten(1)
                if out is None:
                    out = torch.empty((n, h.shape[1]), dtype=torch.float32)
                out[s : s + h.shape[0]].copy_(h)
                task.advance(h.shape[0])
        return out
    finally:
        for m, mode in modes:
            m.training = mode
