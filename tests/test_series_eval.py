"""Series evaluation: vectorised DTW against a plain double loop; the end-of-run table's schema and baselines."""

from typing import ClassVar

import numpy as np
import pytest
import torch
from sklearn.svm import SVC

from contrastkit.data.series import series_splits
from contrastkit.encoders import create_encoder
from contrastkit.evaluate import series as series_eval
from contrastkit.evaluate.protocol import EVALUATIONS
from contrastkit.evaluate.series import dtw_1nn, dtw_distances, one_nn_accuracy, svm_accuracy

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def ref_dtw(x, y, w=None):
    n, m = x.shape[1], y.shape[1]
    d = np.full((n + 1, m + 1), np.inf)
    d[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if w is not None and abs(i - j) > w:
                continue
            c = ((x[:, i - 1] - y[:, j - 1]) ** 2).sum()
            d[i, j] = c + min(d[i - 1, j], d[i, j - 1], d[i - 1, j - 1])
    return d[n, m]


@pytest.mark.parametrize("window", [None, 0, 1, 3])
def test_dtw_matches_double_loop_equal_lengths(window):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 2, 11, generator=g), torch.randn(3, 2, 9, generator=g)
    b = torch.cat([b, torch.randn(3, 2, 2, generator=g)], 2)  # equal lengths (11)
    d = dtw_distances(a, b, window=window)
    ref = np.array([[ref_dtw(a[i].double().numpy(), b[j].double().numpy(), window) for j in range(3)]
                    for i in range(4)])
    np.testing.assert_allclose(d.numpy(), ref, rtol=1e-5)
    if window == 0:  # a zero band is the squared Euclidean distance
        np.testing.assert_allclose(d.numpy(), torch.cdist(a.flatten(1), b.flatten(1)).pow(2).numpy(), rtol=1e-5)


def test_dtw_unequal_lengths_and_chunking():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 3, 14, generator=g), torch.randn(4, 3, 10, generator=g)
    la, lb = torch.tensor([14, 6, 9, 1, 12]), torch.tensor([10, 3, 7, 10])
    for x, lens in ((a, la), (b, lb)):
        x[torch.arange(x.shape[2])[None, None, :].expand_as(x) >= lens[:, None, None]] = float("nan")
    ref = np.array([[ref_dtw(a[i, :, : la[i]].double().numpy(), b[j, :, : lb[j]].double().numpy())
                     for j in range(4)] for i in range(5)])
    np.testing.assert_allclose(dtw_distances(a, b).numpy(), ref, rtol=1e-5)
    np.testing.assert_allclose(dtw_distances(a, b, max_elements=1).numpy(), ref, rtol=1e-5)  # one row at a time
    assert torch.allclose(dtw_distances(a, a).diagonal(), torch.zeros(5))


def test_dtw_1nn_on_shifted_shapes():
    # class = shape (bump vs. dip) at a random position
    rng = np.random.default_rng(0)
    t = np.arange(60)

    def make(n):
        y = rng.integers(0, 2, n)
        centres = rng.integers(15, 45, n)
        x = np.exp(-0.5 * ((t[None] - centres[:, None]) / 3.0) ** 2) * np.where(y == 1, 1, -1)[:, None]
        return torch.as_tensor(x + 0.05 * rng.normal(size=x.shape), dtype=torch.float32)[:, None], torch.as_tensor(y)

    xtr, ytr = make(20)
    xte, yte = make(40)
    acc, label = dtw_1nn(xtr, ytr, xte, yte)
    assert label == "1-NN DTW (full window)" and acc >= 0.95
    assert one_nn_accuracy(torch.cdist(xte.flatten(1), xtr.flatten(1)), ytr, yte) <= acc
    _, label = dtw_1nn(xtr, ytr, xte, yte, max_cells=10)
    assert label == "1-NN DTW (window 10%)"


def test_dtw_skipped_when_even_the_band_is_too_costly(monkeypatch):
    import contrastkit.evaluate.series as ev

    monkeypatch.setattr(ev, "DTW_MAX_BANDED_CELLS", 10.0)
    x, y = torch.randn(4, 1, 30), torch.arange(4) % 2
    assert dtw_1nn(x, y, x, y, max_cells=10) == ("skipped (too costly)", "1-NN DTW (window 10%)")


def _two_blobs(n, seed=0):
    g = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return torch.from_numpy(g.normal(size=(n, 6)) + 3.0 * y[:, None]), torch.from_numpy(y)


class _RecordingSVC(SVC):
    """sklearn's SVC, recording every fit's C and max_iter; a C = ∞ fit fails as a capped hard-margin fit does
    (scikit-learn: "dual coefficients ... not finite")."""

    fits: ClassVar[list] = []

    def fit(self, x, y):
        _RecordingSVC.fits.append((self.C, self.max_iter))
        if np.isinf(self.C):
            raise ValueError("The dual coefficients or intercepts are not finite.")
        return super().fit(x, y)


@pytest.mark.parametrize("n", [30, 80])  # below 50 series: C = ∞ alone; above: the 5-fold grid search
def test_svm_every_fit_is_capped_and_a_failed_hard_margin_falls_back(monkeypatch, n):
    import sklearn.svm

    monkeypatch.setattr(sklearn.svm, "SVC", _RecordingSVC)
    _RecordingSVC.fits = []
    xtr, ytr = _two_blobs(n)
    xte, yte = _two_blobs(40, seed=1)
    acc = svm_accuracy(xtr, ytr, xte, yte)
    assert acc > 0.9  # answered from a finite C
    assert _RecordingSVC.fits and all(it == series_eval.SVM_MAX_ITER for _, it in _RecordingSVC.fits)
    cs = [c for c, _ in _RecordingSVC.fits]
    assert np.inf in cs
    if n < 50:
        assert cs == [np.inf, series_eval.SVM_GRID[-2]]  # the hard margin, then the largest finite C
    else:
        assert set(cs) == set(series_eval.SVM_GRID)  # every candidate tried; the failed one did not win


def test_svm_matches_the_uncapped_search_where_it_converges():
    from sklearn.model_selection import GridSearchCV

    xtr, ytr = _two_blobs(80)
    xte, yte = _two_blobs(60, seed=2)
    ref = GridSearchCV(SVC(gamma="scale"), {"C": series_eval.SVM_GRID}, cv=5).fit(xtr.numpy(), ytr.numpy())
    assert svm_accuracy(xtr, ytr, xte, yte) == float((ref.predict(xte.numpy()) == yte.numpy()).mean())


def test_series_evaluation_table():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2, 24)) + np.repeat(np.arange(2), 20)[:, None, None]
    y = np.repeat(np.arange(2), 20)
    order = rng.permutation(40)
    s = series_splits("toy", x[order[:24]], y[order[:24]], x[order[24:]], y[order[24:]])

    def make_enc():
        torch.manual_seed(0)
        return create_encoder("resnet1d", s.info, width=4)

    rows, extra = EVALUATIONS.get("series")(make_enc(), make_enc, s, torch.device("cpu"), {})
    metrics = [r["metric"] for r in rows]
    assert metrics == ["SVM (RBF)", "linear probe", "1-NN Euclidean", "1-NN DTW (full window)"]
    for r in rows[:3]:
        assert set(r) == {"metric", "encoder", "random init", "raw input"}
        assert all(0 <= r[k] <= 1 for k in ("encoder", "random init", "raw input"))
    assert rows[2]["raw input"] == 1.0 and rows[3]["raw input"] == 1.0  # the classes are 2σ apart
    assert extra["test_emb"].shape == (16, 8) and "1nn dtw" in extra["timings"]
    unlabelled = series_splits("u", x[:20], None, x[20:], None)
    rows, extra = EVALUATIONS.get("series")(make_enc(), make_enc, unlabelled, torch.device("cpu"), {})
    assert rows == [] and extra["test_emb"].shape[0] == 20


def test_forecast_rows():
    from contrastkit.evaluate.series import forecast_rows, forecast_split

    x = torch.arange(12.0).reshape(2, 1, 6).clone()
    x[1, :, 5:] = float("nan")  # second series: 5 steps
    window, target, last = forecast_split(x, 2)
    assert torch.equal(target, torch.tensor([[4.0, 5.0], [9.0, 10.0]]))
    assert torch.equal(torch.nan_to_num(window, -1), torch.tensor([[[0.0, 1, 2, 3]], [[6.0, 7, 8, -1]]]))
    assert torch.equal(last, torch.tensor([[[1.0, 2, 3]], [[6.0, 7, 8]]]))
    # sine waves with random phase: ridge on the raw window beats the last value
    rng = np.random.default_rng(0)
    t = np.arange(40)
    phase = rng.uniform(0, 6.28, (60, 1))
    s = series_splits("sin", np.sin(0.3 * t + phase[:40]), None, np.sin(0.3 * t + phase[40:]), None)
    torch.manual_seed(0)
    enc = create_encoder("resnet1d", s.info, width=4)
    rows = forecast_rows({"encoder": enc}, s, 3, torch.device("cpu"))
    assert [r["metric"] for r in rows] == ["forecast MSE (H=3), ridge", "forecast MSE (H=3), last value"]
    assert float(rows[0]["raw input"]) < 0.01 < float(rows[1]["raw input"]) and rows[1]["encoder"] == "—"
    assert set(rows[0]) == set(rows[1]) == {"metric", "encoder", "raw input"}
    rows, _ = EVALUATIONS.get("series")(enc, lambda: enc, s, torch.device("cpu"), {"forecast_horizon": 3})
    assert [r["metric"] for r in rows] == ["forecast MSE (H=3), ridge", "forecast MSE (H=3), last value"]
