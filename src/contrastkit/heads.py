"""Projection and prediction heads (thrown away after pretraining), and DirectPred's linear predictor.

* :class:`ProjectionHead` — ``num_layers`` Linear layers; every layer but the last is followed by
  BN (optional) and ReLU; the last layer optionally by BN (SimSiam: BN without affine).
  SimCLR: ``ProjectionHead(d, 2048, 128)``; BYOL: ``ProjectionHead(d, 4096, 256)``;
  SimSiam: ``ProjectionHead(d, 2048, 2048, num_layers=3, last_bn=True, last_bn_affine=False)``.
* :class:`PredictionHead` — the BYOL/SimSiam predictor, Linear → BN → ReLU → Linear
  (BYOL 256 → 4096 → 256; SimSiam bottleneck 2048 → 512 → 2048).
* :class:`LinearPredictor` + :func:`directpred_weight` — DirectPred (METHODS.md §9): a bias-free d×d
  linear predictor whose weight is set from the EMA correlation F̂ of its inputs, never by the optimiser.

A Linear followed by BN has no bias (BN's shift replaces it), as in the SimSiam and BYOL reference code.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .errors import ContrastkitError

__all__ = ["ProjectionHead", "PredictionHead", "LinearPredictor", "build_head", "directpred_weight"]


class ProjectionHead(nn.Module):
    """MLP: (Linear → [BN] → ReLU) × (num_layers − 1) → Linear → [BN(affine=last_bn_affine)]."""

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_bn: bool = False,
        last_bn_affine: bool = True,
    ):
        super().__init__()
        if num_layers < 1 or min(in_dim, hidden_dim, out_dim) < 1:
            raise ContrastkitError(
                f"head sizes must be ≥ 1 and num_layers ≥ 1 (got in_dim={in_dim}, hidden_dim={hidden_dim}, "
                f"out_dim={out_dim}, num_layers={num_layers})"
            )
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(d, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            d = hidden_dim
        layers.append(nn.Linear(d, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=last_bn_affine))
        self.layers = nn.Sequential(*layers)
        self.in_dim = in_dim
        self.out_dim = out_dim
        # plain values that rebuild this architecture (`build_head`): a run folder stores them with the weights
        self.spec = {"kind": "mlp", "in_dim": in_dim, "hidden_dim": hidden_dim, "out_dim": out_dim,
                     "num_layers": num_layers, "batch_norm": batch_norm, "last_bn": last_bn,
                     "last_bn_affine": last_bn_affine}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def build_head(spec: dict) -> ProjectionHead:
    """A freshly initialised head of the architecture `ProjectionHead.spec` describes."""
    spec = dict(spec)
    if spec.pop("kind", "mlp") != "mlp":
        raise ContrastkitError(f"unknown head kind in {spec}; this contrastkit version builds 'mlp' heads")
    return ProjectionHead(**spec)


class PredictionHead(ProjectionHead):
    """BYOL/SimSiam predictor: Linear(in, hidden) → BN → ReLU → Linear(hidden, out) (with bias)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, batch_norm: bool = True):
        super().__init__(in_dim, hidden_dim, out_dim, num_layers=2, batch_norm=batch_norm)


class LinearPredictor(nn.Module):
    """DirectPred's predictor p = W f: bias-free, d×d, W set externally with :meth:`set_weight`.

    W is a buffer, not a parameter: it is saved in ``state_dict`` (and broadcast by DDP) but no
    optimiser ever updates it; gradients still flow through it to the input. Starts as the identity.
    """

    weight: torch.Tensor

    def __init__(self, dim: int):
        super().__init__()
        if dim < 1:
            raise ContrastkitError(f"LinearPredictor dim must be ≥ 1, got {dim}")
        self.in_dim = self.out_dim = dim
        self.register_buffer("weight", torch.eye(dim))

    @torch.no_grad()
    def set_weight(self, W: torch.Tensor) -> None:
        if W.shape != self.weight.shape:
            raise ContrastkitError(f"LinearPredictor.set_weight: expected a {tuple(self.weight.shape)} "
                                   f"matrix, got {tuple(W.shape)}")
        self.weight.copy_(W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


@torch.no_grad()
def directpred_weight(F_hat: torch.Tensor, eps: float = 0.01) -> torch.Tensor:
    """DirectPred predictor weight from the EMA correlation F̂ (METHODS.md §9, luckmatters `compute_w_corr`,
    ``balance_type=boost_scale``, ``dyn_convert=2``, eps outside the root).

        F̂ = U diag(s) Uᵀ,  p_j = sqrt(max(s_j, 0) / max_j s_j) + eps,  p_j ← max(p_j, 1e-4),
        W = U diag(p) Uᵀ

    F̂ is symmetrised first (it is symmetric up to rounding) and decomposed with ``eigh`` (real by
    construction; the reference takes the real part of a general ``eig``). Where max_j s_j ≤ 0 (F̂ = 0,
    e.g. before the first update) the reference divides by zero; here every p_j = max(eps, 1e-4) instead.
    Computed in float32 at least (float64 stays float64); returned in F̂'s dtype. The result is
    symmetric PSD, commutes with F̂, has eigenvalues in [max(eps, 1e-4), 1 + eps], and
    F̂ = c·I ⇒ W = (1 + eps)·I.
    """
    if F_hat.ndim != 2 or F_hat.shape[0] != F_hat.shape[1]:
        raise ContrastkitError(f"directpred_weight needs a square matrix, got shape {tuple(F_hat.shape)}")
    dtype = F_hat.dtype
    M = F_hat.to(torch.promote_types(dtype, torch.float32))
    M = (M + M.T) / 2
    s, U = torch.linalg.eigh(M)
    s_max = s.max().clamp_min(torch.finfo(s.dtype).tiny)
    p = (s.clamp_min(0) / s_max).sqrt() + eps
    p = p.clamp_min(1e-4)
    W = (U * p) @ U.T
    return ((W + W.T) / 2).to(dtype)
