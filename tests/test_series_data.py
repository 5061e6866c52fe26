"""Series sources: arrays, .npy/.npz routing (images unchanged), unequal lengths, bundled UCR/UEA, bad input."""

import importlib.util

import numpy as np
import pytest
import torch

from contrastkit.data import load_data
from contrastkit.data.series import is_series_array, read_ts, series_lengths, series_splits
from contrastkit.errors import ContrastkitError

HAS_SKTIME = importlib.util.find_spec("sktime") is not None


def test_nct_and_nt_arrays_standardised_on_train():
    rng = np.random.default_rng(0)
    xtr = rng.normal(5.0, 3.0, (30, 2, 20))
    xte = rng.normal(5.0, 3.0, (10, 2, 20))
    s = series_splits("a", xtr, np.arange(30) % 3, xte, np.arange(10) % 3)
    assert s.info.kind == "series" and s.info.shape == (2, 20) and s.info.num_classes == 3
    assert s.train.x.dtype == torch.float32 and s.train.x.shape == (30, 2, 20)
    assert torch.allclose(s.train.x.mean(dim=(0, 2)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(s.train.x.std(dim=(0, 2), unbiased=False), torch.ones(2), atol=1e-4)
    np.testing.assert_allclose(s.info.extra["channel_mean"], xtr.mean(axis=(0, 2)), rtol=1e-6)
    expect_te = (xte - xtr.mean(axis=(0, 2))[None, :, None]) / xtr.std(axis=(0, 2))[None, :, None]
    np.testing.assert_allclose(s.test.x.numpy(), expect_te, rtol=1e-4, atol=1e-5)  # train statistics, not test
    one = series_splits("b", xtr[:, 0], None, xte[:, 0], None, scaling="none")
    assert one.info.shape == (1, 20) and one.train.y is None
    np.testing.assert_allclose(one.train.x[:, 0].numpy(), xtr[:, 0], rtol=1e-6)


def test_unequal_lengths_ragged_lengths_vector_and_nan_padding_agree():
    rng = np.random.default_rng(1)
    lens = np.array([5, 9, 12, 7])
    ragged = [rng.normal(size=(2, n)) for n in lens]
    padded = np.zeros((4, 2, 12))
    for i, r in enumerate(ragged):
        padded[i, :, : lens[i]] = r
        padded[i, :, lens[i]:] = 99.0  # garbage after the end: the lengths vector says it is padding
    nanpad = padded.copy()
    for i in range(4):
        nanpad[i, :, lens[i]:] = np.nan
    a = series_splits("r", ragged, None, ragged, None)
    b = series_splits("l", padded, None, padded, None, lengths_train=lens, lengths_test=lens)
    c = series_splits("n", nanpad, None, nanpad, None)
    for s in (a, b, c):
        assert torch.equal(series_lengths(s.train.x), torch.as_tensor(lens))
        assert s.info.extra["min_length"] == 5 and s.info.extra["max_length"] == 12
        assert not s.info.extra["equal_length"]
    torch.testing.assert_close(a.train.x, b.train.x, equal_nan=True)
    torch.testing.assert_close(a.train.x, c.train.x, equal_nan=True)
    # nothing truncated: every value of every series is there (standardised)
    mean, std = a.info.extra["channel_mean"], a.info.extra["channel_std"]
    np.testing.assert_allclose(a.train.x[2, 1, :12].numpy() * std[1] + mean[1], ragged[2][1], rtol=1e-5, atol=1e-5)


def test_bad_input_gets_one_clear_error():
    good = np.zeros((4, 2, 10))
    with pytest.raises(ContrastkitError, match="NaN inside a series.*series 1, channel 0, step 3"):
        bad = good.copy()
        bad[1, 0, 3] = np.nan
        series_splits("x", bad, None, good, None)
    with pytest.raises(ContrastkitError, match="NaN inside"):  # one channel ends early: not padding
        bad = good.copy()
        bad[2, 1, 8:] = np.nan
        series_splits("x", bad, None, good, None)
    with pytest.raises(ContrastkitError, match="train.*2 channel.*test.*3"):
        series_splits("x", good, None, np.zeros((4, 3, 10)), None)
    with pytest.raises(ContrastkitError, match="different channel counts"):
        series_splits("x", [np.zeros((2, 5)), np.zeros((3, 5))], None, good, None)
    with pytest.raises(ContrastkitError, match="lengths"):
        series_splits("x", good, None, good, None, lengths_train=[3, 4])
    with pytest.raises(ContrastkitError, match="infinite"):
        bad = good.copy()
        bad[0, 0, 0] = np.inf
        series_splits("x", bad, None, good, None)
    with pytest.raises(ContrastkitError, match="3 train labels for 4"):
        series_splits("x", good, [0, 1, 0], good, None)


def test_npy_npz_routing_keeps_images_working(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "s.npy", rng.normal(size=(20, 3, 50)).astype(np.float32))
    s = load_data(str(tmp_path / "s.npy"), {})
    assert s.info.kind == "series" and s.info.shape == (3, 50) and len(s.train) + len(s.test) == 20
    np.save(tmp_path / "u.npy", rng.normal(size=(20, 64)))
    assert load_data(str(tmp_path / "u.npy"), {}).info.shape == (1, 64)
    np.savez(tmp_path / "split.npz", x_train=rng.normal(size=(10, 2, 30)), y_train=np.arange(10) % 2,
             x_test=rng.normal(size=(6, 2, 30)), y_test=np.arange(6) % 2)
    s = load_data(str(tmp_path / "split.npz"), {})
    assert (len(s.train), len(s.test)) == (10, 6) and s.info.num_classes == 2
    # a (N, C, T) series that happens to be square is a series when asked
    np.save(tmp_path / "sq.npy", rng.normal(size=(10, 8, 8)).astype(np.float32))
    assert load_data(str(tmp_path / "sq.npy"), {"data_kind": "series"}).info.kind == "series"
    # images stay images
    np.save(tmp_path / "img.npy", rng.integers(0, 256, (10, 8, 8)).astype(np.uint8))
    assert load_data(str(tmp_path / "img.npy"), {}).info.kind == "image"
    np.savez(tmp_path / "img.npz", x=rng.random((20, 8, 8, 3)).astype(np.float32), y=np.arange(20) % 2)
    assert load_data(str(tmp_path / "img.npz"), {}).info.kind == "image"
    assert not is_series_array(np.zeros((4, 8, 8), np.float32)) and is_series_array(np.zeros((4, 3, 100)))
    # padded + lengths in an .npz
    x = rng.normal(size=(12, 1, 40))
    np.savez(tmp_path / "len.npz", x=x, lengths=np.full(12, 30), y=np.arange(12) % 2)
    s = load_data(str(tmp_path / "len.npz"), {})
    assert int(series_lengths(torch.cat([s.train.x, s.test.x])).max()) == 30
    with pytest.raises(ContrastkitError, match="data_kind"):
        load_data(str(tmp_path / "s.npy"), {"data_kind": "graph"})


def test_ragged_object_array_npy(tmp_path):
    rng = np.random.default_rng(2)
    arr = np.empty(8, dtype=object)
    for i in range(8):
        arr[i] = rng.normal(size=(2, 10 + i))
    np.save(tmp_path / "rag.npy", arr, allow_pickle=True)
    s = load_data(str(tmp_path / "rag.npy"), {})
    lens = torch.cat([series_lengths(s.train.x), series_lengths(s.test.x)])
    assert sorted(lens.tolist()) == list(range(10, 18)) and s.info.shape == (2, 17)


def test_read_ts(tmp_path):
    (tmp_path / "a.ts").write_text("# c\n@problemName a\n@classLabel true x y\n@data\n1,2,3:4,5,6:x\n1,2:3,4:y\n")
    series, labels = read_ts(tmp_path / "a.ts")
    assert [s.shape for s in series] == [(2, 3), (2, 2)] and labels.tolist() == ["x", "y"]


@pytest.mark.skipif(not HAS_SKTIME, reason="sktime (data files only) not installed")
def test_bundled_ucr_uea_by_name():
    g = load_data("GunPoint", {})
    assert (len(g.train), len(g.test), g.info.shape, g.info.num_classes) == (50, 150, (1, 150), 2)
    b = load_data("BasicMotions", {})
    assert b.info.shape == (6, 100) and b.info.num_classes == 4 and (len(b.train), len(b.test)) == (40, 40)
    j = load_data("JapaneseVowels", {})
    assert j.info.shape[0] == 12 and not j.info.extra["equal_length"] and j.info.extra["min_length"] < 29
    assert j.info.extra["classes"] == [str(k) for k in range(1, 10)]
    assert torch.isnan(j.train.x).any()  # unequal lengths kept as NaN padding, not truncated


def test_long_format_csv(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(3)
    rows = []
    for sid in range(10):
        n = 8 + sid % 3
        for t in rng.permutation(n):  # rows out of time order: time_column sorts them
            rows.append({"sid": f"s{sid}", "t": t, "a": float(sid + t), "b": -float(t), "label": sid % 2})
    pd.DataFrame(rows).to_csv(tmp_path / "long.csv", index=False)
    s = load_data(str(tmp_path / "long.csv"), {"series_id_column": "sid", "time_column": "t", "label_column": "label"})
    assert s.info.kind == "series" and s.info.shape == (2, 10) and s.info.extra["channels"] == ["a", "b"]
    assert len(s.train) + len(s.test) == 10 and s.info.num_classes == 2
    lens = sorted(torch.cat([series_lengths(s.train.x), series_lengths(s.test.x)]).tolist())
    assert lens == sorted(8 + i % 3 for i in range(10))
    # channel b = -t, standardised: strictly decreasing along each series once sorted by time
    b = s.train.x[0, 1, : int(series_lengths(s.train.x[:1])[0])]
    assert (b[1:] < b[:-1]).all()
    # without the series settings a CSV is still a table
    assert load_data(str(tmp_path / "long.csv"), {"label_column": "label"}).info.kind == "table"
    with pytest.raises(ContrastkitError, match="series-id-column"):
        load_data(str(tmp_path / "long.csv"), {"data_kind": "series"})
    pd.DataFrame(rows).assign(label=range(len(rows))).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ContrastkitError, match="different labels"):
        load_data(str(tmp_path / "bad.csv"), {"series_id_column": "sid", "label_column": "label"})
