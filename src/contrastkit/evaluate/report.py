"""The self-contained HTML run report: training curves, monitors, embedding map, similarity histograms,
temperatures and the evaluation table, in one file (`run_dir/report.html`) with every image embedded as a
base64 PNG — no scripts, no external files, so it can be mailed or archived as is.

Plots are drawn with matplotlib's object API on the Agg canvas (`matplotlib.figure.Figure`), never through
pyplot, so writing a report does not change the caller's matplotlib backend or open windows.
Every section is skipped (with nothing drawn) when its inputs are missing.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ContrastkitError
from ._common import to_numpy

__all__ = ["write_report", "embedding_map_2d"]

# metrics.csv columns that are not monitor curves
_AXIS_COLS = ("step", "epoch")
_TRAIN_COLS = ("loss", "lr")
_SKIP_MONITOR = {"time", "wall", "wall_s", "elapsed", "elapsed_s", "timestamp", "samples"}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#222}
h1{font-size:1.6em;margin-bottom:.2em}
h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#666;font-size:.9em} .note{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0} th,td{border:1px solid #ccc;padding:.3em .7em;text-align:right}
th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
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


def _table(rows: Sequence[dict], table_id: str) -> str:
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = []
    for r in rows:
        cells = "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols)
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


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
            if any(s in col.lower() for s in ("knn", "acc", "linear", "auroc")):
                i = int(np.argmax(sub[col].to_numpy()))
                row["best over epochs (optimistic)"] = float(sub[col].iloc[i])
                row["best epoch"] = _fmt(sub["epoch"].iloc[i])
        summary.append(row)
    for ax in axes[len(cols) :]:
        ax.set_visible(False)
    at = f" (epoch {_fmt(last_epoch)})" if last_epoch is not None else ""
    note = (f'<p class="note">Values in the table are from the last logged row{at}; a best-over-epochs value '
            "is shown only where labelled as such and is optimistic.</p>")
    return "<h2>Monitors</h2>" + _img(fig, "monitor curves") + note + _table(summary, "monitor-table")


def _map_section(test_emb, test_y) -> str:
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
                ax.scatter(coords[m, 0], coords[m, 1], s=4, color=colors(i % colors.N), label=str(c))
            ax.legend(markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), title="label")
        else:
            codes = np.unique(y, return_inverse=True)[1]
            sc = ax.scatter(coords[:, 0], coords[:, 1], s=4, c=codes, cmap="viridis")
            fig.colorbar(sc, ax=ax, label="label index")
    else:
        ax.scatter(coords[:, 0], coords[:, 1], s=4, color="C0")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{name} of {len(idx)} of {n} test embeddings (L2-normalised)")
    return "<h2>Embedding map</h2>" + _img(fig, f"{name} map of test embeddings")


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
) -> Path:
    """Write run_dir/report.html (self-contained) and return its path.

    * metrics_csv: the run's metrics.csv (default: run_dir/metrics.csv when it exists). Columns `step`/`epoch`
      are the x axis, `loss` and `lr` the training curves; every other numeric column (knn, eff_rank,
      uniformity, alignment, std, …) is plotted as a monitor curve with its last-epoch value tabulated.
      A given path that does not exist is noted in the report instead of failing (an unreadable file raises).
    * eval_rows: the evaluation table, e.g. [{"metric": "kNN k=200", "encoder": 0.85, "random init": 0.7}];
      the first key is the row-label column, all others value columns (missing cells show "—"). Values are
      taken to be from the last-epoch encoder; label a row or column explicitly if it is a best-epoch value.
    * test_emb / test_y: a 2-D map (UMAP if installed, else t-SNE) of ≤ 2000 seeded test embeddings by label.
    * pos_sims / neg_sims: cosine similarities of positive / negative pairs (histograms).
    * temperatures: learned (per-sample) temperatures (histogram).
    The file is written atomically (temp file + rename).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if metrics_csv is None and (run_dir / "metrics.csv").is_file():
        metrics_csv = run_dir / "metrics.csv"
    missing_metrics = metrics_csv is not None and not Path(metrics_csv).is_file()

    parts = [f"<h1>{html.escape(title)}</h1>",
             f'<p class="meta">run folder: {html.escape(str(run_dir.resolve()))} · report written '
             f'{_dt.datetime.now().strftime("%Y-%m-%d %H:%M")}</p>']
    if eval_rows:
        parts.append("<h2>Evaluation</h2>")
        parts.append('<p class="note">Embeddings of the last-epoch encoder (frozen, eval mode) unless a row '
                     "or column says otherwise.</p>")
        parts.append(_table(list(eval_rows), "evaluation-table"))
    if missing_metrics:
        missing = html.escape(str(metrics_csv))
        parts.append(f'<p class="note">No training curves: {missing} was not found.</p>')
    elif metrics_csv is not None:
        df = _load_metrics(Path(metrics_csv))
        if len(df):
            parts.append(_training_section(df))
            parts.append(_monitor_section(df))
    parts.append(_map_section(test_emb, test_y))
    parts.append(_sims_section(pos_sims, neg_sims))
    parts.append(_temperature_section(temperatures))
    body = "\n".join(p for p in parts if p)
    if len([p for p in parts if p]) == 2 + missing_metrics:
        body += '\n<p class="note">No metrics, evaluation results or embeddings were given.</p>'
    doc = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
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
