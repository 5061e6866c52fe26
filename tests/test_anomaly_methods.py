"""The table anomaly methods added with the suite: csi (shifted rows as negatives) and scarf (SCARF's recipe)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from contrastkit.data.base import Batch, DataInfo, Dataset
from contrastkit.encoders import create_encoder
from contrastkit.errors import ContrastkitError
from contrastkit.methods import METHODS, create_method, method_defaults

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _table(n=64, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    info = DataInfo(name="toy", kind="table", shape=(d,), extra={"anomaly_label": 1})
    return info, Dataset(torch.randn(n, d, generator=g), torch.zeros(n, dtype=torch.long), info)


def reference_nt_xent(z1, z2, tau):
    """Slow loop: anchor k's positive is its other view; the other 2N − 2 vectors are its negatives."""
    z = [v / np.linalg.norm(v) for v in np.vstack([z1, z2]).astype(np.float64)]
    n = len(z1)
    total = 0.0
    for k in range(2 * n):
        p = (k + n) % (2 * n)
        den = sum(math.exp(float(z[k] @ z[j]) / tau) for j in range(2 * n) if j != k)
        total += -math.log(math.exp(float(z[k] @ z[p]) / tau) / den)
    return total / (2 * n)


def test_csi_and_scarf_are_registered_for_tables_with_their_recipes():
    for name in ("csi", "scarf"):
        assert name in METHODS.names() and METHODS.get(name).kinds == ("table",)
        d = method_defaults(name)
        assert d["optimizer"] == "adamw" and d["lr_scaling"] == "none" and d["weight_decay"] == 0.0
    assert method_defaults("scarf")["temperature"] == 1.0 and method_defaults("scarf")["corruption_rate"] == 0.6
    assert method_defaults("csi")["corruption_rate"] == 0.0 and method_defaults("csi")["encoder_kwargs"] == {"norm": "none"}


def test_csi_step_is_nt_xent_over_the_rows_and_their_shifted_copies():
    from contrastkit.config import resolve_config

    info, train = _table()
    cfg = resolve_config({"method": "csi", "encoder_kwargs": {"width": 16, "depth": 1, "out_dim": 8, "norm": "none"}})
    cfg["encoder"] = "mlp"
    torch.manual_seed(0)
    m = create_method(cfg, info, train)
    x = train.x[:12]
    out = m.training_step(Batch(x, torch.arange(12)), torch.Generator().manual_seed(5))
    # replay the same draws: shift, then the two views, from a generator in the same state
    g = torch.Generator().manual_seed(5)
    s = m.shift(x, g)
    assert ((s != x).sum(1) >= 1).all()  # every shifted copy has at least one replaced feature
    lo, hi = train.x.min(0).values, train.x.max(0).values
    assert ((s >= lo - 1e-6) & (s <= hi + 1e-6)).all()  # drawn inside each training column's range
    c = torch.cat([x, s])
    v1, v2 = m.view1(c, g), m.view2(c, g)
    with torch.no_grad():
        z1, z2 = m.head(m.encoder(torch.cat([v1, v2]))).chunk(2)
    ref = reference_nt_xent(z1.numpy(), z2.numpy(), cfg["temperature"])
    assert out["loss"].item() == pytest.approx(ref, rel=1e-4)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.encoder.parameters())


def test_table_methods_refuse_other_kinds():
    info = DataInfo(name="img", kind="image", shape=(1, 8, 8))
    train = Dataset(torch.rand(8, 1, 8, 8), None, info)
    for name in ("csi", "scarf"):
        with pytest.raises(ContrastkitError, match="tabular"):
            METHODS.get(name)(create_encoder("convnet", info), info, method_defaults(name) | {"proj_layers": 2},
                              train)


def test_csi_pretrains_on_a_small_csv_and_the_protocol_ranks_it(tmp_path):
    from contrastkit.api import pretrain

    rng = np.random.default_rng(0)
    df = pd.DataFrame(np.vstack([rng.normal(0, 1, (150, 4)), rng.normal(3, 1, (15, 4))]), columns=list("abcd"))
    df["const"] = 1.0  # dropped with a note (drop_constant defaults to true)
    df["kind"] = [0] * 150 + [1] * 15
    df.to_csv(tmp_path / "t.csv", index=False)
    result = pretrain(method="csi", data=str(tmp_path / "t.csv"), label_column="kind", anomaly_label=1, epochs=3,
                      out=str(tmp_path / "run"), progress=False, monitor_every=0, device="cpu")
    assert result.method.cfg["batch_size"] < 256  # lowered to the 120 training rows
    rows = {(r["model"], r["scorer"]): r for r in result.eval_rows}
    assert {("csi", "knn-5+raw"), ("isolation forest", "iforest"), ("raw features", "knn-5")} <= set(rows)
    ranks = [r["rank"] for r in rows.values()]  # places 1..n, ties sharing their mean place
    assert sum(ranks) == pytest.approx(len(ranks) * (len(ranks) + 1) / 2) and min(ranks) >= 1

    # `contrastkit evaluate RUN --protocol anomaly` rebuilds the encoder (no LayerNorm, from the saved config) and
    # gives the same table, ranks included
    from contrastkit.evaluate.run_eval import evaluate_run

    again = {(r["model"], r["scorer"]): r for r in evaluate_run(tmp_path / "run", ["anomaly"])}
    assert set(again) == set(rows)
    for key, r in again.items():
        assert r["auroc"] == pytest.approx(rows[key]["auroc"], abs=1e-6) and r["rank"] == rows[key]["rank"]
