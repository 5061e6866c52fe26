"""SCGC's neighbourhood-contrastive loss L_NC (METHODS.md §15; gayanku/SCGC `train.py` `Ncontrast`).

    S_ij  = cos(z_i, z_j) for i ≠ j,   S_ii = 0        (the reference masks the self term to 0: e^0 = 1 stays in
                                                       the denominator and A_r[i,i]·1 in the numerator)
    L_NC  = −(1/B) Σ_{i ∈ rows} log( Σ_j A_r[i,j] exp(τ S_ij) / Σ_j exp(τ S_ij) + 1e-8 )

τ MULTIPLIES the similarities (an inverse temperature, τ = 0 makes every term 1). The + 1e-8 is the
reference's; with A_r built from Â = D̃⁻¹(A + I) every row has a positive self term, so it never matters
except for targets the caller builds without self-loops.

`ncontrast_loss` is the exact loss of a block of rows against every node (memory O(B·n)); with all rows it
is the reference's full-batch loss. `ncontrast_sampled` is the mini-batch estimate used for large graphs:
the numerator's A_r-weighted sum is estimated by m random-walk endpoints per anchor (an r-step walk on Â
ends at j with probability Â^r[i,j], so the walk average times the row sum of A_r is unbiased), the
denominator's sum over all n nodes by the batch's keys (anchors + walk endpoints) scaled by n / #keys.
Memory O(B·(B + B·m)), independent of n. (The log of an unbiased estimate is a biased estimate of the log,
as in every mini-batch InfoNCE.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ContrastkitError

__all__ = ["EPS", "ncontrast_loss", "ncontrast_sampled"]

EPS = 1e-8  # the reference's log(· + 1e-8)


def _log_ratio_loss(log_num: Tensor, log_den: Tensor) -> Tensor:
    """−log(exp(log_num − log_den) + EPS), computed without overflow."""
    return -torch.logaddexp(log_num - log_den, torch.full_like(log_num, math.log(EPS)))


def ncontrast_loss(z_rows: Tensor, z_keys: Tensor, target: Tensor, tau: float,
                   self_index: Tensor | None = None) -> Tensor:
    """Exact L_NC of `z_rows` (B, d) against all keys `z_keys` (n, d) with soft targets `target` (B, n) ≥ 0.

    `self_index` (B,): the key index of each row (its similarity is set to 0, the reference's mask); None when
    the rows are not among the keys."""
    if tau < 0:
        raise ContrastkitError(f"tau={tau} must be >= 0 (it multiplies the cosine similarities)")
    if target.shape != (z_rows.shape[0], z_keys.shape[0]):
        raise ContrastkitError(f"target has shape {tuple(target.shape)}, expected "
                               f"({z_rows.shape[0]}, {z_keys.shape[0]})")
    zr, zk = F.normalize(z_rows.float(), dim=1), F.normalize(z_keys.float(), dim=1)
    s = float(tau) * (zr @ zk.T)
    if self_index is not None:
        mask = torch.zeros_like(s, dtype=torch.bool)
        mask[torch.arange(s.shape[0], device=s.device), self_index] = True
        s = s.masked_fill(mask, 0.0)
    log_den = torch.logsumexp(s, dim=1)
    log_num = torch.logsumexp(s + torch.log(target.float().clamp_min(0)), dim=1)
    return _log_ratio_loss(log_num, log_den).mean()


def ncontrast_sampled(z_anchor: Tensor, anchor_ids: Tensor, z_pos: Tensor, pos_ids: Tensor, tau: float,
                      row_sum: float, n_total: int) -> Tensor:
    """Mini-batch L_NC estimate: anchors (B, d) with ids (B,), walk endpoints (B, m, d) with ids (B, m).

    Keys = anchors + all endpoints; a key that is the anchor's own node has similarity 0 (as in the exact loss).
    `row_sum` is the row sum of A_r (1 for Â^r, r for Σ_t Â^t); `n_total` the number of nodes."""
    if tau < 0:
        raise ContrastkitError(f"tau={tau} must be >= 0 (it multiplies the cosine similarities)")
    b, m, d = z_pos.shape
    za = F.normalize(z_anchor.float(), dim=1)
    zp = F.normalize(z_pos.float(), dim=2)
    keys = torch.cat([za, zp.reshape(b * m, d)])
    key_ids = torch.cat([anchor_ids, pos_ids.reshape(-1)])
    s = float(tau) * (za @ keys.T)
    s = s.masked_fill(key_ids[None, :] == anchor_ids[:, None], 0.0)
    log_den = torch.logsumexp(s, dim=1) + math.log(n_total / keys.shape[0])
    sp = float(tau) * (za[:, None, :] * zp).sum(-1)
    sp = sp.masked_fill(pos_ids == anchor_ids[:, None], 0.0)
    log_num = torch.logsumexp(sp, dim=1) - math.log(m) + math.log(row_sum)
    return _log_ratio_loss(log_num, log_den).mean()
