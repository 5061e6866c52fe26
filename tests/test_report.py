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
    assert cells[4:8] == ["kNN k=200", "0.8500", "0.7000", "0.8000"]
    assert cells[8:12] == ["linear probe", "0.9000", "—", "0.8300"]


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
