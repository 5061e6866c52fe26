"""bench/anomaly_suite.py: its tables follow the ODDS convention, one (table, seed) runs end to end, the summary
ranks detectors and compares the default head to head."""

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("anomaly_suite", ROOT / "bench" / "anomaly_suite.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["anomaly_suite"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_one_vs_rest_tables_subsample_anomalies_by_seed(suite):
    x, a = suite.build_table("wine", 0, 3000)
    assert (a == 0).sum() == 130 and (a == 1).sum() == 13  # classes 0 + 1 normal; 10 % of them anomalies
    x1, a1 = suite.build_table("wine", 1, 3000)
    assert x.shape == x1.shape and not np.allclose(x.to_numpy()[a == 1], x1.to_numpy()[a1 == 1])  # other draws
    x2, a2 = suite.build_table("wine", 0, 3000)
    assert np.array_equal(x.to_numpy(), x2.to_numpy())  # the same seed, the same table


def test_big_tables_are_capped_keeping_the_anomaly_share(suite):
    x, a = suite.build_table("shuttle", 0, 500)
    assert (a == 0).sum() == 500 and x.shape == (len(a), 9)
    share = (a == 1).sum() / (a == 0).sum()
    assert 0.06 < share < 0.09  # shuttle's own 3,511 / 45,586 = 7.7 %


def test_one_table_runs_end_to_end_and_is_ranked(suite, tmp_path):
    rows = suite.run_one("iris", 0, ["csi"], 3000, tmp_path, {"csi": {"epochs": 1}})
    detectors = {r["detector"] for r in rows}
    assert {"csi knn-5+raw", "isolation forest iforest", "raw features knn-5", "raw features lof-20",
            "random init knn-5+raw"} <= detectors
    ranks = sorted(r["rank"] for r in rows)
    assert sum(ranks) == pytest.approx(len(rows) * (len(rows) + 1) / 2)
    text = suite.summarize(rows)
    assert "head to head" in text and "vs raw features knn-5" in text


def test_summary_mean_ranks_and_head_to_head_match_a_hand_count(suite):
    rows = []
    for seed, (mine, knn) in enumerate([(0.9, 0.8), (0.7, 0.8), (0.6, 0.6)]):
        for det, v in (("csi knn-5+raw", mine), ("raw features knn-5", knn), ("isolation forest iforest", 0.5)):
            model, _, scorer = det.rpartition(" ")
            rows.append({"model": model, "scorer": scorer, "auroc": v, "aupr": v, "detector": det, "table": "t",
                         "seed": seed})
    for seed in range(3):
        suite.add_ranks([r for r in rows if r["seed"] == seed])
    text = suite.summarize(rows)
    assert re.search(r"vs raw features knn-5\s+1 /\s+1 /\s+1 ", text)
    assert re.search(r"vs isolation forest iforest\s+3 /\s+0 /\s+0 ", text)
    line = next(ln for ln in text.splitlines() if ln.startswith("csi knn-5+raw"))
    assert line.split()[-2] == f"{(1 + 2 + 1.5) / 3:.3f}"  # mean rank: places 1, 2, 1.5
