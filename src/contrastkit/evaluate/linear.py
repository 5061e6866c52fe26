"""Linear probe: multinomial logistic regression on frozen embeddings (METHODS.md §18).

Fast and deterministic by construction: features are standardised with the training split's mean/std, the
weights start at zero, and the default solver is full-batch L-BFGS (strong-Wolfe line search, fixed
iteration budget) in fp32 torch — no random state at all, so the same inputs give the same accuracy (on the
same machine and thread count). The objective is

    mean cross-entropy + weight_decay / 2 · ||W||²      (bias not penalised)

`method="sgd"` trains the same model by mini-batch SGD (momentum 0.9, cosine schedule, seeded shuffling) for
sets too large for full-batch passes: each mini-batch is standardised as it is drawn, so the memory is the
embeddings plus one batch (L-BFGS keeps a standardised copy and its gradient buffers). `method="auto"` (the
default) is L-BFGS up to `LBFGS_MAX_ELEMENTS` training values (n × d; 2**25, e.g. 262,144 × 128) and SGD above. This is the cheap offline probe used for monitoring and reports; the
anchors' 90–100-epoch SGD probes on augmented images (lightly, MoCo) are a different, slower protocol.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ContrastkitError
from ._common import (as_embedding, as_label_pair, as_labels, pick_device, progress_task,
                      single_thread_if_small)

__all__ = ["LinearProbe", "fit_linear_probe", "linear_probe", "LBFGS_MAX_ELEMENTS"]

# method="auto": full-batch L-BFGS up to this many training values (n × d), mini-batch SGD above.
LBFGS_MAX_ELEMENTS = 1 << 25


class LinearProbe(nn.Module):
    """Standardisation (train statistics) + linear layer. `forward(emb)` returns logits; `predict` classes."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.linear((emb.float() - self.mean) / self.std)

    @torch.no_grad()
    def predict(self, emb: Any, chunk_size: int = 65536) -> torch.Tensor:
        x = as_embedding(emb, "emb", device=self.mean.device)
        return torch.cat([self(x[s : s + chunk_size]).argmax(1) for s in range(0, x.shape[0], chunk_size)])


def _lbfgs(x: torch.Tensor, y: torch.Tensor, c: int, weight_decay: float, max_iter: int, task):
    d = x.shape[1]
    w = torch.zeros(c, d, device=x.device, requires_grad=True)
    b = torch.zeros(c, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, max_eval=int(max_iter * 1.25) + 1,
                            history_size=20, tolerance_grad=1e-6, tolerance_change=1e-9,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(torch.addmm(b, x, w.t()), y) + 0.5 * weight_decay * (w * w).sum()
        loss.backward()
        task.advance(1)
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _sgd(x: torch.Tensor, y: torch.Tensor, c: int, weight_decay: float, epochs: int, lr: float,
         batch_size: int, seed: int, mean: torch.Tensor, std: torch.Tensor, task):
    """Mini-batch SGD on (x − mean) / std, each batch standardised as it is drawn."""
    n, d = x.shape
    w = torch.zeros(c, d, device=x.device, requires_grad=True)
    b = torch.zeros(c, device=x.device, requires_grad=True)
    groups = [{"params": [w], "weight_decay": weight_decay}, {"params": [b], "weight_decay": 0.0}]
    opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    steps_per_epoch = math.ceil(n / batch_size)
    total = max(1, epochs * steps_per_epoch)
    cosine = lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total) / total))  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g).to(x.device)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            loss = F.cross_entropy(torch.addmm(b, (x[idx] - mean) / std, w.t()), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        task.advance(1)
    return w.detach(), b.detach()


def fit_linear_probe(
    train_emb: Any,
    train_y: Any,
    *,
    method: Literal["auto", "lbfgs", "sgd"] = "auto",
    weight_decay: float = 1e-4,
    max_iter: int = 100,
    epochs: int = 10,
    lr: float = 0.5,
    batch_size: int = 4096,
    seed: int = 0,
    num_classes: Optional[int] = None,
    device: Optional[torch.device | str] = None,
) -> LinearProbe:
    """Fit the probe on (train_emb, train_y) and return it as a `LinearProbe` module.

    lbfgs: `max_iter` L-BFGS iterations on the full batch (stops earlier only when the gradient or the loss
    change falls below tolerance). auto: lbfgs up to LBFGS_MAX_ELEMENTS training values, sgd above. sgd: `epochs` passes of mini-batch SGD with `lr` (cosine to 0),
    `batch_size`, shuffling seeded by `seed`.
    """
    if method not in ("auto", "lbfgs", "sgd"):
        raise ContrastkitError(f"method={method!r}: use 'auto' (default), 'lbfgs' (full batch) "
                               f"or 'sgd' (mini-batches, very large sets)")
    if weight_decay < 0:
        raise ContrastkitError(f"weight_decay={weight_decay}: must be >= 0")
    dev = torch.device(device) if device is not None else pick_device(train_emb)
    x = as_embedding(train_emb, "train_emb", device=dev)
    y = as_labels(train_y, x.shape[0], "train_y", device=dev)
    if y.min() < 0:
        raise ContrastkitError("train_y: labels must be >= 0")
    c = int(y.max()) + 1 if num_classes is None else int(num_classes)
    if c < 2:
        raise ContrastkitError("train_y: a linear probe needs at least two classes")
    if method == "auto":
        method = "lbfgs" if x.numel() <= LBFGS_MAX_ELEMENTS else "sgd"
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant features: leave unscaled
    # thread policy by the work of one solver step: the full batch for L-BFGS, one mini-batch for SGD
    step_work = x.numel() if method == "lbfgs" else min(batch_size, x.shape[0]) * x.shape[1]
    with torch.enable_grad(), single_thread_if_small(step_work):
        if method == "lbfgs":
            with progress_task(f"linear probe: L-BFGS on {x.shape[0]:,} rows (evaluations)",
                               total=int(max_iter * 1.25) + 1) as task:
                w, b = _lbfgs((x - mean) / std, y, c, weight_decay, max_iter, task)
        else:
            with progress_task(f"linear probe: SGD on {x.shape[0]:,} rows (epochs)", total=epochs) as task:
                w, b = _sgd(x, y, c, weight_decay, epochs, lr, batch_size, seed, mean, std, task)
    return LinearProbe(mean, std, w, b).to(dev)


def linear_probe(
    train_emb: Any,
    train_y: Any,
    test_emb: Any,
    test_y: Any,
    *,
    method: Literal["auto", "lbfgs", "sgd"] = "auto",
    weight_decay: float = 1e-4,
    max_iter: int = 100,
    epochs: int = 10,
    lr: float = 0.5,
    batch_size: int = 4096,
    seed: int = 0,
    device: Optional[torch.device | str] = None,
) -> float:
    """Top-1 test accuracy in [0, 1] of a linear probe fitted on the training embeddings.

    See `fit_linear_probe` for the solver arguments. Deterministic: same inputs → same result.
    """
    ytr, yte = as_label_pair(train_y, test_y, len(train_emb), len(test_emb))
    c = max(int(ytr.max()), int(yte.max())) + 1
    probe = fit_linear_probe(train_emb, ytr, method=method, weight_decay=weight_decay, max_iter=max_iter,
                             epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, num_classes=c,
                             device=device)
    te = as_embedding(test_emb, "test_emb", device=probe.mean.device)
    if te.shape[1] != probe.mean.shape[0]:
        raise ContrastkitError(f"test_emb has dimension {te.shape[1]} but train_emb has "
                               f"{probe.mean.shape[0]}; embed both with the same encoder")
    pred = probe.predict(te).cpu()
    return float((pred == yte).float().mean())
