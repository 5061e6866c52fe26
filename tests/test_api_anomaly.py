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
