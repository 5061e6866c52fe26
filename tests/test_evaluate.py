"""contrastkit.evaluate metrics: hand-computed tiny cases, slow reference loops, and scikit-learn equality."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import (adjusted_rand_score, average_precision_score, normalized_mutual_info_score,
                             roc_auc_score)

from contrastkit.errors import ContrastkitError
from contrastkit.evaluate import (alignment, anomaly_score_values, anomaly_scores, cluster_scores,
                                  clustering_accuracy, collapse_warning, diagnostics, effective_rank,
                                  fit_linear_probe, kmeans_labels, knn_accuracies, knn_accuracy, knn_predict,
                                  label_retrieval_scores, linear_probe, map_at_r, normalized_std,
                                  per_class_auroc, retrieval_recall, uniformity)
from contrastkit.evaluate._common import MAX_BLOCK_ELEMENTS, chunk_rows


def blobs(n, d, c, sep=4.0, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(c, d)) * sep
    y = g.integers(0, c, n)
    return (centers[y] + g.normal(size=(n, d))).astype(np.float32), y


# ------------------------------------------------------------------------------------------------ kNN
# query [1, 0]; neighbours by cosine: [1,0] (class 0, sim 1), [.8,.6] (class 1, .8), [.6,.8] (class 1, .6)
KNN_TRAIN = np.array([[1, 0], [0.8, 0.6], [0.6, 0.8], [-1, 0]], dtype=np.float32)
KNN_Y = np.array([0, 1, 1, 0])
KNN_Q = np.array([[2.0, 0.0]], dtype=np.float32)  # not unit length: knn must normalise


def test_knn_weighted_vs_majority_hand_case():
    # k=3, t=0.1: class 0 weight e^10 > class 1 weight e^8 + e^6 → 0; majority vote: 2 votes for class 1
    assert knn_predict(KNN_TRAIN, KNN_Y, KNN_Q, ks=(3,), t=0.1)[3].tolist() == [0]
    assert knn_predict(KNN_TRAIN, KNN_Y, KNN_Q, ks=(3,), weighted=False)[3].tolist() == [1]
    # a large temperature flattens the weights → majority again
    assert knn_predict(KNN_TRAIN, KNN_Y, KNN_Q, ks=(3,), t=100.0)[3].tolist() == [1]
    # k=1: the nearest neighbour's class; tiny t must not overflow
    assert knn_predict(KNN_TRAIN, KNN_Y, KNN_Q, ks=(1,), t=1e-4)[1].tolist() == [0]
    assert knn_accuracy(torch.from_numpy(KNN_TRAIN), torch.from_numpy(KNN_Y), KNN_Q, [0], k=3) == 1.0
    assert knn_accuracy(KNN_TRAIN, KNN_Y, KNN_Q, [0], k=3, weighted=False) == 0.0


def _knn_reference(tr, ytr, te, k, t, weighted, c):
    tr = tr / np.linalg.norm(tr, axis=1, keepdims=True)
    te = te / np.linalg.norm(te, axis=1, keepdims=True)
    out = []
    for q in te:
        s = tr @ q
        nn = np.argsort(-s, kind="stable")[:k]
        score = np.zeros(c)
        for j in nn:
            score[ytr[j]] += math.exp(s[j] / t) if weighted else 1.0
        out.append(int(np.argmax(score)))
    return np.array(out)


@pytest.mark.parametrize("weighted", [True, False])
def test_knn_matches_slow_reference(weighted):
    x, y = blobs(400, 8, 5, sep=0.8, seed=1)
    tr, ytr, te = x[:300], y[:300], x[300:]
    preds = knn_predict(tr, ytr, te, ks=(1, 7, 50), t=0.5, weighted=weighted, chunk_size=17)
    for k in (1, 7, 50):
        ref = _knn_reference(tr, ytr, te, k, 0.5, weighted, 5)
        assert (preds[k].numpy() == ref).mean() >= 0.99  # only exact float ties may differ


def test_knn_accuracies_share_search_and_accept_torch_and_numpy():
    x, y = blobs(600, 16, 4, sep=1.0, seed=2)
    accs = knn_accuracies(x[:400], y[:400], x[400:], y[400:], ks=(5, 20))
    assert set(accs) == {5, 20}
    for k, a in accs.items():
        assert a == knn_accuracy(torch.from_numpy(x[:400]), torch.from_numpy(y[:400]), x[400:], y[400:], k=k)
        assert 0.5 < a <= 1.0


def test_string_labels_share_one_coding_between_train_and_test():
    names = np.array(["cat", "dog", "emu", "fox"])
    x, y = blobs(400, 8, 4, sep=5.0, seed=8)
    # the test split lacks "cat": separate codings would shift every test label by one
    test = y[300:] != 0
    a = knn_accuracy(x[:300], names[y[:300]], x[300:][test], names[y[300:][test]], k=5)
    b = linear_probe(x[:300], names[y[:300]], x[300:][test], names[y[300:][test]])
    assert a > 0.9 and b > 0.9


def test_knn_bad_input():
    with pytest.raises(ContrastkitError, match="larger than the number"):
        knn_accuracy(KNN_TRAIN, KNN_Y, KNN_Q, [0], k=10)
    with pytest.raises(ContrastkitError, match="temperature"):
        knn_accuracy(KNN_TRAIN, KNN_Y, KNN_Q, [0], k=1, t=0)
    with pytest.raises(ContrastkitError, match="labels"):
        knn_accuracy(KNN_TRAIN, KNN_Y[:3], KNN_Q, [0], k=1)
    with pytest.raises(ContrastkitError, match="NaN"):
        knn_accuracy(KNN_TRAIN, KNN_Y, np.array([[np.nan, 1.0]]), [0], k=1)
    with pytest.raises(ContrastkitError, match="dimension"):
        knn_accuracy(KNN_TRAIN, KNN_Y, np.ones((1, 3)), [0], k=1)


def test_chunks_bound_memory_at_100k():
    assert chunk_rows(100_000, 1024) * 100_000 <= MAX_BLOCK_ELEMENTS
    assert chunk_rows(1_000, 1024) == 1024


# --------------------------------------------------------------------------------------- linear probe
def test_linear_probe_separable_and_deterministic():
    g = np.random.default_rng(3)
    x = g.normal(size=(3000, 32)).astype(np.float32)
    w = g.normal(size=(32, 4))
    y = np.argmax(x @ w, axis=1)  # linearly separable by construction
    a1 = linear_probe(x[:2000], y[:2000], x[2000:], y[2000:])
    a2 = linear_probe(torch.from_numpy(x[:2000]), torch.from_numpy(y[:2000]), x[2000:], y[2000:])
    assert a1 >= 0.97
    assert a1 == a2
    p1 = fit_linear_probe(x[:2000], y[:2000])
    p2 = fit_linear_probe(x[:2000], y[:2000])
    assert torch.equal(p1.linear.weight, p2.linear.weight)
    assert (p1.predict(x[:2000]).numpy() == y[:2000]).mean() >= 0.99


def test_linear_probe_sgd_and_constant_feature():
    x, y = blobs(2000, 16, 5, sep=2.0, seed=4)
    x[:, 3] = 7.0  # constant column: must not produce NaN
    a = linear_probe(x[:1500], y[:1500], x[1500:], y[1500:], method="sgd", epochs=5, batch_size=256)
    b = linear_probe(x[:1500], y[:1500], x[1500:], y[1500:], method="sgd", epochs=5, batch_size=256)
    assert a == b and a >= 0.95
    with pytest.raises(ContrastkitError, match="method"):
        linear_probe(x, y, x, y, method="adam")


# ----------------------------------------------------------------------------------------- clustering
def test_clustering_accuracy_hand_case():
    # best mapping: cluster 1→class 0, 0→1, 2→2 → 5 of 6 right
    assert clustering_accuracy([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 0, 2]) == pytest.approx(5 / 6)
    assert clustering_accuracy([0, 0, 1, 1], [5, 5, 9, 9]) == 1.0
    # more clusters than classes: unmatched clusters count as wrong
    assert clustering_accuracy([0, 0, 0, 1], [0, 1, 2, 3]) == pytest.approx(2 / 4)
    assert clustering_accuracy(torch.tensor([0, 1]), np.array([1, 0])) == 1.0


def test_nmi_ari_equal_sklearn_random_and_separated():
    x, y = blobs(600, 8, 4, sep=0.6, seed=5)  # overlapping → imperfect clustering
    s = cluster_scores(x, y)
    pred = kmeans_labels(x, 4)
    nmi = normalized_mutual_info_score(y, pred, average_method="arithmetic")
    assert s["nmi"] == pytest.approx(nmi, abs=1e-12)
    assert s["ari"] == pytest.approx(adjusted_rand_score(y, pred), abs=1e-12)
    assert s["acc"] == pytest.approx(clustering_accuracy(y, pred))
    assert 0 < s["nmi"] < 1 and s["ari"] < 1
    assert cluster_scores(x, y) == s  # fixed seed → deterministic
    # well separated, label ids permuted: everything 1
    x, y = blobs(300, 8, 3, sep=20.0, seed=6)
    s = cluster_scores(x, (y + 1) % 3)
    assert s["acc"] == s["nmi"] == s["ari"] == s["f1"] == pytest.approx(1.0)


def test_cluster_scores_hand_case_independent_clusters():
    # rows 0, 2 sit at A and rows 1, 3 at B, so k-means finds {0, 2} and {1, 3}; labels are {0, 1} vs {2, 3}.
    # Contingency [[1, 1], [1, 1]]: mutual information 0 → NMI 0; ARI = (0 − 2·2/6) / (2 − 2·2/6) = −1/2
    x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    s = cluster_scores(x, [0, 0, 1, 1])
    assert s["nmi"] == pytest.approx(0.0, abs=1e-12)
    assert s["ari"] == pytest.approx(-0.5)
    assert s["acc"] == pytest.approx(0.5)


# -------------------------------------------------------------------------------------------- anomaly
def test_anomaly_hand_scores():
    tr = np.array([[1.0, 0.0], [0.0, 2.0]])
    # centroid = normalize(mean of normalised rows) = [1, 1]/√2 → score of [1, 0] = −1/√2
    s = anomaly_score_values(tr, np.array([[3.0, 0.0]]), "centroid")
    assert s[0] == pytest.approx(-1 / math.sqrt(2), abs=1e-6)
    tr = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # knn, k=2: top sims 1 and 0 → 1 − 0.5
    assert anomaly_score_values(tr, np.array([[1.0, 0.0]]), "knn", k=2)[0] == pytest.approx(0.5, abs=1e-6)


def test_anomaly_auroc_equals_sklearn():
    g = np.random.default_rng(7)
    normal = g.normal(size=(300, 16)) + 3.0
    test = np.concatenate([g.normal(size=(100, 16)) + 3.0, g.normal(size=(60, 16)) + 1.5 * g.normal(size=16)])
    is_anom = np.r_[np.zeros(100), np.ones(60)]
    for scorer in ("centroid", "knn"):
        out = anomaly_scores(torch.tensor(normal), test, is_anom, scorer=scorer, k=5)
        s = anomaly_score_values(normal, test, scorer, k=5)
        assert out["auroc"] == pytest.approx(roc_auc_score(is_anom, s), abs=1e-12)
        assert out["aupr"] == pytest.approx(average_precision_score(is_anom, s), abs=1e-12)
        assert out["auroc"] > 0.8


def test_per_class_auroc_hand_case():
    scores = np.array([0.0, 1.0, 2.0, 3.0, 0.5, -1.0])
    is_anom = np.array([0, 0, 1, 1, 1, 1])
    cls = np.array([-1, -1, 0, 0, 1, 1])
    per = per_class_auroc(scores, is_anom, cls)
    # class 0 above every normal → 1; class 1: of 4 (normal, anomaly) pairs only (0, 0.5) ranked right → 1/4
    assert per == {0: 1.0, 1: 0.25}
    tr = np.array([[1.0, 0.0]] * 3)
    test = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.1]])
    out = anomaly_scores(tr, test, [0, 0, 1, 1], anomaly_class=["x", "x", "a", "b"])
    assert out["auroc"] == 1.0 and out["balanced_auroc"] == 1.0
    with pytest.raises(ContrastkitError, match="both normal and anomalous"):
        anomaly_scores(tr, test, [0, 0, 0, 0])


# ------------------------------------------------------------------------------------------ retrieval
def test_recall_at_k_hand_case():
    a = np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    b = np.array([[0.8, 0.6], [0, 1], [1, 0]], dtype=np.float32)
    # a→b ranks of the true partner: 1, 0, 2 ; b→a: 1, 0, 1
    r = retrieval_recall(a, b, ks=(1, 2, 3))
    assert r["a2b_r1"] == pytest.approx(1 / 3) and r["a2b_r2"] == pytest.approx(2 / 3) and r["a2b_r3"] == 1.0
    assert r["b2a_r1"] == pytest.approx(1 / 3) and r["b2a_r2"] == 1.0
    assert r["mean_r1"] == pytest.approx(1 / 3) and r["mean_r2"] == pytest.approx(5 / 6)
    assert retrieval_recall(torch.tensor(a), torch.tensor(b), ks=(1, 2, 3), chunk_size=1) == r
    # ties count against the query: collapsed embeddings retrieve nothing at rank 1
    same = np.ones((4, 3))
    assert retrieval_recall(same, same, ks=(1,))["mean_r1"] == 0.0
    x = np.random.default_rng(0).normal(size=(50, 8))
    assert retrieval_recall(x, x + 1e-3, ks=(1,))["mean_r1"] == 1.0


def test_map_at_r_hand_case():
    # points on the unit circle; label 0 at 0°, 10°, 100°; label 1 at 25°, 200°
    deg = np.radians([0.0, 10.0, 100.0, 25.0, 200.0])
    x = np.stack([np.cos(deg), np.sin(deg)], 1)
    y = [0, 0, 0, 1, 1]
    # per-query AP@R: 0°: [rel, not] → 1/2 ; 10°: [rel, not] → 1/2 ; 100°: [not, rel] → (1/2)(1/2) ;
    # 25° and 200° (R=1): nearest is label 0 → 0.   MAP@R = 1.25 / 5
    assert map_at_r(x, y) == pytest.approx(0.25)
    s = label_retrieval_scores(x, y, chunk_size=2)
    assert s["map_at_r"] == pytest.approx(0.25)
    assert s["precision_at_1"] == pytest.approx(2 / 5)
    assert s["r_precision"] == pytest.approx(1.5 / 5)
    # a singleton label is left out of the average; perfect clusters give 1
    x2, y2 = blobs(60, 4, 3, sep=30.0, seed=1)
    assert map_at_r(np.vstack([x2, np.ones((1, 4))]), np.r_[y2, 99]) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------- diagnostics
def test_effective_rank_extremes():
    g = torch.Generator().manual_seed(0)
    u, v = torch.randn(500, 1, generator=g), torch.randn(1, 64, generator=g)
    assert effective_rank(u @ v) == pytest.approx(1.0, abs=1e-3)
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=g, dtype=torch.float64))
    assert effective_rank(q.float()) == pytest.approx(32.0, rel=1e-4)
    assert effective_rank(np.eye(16)) == pytest.approx(16.0, rel=1e-4)


def test_uniformity_alignment_std_match_definitions():
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.normalize(torch.randn(200, 8, generator=g), dim=1)
    ref = torch.pdist(x.double()).pow(2).mul(-2).exp().mean().log()
    assert uniformity(x) == pytest.approx(float(ref), abs=1e-5)
    assert uniformity(torch.ones(10, 4)) == pytest.approx(0.0, abs=1e-6)
    y = x + 0.1 * torch.randn(200, 8, generator=g)
    yn = torch.nn.functional.normalize(y, dim=1)
    assert alignment(x, y) == pytest.approx(float((x - yn).norm(dim=1).pow(2).mean()), rel=1e-5)
    d = diagnostics(x, y)
    assert set(d) == {"alignment", "uniformity", "eff_rank", "std", "std_ref", "n", "dim"}
    assert d["std_ref"] == pytest.approx(1 / math.sqrt(8))
    assert d["std"] == pytest.approx(normalized_std(x)) and 0.5 * d["std_ref"] < d["std"] < 1.5 * d["std_ref"]


def test_collapse_warning():
    g = torch.Generator().manual_seed(2)
    n, d = 2000, 128
    healthy = torch.randn(n, d, generator=g)
    assert collapse_warning(diagnostics(healthy), d) is None
    assert collapse_warning(diagnostics(torch.randn(500, 2, generator=g)), 2) is None  # tiny but healthy
    assert collapse_warning(diagnostics(torch.randn(20, d, generator=g)), d) is None  # n < d
    same = torch.randn(1, d, generator=g).repeat(n, 1) + 1e-4 * torch.randn(n, d, generator=g)
    msg = collapse_warning(diagnostics(same), d)
    assert msg is not None and "complete collapse" in msg and "effective rank" in msg
    rank1 = torch.randn(n, 1, generator=g) @ torch.randn(1, d, generator=g)
    msg = collapse_warning(diagnostics(rank1), d)
    assert msg is not None and "dimensional collapse" in msg
    low = torch.randn(n, 4, generator=g) @ torch.randn(4, d, generator=g)  # uses 4 of 128 directions
    assert "dimensional collapse" in collapse_warning(diagnostics(low), d)
    assert collapse_warning({}, d) is None
