"""One tiled log-sum-exp kernel for the whole InfoNCE family.

Every objective of the contrastive family (NT-Xent, DCL, DCLW, SupCon, CLIP, MoCo's InfoNCE, the SogCLR
family) is "row-wise log-sum-exp of scaled similarity logits over some set of keys, minus a positive term".
This module computes that log-sum-exp tile by tile with a custom `torch.autograd.Function` that recomputes
the tiles in backward, so the extra memory is O(N·D + tile) and never O(N²).

Public API
----------
``logsumexp_rows(q, k=None, scale=1.0, *, exclude_self=False, self_offset=0, pos_index=None, labels=None,
k_labels=None, positives="keep", tile=None) -> Tensor (M,)``
    ``lse_i = log Σ_{j ∈ A(i)} exp(scale_i · q_i·k_j)``. ``k=None`` means the keys are the queries
    themselves. ``A(i)`` is every key, minus the self key ``i + self_offset`` when ``exclude_self``, and
    depending on ``positives``: "keep" (positives stay in the denominator), "exclude" (DCL: positives
    removed), "only" (log-sum-exp over the positives alone, SupCon L_in numerator). Positives are given
    either by ``pos_index`` (M,) (key index of each row's single positive) or by label equality
    (``labels`` (M,) for queries, ``k_labels`` (Nk,) for keys; defaults to ``labels`` when ``k`` is None).
    ``scale`` is a float, a 0-d tensor or a per-anchor (M,) tensor (1/τ_i for iSogCLR); a tensor that
    requires grad receives its gradient (learnable temperature / CLIP logit scale). A row whose set is
    empty gets ``-inf`` (and a zero gradient); a NaN/inf input gives NaN, which propagates (never ``-inf``).

``logsumexp_rows_cols(q, k, scale=1.0, *, tile=None) -> (Tensor (M,), Tensor (Nk,))``
    Row and column log-sum-exp of one logit matrix ``scale · q kᵀ`` in a single pass (CLIP: image→text
    and text→image share every tile).

``contrastive_rows(q, k=None, scale=1.0, *, exclude_self=False, self_offset=0, pos_index=None, labels=None,
k_labels=None, exclude_positives=False, pos_weight=None, multi_positive="out", tile=None)
-> (loss (M,), valid (M,) bool)``
    The per-anchor InfoNCE loss ``lse_i − positive term`` that every objective in ``functional.py`` is a
    thin configuration of (see that function's docstring).

Inputs are expected to be L2-normalised (rows of norm ≤ 1); the objectives normalise before calling.
The kernel computes in fp32 (fp64 if given fp64, e.g. for gradcheck) whatever the input dtype, and returns
gradients in the input dtype.

Numerics and speed
------------------
* Rows have unit norm, so every logit lies in [−scale, scale]. When ``max(scale) ≤ 40`` (τ ≥ 0.025) the
  kernel sums ``exp(logit)`` directly: all terms lie within [e⁻⁴⁰, e⁴⁰], far inside fp32's range, so no
  max-subtraction pass is needed and backward uses ``P = exp(S)·e^{−lse}`` with the ``e^{−lse}`` folded into
  per-row weights (no extra pass over the tile). For larger scales (CLIP's 100, iSogCLR's τ = 0.005) an
  exact online-max (flash-attention style) path is used instead.
* Self-similarity with a scalar scale (NT-Xent, DCL, DCLW, SupCon) uses symmetry: only the upper triangle
  of tiles is computed; each tile feeds its row sums to its rows and its column sums to its columns.
  Backward per tile: recompute ``E = exp(S)``, ``B = E ⊙ (α_i + α_j)`` with ``α_i = g_i e^{−lse_i}``, then
  ``G_rows += B Z_cols`` and ``G_cols += Bᵀ Z_rows``: about 2 full-matrix products in all (forward ½,
  backward ½ + 1), against the 3 of a materialised implementation.
* Masks (self, positives, labels) are applied only to tiles they intersect, by writing −inf into the
  logits before the exponential.
* Tile buffers are at most 64 MiB (and at most 1/16 of the available memory); ``tile=(rows, cols)``
  overrides it (tests force small tiles). A problem that fits in one tile is simply materialised.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "SAFE_SCALE",
    "contrastive_rows",
    "logsumexp_rows",
    "logsumexp_rows_cols",
    "tile_budget",
]

#: Largest logit scale (1/τ) for which exp(logit) is summed without max-subtraction (see module docstring).
SAFE_SCALE = 40.0
_MAX_TILE_BYTES = 64 << 20
_NEG_INF = float("-inf")


# --------------------------------------------------------------------------------------------- tiling


def _available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except Exception:  # pragma: no cover - depends on the driver
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - non-Linux
        pass
    return None


def tile_budget(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> int:
    """Number of elements of one tile buffer: ≤ 64 MiB and ≤ 1/16 of the currently available memory.

    The environment variable ``CONTRASTKIT_TILE_MB`` overrides the 64 MiB cap.
    """
    device = torch.device(device)
    cap = int(float(os.environ.get("CONTRASTKIT_TILE_MB", _MAX_TILE_BYTES >> 20)) * (1 << 20))
    avail = _available_bytes(device)
    if avail is not None:
        cap = min(cap, max(4 << 20, avail // 16))
    return max(1 << 16, cap // torch.empty((), dtype=dtype).element_size())


def _tiles(m: int, n: int, budget: int, tile) -> tuple[int, int]:
    """(rows, cols) of a tile for an (m × n) logit matrix."""
    if tile is not None:
        r, c = (tile, tile) if isinstance(tile, int) else tile
        return max(1, min(int(r), m)), max(1, min(int(c), n))
    if m * n <= budget:
        return m, n  # small problem: materialise in one tile
    rows = min(m, max(256, min(2048, budget // max(n, 1))))
    cols = min(n, max(1, budget // rows))
    return rows, cols


# --------------------------------------------------------------------------------------------- masks


@dataclass(frozen=True)
class _Cfg:
    exclude_self: bool
    self_offset: int
    positives: str  # keep | exclude | only
    rows: int
    cols: int
    online: bool = False


def _mask_(s: Tensor, r0: int, c0: int, cfg: _Cfg, pos_index, q_labels, k_labels) -> None:
    """Write −inf into the logits of tile s (rows r0.., cols c0..) that are not in the row's key set."""
    nr, nc = s.shape
    if q_labels is not None and cfg.positives != "keep":
        same = q_labels[r0 : r0 + nr, None] == k_labels[None, c0 : c0 + nc]
        s.masked_fill_(same if cfg.positives == "exclude" else ~same, _NEG_INF)
    elif pos_index is not None and cfg.positives == "exclude":
        p = pos_index[r0 : r0 + nr]
        rows = ((p >= c0) & (p < c0 + nc)).nonzero().squeeze(1)
        if rows.numel():
            s[rows, p[rows] - c0] = _NEG_INF
    if cfg.exclude_self:
        d = cfg.self_offset + r0 - c0  # self entries of this tile are (i, i + d)
        if -nr < d < nc:
            s.diagonal(d).fill_(_NEG_INF)


def _outer_sum_mul(e: Tensor, a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """out = e ⊙ (a[:, None] + b[None, :]) in two large passes (few big ops: fast also on busy CPUs)."""
    torch.mul(e, a[:, None], out=out)
    return out.addcmul_(e, b[None, :])


def _compute_dtype(*ts: Tensor) -> torch.dtype:
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in ts) else torch.float32


# ------------------------------------------------------------------------------ general row kernel


class _RowLSE(torch.autograd.Function):
    """lse_i over keys k (or q itself when k is None), per-row or scalar scale, any masks."""

    @staticmethod
    def forward(ctx, q, k, scale, pos_index, q_labels, k_labels, cfg: _Cfg):  # noqa: D401
        dt = _compute_dtype(q, k)
        qf = q.to(dt)
        kf = qf if k is None else k.to(dt)
        sc = scale.to(dt)
        m, n = qf.shape[0], kf.shape[0]
        qs = qf * (sc[:, None] if sc.dim() else sc)
        lse = qf.new_empty(m)
        buf = qf.new_empty(cfg.rows * cfg.cols)
        for r0 in range(0, m, cfg.rows):
            r1 = min(m, r0 + cfg.rows)
            total = qf.new_zeros(r1 - r0)
            run_max = qf.new_full((r1 - r0,), _NEG_INF) if cfg.online else None
            for c0 in range(0, n, cfg.cols):
                c1 = min(n, c0 + cfg.cols)
                s = torch.mm(qs[r0:r1], kf[c0:c1].T, out=buf[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0))
                _mask_(s, r0, c0, cfg, pos_index, q_labels, k_labels)
                if cfg.online:
                    new_max = torch.maximum(run_max, s.amax(1))
                    shift = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
                    total.mul_(torch.exp(run_max - shift)).add_(s.sub_(shift[:, None]).exp_().sum(1))
                    run_max = new_max
                else:
                    total.add_(s.exp_().sum(1))
            out = total.log_()
            if cfg.online:
                out.add_(torch.where(torch.isfinite(run_max), run_max, torch.zeros_like(run_max)))
            lse[r0:r1] = out
        ctx.cfg = cfg
        ctx.extra = (pos_index, q_labels, k_labels)
        ctx.k_is_none = k is None
        ctx.dtypes = (q.dtype, None if k is None else k.dtype, scale.dtype)
        ctx.save_for_backward(qf, None if k is None else kf, sc, lse)
        return lse

    @staticmethod
    def backward(ctx, g):
        cfg: _Cfg = ctx.cfg
        pos_index, q_labels, k_labels = ctx.extra
        qf, kf, sc, lse = ctx.saved_tensors
        kf = qf if kf is None else kf
        m, n = qf.shape[0], kf.shape[0]
        g = g.to(qf.dtype)
        finite = _nonempty(lse)  # NaN rows stay in (their gradient is NaN), only empty rows get zero
        zero = torch.zeros_like(lse)
        if cfg.online:
            beta = torch.where(finite, g, zero)
            shift = torch.where(finite, lse, zero)
        else:
            beta = torch.where(finite, g * torch.exp(-torch.where(finite, lse, zero)), zero)
        w = beta * sc  # d loss / d logit-row weight, including the scale
        qs = qf * (sc[:, None] if sc.dim() else sc)
        qw = qf * w[:, None]
        need_k = ctx.k_is_none or ctx.needs_input_grad[1]
        pk = torch.zeros_like(qf)
        dk = torch.zeros_like(kf) if need_k else None
        buf = qf.new_empty(cfg.rows * cfg.cols)
        for r0 in range(0, m, cfg.rows):
            r1 = min(m, r0 + cfg.rows)
            if not bool(beta[r0:r1].any()):
                continue
            for c0 in range(0, n, cfg.cols):
                c1 = min(n, c0 + cfg.cols)
                s = torch.mm(qs[r0:r1], kf[c0:c1].T, out=buf[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0))
                _mask_(s, r0, c0, cfg, pos_index, q_labels, k_labels)
                if cfg.online:
                    s.sub_(shift[r0:r1, None])
                s.exp_()  # = P_ij (online) or P_ij · e^{lse_i} (direct path)
                pk[r0:r1].addmm_(s, kf[c0:c1])
                if need_k:
                    dk[c0:c1].addmm_(s.T, qw[r0:r1])
        dq = pk * w[:, None]
        dscale = None
        if ctx.needs_input_grad[2]:
            per_row = beta * (qf * pk).sum(1)
            dscale = (per_row if sc.dim() else per_row.sum()).to(ctx.dtypes[2])
        dk_out = None
        if ctx.k_is_none:
            dq = dq + dk
        elif ctx.needs_input_grad[1]:
            dk_out = dk.to(ctx.dtypes[1])
        return dq.to(ctx.dtypes[0]), dk_out, dscale, None, None, None, None


# ------------------------------------------------------------------- symmetric / bidirectional kernel


class _PairLSE(torch.autograd.Function):
    """Direct-path (scale ≤ SAFE_SCALE) kernel that uses both the rows and the columns of each tile.

    sym=True:  k is q, only the upper triangle of tiles is computed; returns the row lse (masks must be
               symmetric: self, an involutive pos_index, labels).
    sym=False: returns (row lse, column lse) of scale·q kᵀ without masks (CLIP).
    """

    @staticmethod
    def forward(ctx, q, k, scale, pos_index, labels, cfg: _Cfg, sym: bool):
        dt = _compute_dtype(q, k)
        qf = q.to(dt)
        kf = qf if sym else k.to(dt)
        sc = scale.to(dt)
        m, n = qf.shape[0], kf.shape[0]
        qs = qf * sc
        s_row = qf.new_zeros(m)
        s_col = s_row if sym else qf.new_zeros(n)
        buf = qf.new_empty(cfg.rows * max(cfg.rows, cfg.cols))
        for r0, r1, c0, c1 in _pair_tiles(m, n, cfg, sym):
            s = torch.mm(qs[r0:r1], kf[c0:c1].T, out=buf[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0))
            _mask_(s, r0, c0, cfg, pos_index, labels, labels)
            s.exp_()
            s_row[r0:r1] += s.sum(1)
            if not sym or c0 >= r1:
                s_col[c0:c1] += s.sum(0)
        ctx.cfg, ctx.sym, ctx.extra = cfg, sym, (pos_index, labels)
        ctx.dtypes = (q.dtype, None if sym else k.dtype, scale.dtype)
        lse_r = s_row.log()
        if sym:
            ctx.save_for_backward(qf, None, sc, lse_r, None)
            return lse_r
        lse_c = s_col.log()
        ctx.save_for_backward(qf, kf, sc, lse_r, lse_c)
        return lse_r, lse_c

    @staticmethod
    def backward(ctx, g_r, g_c=None):
        cfg, sym = ctx.cfg, ctx.sym
        pos_index, labels = ctx.extra
        qf, kf, sc, lse_r, lse_c = ctx.saved_tensors
        kf = qf if sym else kf
        m, n = qf.shape[0], kf.shape[0]

        def weights(g, lse):
            if g is None:
                return torch.zeros_like(lse)
            finite = _nonempty(lse)
            z = torch.zeros_like(lse)
            return torch.where(finite, g.to(lse.dtype) * torch.exp(-torch.where(finite, lse, z)), z)

        alpha = weights(g_r, lse_r)
        gamma = alpha if sym else weights(g_c, lse_c)
        qs = qf * sc
        gq = torch.zeros_like(qf)
        gk = gq if sym else torch.zeros_like(kf)
        size = cfg.rows * max(cfg.rows, cfg.cols)
        buf, buf2 = qf.new_empty(size), qf.new_empty(size)
        for r0, r1, c0, c1 in _pair_tiles(m, n, cfg, sym):
            shape = (r1 - r0, c1 - c0)
            s = torch.mm(qs[r0:r1], kf[c0:c1].T, out=buf[: shape[0] * shape[1]].view(shape))
            _mask_(s, r0, c0, cfg, pos_index, labels, labels)
            b = _outer_sum_mul(s.exp_(), alpha[r0:r1], gamma[c0:c1], buf2[: shape[0] * shape[1]].view(shape))
            gq[r0:r1].addmm_(b, kf[c0:c1])
            if not sym or c0 >= r1:
                gk[c0:c1].addmm_(b.T, qf[r0:r1])
        dscale = None
        if ctx.needs_input_grad[2]:
            dscale = ((qf * gq).sum() * (0.5 if sym else 1.0)).to(ctx.dtypes[2])
        dq = (gq * sc).to(ctx.dtypes[0])
        dk = None if sym else (gk * sc).to(ctx.dtypes[1])
        return dq, dk, dscale, None, None, None, None


def _pair_tiles(m: int, n: int, cfg: _Cfg, sym: bool):
    """Tiles (r0, r1, c0, c1). sym: for each row block its diagonal block, then the columns to its right."""
    for r0 in range(0, m, cfg.rows):
        r1 = min(m, r0 + cfg.rows)
        if sym:
            yield r0, r1, r0, r1
            start = r1
        else:
            start = 0
        for c0 in range(start, n, cfg.cols):
            yield r0, r1, c0, min(n, c0 + cfg.cols)


# ------------------------------------------------------------------------------------- public API


def _as_scale(scale, m: int, like: Tensor) -> Tensor:
    if not torch.is_tensor(scale):
        return torch.tensor(float(scale), dtype=_compute_dtype(like), device=like.device)
    if scale.dim() > 1 or (scale.dim() == 1 and scale.shape[0] != m):
        raise ValueError(f"scale must be a scalar or a tensor of shape ({m},), got {tuple(scale.shape)}")
    return scale


def logsumexp_rows(
    q: Tensor,
    k: Tensor | None = None,
    scale: float | Tensor = 1.0,
    *,
    exclude_self: bool = False,
    self_offset: int = 0,
    pos_index: Tensor | None = None,
    labels: Tensor | None = None,
    k_labels: Tensor | None = None,
    positives: str = "keep",
    tile: int | tuple[int, int] | None = None,
) -> Tensor:
    """Row-wise log-sum-exp of ``scale · q kᵀ`` over each row's key set; see the module docstring."""
    if positives not in ("keep", "exclude", "only"):
        raise ValueError(f"positives must be 'keep', 'exclude' or 'only', got {positives!r}")
    if positives == "only" and labels is None:
        raise ValueError("positives='only' needs labels (a single indexed positive needs no log-sum-exp)")
    m = q.shape[0]
    keys = q if k is None else k
    n = keys.shape[0]
    if k is None:
        self_offset = 0
        if labels is not None and k_labels is None:
            k_labels = labels
    if labels is not None and k_labels is None:
        raise ValueError("labels for the queries need k_labels for the keys when k is given")
    if labels is not None:
        labels, k_labels = labels.to(q.device), k_labels.to(q.device)
    if pos_index is not None:
        pos_index = pos_index.to(device=q.device, dtype=torch.long)
    sc = _as_scale(scale, m, q)
    if m == 0:
        return q.new_zeros(0, dtype=_compute_dtype(q)) + 0 * sc.sum()
    if n == 0:
        return q.new_full((m,), _NEG_INF, dtype=_compute_dtype(q, k)) + 0 * (q.sum() + sc.sum())
    dt = _compute_dtype(q, k)
    budget = tile_budget(q.device, dt)
    max_scale = float(sc.detach().abs().max()) if sc.numel() else 0.0
    direct = max_scale <= SAFE_SCALE
    symmetric = (
        k is None
        and sc.dim() == 0
        and direct
        and (pos_index is None or positives == "keep" or _is_involution(pos_index))
    )
    if symmetric:
        if tile is None:
            rows = m if m * m <= budget else min(m, max(256, min(2048, budget // m)))
            cols = m if m * m <= budget else max(rows, budget // rows)
        else:
            rows, cols = _tiles(m, m, budget, tile)
        cfg = _Cfg(exclude_self, 0, positives, rows, cols)
        return _PairLSE.apply(q, None, sc, pos_index, labels, cfg, True)
    rows, cols = _tiles(m, n, budget, tile)
    cfg = _Cfg(exclude_self, int(self_offset), positives, rows, cols, online=not direct)
    return _RowLSE.apply(q, k, sc, pos_index, labels, k_labels, cfg)


def logsumexp_rows_cols(
    q: Tensor, k: Tensor, scale: float | Tensor = 1.0, *, tile: int | tuple[int, int] | None = None
) -> tuple[Tensor, Tensor]:
    """(row lse, column lse) of the logit matrix ``scale · q kᵀ`` (scalar scale), sharing every tile."""
    sc = _as_scale(scale, q.shape[0], q)
    if sc.dim() != 0:
        raise ValueError("logsumexp_rows_cols needs a scalar scale")
    if float(sc.detach().abs()) > SAFE_SCALE or q.shape[0] == 0 or k.shape[0] == 0:
        return logsumexp_rows(q, k, sc, tile=tile), logsumexp_rows(k, q, sc, tile=tile)
    dt = _compute_dtype(q, k)
    rows, cols = _tiles(q.shape[0], k.shape[0], tile_budget(q.device, dt), tile)
    return _PairLSE.apply(q, k, sc, None, None, _Cfg(False, 0, "keep", rows, cols), False)


def _nonempty(lse: Tensor) -> Tensor:
    """Rows whose key set is not empty. Only an empty set gives exactly −inf; a NaN (or +inf) log-sum-exp
    comes from a non-finite input and must propagate into the loss, not be mistaken for an empty row."""
    return lse != _NEG_INF


def _is_involution(p: Tensor) -> bool:
    return bool((p[p] == torch.arange(p.shape[0], device=p.device)).all())


# ---------------------------------------------------------------------------- per-anchor InfoNCE


def contrastive_rows(
    q: Tensor,
    k: Tensor | None = None,
    scale: float | Tensor = 1.0,
    *,
    exclude_self: bool = False,
    self_offset: int = 0,
    pos_index: Tensor | None = None,
    labels: Tensor | None = None,
    k_labels: Tensor | None = None,
    exclude_positives: bool = False,
    pos_weight: Tensor | None = None,
    multi_positive: str = "out",
    tile: int | tuple[int, int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-anchor InfoNCE losses and the mask of anchors that have a loss.

    With ``pos_index`` (one positive per row, key ``pos_index[i]``)::

        loss_i = lse_i − w_i · scale_i · q_i·k_{p(i)}

    where ``lse_i`` runs over the key set (self removed when ``exclude_self``; the positive removed too when
    ``exclude_positives`` — DCL) and ``w_i = pos_weight[i]`` (default 1; DCLW).

    With ``labels`` (positives = keys with the same label, self excluded), ``multi_positive`` selects
    SupCon's ``"out"`` form ``lse_i − mean_{p∈P(i)} scale_i q_i·k_p`` (the mean is computed from per-label
    key sums, O(N·D)) or the ``"in"`` form ``lse_i − (lse over P(i) − log|P(i)|)``.

    ``valid`` is False for anchors with no positive or an empty denominator (log-sum-exp exactly −inf);
    their loss is set to 0 and they receive no gradient. A non-finite input is *not* an empty denominator:
    its NaN/inf reaches the loss (and the gradient), so a divergence is never hidden as a loss of 0.
    Inputs must already be L2-normalised.
    """
    m = q.shape[0]
    keys = q if k is None else k
    sc = _as_scale(scale, m, q)
    dt = _compute_dtype(q, k)
    sc_rows = sc.to(dt) if sc.dim() else sc.to(dt).expand(m)
    if k is None:
        self_offset = 0
    if pos_index is not None:
        pos_index = pos_index.to(device=q.device, dtype=torch.long)
        lse = logsumexp_rows(q, k, sc, exclude_self=exclude_self, self_offset=self_offset,
                             pos_index=pos_index, positives="exclude" if exclude_positives else "keep",
                             tile=tile)
        pos = (q.to(dt) * keys.to(dt)[pos_index]).sum(1) * sc_rows
        if pos_weight is not None:
            pos = pos * pos_weight.to(dt)
        valid = _nonempty(lse)
    elif labels is not None:
        labels = labels.to(q.device)
        k_labels = labels if k is None else k_labels.to(q.device)
        if multi_positive not in ("out", "in"):
            raise ValueError(f"multi_positive must be 'out' or 'in', got {multi_positive!r}")
        # map labels of queries and keys to 0..C-1 jointly
        uniq, inv = torch.unique(torch.cat([labels, k_labels]), return_inverse=True)
        ql, kl = inv[:m], inv[m:]
        counts = torch.bincount(kl, minlength=uniq.numel())[ql]
        if exclude_self:
            rows = torch.arange(m, device=q.device)
            has_self = (rows + self_offset < keys.shape[0]) & (rows + self_offset >= 0)
            self_idx = (rows + self_offset).clamp(0, keys.shape[0] - 1)
            has_self &= kl[self_idx] == ql
            counts = counts - has_self.long()
        lse = logsumexp_rows(q, k, sc, exclude_self=exclude_self, self_offset=self_offset,
                             labels=ql, k_labels=kl, positives="exclude" if exclude_positives else "keep",
                             tile=tile)
        valid = (counts > 0) & _nonempty(lse)
        safe_counts = counts.clamp(min=1).to(dt)
        if multi_positive == "out":
            ksum = keys.to(dt).new_zeros(uniq.numel(), keys.shape[1]).index_add(0, kl, keys.to(dt))
            pos_sum = ksum[ql]
            if exclude_self:
                pos_sum = pos_sum - keys.to(dt)[self_idx] * has_self[:, None].to(dt)
            pos = (q.to(dt) * pos_sum).sum(1) * sc_rows / safe_counts
        else:
            lse_pos = logsumexp_rows(q, k, sc, exclude_self=exclude_self, self_offset=self_offset,
                                     labels=ql, k_labels=kl, positives="only", tile=tile)
            pos = torch.where(valid, lse_pos, torch.zeros_like(lse_pos)) - safe_counts.log()
    else:
        raise ValueError("contrastive_rows needs pos_index or labels to define the positives")
    loss = torch.where(valid, lse - pos, torch.zeros_like(lse))
    return loss, valid
