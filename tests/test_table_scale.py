"""Tables larger than memory: read in chunks (forced here with stream: true and tiny chunks), checked like the
in-memory loader, cached as float32 and streamed; the same rows, labels and features as in memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from contrastkit.data import load_data
from contrastkit.data import table as table_mod
from contrastkit.data.stream import Rows, StreamingDataset
from contrastkit.errors import ContrastkitError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def frame(n=403, seed=0):
    g = np.random.default_rng(seed)
    return pd.DataFrame({
        "id": np.arange(n),
        "a": g.normal(5, 3, n).round(4),
        "b": g.integers(0, 1000, n),
        "proto": g.choice(["tcp", "udp", "icmp"], n),
        "c": g.exponential(2.0, n).round(3),
        "label": g.choice(["normal", "normal", "normal", "attack", "scan"], n),
    })


@pytest.fixture
def small_chunks(monkeypatch, tmp_path):
    monkeypatch.setattr(table_mod, "CHUNK_ROWS", 37)  # 403 rows → 11 chunks, the last one partial
    return {"cache_dir": str(tmp_path / "cache")}


def same_splits(mem, disk):
    assert isinstance(disk.train, StreamingDataset) and isinstance(disk.train.x, Rows)
    assert disk.info.extra["columns"] == mem.info.extra["columns"]
    assert disk.info.extra["vocab"] == mem.info.extra["vocab"]
    assert disk.info.extra["mean"] == pytest.approx(mem.info.extra["mean"], rel=1e-12)
    assert disk.info.extra["std"] == pytest.approx(mem.info.extra["std"], rel=1e-12)
    for a, b in ((mem.train, disk.train), (mem.test, disk.test)):
        assert b.x.shape == a.x.shape and b.x.dtype == torch.float32
        assert torch.allclose(b.x[:], a.x, rtol=0, atol=1e-6)  # statistics equal to rounding
        assert (a.y is None and b.y is None) or torch.equal(a.y, b.y)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_table_read_in_chunks_is_the_in_memory_table(tmp_path, small_chunks, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"flows{suffix}"
    df = frame()
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path, index=False)
    cfg = {"label_column": "label", "drop_columns": ["id"], "categorical_columns": ["b"], "seed": 4, **small_chunks}
    mem = load_data(str(path), {**cfg, "stream": False})
    disk = load_data(str(path), {**cfg, "stream": True})
    same_splits(mem, disk)
    assert disk.info.extra["categorical_columns"] == ["proto", "b"] or "b" in disk.info.extra["categorical_columns"]
    index = torch.tensor([5, 0, 77, 5])
    assert torch.equal(disk.train.batch(index).x, disk.train.x[:][index])


def test_anomaly_split_and_class_ids_match_in_memory(tmp_path, small_chunks):
    path = tmp_path / "flows.csv"
    frame().to_csv(path, index=False)
    cfg = {"label_column": "label", "anomaly_label": ["attack", "scan"], "drop_columns": ["id"], **small_chunks}
    mem = load_data(str(path), {**cfg, "stream": False})
    disk = load_data(str(path), {**cfg, "stream": True})
    same_splits(mem, disk)
    assert int(disk.train.y.sum()) == 0 and disk.test.y.sum() > 0  # training sees normal rows only
    assert disk.test.info.extra["class_ids"] == mem.test.info.extra["class_ids"]


def test_the_cache_is_reused_and_checks_run_on_every_chunk(tmp_path, small_chunks, monkeypatch):
    path = tmp_path / "t.csv"
    df = frame()
    df.to_csv(path, index=False)
    cfg = {"label_column": "label", "stream": True, **small_chunks}
    first = load_data(str(path), cfg)
    monkeypatch.setattr(table_mod, "_streamed_schema", lambda *a, **k: pytest.fail("cache not reused"))
    again = load_data(str(path), cfg)
    assert torch.equal(first.train.x[:], again.train.x[:])
    monkeypatch.undo()
    monkeypatch.setattr(table_mod, "CHUNK_ROWS", 37)
    df["a"] = df["a"].astype(object)
    df.loc[300, "a"] = "oops"  # in the 9th chunk: kinds come from the first one, the check still sees it
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    with pytest.raises(ContrastkitError, match=r"chunk of rows from 296.*column 'a'.*'oops'"):
        load_data(str(bad), cfg)
    df = frame()
    df.loc[390, "c"] = np.nan
    df.to_csv(bad, index=False)
    with pytest.raises(ContrastkitError, match=r"column 'c' has 1 missing"):
        load_data(str(bad), cfg)


def test_settings_a_streamed_table_cannot_honour_are_clear_errors(tmp_path, small_chunks):
    path = tmp_path / "t.csv"
    frame().to_csv(path, index=False)
    for extra, what in (({"impute": True}, "impute"), ({"scaler": "quantile"}, "scaler: quantile")):
        with pytest.raises(ContrastkitError, match=f"does not support {what}.*--stream false"):
            load_data(str(path), {"label_column": "label", "stream": True, **extra, **small_chunks})
    with pytest.raises(ContrastkitError, match="neither a .npy file nor a .csv"):
        (tmp_path / "x.json").write_text("{}")
        load_data(str(tmp_path / "x.json"), {"stream": True})


def test_auto_keeps_small_tables_in_memory(tmp_path, small_chunks):
    path = tmp_path / "t.csv"
    frame().to_csv(path, index=False)
    splits = load_data(str(path), {"label_column": "label", **small_chunks})
    assert not isinstance(splits.train, StreamingDataset) and isinstance(splits.train.x, torch.Tensor)


def test_a_streamed_table_trains_and_evaluates(tmp_path, small_chunks):
    from contrastkit.api import pretrain

    path = tmp_path / "t.csv"
    frame(600).to_csv(path, index=False)
    common = dict(data=str(path), label_column="label", anomaly_label=["attack", "scan"], drop_columns=["id"],
                  epochs=2, batch_size=64, device="cpu", precision="fp32", monitor_every=0, log_every=5,
                  method="clan", aug_range="fixed", **small_chunks)  # "train" fits on the whole table: see below
    a = pretrain(progress=False, stream=False, out=str(tmp_path / "a"), **{**common, "evaluate": False})
    b = pretrain(progress=False, stream=True, out=str(tmp_path / "b"), **{**common, "evaluate": True})
    assert a.steps == b.steps
    sa, sb = a.method.state_dict(), b.method.state_dict()
    assert all(torch.allclose(sa[k], sb[k], atol=1e-4) for k in sa)  # same batches; features equal to rounding
    assert b.eval_rows and all(0 <= r["auroc"] <= 1 for r in b.eval_rows)
    # what aug_range: train needs, computed while the cache was written: the in-memory training range
    mem = load_data(str(path), {**{k: common[k] for k in ("label_column", "anomaly_label", "drop_columns")},
                                "stream": False})
    assert b.splits.info.extra["feature_min"] == mem.train.x.min(0).values.tolist()
    assert b.splits.info.extra["feature_max"] == pytest.approx(mem.train.x.max(0).values.tolist(), abs=1e-6)


def test_scarf_views_of_a_streamed_table_sample_their_pool_and_whole_split_code_says_so(tmp_path, small_chunks,
                                                                                         monkeypatch):
    from contrastkit.api import pretrain
    from contrastkit.views import tabular

    path = tmp_path / "t.csv"
    frame(300).to_csv(path, index=False)
    monkeypatch.setattr(tabular, "STREAMED_POOL_ROWS", 50)
    run = pretrain(progress=False, data=str(path), label_column="label", stream=True, method="simclr", epochs=1,
                   batch_size=32, device="cpu", out=str(tmp_path / "s"), evaluate=False, **small_chunks)
    pools = [m.pool for m in run.method.modules() if isinstance(m, tabular.ScarfCorruption)]
    assert pools and all(p.shape == (50, run.splits.info.shape[0]) for p in pools)
    # every pooled row is a training row
    train = run.splits.train.x[:]
    assert all(any(torch.equal(row, t) for t in train) for row in pools[0][:5])
    with pytest.raises(ContrastkitError, match="needs the whole training split.*--stream false"):
        run.splits.train.x.detach()


def test_numeric_labels_read_in_chunks_match_in_memory_and_a_missing_one_names_its_row(tmp_path, small_chunks):
    path = tmp_path / "n.csv"
    df = frame().drop(columns=["label"])
    df["label"] = np.where(np.arange(len(df)) % 9 == 0, 1, 0)  # an integer label column, anomalies = 1
    df.to_csv(path, index=False)
    cfg = {"label_column": "label", "anomaly_label": "1.0", "drop_columns": ["id"], **small_chunks}
    mem = load_data(str(path), {**cfg, "stream": False})
    disk = load_data(str(path), {**cfg, "stream": True})
    same_splits(mem, disk)
    assert disk.info.extra["classes"] == mem.info.extra["classes"] == ["0", "1"]
    df["label"] = df["label"].astype(float)
    df.loc[200, "label"] = np.nan
    df.to_csv(path, index=False)
    with pytest.raises(ContrastkitError, match="label_column 'label' is missing at row 200"):
        load_data(str(path), {**cfg, "stream": True})


@pytest.mark.parametrize("method", ["clan", "csi"])
def test_shifted_rows_on_a_streamed_table_use_the_range_saved_with_its_cache(tmp_path, small_chunks, method):
    from contrastkit.api import pretrain

    path = tmp_path / "t.csv"
    frame(300).to_csv(path, index=False)
    run = pretrain(progress=False, data=str(path), label_column="label", anomaly_label=["attack", "scan"],
                   drop_columns=["id"], stream=True, method=method, epochs=1, batch_size=32, device="cpu",
                   out=str(tmp_path / method), evaluate=False, **small_chunks)
    shift = run.method.augment if method == "clan" else run.method.shift
    assert shift.range_source == "train"
    assert shift.low.tolist() == pytest.approx(run.splits.info.extra["feature_min"], abs=1e-6)
