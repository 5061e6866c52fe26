import numpy as np
import pandas as pd

from contrastkit.api import pretrain


def test_table_with_anomaly_label_is_evaluated_with_the_anomaly_protocol(tmp_path):
    rng = np.random.default_rng(0)
    normal = rng.normal(0, 1, (400, 4))
    anomalies = rng.normal(4, 1, (40, 4))
    df = pd.DataFrame(np.vstack([normal, anomalies]), columns=list("abcd"))
    df["kind"] = ["ok"] * 400 + ["attack"] * 40
    path = tmp_path / "flows.csv"
    df.to_csv(path, index=False)
    result = pretrain(method="clan", data=str(path), label_column="kind", anomaly_label="attack", epochs=1,
                      batch_size=64, out=str(tmp_path / "run"), progress=False, monitor_every=0)
    assert result.eval_rows and all({"auroc", "aupr"} <= set(r) for r in result.eval_rows)
    models = {r["model"] for r in result.eval_rows}
    assert any("isolation" in m.lower() for m in models) and any("random" in m.lower() for m in models)
    assert (tmp_path / "run" / "report.html").exists()

    # CLAN is scored in its projection's output space: encoder.pt carries encoder + head for that
    import torch

    from contrastkit.run import load_encoder, load_scoring_model

    saved = torch.load(tmp_path / "run" / "encoder.pt", weights_only=True)
    assert saved["scoring_head"]["spec"]["out_dim"] == result.method.cfg["proj_dim"]  # architecture as data
    model = load_scoring_model(tmp_path / "run")[0]  # rebuilt from encoders + heads, no method involved
    x = result.splits.test.x[:16]
    with torch.no_grad():
        assert torch.allclose(model(x), result.method.anomaly_model().eval()(x), atol=1e-6)
        assert model(x).shape[1] == result.method.cfg["proj_dim"] != load_encoder(tmp_path / "run")[0](x).shape[1]

    # `contrastkit evaluate RUN --protocol anomaly` reopens the run and gives the same table, baselines included
    from contrastkit.evaluate.run_eval import evaluate_run

    again = evaluate_run(tmp_path / "run", ["anomaly"])
    key = lambda r: (r["model"], r["scorer"])  # noqa: E731
    assert sorted(map(key, again)) == sorted(map(key, result.eval_rows))
    first = {key(r): r for r in result.eval_rows}
    for r in again:
        assert abs(r["auroc"] - first[key(r)]["auroc"]) < 1e-6 and abs(r["aupr"] - first[key(r)]["aupr"]) < 1e-6


def test_anomaly_runs_monitor_auroc_not_knn_accuracy(tmp_path):
    """Training rows are all normal, so kNN accuracy would only echo the normal share of the test split."""
    import csv

    rng = np.random.default_rng(1)
    df = pd.DataFrame(np.vstack([rng.normal(0, 1, (300, 3)), rng.normal(5, 1, (60, 3))]), columns=list("abc"))
    df["kind"] = ["ok"] * 300 + ["attack"] * 60
    df.to_csv(tmp_path / "t.csv", index=False)
    pretrain(method="clan", data=str(tmp_path / "t.csv"), label_column="kind", anomaly_label="attack", epochs=2,
             batch_size=64, out=str(tmp_path / "run"), progress=False, monitor_every=2, evaluate=False,
             encoder_kwargs={"width": 16, "depth": 1, "out_dim": 8})
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    aurocs = [float(r["auroc"]) for r in rows if r.get("auroc")]
    assert aurocs and all(0.0 <= a <= 1.0 for a in aurocs)
    assert not any(r.get("knn") for r in rows)


def test_cli_table_prints_durations_as_seconds_not_percent():
    from contrastkit.cli import _cell

    assert _cell("seconds", 0.43) == "0.4" and _cell("seconds", 3.5) == "3.5"
    assert _cell("auroc", 0.9968) == "99.68%" and _cell("model", "clan") == "clan"
