"""Kill-and-resume is bit-identical for stateful methods: EMA keys + queue (moco), per-sample state (isogclr)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from contrastkit.config import resolve_config
from contrastkit.core.checkpoint import load_checkpoint
from contrastkit.build import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

BASE = dict(data="digits", batch_size=64, epochs=2, evaluate=False, log_every=50, monitor_every=0,
            encoder="mlp", encoder_kwargs={"width": 32, "depth": 2, "out_dim": 16, "norm": "batch"},
            proj_hidden_dim=32, proj_dim=16, precision="fp32", device="cpu")
EXTRA = {"moco": {"queue_size": 200, "split_bn": 2}, "isogclr": {}}


def test_kill_and_resume_is_bit_identical_for_moco_and_isogclr(tmp_path):
    names = ("moco", "isogclr")
    settings = {name: {**BASE, **EXTRA[name], "method": name} for name in names}
    env = {**os.environ, "CONTRASTKIT_CRASH_AT_STEP": "30", "OMP_NUM_THREADS": "1"}
    procs = {}
    for name in names:  # the crashing runs go in the background while the uninterrupted runs train here
        crashed = tmp_path / f"{name}-crashed"
        code = ("from contrastkit.config import resolve_config; from contrastkit.build import train; "
                f"train(resolve_config({ {**settings[name], 'out': str(crashed)}!r}), progress=False)")
        procs[name] = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)
    full = {name: train(resolve_config({**settings[name], "out": str(tmp_path / f"{name}-full")}),
                        progress=False) for name in names}
    for name in names:
        _, err = procs[name].communicate(timeout=300)
        assert procs[name].returncode == 137, err[-2000:]
        crashed = tmp_path / f"{name}-crashed"
        ckpt = load_checkpoint(crashed / "checkpoints" / "last.pt")
        assert ckpt["loop"]["step"] == 22 and ckpt["loop"]["epoch"] == 1
        resumed = train(resolve_config({**settings[name], "out": str(crashed)}), resume=True, progress=False)
        assert resumed.steps == full[name].steps == 44
        a, b = full[name].method.state_dict(), resumed.method.state_dict()
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
        if name == "moco":
            assert {"queue.queue", "queue.ptr", "step"} <= set(a)
            assert any(k.startswith("key_encoder.") for k in a)
            assert int(a["queue.ptr"]) == (44 * 64) % 200
        else:
            assert {"state.u", "state.tau", "state.m", "state.b"} <= set(a)
            assert not torch.equal(a["state.tau"], torch.full_like(a["state.tau"], 0.1))  # τ was learned
