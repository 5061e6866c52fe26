import csv
import os
import subprocess
import sys

import pytest
import torch
import yaml

from contrastkit.api import pretrain
from contrastkit.config import resolve_config
from contrastkit.errors import ContrastkitError
from contrastkit.core.checkpoint import load_checkpoint
from contrastkit.build import train

SMALL = dict(method="simclr", data="digits", batch_size=64, epochs=3, evaluate=False, log_every=5,
             proj_hidden_dim=64, proj_dim=32, lr=0.1)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_are_plain_data_and_resume_after_a_kill_is_bit_identical(tmp_path):
    full = train(resolve_config({**SMALL, "out": str(tmp_path / "full"), "monitor_every": 10}), progress=False)
    # Same run, hard-killed in the middle of the second epoch (22 steps per epoch), then resumed.
    crashed = tmp_path / "crashed"
    code = ("from contrastkit.config import resolve_config; from contrastkit.build import train; "
            f"train(resolve_config({ {**SMALL, 'out': str(crashed), 'monitor_every': 0}!r}), progress=False)")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "CONTRASTKIT_CRASH_AT_STEP": "30"},
                          capture_output=True, text=True)
    assert proc.returncode == 137, proc.stderr
    ckpt = load_checkpoint(crashed / "checkpoints" / "last.pt")  # weights_only=True inside
    assert ckpt["loop"]["epoch"] == 1 and ckpt["loop"]["step"] == 22
    resumed = train(resolve_config({**SMALL, "out": str(crashed), "monitor_every": 0}), resume=True,
                    progress=False)
    assert resumed.steps == full.steps == 66
    assert states_equal(full.method.state_dict(), resumed.method.state_dict())
    rows = list(csv.DictReader((crashed / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(5, 66, 5)) + [66]  # replayed rows not duplicated
    assert (crashed / "encoder.pt").exists() and (crashed / "config.yaml").exists()
    monitored = list(csv.DictReader((tmp_path / "full" / "metrics.csv").open()))
    assert any(r.get("knn") for r in monitored) and any(r.get("eff_rank") for r in monitored)


def test_checkpoint_written_atomically_leaves_no_temp_files(tmp_path):
    train(resolve_config({**SMALL, "epochs": 1, "out": str(tmp_path / "r"), "monitor_every": 0}), progress=False)
    files = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert files == ["last.pt"]
    state = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
    assert state["loop"]["step"] == 22 and isinstance(state["config"], dict)


def test_existing_run_needs_resume(tmp_path):
    cfg = {**SMALL, "epochs": 1, "out": str(tmp_path / "r"), "monitor_every": 0}
    train(resolve_config(cfg), progress=False)
    with pytest.raises(ContrastkitError, match="--resume"):
        train(resolve_config(cfg), progress=False)


def test_wall_clock_budget_stops_training(tmp_path):
    result = train(resolve_config({**SMALL, "epochs": 1000, "minutes": 0.05, "out": str(tmp_path / "r"),
                                   "monitor_every": 0}), progress=False)
    assert 0 < result.steps < 1000 * 22 and result.train_seconds < 30


def test_pretrain_api_evaluates_against_baselines(tmp_path):
    result = pretrain(**{**SMALL, "epochs": 2, "evaluate": True, "out": str(tmp_path / "r"), "monitor_every": 0},
                      progress=False)
    metrics = {row["metric"]: row for row in result.eval_rows}
    assert {"kNN k=200 t=0.1", "kNN k=20 t=0.1", "linear probe"} <= set(metrics)
    for row in result.eval_rows:
        assert {"encoder", "random init", "raw input"} <= set(row)
        assert all(0 <= row[k] <= 1 for k in ("encoder", "random init", "raw input"))
    assert (tmp_path / "r" / "eval.json").exists() and (tmp_path / "r" / "report.html").exists()


def test_batch_larger_than_small_data_is_clamped_with_a_note(tmp_path, caplog):
    result = train(resolve_config({**SMALL, "epochs": 1, "batch_size": 5000, "out": str(tmp_path / "r"),
                                   "monitor_every": 0}), progress=False)
    assert result.steps == 1  # one batch of the whole training split
    assert "larger than the training set" in caplog.text
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())["batch_size"] == len(result.splits.train)


def test_knn_k_is_clamped_on_small_data():
    from contrastkit.evaluate.protocol import evaluation_table

    result_rows, _ = evaluation_table(torch.nn.Flatten(), lambda: torch.nn.Flatten(), _tiny_splits(), "cpu")
    assert {r["metric"] for r in result_rows} >= {"kNN k=30 t=0.1", "kNN k=20 t=0.1"}


def _tiny_splits():
    from contrastkit.data.base import DataInfo, Dataset, DataSplits

    info = DataInfo("tiny", "table", (4,))
    g = torch.Generator().manual_seed(0)
    return DataSplits(Dataset(torch.randn(30, 4, generator=g), torch.arange(30) % 3, info),
                      Dataset(torch.randn(10, 4, generator=g), torch.arange(10) % 3, info))
