"""`contrastkit compare RUN1 RUN2 ...`: the settings that differ between runs, their final metrics, and one plot.

Read from the run folders alone: `config.yaml` (settings, and the run's record: steps, seconds, device),
`eval.json` (the evaluation table written after pretraining: the encoder's value per metric; rows added later by
`contrastkit evaluate` come from `evaluate.json`) and `metrics.csv` (the loss curve).

The plot (PNG) has the training loss against steps for every run and the encoder's final metrics side by side;
it is drawn with matplotlib's object API on the Agg canvas (no pyplot, no window, the caller's backend untouched).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ContrastkitError

RECORD_KEY = "run_record"
IGNORED = {"out"}  # differs between any two runs by construction
RECORD_SHOWN = ("steps", "epochs_done", "train_seconds", "device", "processes", "precision")


@dataclass
class RunSummary:
    path: Path
    label: str
    settings: dict[str, Any]
    record: dict[str, Any]
    metrics: dict[str, float]  # metric → the encoder's final value
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) from metrics.csv


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ContrastkitError(f"{path}: not valid YAML ({e})") from None
    return loaded if isinstance(loaded, dict) else {}


def _encoder_value(row: dict[str, Any]) -> float | None:
    """The trained encoder's number in an evaluation row (`encoder` column, or `value` for `contrastkit evaluate`)."""
    for key in ("encoder", "value"):
        v = row.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return []
    rows = data.get("rows", []) if isinstance(data, dict) else data
    return [r for r in rows if isinstance(r, dict) and ("metric" in r or "model" in r)]


ANOMALY_METRICS = ("auroc", "aupr", "balanced_auroc")


def _encoder_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """metric → the trained encoder's value. Two schemas: {"metric", "encoder", <baselines>} rows, and the anomaly
    protocol's {"model", "scorer", "auroc", "aupr", ...} rows, whose first model is the trained encoder."""
    out: dict[str, float] = {}
    trained = next((r["model"] for r in rows if "model" in r), None)
    for row in rows:
        if "metric" in row:
            value = _encoder_value(row)
            if value is not None:
                out.setdefault(str(row["metric"]), value)
        elif row.get("model") == trained:
            for key in ANOMALY_METRICS:
                if isinstance(row.get(key), (int, float)):
                    out.setdefault(f"{key} ({row.get('scorer', '')})", float(row[key]))
    return out


def _curve(path: Path) -> list[tuple[int, float]]:
    if not path.is_file():
        return []
    out = []
    with path.open() as f:
        for row in csv.DictReader(f):
            try:
                step, loss = int(float(row["step"])), float(row["loss"])
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(loss):
                out.append((step, loss))
    return out


def load_run(path: Path | str) -> RunSummary:
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise ContrastkitError(f"{path}: no config.yaml; compare takes contrastkit run folders")
    cfg = _read_yaml(path / "config.yaml")
    record = cfg.pop(RECORD_KEY, None) or {}
    metrics: dict[str, float] = {}
    for source in ("eval.json", "evaluate.json"):  # the pretraining table first; later evaluations add metrics
        for metric, value in _encoder_metrics(_rows(path / source)).items():
            metrics.setdefault(metric, value)
    curve = _curve(path / "metrics.csv")
    if curve:
        metrics.setdefault("final loss", curve[-1][1])
    return RunSummary(path, path.name or str(path), cfg, record if isinstance(record, dict) else {}, metrics, curve)


def _labels(paths: list[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]  # two runs of the same name in different folders


def _show(value: Any) -> str:
    """A setting as text (never a float: the table shows floats in [0, 1] as percentages)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return "—" if value is None else str(value)


_MISSING = object()


def compare_runs(paths: list[Path | str]) -> tuple[list[RunSummary], list[dict[str, Any]], list[dict[str, Any]]]:
    """(runs, settings rows, metric rows): each row has a first column naming the setting/metric and one column
    per run (its label)."""
    if len(paths) < 2:
        raise ContrastkitError("compare needs two or more run folders, e.g. contrastkit compare runs/a runs/b")
    paths = [Path(p) for p in paths]
    runs = [load_run(p) for p in paths]
    for run, label in zip(runs, _labels(paths)):
        run.label = label
    settings_rows = []
    keys = sorted({k for r in runs for k in r.settings} - IGNORED)
    for key in keys:
        values = [r.settings.get(key, _MISSING) for r in runs]
        if any(v != values[0] for v in values[1:]):
            settings_rows.append({"setting": key, **{r.label: "(not set)" if v is _MISSING else _show(v)
                                                     for r, v in zip(runs, values)}})
    for key in RECORD_SHOWN:  # what the runs actually did (a 5-minute run and a 100-epoch one differ here)
        values = [r.record.get(key) for r in runs]
        if any(v is not None for v in values) and any(v != values[0] for v in values[1:]):
            settings_rows.append({"setting": f"({key})", **{r.label: _show(v) for r, v in zip(runs, values)}})
    metric_names: list[str] = []
    for r in runs:
        metric_names += [m for m in r.metrics if m not in metric_names]
    metric_rows = [{"metric": m, **{r.label: r.metrics.get(m, "—") for r in runs}} for m in metric_names]
    return runs, settings_rows, metric_rows


def plot_comparison(runs: list[RunSummary], out: Path | str) -> Path:
    """compare.png: loss curves (left) and the encoder's final metrics per run (right)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ContrastkitError(f"--out {out}: the comparison plot is a PNG; name it e.g. compare.png")
    scores = [m for m in dict.fromkeys(m for r in runs for m in r.metrics)
              if m != "final loss" and all(0.0 <= r.metrics.get(m, 0.0) <= 1.0 for r in runs)]
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_bar = fig.subplots(1, 2, width_ratios=(1, 1.4))
    for r in runs:
        if r.curve:
            steps, losses = zip(*r.curve)
            ax_loss.plot(steps, losses, label=r.label, linewidth=1.4, marker="o" if len(steps) < 20 else None)
    ax_loss.set(title="training loss", xlabel="step", ylabel="loss")
    if any(r.curve for r in runs):
        ax_loss.legend(fontsize=8)
    else:
        ax_loss.text(0.5, 0.5, "no metrics.csv", ha="center", va="center", transform=ax_loss.transAxes)
    if scores:
        x = np.arange(len(scores))
        width = 0.8 / len(runs)
        for i, r in enumerate(runs):
            vals = [100 * r.metrics.get(m, float("nan")) for m in scores]
            ax_bar.bar(x + (i - (len(runs) - 1) / 2) * width, vals, width, label=r.label)
        ax_bar.set_xticks(x, scores, rotation=20, ha="right", fontsize=8)
        ax_bar.set(title="final metrics (trained encoder)", ylabel="%", ylim=(0, 100))
        ax_bar.legend(fontsize=8)
    else:
        ax_bar.text(0.5, 0.5, "no eval.json with scores", ha="center", va="center", transform=ax_bar.transAxes)
        ax_bar.set_axis_off()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
