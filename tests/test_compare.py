"""`contrastkit compare`: the settings that differ, the final metrics, and the plot, from run folders alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from contrastkit.cli import app
from contrastkit.compare import compare_runs, load_run, plot_comparison
from contrastkit.errors import ContrastkitError


def _run(root: Path, name: str, settings: dict, rows: list[dict], losses: list[float], record: dict | None = None,
         evaluate_rows: list[dict] | None = None) -> Path:
    run = root / name
    run.mkdir(parents=True)
    base = {"method": "simclr", "data": "digits", "lr": 0.3, "batch_size": 256, "out": str(run), "seed": 0}
    text = yaml.safe_dump({**base, **settings})
    if record:
        text += "\n" + yaml.safe_dump({"run_record": record})
    (run / "config.yaml").write_text(text)
    (run / "eval.json").write_text(json.dumps({"rows": rows, "timings": {}}))
    if evaluate_rows is not None:
        (run / "evaluate.json").write_text(json.dumps(evaluate_rows))
    (run / "metrics.csv").write_text("step,epoch,loss,lr\n" + "".join(
        f"{20 * (i + 1)},{i},{loss},0.1\n" for i, loss in enumerate(losses)))
    return run


def _two(tmp_path: Path) -> tuple[Path, Path]:
    a = _run(tmp_path, "a", {"lr": 0.3, "temperature": 0.5},
             [{"metric": "kNN k=20 t=0.1", "encoder": 0.8, "random init": 0.5, "raw input": 0.6},
              {"metric": "linear probe", "encoder": 0.85, "random init": 0.6, "raw input": 0.7}],
             [4.0, 3.5, 3.0], record={"steps": 60, "device": "cpu"})
    b = _run(tmp_path, "b", {"lr": 0.1, "method": "byol", "ema_momentum": 0.99},
             [{"metric": "kNN k=20 t=0.1", "encoder": 0.75, "random init": 0.5, "raw input": 0.6}],
             [1.0, 0.5], record={"steps": 40, "device": "cpu"},
             evaluate_rows=[{"metric": "MAP@R (test vs test)", "value": 0.4}])
    return a, b


def test_only_the_settings_that_differ_and_every_final_metric(tmp_path):
    a, b = _two(tmp_path)
    runs, settings, metrics = compare_runs([a, b])
    by_name = {r["setting"]: r for r in settings}
    assert set(by_name) == {"lr", "method", "temperature", "ema_momentum", "(steps)"}  # not out, seed, batch...
    assert by_name["lr"] == {"setting": "lr", "a": "0.3", "b": "0.1"}  # text, never shown as a percentage
    assert by_name["ema_momentum"]["a"] == "(not set)" and by_name["temperature"]["b"] == "(not set)"
    assert by_name["(steps)"] == {"setting": "(steps)", "a": "60", "b": "40"}
    rows = {r["metric"]: r for r in metrics}
    assert rows["kNN k=20 t=0.1"] == {"metric": "kNN k=20 t=0.1", "a": 0.8, "b": 0.75}
    assert rows["linear probe"]["b"] == "—" and rows["MAP@R (test vs test)"]["b"] == 0.4  # from evaluate.json
    assert rows["final loss"] == {"metric": "final loss", "a": 3.0, "b": 0.5}
    assert load_run(a).curve == [(20, 4.0), (40, 3.5), (60, 3.0)]


def test_plot_is_a_png(tmp_path):
    a, b = _two(tmp_path)
    runs, _, _ = compare_runs([a, b])
    out = plot_comparison(runs, tmp_path / "plots" / "c.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(ContrastkitError, match="PNG"):
        plot_comparison(runs, tmp_path / "c.pdf")


def test_cli_compare_tables_plot_and_errors(tmp_path, monkeypatch):
    a, b = _two(tmp_path)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["compare", str(a), str(b)], terminal_width=200)
    assert res.exit_code == 0, (res.output, res.exception)
    assert "settings that differ" in res.output and "ema_momentum" in res.output and "80.00%" in res.output
    assert (tmp_path / "compare.png").is_file()  # the default: in the current folder
    res = runner.invoke(app, ["compare", str(a), str(b), "--out", str(tmp_path / "x" / "mine.png")])
    assert res.exit_code == 0 and (tmp_path / "x" / "mine.png").is_file()
    res = runner.invoke(app, ["compare", str(a)])
    assert isinstance(res.exception, ContrastkitError) and "two or more" in str(res.exception)
    (tmp_path / "notarun").mkdir()
    res = runner.invoke(app, ["compare", str(a), str(tmp_path / "notarun")])
    assert isinstance(res.exception, ContrastkitError) and "no config.yaml" in str(res.exception)


def test_anomaly_runs_compare_the_trained_encoders_auroc(tmp_path):
    def rows(auroc):
        return [{"model": "clan", "scorer": "centroid", "auroc": auroc, "aupr": 0.5, "seconds": 1.0},
                {"model": "clan", "scorer": "knn-5", "auroc": 0.7, "aupr": 0.4, "seconds": 1.0},
                {"model": "isolation forest", "scorer": "iforest", "auroc": 0.99, "aupr": 0.9, "seconds": 1.0}]

    a = _run(tmp_path, "a", {"method": "clan"}, rows(0.9), [1.0])
    b = _run(tmp_path, "b", {"method": "clan", "lr": 0.01}, rows(0.8), [1.0])
    _, _, metrics = compare_runs([a, b])
    by = {r["metric"]: r for r in metrics}
    assert by["auroc (centroid)"] == {"metric": "auroc (centroid)", "a": 0.9, "b": 0.8}
    assert by["aupr (knn-5)"]["a"] == 0.4 and not any("iforest" in m for m in by)  # baselines are not the encoder


def test_same_folder_names_are_told_apart(tmp_path):
    a = _run(tmp_path / "x", "run", {}, [], [1.0])
    b = _run(tmp_path / "y", "run", {"lr": 0.2}, [], [2.0])
    _, settings, metrics = compare_runs([a, b])
    assert list(settings[0]) == ["setting", str(a), str(b)]
    assert metrics == [{"metric": "final loss", str(a): 1.0, str(b): 2.0}]
