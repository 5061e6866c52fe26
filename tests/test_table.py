"""CSV / Parquet tables and the shuttle source: round trips, splits, preprocessing, and every bad-input message."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from contrastkit.data import load_data
from contrastkit.data.table import TableSchema
from contrastkit.errors import ContrastkitError


def make_frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "a": rng.normal(10.0, 2.0, n),
        "b": rng.integers(0, 100, n),
        "color": rng.choice(["red", "green", "blue"], n),
        "label": rng.choice(["benign", "dos", "scan"], n, p=[0.8, 0.1, 0.1]),
    })


def write(df, path):
    if str(path).endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif str(path).endswith(".gz"):
        df.to_csv(path, index=False, compression="gzip")
    else:
        df.to_csv(path, index=False)
    return str(path)


# ------------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_round_trip(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    df = make_frame()
    splits = load_data(write(df, tmp_path / f"t{suffix}"), {"label_column": "label", "test_fraction": 0.25, "seed": 3})
    info, tr, te = splits.info, splits.train, splits.test
    assert info.kind == "table" and info.shape == (3,) and info.name == "t"
    assert tr.x.dtype == torch.float32 and tr.x.shape == (45, 3) and te.x.shape == (15, 3)
    e = info.extra
    assert e["columns"] == ["a", "b", "color"] and e["numeric_columns"] == ["a", "b"]
    assert e["categorical_columns"] == ["color"] and e["categorical_index"] == [2]
    assert e["vocab"] == {"color": ["blue", "green", "red"]} and e["cardinalities"] == [4]
    # standardisation fitted on the training split only
    assert torch.allclose(tr.x[:, :2].mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(tr.x[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-5)
    assert not torch.allclose(te.x[:, :2].mean(0), torch.zeros(2), atol=1e-3)
    # every row is present once; values match the file
    both = torch.cat([tr.x, te.x])
    a = both[:, 0].double() * e["std"][0] + e["mean"][0]
    np.testing.assert_allclose(np.sort(a.numpy()), np.sort(df["a"].to_numpy()), rtol=1e-5)
    codes = both[:, 2].long().numpy()
    assert sorted(np.asarray(e["vocab"]["color"])[codes].tolist()) == sorted(df["color"].tolist())
    # labels: class ids for evaluation
    assert info.num_classes == 3 and e["classes"] == ["benign", "dos", "scan"]
    assert tr.y.dtype == torch.long and set(torch.cat([tr.y, te.y]).tolist()) <= {0, 1, 2}
    # the fitted preprocessing is plain data: JSON and YAML serialisable
    json.dumps(e)
    yaml.safe_dump(e)


def test_parquet_and_csv_give_the_same_tensors(tmp_path):
    pytest.importorskip("pyarrow")
    df = make_frame()
    cfg = {"label_column": "label", "seed": 1}
    a = load_data(write(df, tmp_path / "t.csv"), cfg)
    b = load_data(write(df, tmp_path / "t.parquet"), cfg)
    assert torch.allclose(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)


def test_split_is_seeded(tmp_path):
    path = write(make_frame(), tmp_path / "t.csv")
    a, b = load_data(path, {"seed": 0}), load_data(path, {"seed": 0})
    c = load_data(path, {"seed": 1})
    assert torch.equal(a.train.x, b.train.x) and not torch.equal(a.train.x, c.train.x)
    assert a.train.y is None and a.info.num_classes is None
    assert len(a.train) == 48 and len(a.test) == 12  # default test_fraction 0.2


def test_separate_test_file_and_unknown_category(tmp_path):
    df = make_frame()
    test = make_frame(10, seed=5)
    test.loc[3, "color"] = "purple"  # never seen in training
    test = test[["label", "color", "b", "a"]]  # column order may differ
    splits = load_data(write(df, tmp_path / "tr.csv"), {"test_data": write(test, tmp_path / "te.csv"),
                                                        "label_column": "label"})
    assert len(splits.train) == 60 and len(splits.test) == 10
    codes = splits.test.x[:, 2]
    assert codes[3] == 3.0  # reserved code = len(vocab)
    assert set(codes.tolist()) <= {0.0, 1.0, 2.0, 3.0}


def test_schema_applies_to_new_frames(tmp_path):
    df = make_frame()
    test = make_frame(10, seed=5)
    splits = load_data(write(df, tmp_path / "tr.csv"), {"test_data": write(test, tmp_path / "te.csv"),
                                                        "label_column": "label"})
    schema = TableSchema.from_extra(json.loads(json.dumps(splits.info.extra)))
    np.testing.assert_allclose(schema.transform_frame(test), splits.test.x.numpy(), rtol=1e-6)


def test_forced_categorical_and_dropped_columns(tmp_path):
    df = make_frame()
    df["id"] = np.arange(len(df))
    splits = load_data(write(df, tmp_path / "t.csv"), {"categorical_columns": ["b"], "drop_columns": ["id", "label"]})
    e = splits.info.extra
    assert e["numeric_columns"] == ["a"] and e["categorical_columns"] == ["b", "color"]
    assert splits.train.x.shape[1] == 3


# ------------------------------------------------------------------------------------------------ anomalies
def test_anomaly_label_trains_on_normal_rows_only(tmp_path):
    df = make_frame(200)
    cfg = {"label_column": "label", "anomaly_label": ["dos", "scan"], "test_fraction": 0.3, "seed": 0}
    splits = load_data(write(df, tmp_path / "t.csv"), cfg)
    n_normal = int((df["label"] == "benign").sum())
    n_anom = len(df) - n_normal
    assert splits.train.y.sum() == 0 and len(splits.train) == n_normal - round(0.3 * n_normal)
    assert int(splits.test.y.sum()) == n_anom  # every anomaly is in the test split
    assert splits.info.num_classes == 2 and splits.info.extra["anomaly_classes"] == ["dos", "scan"]
    # original classes of the test rows, for per-class AUROC; the train info stays small
    cls = np.asarray(splits.test.info.extra["class_ids"])
    classes = splits.info.extra["classes"]
    assert len(cls) == len(splits.test) and "class_ids" not in splits.info.extra
    assert np.array_equal(np.isin(np.asarray(classes)[cls], ["dos", "scan"]), splits.test.y.numpy() == 1)


def test_numeric_anomaly_label_and_normal_label(tmp_path):
    df = make_frame(100)
    df["label"] = (df["label"] != "benign").astype(int)
    path = write(df, tmp_path / "t.csv")
    a = load_data(path, {"label_column": "label", "anomaly_label": 1})
    b = load_data(path, {"label_column": "label", "normal_label": "0"})
    assert int(a.test.y.sum()) == int(df["label"].sum()) and torch.equal(a.test.y, b.test.y)


def test_anomalies_in_a_separate_training_file_are_dropped(tmp_path):
    df, test = make_frame(80), make_frame(30, seed=2)
    splits = load_data(write(df, tmp_path / "tr.csv"), {"test_data": write(test, tmp_path / "te.csv"),
                                                        "label_column": "label", "anomaly_label": "dos"})
    assert len(splits.train) == int((df["label"] != "dos").sum()) and splits.train.y.sum() == 0
    assert splits.info.extra["dropped_train_anomalies"] == int((df["label"] == "dos").sum())
    assert len(splits.test) == 30


def test_shuttle_split():
    pytest.importorskip("river")
    splits = load_data("shuttle", {"seed": 0})
    assert splits.info.kind == "table" and splits.info.shape == (9,) and splits.info.name == "shuttle"
    assert len(splits.train) == 27352 and splits.train.y.sum() == 0
    assert len(splits.test) == 21745 and int(splits.test.y.sum()) == 3511
    other = load_data("shuttle", {"seed": 1})
    assert not torch.equal(splits.train.x, other.train.x)


# ------------------------------------------------------------------------------------------------ impute / drop
def test_impute_uses_training_median_and_mode(tmp_path):
    df = make_frame(50)
    df["a"] = df["a"].astype(object)
    df.loc[4, "a"] = np.nan
    df.loc[7, "a"] = "inf"
    df.loc[9, "color"] = None
    test = make_frame(5, seed=9)
    test.loc[0, "a"] = np.nan
    splits = load_data(write(df, tmp_path / "tr.csv"), {"impute": True, "test_data": write(test, tmp_path / "te.csv")})
    e = splits.info.extra
    finite = pd.to_numeric(df["a"], errors="coerce")
    finite = finite[np.isfinite(finite)]
    assert e["impute"]["a"] == pytest.approx(float(np.median(finite)))
    assert e["impute"]["color"] == df["color"].mode().sort_values().iloc[0]
    assert torch.isfinite(splits.train.x).all() and torch.isfinite(splits.test.x).all()
    filled = splits.test.x[0, 0].item() * e["std"][0] + e["mean"][0]
    assert filled == pytest.approx(e["impute"]["a"], rel=1e-5)


def test_drop_constant_drops_constant_and_empty_columns(tmp_path):
    df = make_frame()
    df["k"] = 7
    df["empty"] = np.nan
    df["one"] = "x"
    splits = load_data(write(df, tmp_path / "t.csv"), {"drop_constant": True, "impute": True, "label_column": "label"})
    assert splits.info.extra["dropped_columns"] == ["k", "empty", "one"]
    assert splits.info.extra["columns"] == ["a", "b", "color"]


# ------------------------------------------------------------------------------------------------ bad input
def bad(tmp_path, df, match, test=None, **cfg):
    path = write(df, tmp_path / "t.csv")
    if test is not None:
        cfg["test_data"] = write(test, tmp_path / "eval.csv")
    with pytest.raises(ContrastkitError, match=match):
        load_data(path, cfg)


def test_error_non_numeric_value_in_numeric_column(tmp_path):
    df = make_frame()
    df["b"] = df["b"].astype(object)
    df.loc[17, "b"] = "n/a?"
    df.loc[30, "b"] = "oops"
    bad(tmp_path, df, r"column 'b' is numeric .* row 17 \(file line 19\) holds 'n/a\?' \(2 such")


def test_error_nan_names_column_and_row(tmp_path):
    df = make_frame()
    df.loc[11, "a"] = np.nan
    bad(tmp_path, df, r"column 'a' has 1 missing or infinite value\(s\), the first at row 11 .*NaN.*impute: true")


def test_error_inf_names_column_and_row(tmp_path):
    df = make_frame()
    df.loc[5, "a"] = -np.inf
    bad(tmp_path, df, r"column 'a' .* row 5 .*\(-inf\)")


def test_error_missing_category(tmp_path):
    df = make_frame()
    df.loc[8, "color"] = None
    bad(tmp_path, df, r"categorical column 'color' has 1 missing value\(s\), the first at row 8")


def test_error_constant_column(tmp_path):
    df = make_frame()
    df["k"] = 3.5
    bad(tmp_path, df, r"column 'k' is constant \(every value is 3.5\).*drop_constant: true")


def test_error_all_missing_column(tmp_path):
    df = make_frame()
    df["empty"] = np.nan
    bad(tmp_path, df, r"column 'empty' has 60 missing")  # without impute: the missing values themselves
    bad(tmp_path, df, r"column 'empty' is all-missing", impute=True)


def test_error_columns_differ_between_train_and_test(tmp_path):
    df, test = make_frame(), make_frame(10).rename(columns={"b": "bb"})
    bad(tmp_path, df, r"column\(s\) \['b'\] are in .* but missing from test_data .*column\(s\) \['bb'\]", test=test)


def test_error_bad_value_in_test_file_names_that_file(tmp_path):
    df, test = make_frame(), make_frame(10)
    test["a"] = test["a"].astype(object)
    test.loc[2, "a"] = "x"
    bad(tmp_path, df, r"test_data '.*eval.csv': column 'a' is numeric .* row 2", test=test)


def test_error_label_problems(tmp_path):
    df = make_frame()
    bad(tmp_path, df, r"label_column 'kind' is not a column", label_column="kind")
    bad(tmp_path, df, r"anomaly_label='ddos' never occurs in label_column 'label'", label_column="label",
        anomaly_label="ddos")
    bad(tmp_path, df, r"anomaly_label needs label_column", anomaly_label="dos")


def test_error_bad_test_fraction_and_missing_file(tmp_path):
    bad(tmp_path, make_frame(), r"test_fraction=1.5", test_fraction=1.5)
    with pytest.raises(ContrastkitError, match="neither a built-in data set"):
        load_data(str(tmp_path / "nope.csv"), {})


def test_integer_categories_match_across_files_when_pandas_reads_floats(tmp_path):
    df = make_frame()
    df["port"] = np.where(np.arange(len(df)) % 2 == 0, 80, 443)
    test = make_frame(6, seed=4)
    test["port"] = [80, 443, np.nan, 80, 22, 443]  # read back as floats: 80.0, 443.0, NaN, ...
    splits = load_data(write(df, tmp_path / "tr.csv"), {"categorical_columns": ["port"], "impute": True,
                                                        "test_data": write(test, tmp_path / "te.csv")})
    assert splits.info.extra["vocab"]["port"] == ["443", "80"]
    j = splits.info.extra["columns"].index("port")
    mode = splits.info.extra["vocab"]["port"].index(splits.info.extra["impute"]["port"])
    assert splits.test.x[:, j].tolist() == [1.0, 0.0, float(mode), 1.0, 2.0, 0.0]  # 22 is unknown → code 2


def test_quantile_scaler_gaussianizes_heavy_tails_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    df = make_frame(400)
    df["heavy"] = np.where(rng.random(400) < 0.02, rng.normal(0, 1000, 400), rng.normal(0, 1, 400))
    test = make_frame(20, seed=1)
    test["heavy"] = np.linspace(-5000, 5000, 20)
    splits = load_data(write(df, tmp_path / "tr.csv"), {"scaler": "quantile", "label_column": "label",
                                                        "test_data": write(test, tmp_path / "te.csv")})
    e = splits.info.extra
    j = e["columns"].index("heavy")
    h = splits.train.x[:, j]
    assert abs(h.mean()) < 0.05 and 0.9 < h.std() < 1.1  # the bulk spreads over N(0, 1), not ±0.01
    order = np.argsort(df["heavy"].to_numpy(), kind="stable")
    assert np.all(np.diff(h.numpy()[order]) >= 0)  # rank-preserving
    t = splits.test.x[:, j]
    assert t.abs().max() <= 5.2 and torch.all(t[1:] >= t[:-1])  # bounded, monotone outside the training range
    assert e["scaler"] == "quantile" and len(e["quantiles"]["heavy"]) == 400
    json.dumps(e)
    schema = TableSchema.from_extra(json.loads(json.dumps(e)))
    np.testing.assert_allclose(schema.transform_frame(test), splits.test.x.numpy(), rtol=1e-5, atol=1e-6)
    bad(tmp_path, df, r"scaler='minmax'; valid: standard, quantile", scaler="minmax")
