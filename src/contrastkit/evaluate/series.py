"""Series evaluation: the learned embedding against the classic time-series baselines, same run, same split.

Rows (accuracies in [0, 1]; columns "encoder" = the trained encoder's embedding, "random init" = the same
architecture untrained, "raw input" = the standardised series, zero-padded to the longest one, flattened):

    SVM (RBF)        TS2Vec's protocol: sklearn SVC(rbf, gamma="scale"); C by 5-fold grid search over
                     10^-4..10^4 and ∞ when the training split has ≥ 50 series and ≥ 5 per class, else C = ∞;
                     every fit capped at 10^6 iterations (TS2Vec: 10^7), a capped C = ∞ fit counted as failed
    linear probe     logistic regression on standardised features (evaluate/linear.py)
    1-NN Euclidean   nearest training neighbour by Euclidean distance (on raw series: the UCR baseline)
    1-NN DTW         raw input only: dependent multivariate DTW (squared Euclidean cost over channels),
                     each series at its own length; full warping window unless the pair count × length² is
                     above 4e9, then a Sakoe–Chiba band of 10 % (named in the row); skipped (said in the row)
                     when even the band is over 2e10 cell updates (PLAID-sized sets, minutes on 2 cores)

With `forecast_horizon: H` (cfg) a forecasting row follows (also for unlabelled data): ridge regression from the
representation of each series' window (all but its last H steps) to those H steps, test MSE in standardised
units (written as text, 4 decimals), for the encoder and the random init, next to a ridge on the raw last
steps ("raw input"), and a second row with the last-value forecast.

`dtw_distances(a, b, ...)` is a vectorised DTW (anti-diagonal wavefront over all pairs at once, in torch),
tested against a plain double loop in tests/test_series_eval.py.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from ..data import DataSplits
from ..data.series import series_lengths
from ..errors import ContrastkitError
from .embed import embed
from .linear import linear_probe
from .protocol import register_evaluation

__all__ = ["dtw_distances", "one_nn_accuracy", "svm_accuracy", "series_evaluation", "raw_series_features"]

DTW_MAX_CELLS = 4e9  # pairs × length² above which the 10 % band is used (OSULeaf: 8.8e9)
DTW_MAX_BANDED_CELLS = 2e10  # pairs × 2·length × band width above which DTW is skipped (PLAID: 1e11)
DTW_BAND = 0.1
SVM_GRID = [10.0**k for k in range(-4, 5)] + [np.inf]  # TS2Vec's C grid
SVM_MAX_ITER = 1_000_000  # per fit; TS2Vec: 10^7 (see svm_accuracy)


# ------------------------------------------------------------------------------------------------ DTW
@torch.no_grad()
def dtw_distances(a: torch.Tensor, b: torch.Tensor, window: Optional[int] = None,
                  a_lengths: Optional[torch.Tensor] = None, b_lengths: Optional[torch.Tensor] = None,
                  max_elements: int = 2**23) -> torch.Tensor:
    """DTW distance (sum of squared Euclidean step costs along the best path) between every series of `a`
    (Na, C, Ta) and of `b` (Nb, C, Tb) → (Na, Nb). NaN padding (or the lengths) give each series' length.
    `window`: Sakoe–Chiba band |i − j| ≤ window (widened to the largest length difference of the two sets, so
    every pair's end cell is reachable), None = full.

    Vectorised as a wavefront: the cells of one anti-diagonal i + j = k depend only on diagonals k−1 and k−2,
    so each step updates every pair and every cell of a diagonal (at most min(window + 1, Ta, Tb) of them) at
    once; step costs are computed per diagonal, so memory is O(pairs × diagonal width)."""
    a, b = a.float(), b.float()
    la = series_lengths(a) if a_lengths is None else a_lengths.to(a.device)
    lb = series_lengths(b) if b_lengths is None else b_lengths.to(b.device)
    a, b = torch.nan_to_num(a), torch.nan_to_num(b)
    na, nb, c = a.shape[0], b.shape[0], a.shape[1]
    ta, tb = a.shape[2], b.shape[2]
    w = ta + tb if window is None else int(window)
    w = max(w, int((la.max() - lb.min()).abs()), int((lb.max() - la.min()).abs()))
    width = max(1, min(w + 1, ta, tb))
    out = torch.empty(na, nb)
    chunk = max(1, int(max_elements // max(1, nb * c * width)))
    for s in range(0, na, chunk):
        out[s : s + chunk] = _dtw_block(a[s : s + chunk], b, la[s : s + chunk], lb, w, width).cpu()
    return out


def _dtw_block(a, b, la, lb, w: int, width: int) -> torch.Tensor:
    q, nb, ta, tb = a.shape[0], b.shape[0], a.shape[2], b.shape[2]
    p, dev = q * nb, a.device
    inf = float("inf")
    r = torch.arange(width, device=dev)
    la_p = la[:, None].expand(q, nb).reshape(-1)
    lb_p = lb[None, :].expand(q, nb).reshape(-1)
    target_k = la_p + lb_p - 2
    result = torch.full((p,), inf, device=dev)
    # diagonal buffers with one inf cell of margin on each side: values of diagonal k at [1, 1 + width)
    prev1 = torch.full((p, width + 2), inf, device=dev)
    prev2 = torch.full((p, width + 2), inf, device=dev)
    lo1 = lo2 = 0
    for k in range(ta + tb - 1):
        lo = max(0, k - tb + 1, -((w - k) // 2))  # -((w-k)//2) = ceil((k - w) / 2)
        i = lo + r
        j = k - i
        valid = (i < ta) & (j >= 0) & (j < tb) & ((i - j).abs() <= w)
        ai = a[:, :, i.clamp(max=ta - 1)]  # (q, C, width)
        bj = b[:, :, j.clamp(0, tb - 1)]  # (nb, C, width)
        cost = ((ai[:, None] - bj[None]) ** 2).sum(2).reshape(p, width)
        cost = cost.masked_fill(~valid[None, :], inf)
        cur = torch.full((p, width + 2), inf, device=dev)
        if k == 0:
            cur[:, 1 : 1 + width] = cost
        else:
            s_up, s_left = lo - 1 - lo1, lo - lo1  # D[i-1, j] and D[i, j-1] live on diagonal k-1
            best = torch.minimum(prev1[:, 1 + s_up : 1 + s_up + width], prev1[:, 1 + s_left : 1 + s_left + width])
            if k >= 2:
                s_diag = lo - 1 - lo2  # D[i-1, j-1] on diagonal k-2
                best = torch.minimum(best, prev2[:, 1 + s_diag : 1 + s_diag + width])
            cur[:, 1 : 1 + width] = cost + best
        hit = target_k == k
        if bool(hit.any()):
            idx = (la_p - 1 - lo).clamp(0, width - 1) + 1
            result = torch.where(hit, cur.gather(1, idx[:, None])[:, 0], result)
        prev2, prev1, lo2, lo1 = prev1, cur, lo1, lo
    return result.reshape(q, nb)


# ------------------------------------------------------------------------------------------ classifiers
def one_nn_accuracy(dist: torch.Tensor, ytr: torch.Tensor, yte: torch.Tensor) -> float:
    """dist (n_test, n_train) → accuracy of the nearest training neighbour's label (first on ties)."""
    return float((ytr[dist.argmin(dim=1)] == yte).float().mean())


def euclidean_1nn(tr: torch.Tensor, ytr: torch.Tensor, te: torch.Tensor, yte: torch.Tensor) -> float:
    return one_nn_accuracy(torch.cdist(te.double(), tr.double()), ytr, yte)


def svm_accuracy(tr: torch.Tensor, ytr: torch.Tensor, te: torch.Tensor, yte: torch.Tensor, seed: int = 0) -> float:
    """TS2Vec's SVM protocol (tasks/_eval_protocols.py: fit_svm), every fit capped at SVM_MAX_ITER iterations.

    TS2Vec caps at 10^7. On PLAID (537 series, 11 classes) the hard-margin fit (C = ∞) never converges: one fit
    ran 52 s to that cap and the 5-fold search over 25 minutes per feature set. A fit stopped at the cap has no
    finite solution (scikit-learn raises); in the search it counts as a failed candidate, and where C = ∞ is
    the only candidate (small sets) the largest finite C of the grid is fitted instead.
    """
    from sklearn.model_selection import GridSearchCV
    from sklearn.svm import SVC

    x, y = tr.double().numpy(), ytr.numpy()
    counts = np.bincount(y)
    counts = counts[counts > 0]
    if len(counts) < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning / FitFailedWarning of capped hard-margin fits
        if len(y) < 50 or counts.min() < 5:
            try:
                clf = SVC(C=np.inf, gamma="scale", max_iter=SVM_MAX_ITER).fit(x, y)
            except ValueError:  # stopped at the cap without a finite solution
                clf = SVC(C=SVM_GRID[-2], gamma="scale", max_iter=SVM_MAX_ITER).fit(x, y)
        else:
            grid = GridSearchCV(SVC(gamma="scale", max_iter=SVM_MAX_ITER), {"C": SVM_GRID}, cv=5, n_jobs=1,
                                error_score=np.nan)
            clf = grid.fit(x, y).best_estimator_
    return float((clf.predict(te.double().numpy()) == yte.numpy()).mean())


def raw_series_features(x: torch.Tensor) -> torch.Tensor:
    """Standardised series, NaN padding → 0, flattened (N, C·T)."""
    return torch.nan_to_num(x.float()).flatten(1)


# --------------------------------------------------------------------------------------------- protocol
@register_evaluation("series")
def series_evaluation(encoder: nn.Module, make_random_encoder: Callable[[], nn.Module], splits: DataSplits,
                      device, cfg: dict[str, Any]) -> tuple[list[dict[str, Any]], dict]:
    timings: dict[str, float] = {}
    xtr, xte = splits.train.x, splits.test.x
    feats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    t0 = time.perf_counter()
    feats["encoder"] = (embed(encoder, xtr, device=device), embed(encoder, xte, device=device))
    random_encoder = make_random_encoder().to(device)
    feats["random init"] = (embed(random_encoder, xtr, device=device), embed(random_encoder, xte, device=device))
    feats["raw input"] = (raw_series_features(xtr), raw_series_features(xte))
    timings["embed"] = time.perf_counter() - t0
    extra = {"timings": timings, "test_emb": feats["encoder"][1]}
    forecast = []
    if cfg.get("forecast_horizon"):
        t0 = time.perf_counter()
        forecast = forecast_rows({"encoder": encoder, "random init": random_encoder}, splits,
                                 int(cfg["forecast_horizon"]), device)
        timings["forecast"] = time.perf_counter() - t0
    if splits.train.y is None or splits.test.y is None:
        return forecast, extra
    ytr, yte = splits.train.y.cpu(), splits.test.y.cpu()
    rows: dict[str, dict[str, Any]] = {}
    for name, (tr, te) in feats.items():
        t0 = time.perf_counter()
        rows.setdefault("SVM (RBF)", {})[name] = svm_accuracy(tr, ytr, te, yte)
        timings[f"svm {name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows.setdefault("linear probe", {})[name] = linear_probe(tr, ytr, te, yte)
        timings[f"linear {name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows.setdefault("1-NN Euclidean", {})[name] = euclidean_1nn(tr, ytr, te, yte)
        timings[f"1nn {name}"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc, label = dtw_1nn(xtr, ytr, xte, yte)
    timings["1nn dtw"] = time.perf_counter() - t0
    rows[label] = {"encoder": "—", "random init": "—", "raw input": acc}
    return [{"metric": m, **v} for m, v in rows.items()] + forecast, extra


# ------------------------------------------------------------------------------------------ forecasting
def forecast_split(x: torch.Tensor, horizon: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each series' last `horizon` valid steps are the target (N, C·H); everything before is the window (NaN-
    padded to T − horizon). Also returns the last `w` steps of every window (N, C·w), w = the shortest window,
    for the raw linear baseline."""
    lengths = series_lengths(x)
    if int(lengths.min()) <= horizon:
        raise ContrastkitError(f"forecast_horizon={horizon}: the shortest series has {int(lengths.min())} steps; "
                               "need more steps than the horizon")
    n, c, t = x.shape
    steps = torch.arange(t)[None, :]
    start = (lengths - horizon)[:, None]
    idx = (start + torch.arange(horizon)[None, :]).clamp(max=t - 1)
    target = x.gather(2, idx[:, None, :].expand(n, c, horizon)).flatten(1)
    window = x[..., : t - horizon].masked_fill((steps[:, : t - horizon] >= start)[:, None, :], float("nan"))
    w = int((lengths - horizon).min())
    last_idx = (start - w + torch.arange(w)[None, :]).clamp_min(0)
    last = x.gather(2, last_idx[:, None, :].expand(n, c, w))
    return window, target, last


def forecast_rows(encoders: dict[str, nn.Module], splits: DataSplits, horizon: int, device) -> list[dict[str, Any]]:
    """Ridge regression (RidgeCV) from a window's representation to the next `horizon` steps, MSE on the test
    split in standardised units, next to the last-value and a linear (ridge on the raw window) forecast."""
    from sklearn.linear_model import RidgeCV

    wtr, ttr, ltr = forecast_split(splits.train.x, horizon)
    wte, tte, lte = forecast_split(splits.test.x, horizon)
    alphas = np.logspace(-3, 3, 7)

    def ridge_mse(ftr, fte) -> float:
        model = RidgeCV(alphas=alphas).fit(ftr.double().numpy(), ttr.double().numpy())
        return float(((model.predict(fte.double().numpy()) - tte.double().numpy()) ** 2).mean())

    # MSE values are written as text ("0.0722"): the CLI table shows floats in [0, 1] as percentages
    num = lambda v: f"{v:.4f}"  # noqa: E731
    row: dict[str, Any] = {"metric": f"forecast MSE (H={horizon}), ridge"}
    for name, enc in encoders.items():
        row[name] = num(ridge_mse(embed(enc, wtr, device=device), embed(enc, wte, device=device)))
    row["raw input"] = num(ridge_mse(ltr.flatten(1), lte.flatten(1)))
    c = splits.test.x.shape[1]
    last_value = lte[:, :, -1:].expand(-1, c, horizon).flatten(1)
    last = {"metric": f"forecast MSE (H={horizon}), last value", **{name: "—" for name in encoders},
            "raw input": num(float(((last_value - tte) ** 2).mean()))}
    return [row, last]


def dtw_1nn(xtr, ytr, xte, yte, max_cells: float = DTW_MAX_CELLS) -> tuple[Any, str]:
    """1-NN DTW accuracy and the row label (full window, or the band used when the full one is too costly;
    skipped, with the reason as the value, when even the band would take more than DTW_MAX_BANDED_CELLS)."""
    t = max(xtr.shape[-1], xte.shape[-1])
    pairs = float(len(xtr)) * len(xte)
    window, label = None, "1-NN DTW (full window)"
    if pairs * t * t > max_cells:
        window = max(1, int(math.ceil(DTW_BAND * t)))
        label = f"1-NN DTW (window {int(DTW_BAND * 100)}%)"
        if pairs * 2 * t * (window + 1) > DTW_MAX_BANDED_CELLS:
            return "skipped (too costly)", label
    return one_nn_accuracy(dtw_distances(xte, xtr, window=window), ytr, yte), label
