"""The self-contained HTML run report, laid out to be scanned top-down in seconds:

    header      method · data · encoder · steps/epochs done · training seconds · device, precision,
                processes · versions (config.yaml's `run_record`; older runs still render),
                settings and the views as built in collapsible blocks
    evaluation  a verdict line per metric (which baseline the encoder beats or loses to, in plain words; for
                anomaly runs AUROC against IsolationForest, raw kNN and the random-init model), then the table
                with scores in [0, 1] as percentages, as the terminal prints them
    ROC curves  anomaly runs: the encoder's scorers, IsolationForest and raw kNN
    classes     per-class kNN accuracy (class names from info.extra["classes"]) next to the embedding map
    images      a nearest-neighbour grid (test images and their 5 nearest training images by embedding) and
                the two views of a few training images, rebuilt from the settings
    training    loss / lr curves, monitors, similarity histograms, learned temperatures

One file (`run_dir/report.html`): every image an inline base64 PNG, no scripts, no external resources, every
value HTML-escaped, so it can be mailed or archived as is. `write_report` draws what it is given;
`run_report_inputs` gathers those inputs from a run folder (config.yaml, the data, the saved encoder).

Plots are drawn with matplotlib's object API on the Agg canvas (`matplotlib.figure.Figure`), never through
pyplot, so writing a report does not change the caller's matplotlib backend or open windows.
Every section is skipped (with nothing drawn) when its inputs are missing.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ContrastkitError
from ._common import to_numpy

__all__ = ["write_report", "embedding_map_2d", "run_report_inputs", "verdicts", "fmt_score"]

_log = logging.getLogger("contrastkit")

# metrics.csv columns that are not monitor curves
_AXIS_COLS = ("step", "epoch")
_TRAIN_COLS = ("loss", "lr")
_SCORE_MONITORS = ("knn", "acc", "linear", "auroc", "aupr")  # fractions in [0, 1]: shown as percentages
_SKIP_MONITOR = {"time", "wall", "wall_s", "elapsed", "elapsed_s", "timestamp", "samples"}
# evaluation-table columns that are baselines (image/table/series/graph/paired rows) and anomaly models
_ANOMALY_BASELINES = ("random init", "isolation forest", "raw features")
# metric names where lower is better or the value is not a score: no verdict for them
_NOT_SCORES = ("mse", "mae", "error", "loss", "distance", "seconds")

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em auto;max-width:1180px;
color:#222;padding:0 1em}
h1{font-size:1.6em;margin:0 0 .2em}
h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em;margin:.8em 0 .3em}
.meta{color:#666;font-size:.9em} .note{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0} th,td{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:.5em;margin:.8em 0}
.fact{background:#f6f8fa;border:1px solid #e1e4e8;border-radius:6px;padding:.45em .7em}
.fact .k{display:block;color:#666;font-size:.78em;text-transform:uppercase;letter-spacing:.04em}
.fact .v{font-size:1.02em;font-weight:600;word-break:break-word}
details{margin:.4em 0} summary{cursor:pointer;color:#0366d6}
details table td,details table th{font-size:.88em;text-align:left}
.verdict{list-style:none;padding:0;margin:.5em 0}
.verdict li{margin:.3em 0;padding:.4em .7em;border-radius:5px;border-left:5px solid #999;background:#f6f6f6}
.verdict li.loses{border-left-color:#c62828;background:#fdecea}
.verdict li.beats{border-left-color:#2e7d32;background:#edf7ed}
.verdict li.mixed{border-left-color:#ef8f00;background:#fff4e5}
.lose{color:#c62828;font-weight:600} .beat{color:#2e7d32;font-weight:600} .tie{color:#8a6d00;font-weight:600}
.headline{font-size:1.1em;font-weight:600;margin:.4em 0}
.row{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start} .row>div{flex:1 1 420px;min-width:0}
.bar{display:inline-block;height:.7em;background:#4c78a8;vertical-align:middle;margin-right:.4em}
td.low{background:#fdecea} #per-class-table td:last-child,#per-class-table th:last-child{text-align:left}
"""

# ----------------------------------------------------------------------------------------------- helpers
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(fig, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png(fig)}">'


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def _fmt(v: Any) -> str:
    """A plain number (no percentages): monitors' axes, counts, similarity statistics."""
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "—"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


def fmt_score(v: Any, column: str = "") -> str:
    """A cell as the terminal prints it (cli.py `_cell`): floats in [0, 1] as percentages with 2 decimals,
    a `seconds` column with 1 decimal, other floats with 4 significant digits; missing/NaN as "—"."""
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (float, np.floating)):
        return str(v)
    v = float(v)
    if math.isnan(v):
        return "—"
    if column == "seconds":
        return f"{v:.1f}"
    return f"{100 * v:.2f}%" if 0 <= v <= 1 else f"{v:.4g}"


def _is_score(v: Any) -> bool:
    return isinstance(v, (float, np.floating)) and not isinstance(v, (bool, np.bool_)) and 0 <= float(v) <= 1


def _table(rows: Sequence[dict], table_id: str, cell=None) -> str:
    """rows → an HTML table; `cell(row, column)` formats a value (default: `fmt_score`, as the terminal)."""
    cell = cell or (lambda r, c: fmt_score(r.get(c), c))
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for r in rows:
        cells = "".join(f"<td>{html.escape(cell(r, c))}</td>" for c in cols)
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _mpl_text(s: Any) -> str:
    """A label for matplotlib: `$` would start mathtext (and can fail to parse)."""
    return str(s).replace("$", r"\$")


def _flat(x: Any, name: str, max_n: int = 1_000_000, seed: int = 0) -> Optional[np.ndarray]:
    if x is None:
        return None
    a = np.asarray(to_numpy(x), dtype=np.float64).reshape(-1)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    if a.size > max_n:
        a = np.random.default_rng(seed).choice(a, max_n, replace=False)
    return a


# ------------------------------------------------------------------------------------------ 2-D map
def embedding_map_2d(emb: Any, max_points: int = 2000, seed: int = 0, method: str = "auto"):
    """2-D coordinates of a seeded subsample of ≤ max_points L2-normalised embeddings.

    Returns (coords (m, 2), chosen row indices (m,), method name). method "auto" = UMAP when `umap` is
    importable, else t-SNE (scikit-learn, PCA init, PCA to 50 dims first, 500 iterations, fixed seed; ~10 s on
    2000 points on one busy core).
    """
    x = np.asarray(to_numpy(emb), dtype=np.float32)
    x = x.reshape(x.shape[0], -1)
    n = x.shape[0]
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    x = x[idx]
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method in ("auto", "umap"):
        try:
            import umap  # type: ignore

            coords = umap.UMAP(n_components=2, random_state=seed).fit_transform(x)
            return np.asarray(coords), idx, "UMAP"
        except Exception:
            if method == "umap":
                raise
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if x.shape[1] > 50 and x.shape[0] > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (x.shape[0] - 1) / 3.0)))
    kw = dict(n_components=2, init="pca", random_state=seed, perplexity=perplexity, learning_rate="auto")
    try:
        tsne = TSNE(max_iter=500, **kw)
    except TypeError:  # scikit-learn < 1.5
        tsne = TSNE(n_iter=500, **kw)
    # one OpenMP thread: Barnes-Hut t-SNE with 2 threads was 4x slower than with 1 on a busy 2-core machine
    # (spinning OpenMP workers), and only slightly faster on an idle one.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        coords = tsne.fit_transform(x.astype(np.float32))
    return coords, idx, "t-SNE"


# ------------------------------------------------------------------------------------------ sections
def _load_metrics(path: Path):
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except Exception as e:
        raise ContrastkitError(f"metrics_csv={str(path)!r}: cannot be read as CSV ({e})") from e
    num = df.apply(pd.to_numeric, errors="coerce")
    return num.dropna(axis=1, how="all")


def _xaxis(df):
    for c in _AXIS_COLS:
        if c in df.columns and df[c].notna().any():
            return c
    return None


def _series(df, col: str, xcol: Optional[str]):
    sub = df[[col] + ([xcol] if xcol else [])].dropna()
    x = sub[xcol].to_numpy() if xcol else np.arange(len(sub))
    return x, sub[col].to_numpy()


def _training_section(df) -> str:
    xcol = _xaxis(df)
    present = [c for c in _TRAIN_COLS if c in df.columns]
    if not present:
        return ""
    fig = _figure(5.2 * len(present), 3.4)
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    for ax, col in zip(axes, present):
        x, y = _series(df, col, xcol)
        if col == "loss" and len(y) > 100:
            w = len(y) // 50
            smooth = np.convolve(y, np.ones(w) / w, mode="valid")
            ax.plot(x, y, color="C0", alpha=0.3, lw=0.8, label="per log row")
            ax.plot(x[w - 1 :], smooth, color="C0", lw=1.6, label=f"moving mean ({w})")
            ax.legend(fontsize=8)
        else:
            ax.plot(x, y, color="C0" if col == "loss" else "C1", lw=1.4, marker="." if len(y) < 40 else None)
        ax.set_xlabel(xcol or "row")
        ax.set_title("training loss" if col == "loss" else "learning rate")
        ax.grid(alpha=0.3)
    return "<h2>Training</h2>" + _img(fig, "loss and learning-rate curves")


def _monitor_section(df) -> str:
    xcol = _xaxis(df)
    skip = set(_AXIS_COLS) | set(_TRAIN_COLS)
    cols = [c for c in df.columns if c not in skip and c.lower() not in _SKIP_MONITOR]
    if not cols:
        return ""
    ncol = min(3, len(cols))
    nrow = math.ceil(len(cols) / ncol)
    fig = _figure(4.2 * ncol, 3.0 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).reshape(-1)
    summary = []
    last_epoch = None
    if "epoch" in df.columns and df["epoch"].notna().any():
        last_epoch = df["epoch"].dropna().iloc[-1]
    for ax, col in zip(axes, cols):
        x, y = _series(df, col, xcol)
        ax.plot(x, y, lw=1.4, marker="." if len(y) < 40 else None)
        ax.set_title(col)
        ax.set_xlabel(xcol or "row")
        ax.grid(alpha=0.3)
        row = {"monitor": col, "last-epoch value": float(y[-1]) if len(y) else None}
        sub = df[[col] + (["epoch"] if "epoch" in df.columns else [])].dropna()
        if len(sub) and "epoch" in sub.columns:
            row["logged at epoch"] = _fmt(sub["epoch"].iloc[-1])
            if any(s in col.lower() for s in _SCORE_MONITORS):
                i = int(np.argmax(sub[col].to_numpy()))
                row["best over epochs (optimistic)"] = float(sub[col].iloc[i])
                row["best epoch"] = _fmt(sub["epoch"].iloc[i])
        summary.append(row)
    for ax in axes[len(cols) :]:
        ax.set_visible(False)
    at = f" (epoch {_fmt(last_epoch)})" if last_epoch is not None else ""
    note = (f'<p class="note">Values in the table are from the last logged row{at}; a best-over-epochs value '
            "is shown only where labelled as such and is optimistic.</p>")
    def cell(r, c):
        v = r.get(c)
        if isinstance(v, float) and any(s in str(r.get("monitor", "")).lower() for s in _SCORE_MONITORS):
            return fmt_score(v, c)
        return _fmt(v)

    return "<h2>Monitors</h2>" + _img(fig, "monitor curves") + note + _table(summary, "monitor-table", cell)


def _class_name(c: Any, class_names: Optional[Sequence[str]]) -> str:
    try:
        i = int(c)
    except (TypeError, ValueError):
        return str(c)
    if class_names is not None and 0 <= i < len(class_names) and i == c:
        return str(class_names[i])
    return str(c)


def _map_section(test_emb, test_y, class_names: Optional[Sequence[str]] = None) -> str:
    if test_emb is None:
        return ""
    n = len(test_emb)
    if n < 5:
        return ""
    coords, idx, name = embedding_map_2d(test_emb)
    fig = _figure(6.4, 5.6)
    ax = fig.subplots()
    if test_y is not None:
        y = np.asarray(to_numpy(test_y)).reshape(-1)[idx]
        classes = np.unique(y)
        if len(classes) <= 20:
            cmap = "tab10" if len(classes) <= 10 else "tab20"
            import matplotlib

            colors = matplotlib.colormaps[cmap]
            for i, c in enumerate(classes):
                m = y == c
                label = _mpl_text(_class_name(c, class_names))
                ax.scatter(coords[m, 0], coords[m, 1], s=4, color=colors(i % colors.N), label=label)
            ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
                      title="class" if class_names is not None else "label")
        else:
            codes = np.unique(y, return_inverse=True)[1]
            sc = ax.scatter(coords[:, 0], coords[:, 1], s=4, c=codes, cmap="viridis")
            fig.colorbar(sc, ax=ax, label="label index")
    else:
        ax.scatter(coords[:, 0], coords[:, 1], s=4, color="C0")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{name} of {len(idx)} of {n} test embeddings (L2-normalised)")
    return _img(fig, f"{name} map of test embeddings")


def _sims_section(pos_sims, neg_sims) -> str:
    pos, neg = _flat(pos_sims, "pos_sims"), _flat(neg_sims, "neg_sims")
    if pos is None and neg is None:
        return ""
    fig = _figure(6.4, 3.6)
    ax = fig.subplots()
    bins = np.linspace(-1.0, 1.0, 81)
    lo = min(a.min() for a in (pos, neg) if a is not None)
    hi = max(a.max() for a in (pos, neg) if a is not None)
    if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:  # not cosines: use the data range
        bins = np.linspace(lo, hi, 81)
    stats = []
    for a, label, color in ((pos, "positive pairs", "C2"), (neg, "negative pairs", "C3")):
        if a is not None:
            ax.hist(a, bins=bins, density=True, alpha=0.55, color=color, label=f"{label} (n={a.size})")
            stats.append({"pairs": label, "count": int(a.size), "mean": float(a.mean()),
                          "std": float(a.std())})
    ax.set_xlabel("cosine similarity")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    img = _img(fig, "histogram of positive and negative cosine similarities")
    return "<h2>Similarities</h2>" + img + _table(stats, "similarity-table")


def _temperature_section(temperatures) -> str:
    t = _flat(temperatures, "temperatures")
    if t is None:
        return ""
    fig = _figure(6.0, 3.4)
    ax = fig.subplots()
    ax.hist(t, bins=min(60, max(5, int(np.sqrt(t.size)))), color="C4", alpha=0.8)
    ax.set_xlabel("temperature τ")
    ax.set_ylabel("count")
    ax.set_title(f"learned temperatures (n={t.size}, mean {t.mean():.4f}, "
                 f"min {t.min():.4f}, max {t.max():.4f})")
    ax.grid(alpha=0.3)
    return "<h2>Learned temperatures</h2>" + _img(fig, "histogram of learned temperatures")


# ------------------------------------------------------------------------------------------ header
def _yaml_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_yaml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_yaml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, float):
        return f"{v:.6g}"
    return "null" if v is None else str(v)


def _seconds(v: Any) -> str:
    try:
        s = float(v)
    except (TypeError, ValueError):
        return "—"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min ({s:.0f} s)"
    return f"{s / 3600:.2f} h ({s:.0f} s)"


def _header_section(config: Optional[dict]) -> str:
    """Facts from config.yaml (+ its run_record when present) and the settings, collapsible."""
    if not config:
        return ""
    cfg = {k: v for k, v in config.items() if k != "run_record"}
    rec = config.get("run_record") if isinstance(config.get("run_record"), dict) else {}

    def g(d, k):
        v = d.get(k)
        return None if v is None or v == "" else v

    facts: list[tuple[str, str]] = []
    facts.append(("method", str(cfg.get("method", "—"))))
    facts.append(("data", str(cfg.get("data", "—"))))
    enc = str(cfg.get("encoder", "—"))
    if cfg.get("encoder_kwargs"):
        enc += f" {_yaml_value(cfg['encoder_kwargs'])}"
    facts.append(("encoder", enc))
    facts.append(("layer evaluated", str(cfg.get("layer") or "backbone")))
    if rec:
        done, planned = g(rec, "epochs_done"), g(rec, "planned_epochs")
        ep = "—" if done is None else f"{float(done):g}"
        if planned is not None:
            ep += f" of {planned} planned"
        if g(rec, "planned_minutes") is not None:
            ep += f" (budget {rec['planned_minutes']} min)"
        steps = g(rec, "steps")
        skipped = g(rec, "skipped_steps")
        st = "—" if steps is None else str(steps)
        if skipped:
            st += f" ({skipped} skipped)"
        facts.append(("steps · epochs done", f"{st} · {ep}"))
        facts.append(("training time", _seconds(g(rec, "train_seconds"))))
        dev = g(rec, "device") or cfg.get("device", "—")
        prec = g(rec, "precision") or cfg.get("precision", "—")
        facts.append(("device · precision · processes", f"{dev} · {prec} · {g(rec, 'processes') or 1}"))
        vers = [f"contrastkit {rec['contrastkit']}" if g(rec, "contrastkit") else None,
                f"torch {rec['torch']}" if g(rec, "torch") else None,
                f"python {rec['python']}" if g(rec, "python") else None]
        facts.append(("versions", " · ".join(v for v in vers if v) or "—"))
    else:
        planned = cfg.get("epochs")
        facts.append(("epochs (planned)", "—" if planned is None else str(planned)))
        facts.append(("device · precision", f"{cfg.get('device', '—')} · {cfg.get('precision', '—')}"))
        facts.append(("run record", "not recorded (run saved by an older contrastkit)"))
    for k in ("batch_size", "lr", "optimizer", "temperature"):
        if cfg.get(k) is not None:
            facts.append((k.replace("_", " "), _yaml_value(cfg[k])))
    cards = "".join(f'<div class="fact"><span class="k">{html.escape(k)}</span>'
                    f'<span class="v">{html.escape(v)}</span></div>' for k, v in facts)
    rows = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_yaml_value(v))}</td></tr>"
                   for k, v in sorted(cfg.items()))
    out = [f'<div class="facts" id="run-facts">{cards}</div>',
           f'<details id="settings"><summary>All settings ({len(cfg)})</summary>'
           f"<table><thead><tr><th>setting</th><th>value</th></tr></thead><tbody>{rows}</tbody></table>"
           f"</details>"]
    views = rec.get("views") if isinstance(rec.get("views"), dict) else None
    if views:  # {view: {setting: value}} (images) or {view: "Module(args)"} (other kinds)
        views = {n: (v if isinstance(v, dict) else {"module": v}) for n, v in views.items()}
        names = list(views)
        keys: list[str] = []
        for v in views.values():
            for k in v:
                if k not in keys:
                    keys.append(k)
        head = "".join(f"<th>{html.escape(str(n))}</th>" for n in names)
        body = "".join("<tr><td>" + html.escape(str(k)) + "</td>" +
                       "".join(f"<td>{html.escape(_yaml_value(views[n].get(k)))}</td>" for n in names)
                       + "</tr>" for k in keys)
        out.append(f'<details id="views-built"><summary>Views as built</summary><table><thead><tr>'
                   f"<th>setting</th>{head}</tr></thead><tbody>{body}</tbody></table></details>")
    extra = {k: v for k, v in rec.items() if k not in ("views",)}
    if extra:
        body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(_yaml_value(v))}</td></tr>"
                       for k, v in extra.items())
        out.append(f'<details id="run-record"><summary>Run record</summary><table><tbody>{body}</tbody>'
                   f"</table></details>")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------ verdicts
def _pct(v: float) -> str:
    return f"{100 * v:.2f}%"


def _compare(a: float, b: float) -> str:
    """'beats' / 'loses' / 'ties' for score a against score b (ties: within 0.05 percentage points)."""
    d = 100 * (a - b)
    return "ties" if abs(d) < 0.05 else "beats" if d > 0 else "loses"


_WORDS = {"beats": ("beats", "beat"), "loses": ("loses to", "lose"), "ties": ("ties with", "tie")}


def verdicts(rows: Sequence[dict], encoder_names: Sequence[str] = ()) -> list[dict]:
    """Plain-word comparisons of the encoder with every baseline, one dict per metric:
    {"metric", "encoder" (name), "value", "against": [(baseline, value, "beats"|"loses"|"ties")], "text"}.

    Rows {"metric", "encoder", <baseline>...} (image, table, series, graph, paired data): every score in
    [0, 1] of the row is compared with the encoder's (metrics whose name says lower-is-better — MSE, error,
    loss — are skipped). Anomaly rows {"model", "scorer", "auroc", ...}: each encoder scorer's AUROC
    against IsolationForest, the raw-feature kNN and the random-init model with the same scorer.
    """
    out: list[dict] = []
    rows = [r for r in rows if isinstance(r, dict)]
    if rows and all("model" in r and "auroc" in r for r in rows):
        models = [r for r in rows if str(r["model"]) not in _ANOMALY_BASELINES]
        for r in models:
            if not _is_score(r.get("auroc")):
                continue
            scorer = str(r.get("scorer", ""))
            against = []
            for r2 in rows:
                name = str(r2["model"])
                if name not in _ANOMALY_BASELINES or not _is_score(r2.get("auroc")):
                    continue
                if name == "random init" and str(r2.get("scorer", "")) != scorer:
                    continue
                label = {"isolation forest": "IsolationForest", "raw features": "raw kNN"}.get(name, name)
                if name == "raw features" and r2.get("scorer"):
                    scorer2 = str(r2["scorer"])
                    label = "LOF" if scorer2.startswith("lof") else f"raw kNN ({scorer2})"
                against.append((label, float(r2["auroc"]), _compare(float(r["auroc"]), float(r2["auroc"]))))
            metric = f"AUROC, {r['model']} ({scorer})"
            out.append(_verdict(metric, str(r["model"]), float(r["auroc"]), against))
        return out
    for r in rows:
        metric = str(r.get("metric", ""))
        enc = next((c for c in ("encoder", *encoder_names) if c in r), None)
        if not metric or enc is None or not _is_score(r.get(enc)):
            continue
        if any(w in metric.lower() for w in _NOT_SCORES):
            continue
        v = float(r[enc])
        against = [(str(c), float(b), _compare(v, float(b))) for c, b in r.items()
                   if c not in ("metric", enc) and _is_score(b)]
        if against:
            out.append(_verdict(metric, enc, v, against))
    return out


def _verdict(metric: str, enc: str, v: float, against: list) -> dict:
    parts = []
    for name, b, how in against:
        diff = 100 * (v - b)
        parts.append(f"{_WORDS[how][0]} {name} ({_pct(b)}, {diff:+.2f} pts)")
    text = f"{metric}: {enc} {_pct(v)} — " + "; ".join(parts)
    return {"metric": metric, "encoder": enc, "value": v, "against": against, "text": text}


def _verdict_section(rows: Sequence[dict]) -> str:
    vs = verdicts(rows)
    if not vs:
        return ""
    items = []
    n_lose = 0
    lost_to: dict[str, int] = {}
    for v in vs:
        hows = {h for _, _, h in v["against"]}
        cls = "loses" if hows == {"loses"} else "beats" if hows <= {"beats"} else "mixed"
        if "loses" in hows:
            n_lose += 1
            for name, _, h in v["against"]:
                if h == "loses":
                    lost_to[name] = lost_to.get(name, 0) + 1
        bits = []
        for name, b, how in v["against"]:
            word = _WORDS[how][0]
            span = {"beats": "beat", "loses": "lose", "ties": "tie"}[how]
            bits.append(f'<span class="{span}">{html.escape(word)} {html.escape(name)}</span> '
                        f"({html.escape(_pct(b))}, {100 * (v['value'] - b):+.2f} pts)")
        items.append(f'<li class="{cls}"><b>{html.escape(v["metric"])}</b>: {html.escape(v["encoder"])} '
                     f"<b>{html.escape(_pct(v['value']))}</b> — " + "; ".join(bits) + "</li>")
    if n_lose == 0:
        head = f'<span class="beat">The encoder beats every baseline on all {len(vs)} comparison(s).</span>'
    else:
        worst = ", ".join(f"{html.escape(k)} ({n}/{len(vs)})" for k, n in
                          sorted(lost_to.items(), key=lambda kv: -kv[1]))
        head = (f'<span class="lose">The encoder loses to a baseline on {n_lose} of {len(vs)} '
                f"metric(s)</span>: to {worst}.")
    return (f'<p class="headline" id="verdict-headline">{head}</p>'
            f'<ul class="verdict" id="verdicts">{"".join(items)}</ul>')


# ------------------------------------------------------------------------------------------ ROC curves
def _roc_section(roc: Optional[dict]) -> str:
    """roc = {"is_anomaly": (n,) 0/1, "scores": {name: (n,) higher = more anomalous}, "note": str}."""
    if not roc or not roc.get("scores"):
        return ""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.asarray(roc["is_anomaly"]).astype(int).reshape(-1)
    if len(np.unique(y)) != 2:
        return ""
    fig = _figure(11.0, 4.4)
    ax, axl = fig.subplots(1, 2)
    n_neg = int((y == 0).sum())
    drawn = 0
    for i, (name, s) in enumerate(roc["scores"].items()):
        s = np.asarray(s, dtype=np.float64).reshape(-1)
        if s.shape != y.shape or not np.isfinite(s).all():
            continue
        fpr, tpr, _ = roc_curve(y, s)
        auc = float(roc_auc_score(y, s))
        ax.plot(fpr, tpr, lw=1.6, color=f"C{i}", label=_mpl_text(f"{name} (AUROC {_pct(auc)})"))
        axl.plot(np.maximum(fpr, 1.0 / max(n_neg, 1)), tpr, lw=1.6, color=f"C{i}")
        drawn += 1
    if not drawn:
        return ""
    ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=1, label="chance")
    grid = np.logspace(np.log10(1.0 / max(n_neg, 1)), 0, 100)
    axl.plot(grid, grid, ls="--", color="#999", lw=1)
    axl.set_xscale("log")
    axl.set_xlim(1.0 / max(n_neg, 1), 1)
    ax.set_xlim(0, 1)
    ax.set_title("ROC")
    axl.set_title("ROC, false-positive rate on a log scale")
    for a in (ax, axl):
        a.set_xlabel("false-positive rate (normal rows flagged)")
        a.set_ylabel("true-positive rate (anomalies found)")
        a.set_ylim(0, 1.01)
        a.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    note = html.escape(roc.get("note") or "")
    return ("<h2>ROC curves</h2>" + _img(fig, "ROC curves of the encoder and the baselines") +
            (f'<p class="note">{note}</p>' if note else ""))


# ------------------------------------------------------------------------------------------ per class
def _per_class_section(per_class: Optional[dict], class_names: Optional[Sequence[str]]) -> str:
    """per_class = {"k", "y_true", "y_pred"}: accuracy of the kNN prediction within each true class."""
    if not per_class:
        return ""
    yt = np.asarray(per_class["y_true"]).reshape(-1)
    yp = np.asarray(per_class["y_pred"]).reshape(-1)
    if yt.shape != yp.shape or yt.size == 0:
        return ""
    classes = np.unique(yt)
    if len(classes) > 100:
        return ""
    overall = float((yt == yp).mean())
    body = []
    for c in classes:
        m = yt == c
        n = int(m.sum())
        acc = float((yp[m] == c).mean())
        wrong = yp[m][yp[m] != c]
        if wrong.size:
            vals, cnt = np.unique(wrong, return_counts=True)
            j = int(np.argmax(cnt))
            conf = f"{_class_name(vals[j], class_names)} ({100 * cnt[j] / n:.1f}%)"
        else:
            conf = "—"
        low = ' class="low"' if acc < overall - 0.1 else ""
        bar = f'<span class="bar" style="width:{max(1, round(60 * acc))}px"></span>'
        body.append(f"<tr><td>{html.escape(_class_name(c, class_names))}</td><td>{n}</td>"
                    f"<td{low}>{bar}{html.escape(_pct(acc))}</td><td>{html.escape(conf)}</td></tr>")
    k = per_class.get("k")
    title = f"kNN (k={k}) accuracy per class" if k else "kNN accuracy per class"
    return (f"<h3>{html.escape(title)}</h3>"
            f'<table id="per-class-table"><thead><tr><th>class</th><th>test rows</th><th>accuracy</th>'
            f"<th>most often predicted instead</th></tr></thead><tbody>{''.join(body)}</tbody></table>"
            f'<p class="note">Overall {html.escape(_pct(overall))}; cells shaded red are more than 10 points '
            f"below it. Predictions from the encoder's embeddings (train split as the neighbours).</p>")


def _classes_section(test_emb, test_y, class_names, per_class) -> str:
    m = _map_section(test_emb, test_y, class_names)
    t = _per_class_section(per_class, class_names)
    if not m and not t:
        return ""
    if m and t:
        return f'<h2>Classes and embedding map</h2><div class="row"><div>{t}</div><div>{m}</div></div>'
    return "<h2>Embedding map</h2>" + m if m else "<h2>Classes</h2>" + t


# ------------------------------------------------------------------------------------------ images
def _to_hwc(img: Any, mean=None, std=None) -> np.ndarray:
    """One image (C, H, W) (uint8, or normalised float with mean/std) → (H, W[, 3]) float in [0, 1]."""
    a = np.asarray(to_numpy(img), dtype=np.float32)
    if a.ndim == 2:
        a = a[None]
    if mean is not None and std is not None:
        a = (a * np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
             + np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1))
    elif a.max() > 1.0:
        a = a / 255.0
    a = np.clip(a, 0.0, 1.0)
    if a.shape[0] == 1:
        return a[0]
    if a.shape[0] >= 3:
        return np.transpose(a[:3], (1, 2, 0))
    return a.mean(0)


def _show(ax, img, title: str = "", color: Optional[str] = None, **kw) -> None:
    h = _to_hwc(img, **kw)
    ax.imshow(h, cmap="gray" if h.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(_mpl_text(title), fontsize=8, color=color or "black")
    if color:
        for sp in ax.spines.values():
            sp.set_edgecolor(color)
            sp.set_linewidth(2.5)


def _neighbours_section(nn: Optional[dict], class_names) -> str:
    """nn = {"queries": (q, C, H, W), "query_y": (q,) or None, "neighbours": (q, k, C, H, W),
    "neighbour_y": (q, k) or None, "sims": (q, k)}."""
    if not nn or len(nn.get("queries", ())) == 0:
        return ""
    q, k = np.asarray(nn["sims"]).shape
    fig = _figure(1.25 * (k + 1) + 0.4, 1.35 * q)
    axes = fig.subplots(q, k + 1, squeeze=False)
    qy, ny = nn.get("query_y"), nn.get("neighbour_y")
    for i in range(q):
        title = ("test: " + _class_name(qy[i], class_names)) if qy is not None else "test image"
        _show(axes[i, 0], nn["queries"][i], title, color="#1f4e99")
        for j in range(k):
            same = None if qy is None or ny is None else bool(ny[i][j] == qy[i])
            t = f"{nn['sims'][i][j]:.2f}"
            if ny is not None:
                t = f"{_class_name(ny[i][j], class_names)} · {t}"
            _show(axes[i, j + 1], nn["neighbours"][i][j], t,
                  color=None if same is None else ("#2e7d32" if same else "#c62828"))
    note = ("Each row: a test image (blue frame), then its nearest training images by cosine similarity "
            "of the embeddings (similarity in the caption)")
    if qy is not None and ny is not None:
        note += "; green frame = same class, red = another class"
    return ("<h2>Nearest neighbours</h2>" + _img(fig, "test images and their nearest training images") +
            f'<p class="note">{html.escape(note)}.</p>')


def _views_section(views: Optional[dict]) -> str:
    """views = {"original": (n, C, H, W) uint8, "view1"/"view2": (n, C, S, S) normalised, "mean", "std"}."""
    if not views or len(views.get("original", ())) == 0:
        return ""
    n = len(views["original"])
    fig = _figure(1.3 * n + 0.6, 4.2)
    axes = fig.subplots(3, n, squeeze=False)
    for j in range(n):
        _show(axes[0, j], views["original"][j], "original" if j == 0 else "")
        for r, key in ((1, "view1"), (2, "view2")):
            _show(axes[r, j], views[key][j], ("view 1" if r == 1 else "view 2") if j == 0 else "",
                  mean=views.get("mean"), std=views.get("std"))
    return ("<h2>Views</h2>" + _img(fig, "training images and their two augmented views") +
            '<p class="note">A few training images and the two views the method was trained on, rebuilt from '
            "the run's settings (seeded; the training run drew other random parameters).</p>")


# ------------------------------------------------------------------------------------------ public
def write_report(
    run_dir: str | os.PathLike,
    *,
    metrics_csv: str | os.PathLike | None = None,
    eval_rows: Optional[Sequence[dict]] = None,
    test_emb: Any = None,
    test_y: Any = None,
    pos_sims: Any = None,
    neg_sims: Any = None,
    temperatures: Any = None,
    title: str = "contrastkit run",
    config: Optional[dict] = None,
    class_names: Optional[Sequence[str]] = None,
    per_class: Optional[dict] = None,
    neighbours: Optional[dict] = None,
    views: Optional[dict] = None,
    roc: Optional[dict] = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write run_dir/report.html (self-contained) and return its path.

    * metrics_csv: the run's metrics.csv (default: run_dir/metrics.csv when it exists). Columns `step`/`epoch`
      are the x axis, `loss` and `lr` the training curves; every other numeric column (knn, eff_rank,
      uniformity, alignment, std, …) is plotted as a monitor curve with its last-epoch value tabulated.
      A given path that does not exist is noted in the report instead of failing (an unreadable file raises).
    * eval_rows: the evaluation table, e.g. [{"metric": "kNN k=200", "encoder": 0.85, "random init": 0.7}];
      the first key is the row-label column, all others value columns (missing cells show "—"); floats in
      [0, 1] are shown as percentages, as in the terminal. A verdict per metric (which baseline the encoder
      beats or loses to) heads the section (`verdicts`). Values are taken to be from the last-epoch encoder.
    * test_emb / test_y: a 2-D map (UMAP if installed, else t-SNE) of ≤ 2000 seeded test embeddings by
      label.
    * pos_sims / neg_sims: cosine similarities of positive / negative pairs (histograms).
    * temperatures: learned (per-sample) temperatures (histogram).
    * config: config.yaml as a dict (its `run_record` optional): the header facts and the settings.
    * class_names: names of the label indices (legend of the map, per-class table).
    * per_class: {"k", "y_true", "y_pred"} — kNN predictions of the test rows, tabulated per class.
    * neighbours / views / roc: see `_neighbours_section`, `_views_section`, `_roc_section`
      (`run_report_inputs` builds them from a run folder).
    * notes: lines shown under the header (e.g. a section that could not be built, and why).
    The file is written atomically (temp file + rename).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if metrics_csv is None and (run_dir / "metrics.csv").is_file():
        metrics_csv = run_dir / "metrics.csv"
    missing_metrics = metrics_csv is not None and not Path(metrics_csv).is_file()
    if class_names is not None:
        class_names = [str(c) for c in class_names]

    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="meta">run folder: {html.escape(str(run_dir.resolve()))} · report written '
             f'{_dt.datetime.now().strftime("%Y-%m-%d %H:%M")}</p>']
    n_fixed = len(parts)
    try:
        parts.append(_header_section(config))
    except Exception as e:  # an odd config.yaml must not cost the whole report
        parts.append(f'<p class="note">No header: config.yaml could not be shown ({html.escape(repr(e))}).</p>')
    parts += [f'<p class="note">{html.escape(str(n))}</p>' for n in notes]
    if eval_rows:
        parts.append("<h2>Evaluation</h2>")
        parts.append(_verdict_section(list(eval_rows)))
        parts.append(_table(list(eval_rows), "evaluation-table"))
        parts.append('<p class="note">Embeddings of the last-epoch encoder (frozen, eval mode) unless a row '
                     "or column says otherwise; scores in [0, 1] shown as percentages; "
                     "pts = percentage points.</p>")
    parts.append(_roc_section(roc))
    parts.append(_classes_section(test_emb, test_y, class_names, per_class))
    parts.append(_neighbours_section(neighbours, class_names))
    parts.append(_views_section(views))
    if missing_metrics:
        missing = html.escape(str(metrics_csv))
        parts.append(f'<p class="note">No training curves: {missing} was not found.</p>')
    elif metrics_csv is not None:
        df = _load_metrics(Path(metrics_csv))
        if len(df):
            parts.append(_training_section(df))
            parts.append(_monitor_section(df))
    parts.append(_sims_section(pos_sims, neg_sims))
    parts.append(_temperature_section(temperatures))
    shown = [p for p in parts if p]
    body = "\n".join(shown)
    if len(shown) == n_fixed + missing_metrics:
        body += '\n<p class="note">No metrics, evaluation results or embeddings were given.</p>'
    doc = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width=device-width, initial-scale=1">'
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
           f"<body>\n{body}\n</body></html>\n")

    out = run_dir / "report.html"
    fd, tmp = tempfile.mkstemp(prefix=".report.", suffix=".html", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(doc)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be shared
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out


# ------------------------------------------------------------------------------------------ run folder
_N_QUERIES = 6  # nearest-neighbour grid: test images shown
_N_NEIGHBOURS = 5
_N_VIEWS = 8  # views preview: training images shown
_ROC_MAX_ROWS = 50000  # ROC curves: test rows scored at most (seeded subsample beyond)


def _read_config(run_dir: Path) -> Optional[dict]:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        cfg = yaml.safe_load(path.read_text())
    except Exception as e:  # a report must still render
        _log.warning(f"note: report: {path} could not be read ({e})")
        return None
    return cfg if isinstance(cfg, dict) else None


def _labels(y: Any) -> Optional[np.ndarray]:
    if y is None:
        return None
    a = np.asarray(to_numpy(y)).reshape(-1)
    return a if a.size else None


def _pick_queries(y: Optional[np.ndarray], n: int, q: int, seed: int = 0) -> np.ndarray:
    """q seeded test rows, one per class first (as many classes as fit) when labels exist."""
    g = np.random.default_rng(seed)
    if y is None:
        return np.sort(g.choice(n, min(q, n), replace=False))
    out: list[int] = []
    for c in np.unique(y)[:q]:
        out.append(int(g.choice(np.flatnonzero(y == c))))
    rest = np.setdiff1d(np.arange(n), out)
    if len(out) < q and rest.size:
        out += g.choice(rest, min(q - len(out), rest.size), replace=False).tolist()
    return np.asarray(out[:q])


def _nearest(train_emb, test_emb, rows: np.ndarray, k: int):
    import torch

    from ._common import normalize

    tr = normalize(torch.as_tensor(np.asarray(to_numpy(train_emb), dtype=np.float32)))
    te = normalize(torch.as_tensor(np.asarray(to_numpy(test_emb), dtype=np.float32)[rows]))
    sims, idx = (te @ tr.t()).topk(min(k, tr.shape[0]), dim=1)
    return sims.numpy(), idx.numpy()


def run_report_inputs(run_dir: str | os.PathLike, test_emb: Any, test_y: Any, *, splits: Any = None,
                      train_emb: Any = None, encoder: Any = None, cfg: Optional[dict] = None) -> dict:
    """The optional inputs of `write_report` for a run folder: config, class names, per-class kNN accuracy,
    the nearest-neighbour grid and views preview (image data), ROC curves (anomaly tables), and notes.

    `splits` (the run's data; loaded from config.yaml's settings when None), `train_emb` (embeddings of the
    training split; computed with `encoder` or the run's encoder.pt when None and needed). Each part that
    cannot be built is left out with a note: writing the report never fails a finished run.
    """
    run_dir = Path(run_dir)
    config = _read_config(run_dir)
    out: dict[str, Any] = {"config": config if config is not None else cfg, "notes": []}
    settings = {k: v for k, v in (cfg or config or {}).items() if k != "run_record"}

    def note(what: str, e: BaseException) -> None:
        _log.warning(f"note: report: no {what} ({type(e).__name__}: {e})")
        out["notes"].append(f"No {what}: {type(e).__name__}: {e}")

    if splits is None:
        if not settings.get("data"):
            return out
        level = _log.level
        _log.setLevel(logging.ERROR)  # the loader's notes were printed once, when the run loaded its data
        try:
            from ..data import load_data

            splits = load_data(str(settings["data"]), settings)
        except Exception as e:
            _log.setLevel(level)
            note("class, image or ROC sections (the data could not be reloaded)", e)
            return out
        finally:
            _log.setLevel(level)
    try:
        _run_sections(out, run_dir, splits, settings, test_emb, test_y, train_emb, encoder, note)
    except Exception as e:  # never fail a finished run for a report section
        note("class, image or ROC sections", e)
    return out


def _run_sections(out, run_dir, splits, settings, test_emb, test_y, train_emb, encoder, note) -> None:
    info = splits.info
    extra = dict(info.extra or {})
    anomaly = info.kind == "table" and (extra.get("anomaly_label") is not None
                                        or extra.get("normal_label") is not None)
    yte = _labels(test_y)
    n_test = len(splits.test)
    aligned = test_emb is not None and len(test_emb) == n_test
    if aligned and yte is not None and splits.test.y is not None:
        aligned = np.array_equal(yte, _labels(splits.test.y))
    if anomaly:
        if yte is not None and set(np.unique(yte).tolist()) <= {0, 1}:
            out["class_names"] = ["normal", "anomaly"]
        try:
            out["roc"] = _roc_inputs(run_dir, splits, settings)
        except Exception as e:
            note("ROC curves", e)
        return
    classes = extra.get("classes")
    ytr = _labels(splits.train.y)
    if classes is not None and yte is not None and np.issubdtype(yte.dtype, np.integer) \
            and 0 <= yte.min() and yte.max() < len(classes):
        out["class_names"] = [str(c) for c in classes]
    # kNN per class where the table scores kNN (images, labelled tables): other kinds have their own protocol
    # (graph nodes are their own neighbours: train and test are the same rows)
    knn_kind = info.kind in ("image", "table") and splits.train.x is not splits.test.x
    need_train = aligned and (info.kind == "image" or (knn_kind and ytr is not None and yte is not None))
    if need_train and train_emb is None:
        try:
            from ..views import create_preprocess
            from .embed import embed

            if encoder is None:
                from ..run import load_encoder

                encoder = load_encoder(run_dir)[0]
            train_emb = embed(encoder, splits.train.x, create_preprocess(info))
        except Exception as e:
            note("per-class accuracy or neighbours (training embeddings unavailable)", e)
            train_emb = None
    if train_emb is not None and len(train_emb) != len(splits.train):
        train_emb = None
    if knn_kind and aligned and train_emb is not None and ytr is not None and yte is not None \
            and np.issubdtype(ytr.dtype, np.integer) and ytr.min() >= 0:
        try:
            from .knn import knn_predict

            k = min(20, len(ytr))
            pred = knn_predict(train_emb, ytr, test_emb, ks=(k,), t=float(settings.get("knn_t", 0.1)))[k]
            out["per_class"] = {"k": k, "y_true": yte, "y_pred": pred.numpy()}
        except Exception as e:
            note("per-class accuracy", e)
    if info.kind == "image" and aligned and train_emb is not None:
        try:
            rows = _pick_queries(yte, n_test, _N_QUERIES)
            sims, idx = _nearest(train_emb, test_emb, rows, _N_NEIGHBOURS)
            xtr, xte = splits.train.x, splits.test.x
            out["neighbours"] = {
                "queries": [to_numpy(xte[int(i)]) for i in rows],
                "query_y": None if yte is None else yte[rows],
                "neighbours": [[to_numpy(xtr[int(j)]) for j in r] for r in idx],
                "neighbour_y": None if ytr is None else ytr[idx],
                "sims": sims}
        except Exception as e:
            note("nearest-neighbour grid", e)
    if info.kind == "image":
        try:
            out["views"] = _views_inputs(info, splits, settings)
        except Exception as e:
            note("views preview", e)


def _views_inputs(info, splits, settings: dict) -> dict:
    import torch

    from ..views import create_views

    n = min(_N_VIEWS, len(splits.train))
    rows = np.sort(np.random.default_rng(1).choice(len(splits.train), n, replace=False))
    x = torch.as_tensor(to_numpy(splits.train.x[torch.as_tensor(rows)])).cpu()
    res = {"original": x.numpy()}
    for v in (1, 2):
        module = create_views(info, splits.train, settings, v).cpu()
        g = torch.Generator().manual_seed(v)
        with torch.no_grad():
            res[f"view{v}"] = module(x, g).float().cpu().numpy()
    c = int(x.shape[1])
    res["mean"] = tuple(info.mean) if info.mean is not None else (0.5,) * c
    res["std"] = tuple(info.std) if info.std is not None else (0.5,) * c
    return res


def _roc_inputs(run_dir: Path, splits, settings: dict) -> dict:
    """Scores of the run's scoring model (its centroid and kNN scorers), IsolationForest and the raw-feature
    kNN on the test rows, fitted on the normal training rows as the anomaly protocol does."""
    import torch

    from ..run import load_centroid, load_scoring_model
    from ..views import create_preprocess
    from .anomaly import anomaly_score_values
    from .anomaly_protocol import knn_distance_scores
    from .embed import embed

    yte = _labels(splits.test.y)
    if yte is None:
        raise ContrastkitError("the test split has no labels")
    train_x, test_x = splits.train.x, splits.test.x
    if splits.train.y is not None:
        train_x = train_x[splits.train.y.to(train_x.device) == 0]
    note = ""
    if len(yte) > _ROC_MAX_ROWS:
        rows = np.sort(np.random.default_rng(0).choice(len(yte), _ROC_MAX_ROWS, replace=False))
        test_x, yte = test_x[torch.as_tensor(rows)], yte[rows]
        note = f"ROC curves on a seeded sample of {_ROC_MAX_ROWS} test rows (the table uses all of them). "
    model, info, _, _ = load_scoring_model(run_dir)
    centroid = load_centroid(run_dir)
    pre = create_preprocess(info)
    tr, te = embed(model, train_x, pre), embed(model, test_x, pre)
    k = min(5, int(train_x.shape[0]))
    name = str(settings.get("method", "encoder"))
    scores = {f"{name} (centroid)": anomaly_score_values(tr, te, "centroid", centroid=centroid),
              f"{name} (knn-{k})": anomaly_score_values(tr, te, "knn", k=k)}
    from sklearn.ensemble import IsolationForest

    x_tr = train_x.detach().float().cpu().flatten(1)
    x_te = test_x.detach().float().cpu().flatten(1)
    forest = IsolationForest(n_estimators=100, random_state=int(settings.get("seed", 0)), n_jobs=1)
    scores["IsolationForest"] = -forest.fit(x_tr.numpy()).score_samples(x_te.numpy())
    scores[f"raw kNN (knn-{k})"] = knn_distance_scores(x_tr, x_te, k=k)
    note += ("Scores recomputed from the saved model and the reloaded data, fitted on the normal training "
             "rows; anomaly = positive class.")
    return {"is_anomaly": (yte != 0).astype(int), "scores": scores, "note": note}
