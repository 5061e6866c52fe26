"""write_report: a self-contained HTML file whose every image really renders (headless Chromium)."""

import html
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch

from contrastkit.errors import ContrastkitError
from contrastkit.evaluate import write_report
from contrastkit.evaluate.report import embedding_map_2d

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.path.exists("/usr/bin/chromium"):
    CHROMIUM = "/usr/bin/chromium"

EVAL_ROWS = [
    {"metric": "kNN k=200", "encoder": 0.85, "random init": 0.7, "raw input": 0.8},
    {"metric": "linear probe", "encoder": 0.9, "random init": None, "raw input": 0.83},
]

# Appended to a copy of the report: records every image's load state and natural size in the DOM.
PROBE = """<script>window.addEventListener('load', function () {
  var out = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    out.push(im.complete + ':' + im.naturalWidth + 'x' + im.naturalHeight);
  }
  var p = document.createElement('pre'); p.id = 'ck-probe'; p.textContent = out.join(' ');
  document.body.appendChild(p);
});</script>"""


def synthetic_run(run_dir, n_emb=300):
    g = np.random.default_rng(0)
    steps = np.arange(0, 400, 2)
    df = pd.DataFrame({"step": steps, "epoch": steps // 100,
                       "loss": 5 * np.exp(-steps / 150) + g.normal(0, 0.1, steps.size),
                       "lr": 0.3 * np.cos(steps / 400 * np.pi / 2)})
    end = steps % 100 == 98  # monitors logged once per epoch
    df["knn"] = np.where(end, 0.5 + steps / 1000, np.nan)
    df["eff_rank"] = np.where(end, 20 + steps / 10, np.nan)
    df["uniformity"] = np.where(end, -1 - steps / 200, np.nan)
    df.to_csv(run_dir / "metrics.csv", index=False)
    centers = g.normal(size=(4, 16)) * 3
    y = g.integers(0, 4, n_emb)
    emb = torch.tensor(centers[y] + g.normal(size=(n_emb, 16)), dtype=torch.float32)
    return dict(eval_rows=EVAL_ROWS, test_emb=emb, test_y=y, pos_sims=g.uniform(0.3, 1.0, 500),
                neg_sims=torch.tensor(g.normal(0, 0.2, (50, 50)).clip(-1, 1)),
                temperatures=g.uniform(0.05, 0.2, 300))


def render_in_chromium(report, tmp_path):
    probe = tmp_path / "probe.html"
    page = report.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>")
    probe.write_text(page, encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000", "--dump-dom",
           probe.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def test_report_renders_in_chromium(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium): cannot check images render")
    kw = synthetic_run(tmp_path)
    out = write_report(tmp_path, title="synthetic <run>", **kw)
    assert out == tmp_path / "report.html" and out.is_file()
    text = out.read_text(encoding="utf-8")
    # self-contained: every image is inline data, nothing is fetched
    srcs = re.findall(r'src="([^"]*)"', text)
    assert len(srcs) == 5 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert "synthetic &lt;run&gt;" in text  # title escaped
    sections = ("Evaluation", "Training", "Monitors", "Embedding map", "Similarities", "Learned temperatures")
    assert 'id="verdicts"' in text and "beats raw input" in text
    for section in sections:
        assert f"<h2>{section}</h2>" in text
    assert "last-epoch" in text

    dom = render_in_chromium(out, tmp_path)
    probe = re.search(r'<pre id="ck-probe">([^<]*)</pre>', dom)
    assert probe is not None, "the probe script did not run"
    states = probe.group(1).split()
    assert len(states) == 5
    for s in states:
        complete, size = s.split(":")
        w, h = map(int, size.split("x"))
        assert complete == "true" and w > 100 and h > 100, states
    table = re.search(r'<table id="evaluation-table">(.*?)</table>', dom, re.S)
    assert table is not None, "evaluation table missing from the rendered page"
    cells = [html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", table.group(1))]
    assert cells[:4] == ["metric", "encoder", "random init", "raw input"]
    # scores in [0, 1] as percentages, as the terminal prints them (cli._cell)
    assert cells[4:8] == ["kNN k=200", "85.00%", "70.00%", "80.00%"]
    assert cells[8:12] == ["linear probe", "90.00%", "—", "83.00%"]


def test_report_skips_missing_sections(tmp_path):
    out = write_report(tmp_path / "empty")
    text = out.read_text(encoding="utf-8")
    assert "<img" not in text and "<h2>" not in text and "No metrics" in text
    out = write_report(tmp_path / "only-table", eval_rows=EVAL_ROWS, pos_sims=[0.9, 0.8, 0.95])
    text = out.read_text(encoding="utf-8")
    assert 'id="evaluation-table"' in text and text.count("<img") == 1 and "<h2>Training</h2>" not in text
    # metrics.csv with only step/loss: training curve, no monitors
    d = tmp_path / "loss-only"
    d.mkdir()
    pd.DataFrame({"step": range(10), "loss": np.linspace(3, 1, 10)}).to_csv(d / "metrics.csv", index=False)
    text = write_report(d).read_text(encoding="utf-8")
    assert "<h2>Training</h2>" in text and "<h2>Monitors</h2>" not in text
    text = write_report(tmp_path / "x", metrics_csv=tmp_path / "nope.csv").read_text(encoding="utf-8")
    assert "nope.csv was not found" in text and "<img" not in text
    (d / "bad.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ContrastkitError, match="bad.csv"):
        write_report(d, metrics_csv=d / "bad.csv")


def test_embedding_map_subsamples_with_fixed_seed():
    x = np.random.default_rng(1).normal(size=(400, 60))
    c1, i1, name = embedding_map_2d(x, max_points=120)
    c2, i2, _ = embedding_map_2d(x, max_points=120)
    assert c1.shape == (120, 2) and len(set(i1.tolist())) == 120 and name in ("t-SNE", "UMAP")
    assert np.array_equal(i1, i2) and np.allclose(c1, c2)


# ------------------------------------------------------------------------------------ issue 16: the report
from contrastkit.cli import _cell  # noqa: E402
from contrastkit.evaluate.report import fmt_score, run_report_inputs, verdicts  # noqa: E402

RUN_RECORD = {"contrastkit": "0.1.0", "torch": "2.13.0+cpu", "python": "3.11.7", "device": "cpu",
              "processes": 1, "precision": "bfloat16", "planned_epochs": 2, "planned_minutes": None,
              "views": {"view1": {"image_size": 8, "flip_p": 0.5}, "view2": {"image_size": 8, "flip_p": 0.5}},
              "steps": 10, "skipped_steps": 0, "train_seconds": 1.6, "epochs_done": 2.0}
CONFIG = {"method": "simclr", "data": "digits", "encoder": "convnet", "epochs": 2, "batch_size": 256,
          "lr": 0.3, "seed": 0, "knn_t": 0.1, "encoder_kwargs": {}, "run_record": RUN_RECORD}


def test_numbers_are_shown_as_the_terminal_shows_them():
    for col, v in [("encoder", 0.8830083608627319), ("auroc", 1.0), ("auroc", 0.0), ("seconds", 4.848),
                   ("encoder", 3.5), ("encoder", -0.2), ("metric", "kNN k=20"), ("x", 7)]:
        assert fmt_score(v, col) == _cell(col, v), (col, v)
    assert fmt_score(None) == "—" and fmt_score(float("nan")) == "—"


def test_verdict_names_the_baseline_the_encoder_loses_to():
    rows = [{"metric": "kNN k=20 t=0.1", "encoder": 0.8468, "random init": 0.8607, "raw input": 0.9889},
            {"metric": "linear probe", "encoder": 0.883, "random init": 0.8412, "raw input": 0.9582},
            {"metric": "forecast MSE (H=24), ridge", "encoder": 0.2, "raw input": 0.5}]  # lower is better
    v = verdicts(rows)
    assert [x["metric"] for x in v] == ["kNN k=20 t=0.1", "linear probe"]
    assert v[0]["text"] == ("kNN k=20 t=0.1: encoder 84.68% — loses to random init (86.07%, -1.39 pts); "
                            "loses to raw input (98.89%, -14.21 pts)")
    assert [h for _, _, h in v[1]["against"]] == ["beats", "loses"]
    anomaly = [{"model": "clan", "scorer": "centroid", "auroc": 0.9985, "aupr": 0.97, "seconds": 0.4},
               {"model": "random init", "scorer": "centroid", "auroc": 0.9933, "aupr": 0.98, "seconds": 0.4},
               {"model": "random init", "scorer": "knn-5", "auroc": 0.9998, "aupr": 0.99, "seconds": 4.6},
               {"model": "isolation forest", "scorer": "iforest", "auroc": 0.9968, "aupr": 0.99,
                "seconds": 0.3},
               {"model": "raw features", "scorer": "knn-5", "auroc": 0.9992, "aupr": 0.98, "seconds": 4.4}]
    (a,) = verdicts(anomaly)
    assert a["metric"] == "AUROC, clan (centroid)"
    assert [(n, h) for n, _, h in a["against"]] == [("random init", "beats"), ("IsolationForest", "beats"),
                                                      ("raw kNN (knn-5)", "loses")]


def test_header_settings_escaped_and_old_runs_render(tmp_path):
    cfg = dict(CONFIG, data="<script>alert(1)</script>", encoder_kwargs={"width": "<i>w"})
    text = write_report(tmp_path / "new", config=cfg, eval_rows=EVAL_ROWS).read_text(encoding="utf-8")
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<i>w" not in text
    for fact in ("simclr", "convnet", "10 · 2 of 2 planned", "1.6 s", "cpu · bfloat16 · 1",
                 "contrastkit 0.1.0 · torch 2.13.0+cpu"):
        assert html.escape(fact) in text, fact
    assert '<details id="settings">' in text and '<details id="views-built">' in text
    assert text.index('id="run-facts"') < text.index("<h2>Evaluation</h2>") < text.index('id="verdicts"') \
        < text.index('id="evaluation-table"')
    # other kinds record their views as module reprs (graph, table): shown, not a crash after training
    rec = dict(RUN_RECORD, views={"view1": "FeatureMask(rate=0.3)", "view2": "FeatureMask(rate=0.4)"})
    text = write_report(tmp_path / "graph", config=dict(CONFIG, run_record=rec)).read_text(encoding="utf-8")
    assert "FeatureMask(rate=0.4)" in text and "No header" not in text
    old = {k: v for k, v in CONFIG.items() if k != "run_record"}  # a run saved before run_record
    text = write_report(tmp_path / "old", config=old).read_text(encoding="utf-8")
    assert "not recorded" in text and '<details id="settings">' in text and "views-built" not in text


def test_sections_from_a_digits_run_folder(tmp_path):
    """run_report_inputs on a run folder (config.yaml only; raw pixels stand in for the embeddings): class
    table, neighbour grid and views preview; write_report draws them with the class names."""
    import yaml

    from contrastkit.data import load_data

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    splits = load_data("digits", CONFIG)
    tr = splits.train.x.float().flatten(1)
    te = splits.test.x.float().flatten(1)
    more = run_report_inputs(tmp_path, te, splits.test.y, train_emb=tr)
    assert more["notes"] == [] and more["config"]["method"] == "simclr"
    pc = more["per_class"]
    assert pc["k"] == 20 and len(pc["y_pred"]) == len(te) and (pc["y_pred"] == pc["y_true"]).mean() > 0.9
    nn = more["neighbours"]
    assert np.asarray(nn["sims"]).shape == (6, 5) and len(set(nn["query_y"].tolist())) == 6
    v = more["views"]
    assert v["original"].shape == v["view1"].shape == v["view2"].shape == (8, 1, 8, 8)
    # class names come from info.extra["classes"]
    import dataclasses

    from contrastkit.data.base import DataSplits, Dataset

    names = [f"digit <{i}>" for i in range(10)]
    info = dataclasses.replace(splits.info, extra={"classes": names})
    named = DataSplits(Dataset(splits.train.x, splits.train.y, info), Dataset(splits.test.x, splits.test.y, info))
    assert run_report_inputs(tmp_path, te, splits.test.y, splits=named, train_emb=tr)["class_names"] == names
    more["class_names"] = names
    text = write_report(tmp_path, eval_rows=EVAL_ROWS, test_emb=te, test_y=splits.test.y.numpy(), **more
                        ).read_text(encoding="utf-8")
    for section in ("Classes and embedding map", "Nearest neighbours", "Views"):
        assert f"<h2>{section}</h2>" in text
    assert 'id="per-class-table"' in text and "digit &lt;3&gt;" in text and "digit <3>" not in text
    # a run folder whose data cannot be reloaded: the report still renders, with a note
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(dict(CONFIG, data=str(tmp_path / "gone.npy"))))
    more = run_report_inputs(tmp_path, te, splits.test.y)
    assert "per_class" not in more and more["notes"] and "could not be reloaded" in more["notes"][0]


def test_roc_section_from_scores(tmp_path):
    g = np.random.default_rng(0)
    y = (g.uniform(size=600) < 0.1).astype(int)
    roc = {"is_anomaly": y, "scores": {"clan (centroid)": y + g.normal(0, 0.7, 600),
                                       "IsolationForest": y + g.normal(0, 1.0, 600),
                                       "raw kNN (knn-5)": g.normal(size=600)}, "note": "synthetic <scores>"}
    text = write_report(tmp_path, roc=roc).read_text(encoding="utf-8")
    assert "<h2>ROC curves</h2>" in text and text.count("<img") == 1 and "synthetic &lt;scores&gt;" in text
