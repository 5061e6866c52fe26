"""Projection/prediction heads and DirectPred's analytically set linear predictor (METHODS.md §7–§9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from contrastkit.errors import ContrastkitError
from contrastkit.heads import LinearPredictor, PredictionHead, ProjectionHead, directpred_weight


def kinds(m: nn.Module) -> list[str]:
    return [type(x).__name__ for x in m.layers]


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_projection_head_shapes(num_layers):
    head = ProjectionHead(32, 64, 16, num_layers=num_layers)
    assert head.in_dim == 32 and head.out_dim == 16
    assert head(torch.randn(5, 32)).shape == (5, 16)
    expected = ["Linear", "BatchNorm1d", "ReLU"] * (num_layers - 1) + ["Linear"]
    assert kinds(head) == expected
    linears = [m for m in head.layers if isinstance(m, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == (
        [(32, 16)] if num_layers == 1 else [(32, 64)] + [(64, 64)] * (num_layers - 2) + [(64, 16)]
    )
    # Linear followed by BN has no bias; the last (un-normalised) Linear has one
    assert all(l.bias is None for l in linears[:-1]) and linears[-1].bias is not None


def test_projection_head_without_batch_norm():
    head = ProjectionHead(8, 12, 4, num_layers=3, batch_norm=False)
    assert kinds(head) == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert all(m.bias is not None for m in head.layers if isinstance(m, nn.Linear))


def test_simsiam_projector_last_bn_without_affine():
    head = ProjectionHead(64, 128, 128, num_layers=3, last_bn=True, last_bn_affine=False)
    last = head.layers[-1]
    assert isinstance(last, nn.BatchNorm1d) and not last.affine
    assert sum(p.numel() for p in last.parameters()) == 0
    assert head.layers[-2].bias is None  # BN follows
    out = head.train()(torch.randn(16, 64))
    # BN without affine: every output column is standardised over the batch
    torch.testing.assert_close(out.mean(0), torch.zeros(128), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.var(0, unbiased=False), torch.ones(128), atol=1e-3, rtol=0)
    # parameter count: 64·128 + 2·128 + 128·128 + 2·128 + 128·128 (no biases, no last affine)
    assert sum(p.numel() for p in head.parameters()) == 64 * 128 + 128 * 128 * 2 + 4 * 128
    affine = ProjectionHead(64, 128, 128, num_layers=3, last_bn=True)
    assert sum(p.numel() for p in affine.layers[-1].parameters()) == 2 * 128


def test_prediction_head():
    head = PredictionHead(256, 64, 256)  # SimSiam-style bottleneck
    assert kinds(head) == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head.layers[0].out_features == 64 and head.layers[-1].bias is not None
    assert head(torch.randn(4, 256)).shape == (4, 256)
    assert head.in_dim == 256 and head.out_dim == 256


def test_head_rejects_bad_sizes():
    with pytest.raises(ContrastkitError):
        ProjectionHead(8, 8, 8, num_layers=0)
    with pytest.raises(ContrastkitError):
        ProjectionHead(8, 0, 8)


def test_linear_predictor_is_set_externally():
    pred = LinearPredictor(6)
    assert list(pred.parameters()) == []  # never touched by an optimiser
    assert "weight" in pred.state_dict()
    x = torch.randn(3, 6, requires_grad=True)
    torch.testing.assert_close(pred(x), x)  # starts as the identity
    W = torch.randn(6, 6)
    pred.set_weight(W)
    out = pred(x)
    torch.testing.assert_close(out, x @ W.T)
    out.sum().backward()
    torch.testing.assert_close(x.grad, W.sum(0).expand(3, 6))  # gradient flows to the input
    with pytest.raises(ContrastkitError, match="6, 6"):
        pred.set_weight(torch.randn(5, 5))
    W.zero_()
    assert (pred.weight != 0).any()  # set_weight copies


def reference_weight(F_hat: np.ndarray, eps: float) -> np.ndarray:
    """METHODS.md §9 written out in float64 NumPy."""
    s, U = np.linalg.eigh((F_hat + F_hat.T) / 2)
    p = np.sqrt(np.maximum(s, 0) / s.max()) + eps
    p = np.maximum(p, 1e-4)
    return U @ np.diag(p) @ U.T


def random_corr(d: int, rank: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(4 * d, rank, generator=g, dtype=torch.float64)
    f = f @ torch.randn(rank, d, generator=g, dtype=torch.float64)
    return (f.T @ f / f.shape[0]).to(dtype)  # mean_batch(f fᵀ)


@pytest.mark.parametrize("d,rank,eps",
                         [(8, 8, 0.01), (32, 32, 0.01), (32, 5, 0.01), (16, 16, 0.1), (16, 3, 0.0)])
def test_directpred_weight_invariants(d, rank, eps):
    # Rank-deficient cases in float64: in float32 the null space of F̂ holds rounding noise ~1e-7·max s,
    # which the square root lifts to ~3e-4 — inherent to the formula, not an error of the implementation.
    F_hat = random_corr(d, rank, seed=d + rank, dtype=torch.float32 if rank == d else torch.float64)
    W = directpred_weight(F_hat, eps=eps)
    assert W.shape == (d, d) and W.dtype == F_hat.dtype
    torch.testing.assert_close(W, W.T, rtol=0, atol=0)  # exactly symmetric
    ev = torch.linalg.eigvalsh(W.double())
    lo = max(eps, 1e-4)
    assert ev.min() >= lo - 1e-5 and ev.max() <= 1 + eps + 1e-5  # PSD, spectrum in [eps, 1 + eps]
    torch.testing.assert_close(ev.max(), torch.tensor(1 + eps, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(W @ F_hat, F_hat @ W, atol=1e-4 * F_hat.norm().item(), rtol=0)  # commutes
    np.testing.assert_allclose(W.numpy(), reference_weight(F_hat.double().numpy(), eps), atol=2e-5)
    if rank < d:  # rank-deficient: the null space of F̂ gets eps (or the 1e-4 floor), up to rounding
        assert int((ev < lo + 1e-5).sum()) == d - rank
        assert ev.sort().values[d - rank] > lo + 0.05


def test_directpred_identity_and_scale():
    for eps in [0.0, 0.01, 0.3]:
        torch.testing.assert_close(directpred_weight(torch.eye(12), eps), (1 + eps) * torch.eye(12))
        torch.testing.assert_close(directpred_weight(3.5 * torch.eye(12), eps), (1 + eps) * torch.eye(12))
    F_hat = random_corr(10, 10, seed=1)
    torch.testing.assert_close(directpred_weight(F_hat), directpred_weight(100 * F_hat), atol=1e-5, rtol=1e-4)


def test_directpred_degenerate_inputs():
    W = directpred_weight(torch.zeros(7, 7), eps=0.01)  # before the first EMA update: no NaN
    torch.testing.assert_close(W, 0.01 * torch.eye(7))
    torch.testing.assert_close(directpred_weight(torch.zeros(7, 7), eps=0.0), 1e-4 * torch.eye(7))
    # rank one: W = (1 + eps) u uᵀ + eps (I − u uᵀ)
    u = torch.nn.functional.normalize(torch.randn(9, dtype=torch.float64), dim=0)
    W = directpred_weight(2.0 * torch.outer(u, u), eps=0.01)
    assert W.dtype == torch.float64
    P = torch.outer(u, u)
    torch.testing.assert_close(W, 1.01 * P + 0.01 * (torch.eye(9, dtype=torch.float64) - P))
    # slightly non-symmetric input (EMA rounding) and negative eigenvalues are tolerated
    F_hat = random_corr(6, 6, seed=3)
    F_hat = F_hat - 0.5 * F_hat.diag().min() * torch.eye(6) * 10
    F_hat[0, 1] += 1e-6
    W = directpred_weight(F_hat)
    torch.testing.assert_close(W, W.T, rtol=0, atol=0)
    assert torch.linalg.eigvalsh(W).min() >= 0.01 - 1e-5
    assert directpred_weight(F_hat.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(ContrastkitError):
        directpred_weight(torch.zeros(3, 4))


def test_predictor_roundtrip():
    F_hat = random_corr(16, 16, seed=7)
    pred = LinearPredictor(16)
    pred.set_weight(directpred_weight(F_hat))
    f = torch.randn(4, 16)
    torch.testing.assert_close(pred(f), f @ directpred_weight(F_hat))  # W symmetric ⇒ W f = f W
