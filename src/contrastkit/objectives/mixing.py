"""Feature mixing on top of MoCo's queue, as pure functions (METHODS.md §4 MoCHi, §12 FT).

MoCHi — hard negative mixing (Kalantidis et al., 2020). For each normalised query q and queue Q:

    Q̃_N  = the N queue entries with the largest qᵀn (top-k of detached logits, per query)
    type 1 (s per query):  h  = normalize(α n_a + (1 − α) n_b),   n_a, n_b ~ U(Q̃_N), α ~ U(0, 1)
    type 2 (s' per query): h' = normalize(β q + (1 − β) n_c),     n_c ~ U(Q̃_N),      β ~ U(0, 0.5)

Parents are drawn uniformly *with* replacement (n_a = n_b is possible and then h = n_a). Synthetic
negatives are computed from detached tensors (q is detached inside type 2), so no gradient reaches the
queue or the synthetic points except through q in the logits qᵀh; they are never enqueued.

FT — feature transformation (Zhu et al., 2021, DTennant `memory/mem_moco.py`, `dim_mask='none'`):

    λ⁺ ∈ [1, 2]:  q̂ = λ⁺ q + (1 − λ⁺) k,   k̂ = λ⁺ k + (1 − λ⁺) q      (positive extrapolation)
    μ ∈ [0, 1]:   n̂_j = μ n_j + (1 − μ) n_π(j)                          (negative interpolation)

No re-normalisation afterwards (the reference's default, `postmix_norm` off). q carries gradient through
both q̂ and k̂ (k is a detached key); the queue is updated with the ORIGINAL keys by the caller.
`beta_sample` draws Beta(α, α) reproducibly from a torch.Generator (torch's Beta has no generator).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["beta_sample", "ft_transform", "mochi_negatives", "queue_logits"]


def _uniform(shape, generator: torch.Generator | None, device) -> Tensor:
    dev = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=dev).to(device)


def _randint(high: int, shape, generator: torch.Generator | None, device) -> Tensor:
    dev = generator.device if generator is not None else device
    return torch.randint(high, shape, generator=generator, device=dev).to(device)


@torch.no_grad()
def mochi_negatives(q: Tensor, queue: Tensor, n_hard: int, s1: int, s2: int,
                    generator: torch.Generator | None = None, return_indices: bool = False):
    """Synthetic hard negatives per query: (B, s1 + s2, D), unit norm, no gradient.

    `q` (B, D) and `queue` (K, D) must be L2-normalised. With `return_indices`, also returns the queue
    indices of the parents: (a (B, s1), b (B, s1), c (B, s2)) for tests of the top-N invariant.
    """
    with torch.autocast(q.device.type, enabled=False):  # top-k and mixing in fp32 even under AMP
        return _mochi_negatives(q.detach().float(), queue.detach().float(), n_hard, s1, s2, generator,
                                return_indices)


def _mochi_negatives(q, queue, n_hard, s1, s2, generator, return_indices):
    b, d = q.shape
    k = queue.shape[0]
    if k == 0 or (s1 == 0 and s2 == 0):
        empty = q.new_zeros((b, 0, d))
        return (empty, tuple(torch.zeros((b, 0), dtype=torch.long, device=q.device) for _ in range(3))) \
            if return_indices else empty
    n = max(1, min(int(n_hard), k))
    hard = (q @ queue.T).topk(n, dim=1).indices  # (B, N) per-query hardest negatives
    parts = []

    def pick(m: int) -> Tensor:  # m parents per query, uniformly from that query's top-N
        return hard.gather(1, _randint(n, (b, m), generator, q.device))

    ia = ib = ic = hard.new_zeros((b, 0))
    if s1 > 0:
        ia, ib = pick(s1), pick(s1)
        alpha = _uniform((b, s1, 1), generator, q.device)
        parts.append(F.normalize(alpha * queue[ia] + (1 - alpha) * queue[ib], dim=2))
    if s2 > 0:
        ic = pick(s2)
        beta = 0.5 * _uniform((b, s2, 1), generator, q.device)
        parts.append(F.normalize(beta * q[:, None, :] + (1 - beta) * queue[ic], dim=2))
    out = torch.cat(parts, dim=1)
    return (out, (ia, ib, ic)) if return_indices else out


def queue_logits(q: Tensor, k: Tensor, negatives: Tensor, temperature: float,
                 extra: Tensor | None = None) -> Tensor:
    """MoCo logits [qᵀk₊, qᵀn_1..qᵀn_K (, qᵀh_1..qᵀh_S per query)] / τ in fp32; the target is column 0.

    q, k: (B, D); negatives: (K, D) shared by every query; extra: (B, S, D) per-query negatives.
    """
    with torch.autocast(q.device.type, enabled=False):  # fp32 logits even under AMP
        q, k = q.float(), k.float()
        cols = [(q * k).sum(1, keepdim=True), q @ negatives.float().T]
        if extra is not None and extra.shape[1] > 0:
            cols.append(torch.einsum("bd,bsd->bs", q, extra.float()))
        return torch.cat(cols, dim=1) / float(temperature)


def beta_sample(alpha: float, generator: torch.Generator | None = None) -> float:
    """One draw of Beta(α, α), reproducible from `generator` (seeds a NumPy generator from it)."""
    dev = generator.device if generator is not None else "cpu"
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=dev).item())
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def ft_transform(q: Tensor, k: Tensor, queue: Tensor, lam_pos: float, mu: float,
                 perm: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(q̂, k̂, n̂): positive extrapolation with λ⁺ ≥ 1 and negative interpolation with μ ∈ [0, 1].

    `perm` is the permutation π of the queue rows (identity when None). λ⁺ = 1, μ = 1 give back (q, k, queue).
    """
    q, k, queue = q.float(), k.float().detach(), queue.float().detach()
    lam, mu = float(lam_pos), float(mu)
    q_hat = lam * q + (1.0 - lam) * k
    k_hat = lam * k + (1.0 - lam) * q
    n_hat = queue if (perm is None or mu == 1.0) else mu * queue + (1.0 - mu) * queue[perm]
    return q_hat, k_hat, n_hat
