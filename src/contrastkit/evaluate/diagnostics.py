"""Representation diagnostics and collapse monitors (METHODS.md §21).

* alignment (Wang & Isola 2020): E ||f(x) − f(x⁺)||₂^α, α = 2, on L2-normalised features (lower = better
  aligned; needs positive pairs).
* uniformity: log E_{i<j} exp(−t ||f(x_i) − f(x_j)||²), t = 2, on normalised features (lower = more uniform;
  ≈ −4 is the floor on a high-dimensional sphere; 0 = every point identical). Computed on a seeded random
  subsample of at most `max_samples` rows (all n² pairs of 100k rows would be 10¹⁰ terms).
* eff_rank (RankMe, Garrido et al. 2023): exp(−Σ p_k log p_k), p_k = σ_k / Σσ + ε (ε = 1e-7), σ = singular
  values of the raw (n × d) embedding matrix (not normalised, not centred, as in RankMe). 1 = complete
  collapse, d = all directions used equally. Also computed on the subsample.
* std: per-dimension standard deviation of the normalised embeddings, averaged over dimensions. A healthy
  embedding spread over the sphere has std ≈ 1/√d (`std_ref`); it goes to 0 under complete collapse.

`collapse_warning` turns these into a message (or None); thresholds are documented there.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from ..errors import ContrastkitError
from ._common import as_embedding, check_same_dim, normalize, single_thread_if_small

__all__ = ["alignment", "uniformity", "effective_rank", "normalized_std", "diagnostics", "collapse_warning",
           "RANK_FRACTION", "RANK_FLOOR", "STD_FRACTION"]

# collapse_warning thresholds (see its docstring)
RANK_FRACTION = 0.05
RANK_FLOOR = 1.5
STD_FRACTION = 0.1


def _subsample(x: torch.Tensor, max_samples: Optional[int], seed: int) -> torch.Tensor:
    if max_samples is None or x.shape[0] <= max_samples:
        return x
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(x.shape[0], generator=g)[:max_samples].to(x.device)
    return x[idx]


@torch.no_grad()
def alignment(emb: Any, emb_pos: Any, alpha: float = 2.0) -> float:
    """Mean ||n(a_i) − n(b_i)||^alpha over positive pairs (row i of emb with row i of emb_pos)."""
    a = normalize(as_embedding(emb, "emb"))
    b = normalize(as_embedding(emb_pos, "emb_pos", device=a.device))
    check_same_dim(a, b, "emb", "emb_pos")
    if a.shape[0] != b.shape[0]:
        raise ContrastkitError(f"emb has {a.shape[0]} rows but emb_pos has {b.shape[0]}; rows must be pairs")
    return float((a - b).norm(dim=1).pow(alpha).mean())


@torch.no_grad()
def uniformity(emb: Any, t: float = 2.0, max_samples: Optional[int] = 4096, seed: int = 0) -> float:
    """log of the mean over pairs i<j of exp(−t ||n(x_i) − n(x_j)||²) (on ≤ max_samples rows)."""
    x = normalize(_subsample(as_embedding(emb, "emb"), max_samples, seed))
    n = x.shape[0]
    if n < 2:
        raise ContrastkitError("emb: uniformity needs at least two rows")
    vals = -t * (2.0 - 2.0 * (x @ x.t())).clamp(min=0.0)  # −t · squared distances of unit vectors
    vals.fill_diagonal_(float("-inf"))  # mean over i != j equals the mean over i < j (symmetric)
    return float(torch.logsumexp(vals.flatten().double(), 0) - math.log(n * (n - 1)))


@torch.no_grad()
def effective_rank(emb: Any, eps: float = 1e-7) -> float:
    """RankMe effective rank of the (n × d) matrix: exp of the entropy of σ / Σσ (computed in float64)."""
    x = as_embedding(emb, "emb").double()
    # singular values from the eigenvalues of the smaller Gram matrix (float64): one BLAS product plus a
    # min(n, d)² eigen-decomposition, several times faster than svdvals of the tall matrix
    gram = x.t() @ x if x.shape[0] >= x.shape[1] else x @ x.t()
    s = torch.linalg.eigvalsh(gram).clamp(min=0.0).sqrt()
    if float(s.sum()) == 0.0:
        return 1.0  # the all-zero matrix: completely collapsed
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


@torch.no_grad()
def normalized_std(emb: Any) -> float:
    """Mean over dimensions of the per-dimension std of the L2-normalised embeddings (healthy ≈ 1/√d)."""
    x = normalize(as_embedding(emb, "emb"))
    if x.shape[0] < 2:
        raise ContrastkitError("emb: the per-dimension std needs at least two rows")
    return float(x.std(0).mean())


def diagnostics(emb: Any, emb_pos: Any = None, *, max_samples: int = 4096, rank_samples: int = 8192,
                seed: int = 0) -> dict[str, float]:
    """All collapse monitors of one embedding matrix.

    Returns {"uniformity", "eff_rank", "std", "std_ref", "n", "dim"} and "alignment" when `emb_pos` (the
    embeddings of the positive views, row-paired with `emb`) is given. uniformity uses ≤ `max_samples` rows,
    eff_rank ≤ `rank_samples` rows (same seeded subsample order), std and alignment all rows.
    """
    x = as_embedding(emb, "emb")
    n, d = x.shape
    out: dict[str, float] = {}
    with single_thread_if_small(min(n, max(max_samples, rank_samples)) * d):
        if emb_pos is not None:
            out["alignment"] = alignment(x, emb_pos)
        out["uniformity"] = uniformity(x, max_samples=max_samples, seed=seed)
        out["eff_rank"] = effective_rank(_subsample(x, rank_samples, seed))
        out["std"] = normalized_std(x)
    out["std_ref"] = 1.0 / math.sqrt(d)
    out["n"] = float(n)
    out["dim"] = float(d)
    return out


def collapse_warning(diag: dict, dim: int) -> Optional[str]:
    """A human-readable warning when the diagnostics indicate collapse, else None.

    Fires when either holds (n = diag["n"] when present, else dim):
    * dimensional collapse: eff_rank < max(RANK_FLOOR, RANK_FRACTION · min(n, dim))
      = max(1.5, 0.05 · min(n, d)).
      The 5 % fraction flags embeddings using only a handful of their dimensions (e.g. < 6.4 of 128, < 102 of
      2048; healthy trained SSL encoders sit far above that); the floor 1.5 keeps tiny embeddings (2-D, 3-D)
      unflagged unless they are essentially rank one (RankMe ≈ 1).
    * complete collapse: std < STD_FRACTION / √dim = 0.1/√d — every normalised embedding is (nearly) the
      same point; a healthy embedding has std ≈ 1/√d.
    Missing keys are skipped.
    """
    if dim < 1:
        raise ContrastkitError(f"dim={dim}: must be >= 1")
    reasons = []
    n = int(diag.get("n", dim))
    er = diag.get("eff_rank")
    if er is not None and math.isfinite(er):
        thr = max(RANK_FLOOR, RANK_FRACTION * min(n, dim))
        if er < thr:
            reasons.append(f"effective rank {er:.2f} < {thr:.2f} (of {dim} dims): dimensional collapse")
    sd = diag.get("std")
    if sd is not None and math.isfinite(sd):
        thr = STD_FRACTION / math.sqrt(dim)
        if sd < thr:
            reasons.append(f"per-dimension std of normalised embeddings {sd:.2e} < {thr:.2e} "
                           f"(healthy ≈ 1/√d = {1 / math.sqrt(dim):.3f}): complete collapse")
    if not reasons:
        return None
    return ("representation collapse: " + "; ".join(reasons) +
            ". Check the learning rate, temperature, predictor/stop-gradient and batch size.")
