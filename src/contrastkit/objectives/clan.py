"""CLAN loss (METHODS §14; jackwilkie/CLAN `loss/clan_loss.py`): contrastive learning with augmented negatives.

    d(a, b) = (1 − cos(a, b)) / 2 ∈ [0, 1]
    L_sim   = Σ_{i≠j} d(z_i, z_j)       / #{(i, j), i≠j : d(z_i, z_j) > ε}      all original pairs are positives
    L_dis   = Σ_{i,j} [m − d(z_i, z̃_j)]₊ / #{(i, j)      : [m − d(z_i, z̃_j)]₊ > ε}  every original vs every augmented
    L       = α L_sim + (1 − α) L_dis

Choices, made on purpose:
* i = j in L_sim is EXCLUDED. Its distance is 0 mathematically; the reference keeps the diagonal in the sum and
  lets the `> ε` count decide, so whether it is counted depends on float round-off (1 − cos(z, z) is ~1e-7, not
  0). Leaving it out makes the count exact; the sum is unchanged up to round-off.
* i = j in L_dis (a row against its OWN augmentation) is INCLUDED: it is the hardest negative and the point of CLAN.
* "Averages over active terms" (PML's AvgNonZero): numerator and count both use only terms > ε, and the count is
  clamped to ≥ 1, so a loss with no active terms is exactly 0 (not NaN, and not Σ(tiny)/ε as `sum / (n + ε)`
  in the reference can give).
* Non-squared terms (METHODS §14 defaults). Inputs need not be normalised; the math is fp32.
* `reduction="active"` (the reference, above) or `"mean"`: L_dis = Σ hinge / (N·M), the plain mean over every
  (original, augmented) pair (L_sim likewise over the N(N−1) off-diagonal pairs). Late in training only 1–3 %
  of the hinge terms are active, so "active" gives each of them 30–100× the weight of a pull term; the active
  ones are mostly augmented rows that cannot be told from normal rows (a replacement close to the original
  value, or a normal row that is rare in one column), and that weight made shuttle runs unstable. The
  CLAN method's default is "mean"; see methods/clan.py for the measurements. Both are ≥ 0 and exactly 0 when no
  term is active.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ContrastkitError

__all__ = ["clan_loss", "cosine_distance"]


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) matrix of (1 − cos)/2 between the rows of a and b, clamped to [0, 1]."""
    a = F.normalize(a.float(), dim=1)
    b = F.normalize(b.float(), dim=1)
    return ((1.0 - a @ b.T) * 0.5).clamp(0.0, 1.0)


REDUCTIONS = ("active", "mean")


def _reduce(terms: torch.Tensor, eps: float, reduction: str, n_terms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean of the terms > eps over the active count ("active") or over all n_terms ("mean"), active count)."""
    active = terms > eps
    count = active.sum()
    total = torch.where(active, terms, torch.zeros_like(terms)).sum()
    if reduction == "mean":
        return total / max(int(n_terms), 1), count
    return total / count.clamp_min(1), count


def clan_loss(
    z: torch.Tensor,
    z_aug: torch.Tensor,
    alpha: float = 0.5,
    margin: float = 0.5,
    eps: float = 1e-8,
    return_parts: bool = False,
    reduction: str = "active",
):
    """CLAN loss of originals z (N, D) against their augmented negatives z_aug (M, D). Scalar ≥ 0.

    With `return_parts=True` returns (loss, dict(sim=L_sim, dis=L_dis, frac_active_neg=…)) (parts detached).
    """
    if z.dim() != 2 or z_aug.dim() != 2 or z.shape[1] != z_aug.shape[1]:
        raise ContrastkitError(f"clan_loss needs z (N, D) and z_aug (M, D) with the same D; got "
                               f"{tuple(z.shape)} and {tuple(z_aug.shape)}")
    if z.shape[0] < 1 or z_aug.shape[0] < 1:
        raise ContrastkitError("clan_loss needs at least one original and one augmented sample")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ContrastkitError(f"alpha={alpha} must be in [0, 1] (the weight of the positive term)")
    if not 0.0 < float(margin) <= 1.0:
        raise ContrastkitError(f"margin={margin} must be in (0, 1]: cosine distance (1 − cos)/2 lies in [0, 1]")
    if reduction not in REDUCTIONS:
        raise ContrastkitError(f"reduction={reduction!r}; valid: {', '.join(REDUCTIONS)}")
    n = z.shape[0]
    with torch.autocast(z.device.type, enabled=False):  # fp32 loss math even inside an AMP region
        d_pos = cosine_distance(z, z)
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=z.device)
        d_pos = torch.where(off_diagonal, d_pos, torch.zeros_like(d_pos))
        l_sim, _ = _reduce(d_pos, eps, reduction, n * (n - 1))
        hinge = F.relu(float(margin) - cosine_distance(z, z_aug))
        l_dis, n_neg = _reduce(hinge, eps, reduction, hinge.numel())
        loss = float(alpha) * l_sim + (1.0 - float(alpha)) * l_dis
    if return_parts:
        parts = {"sim": l_sim.detach(), "dis": l_dis.detach(),
                 "frac_active_neg": (n_neg.float() / hinge.numel()).detach()}
        return loss, parts
    return loss
