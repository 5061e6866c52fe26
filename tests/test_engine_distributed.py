"""K processes = 1 process, through the real launcher: `torchrun --nproc_per_node 2 -m contrastkit pretrain`
(gloo on CPU) trains the same weights as one process with the same global batch, writes one run folder, and
a rank killed mid-epoch is resumed from the last checkpoint by re-running the torchrun job with --resume.

BatchNorm is synchronised (`--sync-bn`), so both runs normalise over the same global batch.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
import torch

from contrastkit.api import pretrain
from contrastkit.core.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

BASE = dict(data="digits", batch_size=64, epochs=1, evaluate=False, log_every=5, monitor_every=0,
            encoder="mlp", encoder_kwargs={"width": 32, "depth": 2, "out_dim": 16, "norm": "batch"},
            proj_hidden_dim=32, proj_dim=16, precision="fp32", device="cpu", sync_bn=True)
EXTRA = {"simclr": {}, "moco": {"queue_size": 128, "split_bn": 1}, "isogclr": {}}


def _flags(settings: dict) -> list[str]:
    out = []
    for key, value in settings.items():
        out += [f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else
                (repr(value) if isinstance(value, dict) else str(value))]
    return out


def torchrun(settings: dict, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "contrastkit", "pretrain", "--no-progress", *_flags(settings), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def _weights(run_dir) -> dict:
    return load_checkpoint(run_dir / "encoder.pt")["encoder"]


@pytest.mark.parametrize("name", ["simclr", "moco", "isogclr"])
def test_two_processes_train_the_same_weights_as_one(tmp_path, name):
    settings = {**BASE, **EXTRA[name], "method": name}
    two = tmp_path / "two"
    proc = torchrun({**settings, "out": str(two)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained 22 steps") == 1  # rank 0 alone reports
    one = pretrain(**{**settings, "out": str(tmp_path / "one")}, progress=False)
    assert one.steps == 22
    a, b = _weights(two), _weights(tmp_path / "one")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=2e-4, rtol=1e-3), (name, key,
                                                                                      (a[key] - b[key]).abs().max())
    rows = list(csv.DictReader((two / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [5, 10, 15, 20, 22]
    assert sorted(p.name for p in two.iterdir()) == [".lock", "checkpoints", "config.yaml", "encoder.pt",
                                                     "metrics.csv"]


def test_a_rank_killed_mid_epoch_resumes_from_the_last_checkpoint(tmp_path):
    settings = {**BASE, "method": "simclr", "epochs": 2, "checkpoint_every": 8}
    full = tmp_path / "full"
    proc = torchrun({**settings, "out": str(full)})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    crashed = tmp_path / "crashed"
    proc = torchrun({**settings, "out": str(crashed)},
                    env={"CONTRASTKIT_CRASH_AT_STEP": "30", "CONTRASTKIT_CRASH_RANK": "1"})
    assert proc.returncode != 0
    state = load_checkpoint(crashed / "checkpoints" / "last.pt")["loop"]
    assert (state["step"], state["epoch"], state["step_in_epoch"]) == (24, 1, 2)  # mid-epoch checkpoint
    proc = torchrun({**settings, "out": str(crashed)}, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained 44 steps" in proc.stdout
    a, b = _weights(full), _weights(crashed)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_two_processes_equal_one_on_a_streamed_file(tmp_path):
    import numpy as np

    path = tmp_path / "images.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (400, 1, 8, 8), dtype=np.uint8))
    settings = {**BASE, "method": "simclr", "data": str(path), "stream": True, "epochs": 2}
    proc = torchrun({**settings, "out": str(tmp_path / "two")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = pretrain(**{**settings, "out": str(tmp_path / "one")}, progress=False)
    assert one.steps == 2 * (320 // 64)
    a, b = _weights(tmp_path / "two"), _weights(tmp_path / "one")
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=2e-4, rtol=1e-3), key
