"""A run's life through the front end: settings from --config / --resume kept, unlabelled data finished with a
report, one run per folder, divergence stopped with the last good checkpoint kept, mid-epoch checkpoints."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from contrastkit.api import pretrain
from contrastkit.build import train
from contrastkit.config import resolve_config
from contrastkit.core.checkpoint import load_checkpoint
from contrastkit.engine.loop import NonFiniteError
from contrastkit.errors import ContrastkitError

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = dict(data="digits", batch_size=64, epochs=1, evaluate=False, log_every=5, monitor_every=0,
            encoder="mlp", encoder_kwargs={"width": 32, "depth": 1, "out_dim": 16},
            proj_hidden_dim=32, proj_dim=16, precision="fp32", device="cpu")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "contrastkit", *args], capture_output=True, text=True, timeout=300)


def test_config_file_and_resume_keep_their_own_method_and_data(tmp_path):
    first = tmp_path / "byol-digits"
    pretrain(**{**TINY, "method": "byol", "out": str(first)}, progress=False)
    # --config: the file's method and data, not the command line's defaults (simclr, fashion-mnist)
    proc = cli("pretrain", "--config", str(first / "config.yaml"), "--out", str(tmp_path / "again"),
               "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    again = yaml.safe_load((tmp_path / "again" / "config.yaml").read_text())
    assert again["method"] == "byol" and again["data"] == "digits"
    # --resume with more epochs: continues the BYOL digits run and records what it did
    proc = cli("pretrain", "--out", str(first), "--resume", "--epochs", "2", "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = yaml.safe_load((first / "config.yaml").read_text())
    assert (saved["method"], saved["data"], saved["epochs"]) == ("byol", "digits", 2)
    record = saved["run_record"]  # what the run was: versions, device, views as built, effective steps
    assert record["steps"] == 44 and record["epochs_done"] == 2 and record["torch"] == str(torch.__version__)
    assert record["views"]["view1"]["solarize_p"] == 0.0 and record["views"]["view2"]["solarize_p"] == 0.2
    assert load_checkpoint(first / "checkpoints" / "last.pt")["loop"]["step"] == 2 * 22


def test_unlabelled_data_finish_with_eval_json_and_a_report(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (200, 1, 8, 8), dtype=np.uint8)
    np.save(tmp_path / "unlabelled.npy", x)
    result = pretrain(**{**TINY, "data": str(tmp_path / "unlabelled.npy"), "evaluate": True,
                         "out": str(tmp_path / "r")}, progress=False)
    assert result.eval_rows == []
    assert json.loads((tmp_path / "r" / "eval.json").read_text())["rows"] == []
    assert (tmp_path / "r" / "report.html").exists()


def test_one_run_per_folder(tmp_path):
    out = tmp_path / "r"
    train(resolve_config({**TINY, "out": str(out)}), progress=False)
    with pytest.raises(ContrastkitError, match="--resume"):
        train(resolve_config({**TINY, "out": str(out)}), progress=False)
    fresh = train(resolve_config({**TINY, "out": str(out), "overwrite": True}), progress=False)
    assert fresh.steps == 22
    other = tmp_path / "notes"
    other.mkdir()
    (other / "config.yaml.txt").write_text("mine")
    with pytest.raises(ContrastkitError, match="not a contrastkit run folder"):
        train(resolve_config({**TINY, "out": str(other)}), progress=False)
    with pytest.raises(ContrastkitError, match="holds no checkpoint"):
        train(resolve_config({**TINY, "out": str(tmp_path / "empty")}), resume=True, progress=False)


def test_a_second_process_cannot_write_into_a_running_folder(tmp_path):
    from contrastkit.run import RunFolder

    holder = RunFolder(tmp_path / "r")
    holder.claim(resume=False)
    try:
        with pytest.raises(ContrastkitError, match="another contrastkit process"):
            train(resolve_config({**TINY, "out": str(tmp_path / "r")}), progress=False)
    finally:
        holder.release()


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = {**TINY, "epochs": 3, "lr": 1e6, "out": str(tmp_path / "r")}
    with pytest.raises(NonFiniteError, match=r"at step \d+.*--skip-nonfinite"):
        train(resolve_config(cfg), progress=False)
    ckpt = tmp_path / "r" / "checkpoints" / "last.pt"
    if ckpt.exists():  # diverged after a checkpoint: what it holds is finite
        state = load_checkpoint(ckpt)["method"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    assert not (tmp_path / "r" / "encoder.pt").exists()


def test_skip_nonfinite_counts_the_skipped_steps(tmp_path):
    from contrastkit.engine.loop import FitPlan, fit
    from contrastkit.data.base import DataInfo, Dataset

    class Flaky(torch.nn.Module):  # a NaN loss on every third step
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))
            self.calls = 0

        def forward(self, batch, generator):
            self.calls += 1
            loss = (self.w * batch.x).sum() ** 2 / 1e3
            return {"loss": loss * float("nan") if self.calls % 3 == 0 else loss}

        def after_step(self, step, total):
            pass

    model = Flaky()
    data = Dataset(torch.randn(40, 3), None, DataInfo("t", "table", (3,)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for g in opt.param_groups:
        g["base_lr"] = 0.01
    result = fit(model, data, opt, FitPlan(batch_size=4, epochs=1, log_every=1, skip_nonfinite=5),
                 device=torch.device("cpu"))
    assert result.steps == 10 and result.skipped_steps == 3
    assert torch.isfinite(model.w).all()
    assert result.history[-1]["skipped_steps"] == 3
    with pytest.raises(NonFiniteError):
        fit(Flaky(), data, opt, FitPlan(batch_size=4, epochs=1, skip_nonfinite=0), device=torch.device("cpu"))


def test_checkpoint_every_n_steps_resumes_bit_identically_inside_an_epoch(tmp_path):
    import os

    cfg = {**TINY, "epochs": 2, "checkpoint_every": 7}
    full = train(resolve_config({**cfg, "out": str(tmp_path / "full")}), progress=False)
    crashed = tmp_path / "crashed"
    code = ("from contrastkit.config import resolve_config; from contrastkit.build import train; "
            f"train(resolve_config({ {**cfg, 'out': str(crashed)}!r}), progress=False)")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "CONTRASTKIT_CRASH_AT_STEP": "31", "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True)
    assert proc.returncode == 137, proc.stderr[-2000:]
    loop = load_checkpoint(crashed / "checkpoints" / "last.pt")["loop"]
    assert (loop["step"], loop["epoch"], loop["step_in_epoch"]) == (28, 1, 6)
    resumed = train(resolve_config({**cfg, "out": str(crashed)}), resume=True, progress=False)
    assert resumed.steps == full.steps == 44
    a, b = full.method.state_dict(), resumed.method.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [int(r["step"]) for r in csv.DictReader((crashed / "metrics.csv").open())]
    assert steps == sorted(set(steps))  # rows after the checkpoint were dropped, not duplicated


def test_the_callers_callbacks_see_the_method_and_the_loops_clock(tmp_path):
    seen = []

    class Recorder:
        def __init__(self, method):
            self.method = method

        def on_start(self, step, total_steps):
            seen.append(("start", step))

        def on_step(self, info):
            seen.append((info.step, info.elapsed_s))

        def on_end(self):
            seen.append(("end", None))

    cfg = resolve_config({**TINY, "out": str(tmp_path / "run")})
    result = train(cfg, progress=False, callbacks=lambda method: [Recorder(method)])
    result.release()
    steps = [s for s in seen if isinstance(s[0], int)]
    assert seen[0] == ("start", 0) and seen[-1] == ("end", None)
    assert [s[0] for s in steps] == list(range(1, result.steps + 1))
    clock = [s[1] for s in steps]
    assert all(b >= a for a, b in zip(clock, clock[1:])) and 0 < clock[-1] <= result.train_seconds + 1e-6
