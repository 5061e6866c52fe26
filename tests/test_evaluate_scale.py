"""Evaluation at scale: per-protocol progress (and silence without it), kNN without copies of the training
matrix (faiss on request), the linear probe in mini-batches above a size, mini-batch k-means."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch import nn

from contrastkit.evaluate import cluster_scores, kmeans_labels, knn_predict, linear_probe
from contrastkit.evaluate import linear as linear_mod
from contrastkit.evaluate._common import (ProgressReporter, ProgressTask, evaluation_progress, progress_label,
                                          progress_task, reporting_to)
from contrastkit.evaluate.embed import embed
from contrastkit.evaluate.linear import _sgd, fit_linear_probe
from contrastkit.errors import ContrastkitError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def blobs(n, d, c, sep=3.0, seed=0):
    g = np.random.default_rng(seed)
    centers = g.normal(size=(c, d)) * sep
    y = g.integers(0, c, n)
    return (centers[y] + g.normal(size=(n, d))).astype(np.float32), y


class Recorder(ProgressReporter):
    """Keeps every task: description, total, the sum of its advances, whether it was finished."""

    def __init__(self):
        self.tasks = []

    def start(self, description, total):
        rec = self

        class T(ProgressTask):
            def __init__(self):
                self.description, self.total, self.done, self.finished = description, total, 0, False
                rec.tasks.append(self)

            def advance(self, n=1):
                self.done += n

        return T()

    def finish(self, task):
        task.finished = True


def test_each_protocol_reports_its_own_progress():
    x, y = blobs(600, 8, 3)
    enc = nn.Linear(8, 4)
    rec = Recorder()
    with reporting_to(rec):
        with progress_label("encoder"):
            tr = embed(enc, torch.from_numpy(x[:500]), batch_size=64)
        te = embed(enc, torch.from_numpy(x[500:]), batch_size=64)
        knn_predict(tr, y[:500], te, ks=(5,), chunk_size=7)
        linear_probe(tr, y[:500], te, y[500:], method="sgd", epochs=3, batch_size=128)
        linear_probe(tr, y[:500], te, y[500:], method="lbfgs", max_iter=5)
        cluster_scores(te, y[500:])
    names = [t.description for t in rec.tasks]
    assert names[0] == "encoder: embedding 500 rows" and names[1] == "embedding 100 rows"
    assert [t.done for t in rec.tasks[:3]] == [500, 100, 100] and rec.tasks[2].total == 100  # rows, queries
    assert "kNN: 100 queries in 500 rows" in names[2]
    assert "SGD" in names[3] and rec.tasks[3].done == rec.tasks[3].total == 3  # epochs
    assert "L-BFGS" in names[4] and 1 <= rec.tasks[4].done <= rec.tasks[4].total  # function evaluations
    assert names[5].startswith("clustering: k-means, 3 clusters, 100 rows")
    assert all(t.finished for t in rec.tasks) and len(rec.tasks) == 6


def test_progress_is_silent_without_a_terminal_or_when_off():
    x, y = blobs(200, 4, 2)
    for console_kwargs, enabled in (({}, None), ({"force_terminal": True}, False)):
        from rich.console import Console

        out = io.StringIO()
        with evaluation_progress(enabled, console=Console(file=out, **console_kwargs)) as reporter:
            with progress_task("anything") as task:
                assert task.__class__ is ProgressTask  # the no-op
            knn_predict(x[:150], y[:150], x[150:], ks=(3,))
        assert reporter is None and out.getvalue() == ""
    with progress_task("outside any reporter") as task:  # library use: nothing installed, nothing shown
        assert task.__class__ is ProgressTask


def test_progress_lines_on_a_terminal_name_each_step():
    from rich.console import Console

    x, y = blobs(300, 4, 2)
    out = io.StringIO()
    with evaluation_progress(None, "evaluating X", console=Console(file=out, force_terminal=True, width=120)):
        knn_predict(x[:250], y[:250], x[250:], ks=(3,))
        cluster_scores(x[250:], y[250:])
    text = out.getvalue()
    assert "evaluating X" in text and "kNN: 50 queries in 250 rows" in text and "50/50" in text
    assert "clustering: k-means" in text


def test_evaluate_trained_takes_progress_false_and_stays_silent(capsys):
    from contrastkit.data.base import DataInfo, DataSplits, Dataset
    from contrastkit.evaluate.pipeline import evaluate_trained

    x, y = blobs(300, 6, 3)
    info = DataInfo(name="blobs", kind="table", shape=(6,))
    splits = DataSplits(Dataset(torch.from_numpy(x[:240]), torch.from_numpy(y[:240]), info),
                        Dataset(torch.from_numpy(x[240:]), torch.from_numpy(y[240:]), info))
    enc = nn.Linear(6, 4)
    try:
        rows, extra = evaluate_trained(enc, lambda: nn.Linear(6, 4), splits, "cpu", {}, progress=False)
    except ContrastkitError as e:  # a kind without preprocessing here: the signature is what is checked
        pytest.skip(str(e))
    assert capsys.readouterr().err == "" and rows


# ------------------------------------------------------------------------------------------------ kNN
def test_finiteness_is_checked_in_blocks_and_still_names_the_input():
    from contrastkit.evaluate._common import _all_finite, as_embedding

    x = torch.zeros(20000, 3)
    assert _all_finite(x, rows=1000)
    x[19999, 2] = float("inf")  # in the last block only
    assert not _all_finite(x, rows=1000)
    with pytest.raises(ContrastkitError, match="train_emb: contains NaN or inf"):
        as_embedding(x, "train_emb")


def test_knn_without_a_normalised_copy_equals_the_normalised_search():
    x, y = blobs(900, 16, 4, sep=0.7, seed=2)
    x[5] = 0.0  # a zero row stays a zero row (similarity 0 to everything)
    scale = np.random.default_rng(0).uniform(0.1, 50, (len(x), 1)).astype(np.float32)
    raw = knn_predict(x[:700] * scale[:700], y[:700], x[700:], ks=(1, 10, 100), chunk_size=13, backend="torch")
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    unit = knn_predict(xn[:700], y[:700], x[700:], ks=(1, 10, 100), backend="torch")
    for k in (1, 10, 100):
        assert (raw[k] == unit[k]).float().mean() >= 0.995  # the same neighbours but for float ties


def test_knn_faiss_backend_matches_torch():
    pytest.importorskip("faiss")
    x, y = blobs(3000, 16, 5, sep=0.6, seed=3)
    a = knn_predict(x[:2500], y[:2500], x[2500:], ks=(1, 20, 200), backend="torch")
    b = knn_predict(x[:2500], y[:2500], x[2500:], ks=(1, 20, 200), backend="faiss")
    for k in a:
        assert (a[k] == b[k]).float().mean() >= 0.995


def test_knn_backend_errors_name_the_fix(monkeypatch):
    from contrastkit.evaluate import knn as knn_mod

    x, y = blobs(50, 4, 2)
    with pytest.raises(ContrastkitError, match="backend='gpu'.*'auto', 'torch' or 'faiss'"):
        knn_predict(x, y, x, ks=(3,), backend="gpu")
    monkeypatch.setattr(knn_mod, "_faiss", lambda: None)
    with pytest.raises(ContrastkitError, match="pip install faiss-cpu"):
        knn_predict(x, y, x, ks=(3,), backend="faiss")
    assert len(knn_predict(x, y, x, ks=(3,))[3]) == 50  # auto: torch, faiss or not


# ------------------------------------------------------------------------------------------------ linear
def test_linear_auto_switches_to_minibatch_sgd_above_the_size(monkeypatch):
    x, y = blobs(1200, 10, 3, sep=1.5)
    kw = dict(epochs=4, batch_size=128, lr=0.5)
    small = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], **kw)
    assert small == linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], method="lbfgs")
    monkeypatch.setattr(linear_mod, "LBFGS_MAX_ELEMENTS", 1000 * 10 - 1)
    big = fit_linear_probe(x[:1000], y[:1000], **kw)
    sgd = fit_linear_probe(x[:1000], y[:1000], method="sgd", **kw)
    assert torch.equal(big.linear.weight, sgd.linear.weight)
    lbfgs = fit_linear_probe(x[:1000], y[:1000], method="lbfgs")
    assert not torch.allclose(big.linear.weight, lbfgs.linear.weight)
    assert linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], **kw) > 0.8


def test_sgd_standardises_each_batch_exactly_as_a_standardised_copy():
    x, y = blobs(700, 6, 3)
    xt, yt = torch.from_numpy(x) * 7 + 3, torch.from_numpy(y)
    mean, std = xt.mean(0), xt.std(0, unbiased=False)
    with torch.enable_grad():
        w1, b1 = _sgd(xt, yt, 3, 1e-4, 3, 0.5, 64, 0, mean, std, ProgressTask())
        w2, b2 = _sgd((xt - mean) / std, yt, 3, 1e-4, 3, 0.5, 64, 0, torch.zeros(6), torch.ones(6), ProgressTask())
    assert torch.equal(w1, w2) and torch.equal(b1, b2)


# ------------------------------------------------------------------------------------------------ clustering
def test_minibatch_kmeans_above_the_threshold_finds_the_blobs():
    x, y = blobs(3000, 8, 4, sep=4.0, seed=5)
    full = kmeans_labels(x, 4, seed=0)
    mini = kmeans_labels(x, 4, seed=0, minibatch_above=1000)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(y, full) > 0.95 and adjusted_rand_score(y, mini) > 0.95


def test_the_end_of_run_table_names_whose_features_each_progress_line_is_about():
    from contrastkit.data import load_data
    from contrastkit.encoders import create_encoder
    from contrastkit.evaluate.protocol import evaluation_table

    splits = load_data("digits", {"test_fraction": 0.2, "seed": 0})
    make = lambda: create_encoder("mlp", splits.info)
    rec = Recorder()
    with reporting_to(rec):
        evaluation_table(make(), make, splits, torch.device("cpu"), knn_ks=(5,))
    names = [t.description for t in rec.tasks]
    for who in ("encoder", "random init"):
        assert sum(n.startswith(f"{who}: embedding") for n in names) == 2
    for who in ("encoder", "random init", "raw input"):
        assert any(n.startswith(f"{who}: kNN") for n in names) and any(n.startswith(f"{who}: linear") for n in names)
