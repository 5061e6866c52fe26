"""The anomaly scorers added for the suite (evaluate/anomaly.py, anomaly_protocol.py) against slow references."""

import math

import numpy as np
import pytest
import torch

from contrastkit.data.base import DataInfo, Dataset, DataSplits
from contrastkit.errors import ContrastkitError
from contrastkit.evaluate.anomaly import knn_scores, loo_knn_scores, standardize_scores
from contrastkit.evaluate.anomaly_protocol import add_ranks, anomaly_protocol, format_anomaly_table


def brute_knn(train, test, k, metric, self_index=None):
    out = []
    for i, q in enumerate(test):
        d = []
        for j, t in enumerate(train):
            if self_index is not None and j == self_index[i]:
                continue
            if metric == "cosine":
                d.append(1.0 - float(np.dot(q, t) / (np.linalg.norm(q) * np.linalg.norm(t))))
            else:
                d.append(math.sqrt(sum((a - b) ** 2 for a, b in zip(q, t))))
        out.append(sum(sorted(d)[:k]) / k)
    return np.array(out)


def brute_standardize(s, t):
    t = sorted(t)
    q = lambda p: np.percentile(np.array(t), p)  # noqa: E731 (numpy's linear interpolation, as documented)
    scale = q(75) - q(25)
    if scale <= 1e-12:
        mean = sum(t) / len(t)
        scale = math.sqrt(sum((v - mean) ** 2 for v in t) / len(t)) or 1.0
    return np.array([(v - q(50)) / scale for v in s])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_knn_scores_match_brute_force(metric, k):
    rng = np.random.default_rng(k)
    train, test = rng.normal(size=(23, 5)), rng.normal(size=(11, 5))
    got = knn_scores(train, test, k=k, metric=metric, chunk_size=4)  # several chunks
    assert np.allclose(got, brute_knn(train, test, k, metric), atol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_leave_one_out_scores_exclude_only_the_row_itself(metric):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(17, 4))
    train[5] = train[3]  # a duplicate still counts as a neighbour of row 3 (distance 0)
    got = loo_knn_scores(train, k=3, metric=metric, chunk_size=5)
    assert np.allclose(got, brute_knn(train, train, 3, metric, self_index=list(range(17))), atol=1e-5)
    rows = [3, 0, 16]
    sub = loo_knn_scores(train, k=2, metric=metric, rows=rows)
    assert np.allclose(sub, brute_knn(train, train[rows], 2, metric, self_index=rows), atol=1e-5)
    assert knn_scores(train, train, k=1, metric=metric)[3] == pytest.approx(0.0, abs=1e-5)
    assert loo_knn_scores(train, k=1, metric=metric)[3] == pytest.approx(0.0, abs=1e-5)  # its duplicate
    assert loo_knn_scores(train, k=1, metric=metric)[0] > 1e-3


def test_standardize_scores_match_brute_force_and_fall_back():
    rng = np.random.default_rng(1)
    t, s = rng.exponential(size=31), rng.exponential(size=9)
    assert np.allclose(standardize_scores(s, t), brute_standardize(s, t))
    t = np.array([1.0] * 20 + [3.0, 5.0])  # IQR 0 → the std
    assert np.allclose(standardize_scores(s, t), brute_standardize(s, t))
    assert np.allclose(standardize_scores([2.0, 4.0], [2.0, 2.0]), [0.0, 2.0])  # constant → scale 1
    with pytest.raises(ContrastkitError, match="no training scores"):
        standardize_scores([1.0], [])


def test_scorer_errors_name_the_input():
    x = np.zeros((4, 2)) + 1.0
    with pytest.raises(ContrastkitError, match="metric"):
        knn_scores(x, x, metric="manhattan")
    with pytest.raises(ContrastkitError, match="k=5"):
        knn_scores(x, x, k=5)
    with pytest.raises(ContrastkitError, match="available .3"):
        loo_knn_scores(x, k=4)
    with pytest.raises(ContrastkitError, match="self_index"):
        knn_scores(x, x[:2], k=1, self_index=[0, 1, 2])


def _splits(n_train=60, n_norm=30, n_anom=10, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    tr = torch.randn(n_train, d, generator=g)
    te = torch.cat([torch.randn(n_norm, d, generator=g), 2.5 + torch.randn(n_anom, d, generator=g)])
    info = DataInfo(name="toy", kind="table", shape=(d,), num_classes=2, extra={"anomaly_label": 1})
    y_te = torch.cat([torch.zeros(n_norm, dtype=torch.long), torch.ones(n_anom, dtype=torch.long)])
    return DataSplits(Dataset(tr, torch.zeros(n_train, dtype=torch.long), info), Dataset(te, y_te, info))


def test_protocol_mixture_is_the_mean_of_standardised_embedding_and_raw_knn():
    from sklearn.metrics import roc_auc_score

    splits = _splits()
    torch.manual_seed(0)
    enc = torch.nn.Linear(4, 3)
    rows = anomaly_protocol(enc, None, splits, method_name="m", k=5)
    got = {(r["model"], r["scorer"]): r for r in rows}
    x_tr, x_te = splits.train.x.numpy(), splits.test.x.numpy()
    with torch.no_grad():
        e_tr, e_te = enc(splits.train.x).numpy(), enc(splits.test.x).numpy()
    n = len(x_tr)
    emb = brute_standardize(brute_knn(e_tr, e_te, 5, "euclidean"), brute_knn(e_tr, e_tr, 5, "euclidean", range(n)))
    nrm = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    c = nrm(nrm(e_tr).mean(0))
    cen = brute_standardize(-(nrm(e_te) @ c), -(nrm(e_tr) @ c))
    raw = brute_standardize(brute_knn(x_tr, x_te, 5, "euclidean"), brute_knn(x_tr, x_tr, 5, "euclidean", range(n)))
    y = splits.test.y.numpy()
    assert got[("m", "knn-5+raw")]["auroc"] == pytest.approx(roc_auc_score(y, (emb + raw) / 2), abs=1e-9)
    assert got[("m", "centroid+raw")]["auroc"] == pytest.approx(roc_auc_score(y, (cen + raw) / 2), abs=1e-9)
    assert ("raw features", "lof-20") in got and ("isolation forest", "iforest") in got


def test_protocol_mixture_standardises_on_a_seeded_sample_of_big_training_sets(monkeypatch):
    import contrastkit.evaluate.anomaly_protocol as ap

    splits = _splits(n_train=50)
    enc = torch.nn.Linear(4, 3)
    full = {(r["model"], r["scorer"]): r["auroc"] for r in anomaly_protocol(enc, None, splits, baselines=False)}
    monkeypatch.setattr(ap, "MIX_REF_ROWS", 20)
    a = {(r["model"], r["scorer"]): r["auroc"] for r in anomaly_protocol(enc, None, splits, baselines=False, seed=3)}
    b = {(r["model"], r["scorer"]): r["auroc"] for r in anomaly_protocol(enc, None, splits, baselines=False, seed=3)}
    assert a == b and set(a) == set(full) and 0.0 <= a[("encoder", "knn-5+raw")] <= 1.0


def test_tiny_training_sets_still_get_every_row():
    splits = _splits(n_train=2, n_norm=5, n_anom=3)
    rows = anomaly_protocol(torch.nn.Linear(4, 3), None, splits, k=5)
    scorers = {(r["model"], r["scorer"]) for r in rows}
    assert ("encoder", "knn-2+raw") in scorers and ("raw features", "lof-1") in scorers


def test_ranks_match_brute_force_with_ties():
    aurocs = [0.9, 0.7, 0.9, 0.95, 0.7, 0.5]
    rows = add_ranks([{"model": str(i), "scorer": "s", "auroc": a, "aupr": a} for i, a in enumerate(aurocs)])
    for r, a in zip(rows, aurocs):
        better = sum(b > a for b in aurocs)
        tied = sum(b == a for b in aurocs)
        assert r["rank"] == better + (tied + 1) / 2
    assert [r["rank"] for r in rows] == [2.5, 4.5, 2.5, 1, 4.5, 6]
    assert isinstance(rows[3]["rank"], int)  # printed as a place, not as a 100 % score
    table = format_anomaly_table([{**r, "seconds": 0.0} for r in rows])
    assert "rank" in table.splitlines()[0] and "2.5" in table
