"""Pure contrastive objectives: tensors in, scalar out.

Contract shared by every function here:

* inputs are L2-normalised inside the loss, in fp32 (fp64 stays fp64), whatever their dtype (bf16/fp16
  under AMP give an fp32 loss);
* the loss is the mean over anchors;
* ``temperature <= 0`` or a batch with no negatives raises :class:`contrastkit.errors.ContrastkitError`;
* every function is a thin configuration of the tiled log-sum-exp kernel (:mod:`.tiled`), so memory stays
  O(N·D + tile) at any batch size.

Distributed (``gather``): objectives that need global negatives take ``gather: bool | None = None``;
``None`` means on whenever ``torch.distributed`` is initialised with world size > 1. With gather, each rank
all-gathers the embeddings with :func:`contrastkit.core.distributed.all_gather_with_grad` and computes the
loss of its local anchors against the samples of all ranks. The returned scalar's *value* is the global mean
over all anchors of all ranks (identical on every rank, equal to the single-process loss on the concatenated
batch); its *gradient* is that of ``W · (sum of local anchor losses) / (global number of anchors)``, so that
DDP's averaging over the W ranks yields exactly the single-process gradient. (Do not multiply by the world
size yourself, and do not sum gradients across ranks instead of averaging.) Per-rank batch sizes may differ.
``info_nce`` (MoCo form) needs no gather: its negatives are a queue the caller keeps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ContrastkitError
from ..core import distributed as _dist
from .tiled import contrastive_rows, logsumexp_rows, logsumexp_rows_cols

__all__ = ["clip_loss", "dcl", "dclw", "info_nce", "nt_xent", "supcon"]


# ------------------------------------------------------------------------------------------ helpers


def _check_temperature(temperature, name: str = "temperature") -> None:
    t = float(temperature.detach()) if torch.is_tensor(temperature) else float(temperature)
    if not (t > 0) or math.isinf(t):
        raise ContrastkitError(f"{name} must be a finite number > 0, got {t}; use e.g. {name}=0.1")


def _prep(x: Tensor) -> Tensor:
    """L2-normalise in fp32 (fp64 kept as is, for gradcheck)."""
    return F.normalize(x.to(torch.float64 if x.dtype == torch.float64 else torch.float32), dim=-1)


def _check_pair(name1: str, z1: Tensor, name2: str, z2: Tensor) -> None:
    if z1.dim() != 2 or z2.dim() != 2 or z1.shape != z2.shape:
        raise ContrastkitError(
            f"{name1} and {name2} must both have shape (N, D) with the same N and D; got {tuple(z1.shape)} "
            f"and {tuple(z2.shape)}. Pass the two views' embeddings, one row per sample."
        )


def _use_gather(gather: bool | None) -> bool:
    if gather is None or gather:
        return _dist.is_distributed()
    return False


def _reduce(loss_rows: Tensor, valid: Tensor, gathered: bool) -> Tensor:
    """Mean over valid anchors; global mean when gathered (see module docstring for the gradient)."""
    local_sum = loss_rows.sum()  # rows of invalid anchors are 0 (no anchor valid ⇒ loss 0, no NaN)
    if not gathered:
        return local_sum / valid.sum().clamp(min=1).to(local_sum.dtype)
    stats = _dist.all_reduce_sum(torch.stack([local_sum.detach(), valid.sum().to(local_sum.dtype)]))
    total, count = stats[0], stats[1].clamp(min=1)
    surrogate = local_sum * (_dist.world_size() / count)
    return surrogate + (total / count - surrogate).detach()


def _gather_rows(x: Tensor) -> tuple[Tensor, int, int]:
    """(all rows of all ranks with gradient, offset of this rank's rows, global row count)."""
    sizes = _dist.all_gather_sizes(x.shape[0], x.device)
    return _dist.all_gather_with_grad(x, sizes), sum(sizes[: _dist.rank()]), sum(sizes)


def _pair_positions(n: int, offset: int) -> Tensor:
    """Key index of the positive of each of the 2n local rows [z1; z2], keys laid out rank by rank."""
    i = torch.arange(n)
    return torch.cat([i + n, i]) + offset


def _two_view_rows(z1, z2, temperature, gather, *, exclude_positives, weight_fn=None, tile=None):
    _check_temperature(temperature)
    _check_pair("z1", z1, "z2", z2)
    n = z1.shape[0]
    q = _prep(torch.cat([z1, z2]))
    gathered = _use_gather(gather)
    if gathered:
        keys, offset, total = _gather_rows(q)
        n_global = total // 2
    else:
        keys, offset, n_global = None, 0, n
    if n_global < 2:
        raise ContrastkitError(
            f"batch size must be >= 2 so every sample has negatives; got z1 with N={n} rows "
            f"(global N={n_global}). Use a larger batch (or drop_last=False with more data)."
        )
    pos_index = _pair_positions(n, offset).to(q.device)
    weight = weight_fn(q[:n], q[n:], gathered) if weight_fn is not None else None
    loss, valid = contrastive_rows(
        q, keys, 1.0 / temperature, exclude_self=True, self_offset=offset, pos_index=pos_index,
        exclude_positives=exclude_positives, pos_weight=weight, tile=tile,
    )
    return _reduce(loss, valid, gathered)


# ---------------------------------------------------------------------------------------- objectives


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.5, *, gather: bool | None = None,
            tile=None) -> Tensor:
    """NT-Xent / SimCLR loss over the 2N samples (METHODS.md §1).

    ``ℓ_k = −log exp(s(z_k, z_p(k))/τ) / Σ_{j≠k} exp(s(z_k, z_j)/τ)`` over the stack [z1; z2], mean over the
    2N anchors; 2N−1 terms in each denominator. ``z1``, ``z2``: (N, D) embeddings of the two views, N ≥ 2.
    ``tile`` forces the kernel's tile size (tests only).
    """
    return _two_view_rows(z1, z2, temperature, gather, exclude_positives=False, tile=tile)


def dcl(z1: Tensor, z2: Tensor, temperature: float = 0.1, *, gather: bool | None = None, tile=None) -> Tensor:
    """Decoupled contrastive loss (METHODS.md §2): NT-Xent with the positive removed from the denominator.

    ``ℓ = −s(z_i, z_i⁺)/τ + log Σ_{l} Σ_{j≠i} exp(s(z_i, z_j^(l))/τ)`` (2N−2 negatives); mean over the 2N
    anchors; can be negative.
    """
    return _two_view_rows(z1, z2, temperature, gather, exclude_positives=True, tile=tile)


def dclw_weights(s: Tensor, sigma: float) -> Tensor:
    """vMF weights ``w_i = 2 − N · softmax_j(s_j/σ)_i`` of the N positive similarities s (mean 1, < 2)."""
    return 2.0 - s.shape[0] * torch.softmax(s / sigma, dim=0)


def dclw(z1: Tensor, z2: Tensor, temperature: float = 0.1, sigma: float = 0.5, *, gather: bool | None = None,
         tile=None) -> Tensor:
    """Weighted DCL (METHODS.md §2): the positive term of DCL multiplied by ``w_i = 2 − N softmax(s/σ)_i``.

    The weights are computed from **detached** embeddings (lightly's choice; no gradient flows through w),
    from the positive similarities of the whole (global, when gathered) batch; both anchors of pair i use w_i.
    """
    _check_temperature(sigma, "sigma")

    def weights(q1, q2, gathered):
        s = (q1 * q2).sum(1).detach()
        if gathered:
            sizes = _dist.all_gather_sizes(s.shape[0], s.device)
            s_all = _dist.all_gather_with_grad(s, sizes)
            start = sum(sizes[: _dist.rank()])
            w = dclw_weights(s_all, sigma)[start : start + s.shape[0]]
        else:
            w = dclw_weights(s, sigma)
        return torch.cat([w, w])

    return _two_view_rows(z1, z2, temperature, gather, exclude_positives=True, weight_fn=weights, tile=tile)


def supcon(z: Tensor, labels: Tensor, temperature: float = 0.1, variant: str = "out", *,
           gather: bool | None = None, tile=None) -> Tensor:
    """Supervised contrastive loss (METHODS.md §10), mean over anchors that have at least one positive.

    ``z``: (N, V, D) — V views of N samples — or (N, D) — one embedding per sample. ``labels``: (N,).
    Anchors are all N·V embeddings, stacked view-major ([z[:, 0]; z[:, 1]; …], each view carrying the
    labels). A(i) = every other embedding; P(i) = the other embeddings with the same label.
    ``variant="out"`` (PML ``SupConLoss``, SupContrast's default): ``−mean_{p∈P(i)} log softmax_A(i)(p)``;
    ``variant="in"``: ``−log( mean_{p∈P(i)} exp(s_ip/τ) / Σ_{a∈A(i)} exp(s_ia/τ) )``.
    Anchors with no positive are skipped (not NaN); if no anchor has one, the loss is 0.
    No τ/τ_base rescaling. With labels = instance ids and V = 2 both variants equal ``nt_xent``.
    """
    _check_temperature(temperature)
    if variant not in ("out", "in"):
        raise ContrastkitError(f"variant must be 'out' or 'in', got {variant!r}")
    if z.dim() == 2:
        z = z[:, None, :]
    if z.dim() != 3:
        raise ContrastkitError(f"z must have shape (N, D) or (N, V, D), got {tuple(z.shape)}")
    n, v = z.shape[0], z.shape[1]
    labels = torch.as_tensor(labels, device=z.device)
    if labels.shape != (n,):
        raise ContrastkitError(
            f"labels must have shape ({n},) to match z {tuple(z.shape)}, got {tuple(labels.shape)}"
        )
    q = _prep(z.transpose(0, 1).reshape(n * v, z.shape[2]))
    ql = labels.long().repeat(v)
    gathered = _use_gather(gather)
    if gathered:
        keys, offset, total = _gather_rows(q)
        k_labels = _dist.all_gather_with_grad(ql)
    else:
        keys, offset, total, k_labels = None, 0, q.shape[0], None
    if total < 2:
        raise ContrastkitError(
            f"supcon needs at least 2 embeddings in the batch; got z of shape {tuple(z.shape)}. "
            "Use a larger batch or more views."
        )
    loss, valid = contrastive_rows(q, keys, 1.0 / temperature, exclude_self=True, self_offset=offset,
                                   labels=ql, k_labels=k_labels, multi_positive=variant, tile=tile)
    return _reduce(loss, valid, gathered)


def clip_loss(u: Tensor, v: Tensor, logit_scale: Tensor | float, *, gather: bool | None = None,
              tile=None) -> Tensor:
    """Symmetric CLIP loss (METHODS.md §16): ``½ [CE(s·U Vᵀ, arange) + CE(s·V Uᵀ, arange)]``.

    ``u``, ``v``: (N, D) paired embeddings (N ≥ 2). ``logit_scale`` is the multiplier ``s = exp(t)`` itself
    (a tensor, so it can be learned: pass ``t.exp()``; clamp ``t`` to [0, ln 100] in the training step as
    open_clip does). Returns the mean over the 2N anchors (N per direction).
    """
    _check_pair("u", u, "v", v)
    _check_temperature(logit_scale, "logit_scale")
    n = u.shape[0]
    un, vn = _prep(u), _prep(v)
    scale = logit_scale if torch.is_tensor(logit_scale) else torch.tensor(float(logit_scale))
    scale = scale.to(un.dtype).reshape(())
    gathered = _use_gather(gather)
    if gathered:
        sizes = _dist.all_gather_sizes(n, un.device)
        ug, vg = _dist.all_gather_with_grad(un, sizes), _dist.all_gather_with_grad(vn, sizes)
        offset, total = sum(sizes[: _dist.rank()]), sum(sizes)
    else:
        offset, total = 0, n
    if total < 2:
        raise ContrastkitError(
            f"clip_loss needs batch size >= 2 so each pair has negatives; got u with N={n}. "
            "Use a larger batch."
        )
    pos = (un * vn).sum(1) * scale
    if gathered:
        lse_u = logsumexp_rows(un, vg, scale, tile=tile)
        lse_v = logsumexp_rows(vn, ug, scale, tile=tile)
        del offset  # positives are local pairs: row i of u pairs with key offset + i, computed directly
    else:
        lse_u, lse_v = logsumexp_rows_cols(un, vn, scale, tile=tile)
    rows = torch.cat([lse_u - pos, lse_v - pos])
    return _reduce(rows, torch.ones_like(rows, dtype=torch.bool), gathered)


def info_nce(q: Tensor, k: Tensor, negatives: Tensor, temperature: float = 0.2, *, tile=None) -> Tensor:
    """MoCo InfoNCE (METHODS.md §3): ``CE([q·k₊, q·n_1, …, q·n_K]/τ, 0)``, mean over the B queries.

    ``q``: (B, D) queries; ``k``: (B, D) their positive keys; ``negatives``: (K, D) queue (K may be 0,
    giving loss 0). The queue is used as given (detach it if it must not receive gradients). No gather: the
    caller's queue already holds the negatives of all ranks.
    """
    _check_temperature(temperature)
    _check_pair("q", q, "k", k)
    if negatives.dim() != 2 or negatives.shape[1] != q.shape[1]:
        raise ContrastkitError(
            f"negatives must have shape (K, {q.shape[1]}) to match q {tuple(q.shape)}, "
            f"got {tuple(negatives.shape)}"
        )
    if q.shape[0] == 0:
        raise ContrastkitError("info_nce got an empty batch of queries (B=0)")
    qn, kn = _prep(q), _prep(k)
    pos = (qn * kn).sum(1) / temperature
    lse_neg = logsumexp_rows(qn, _prep(negatives) if negatives.shape[0] else negatives.to(qn.dtype),
                             1.0 / temperature, tile=tile)
    return (torch.logaddexp(pos, lse_neg) - pos).mean()
