"""Fault injection through the real CLI: kill -9 a run at random moments, resume it with only
`--out X --resume`, and compare the final weights with an uninterrupted run of the same settings.

    .venv/bin/python bench/fault_injection.py --kills 12 --seed 0

Each trial starts a fresh run, sends SIGKILL after a random delay (anywhere from start-up to evaluation: mid-step,
mid-checkpoint, mid-encoder write, mid-evaluation), then resumes — repeatedly, if the resumed process is killed
again — until the run finishes (a run killed before it wrote config.yaml has nothing to resume: `--resume` says
so, and the command is simply run again). It then checks: exit code 0, encoder.pt bit-identical to the uninterrupted run,
no temporary files left, metrics.csv with one row per logged step. Also checks a read-only run folder and a
full disk (a tiny tmpfs, when the script runs as root) keep the last checkpoint intact with one clear error.

Training is on CPU with one thread per process (bit-identical resume needs the same kernels on both sides).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SETTINGS = ["--data", "digits", "--epochs", "3", "--batch-size", "64", "--encoder", "mlp", "--encoder-kwargs",
            "{width: 64, depth: 2, out_dim: 32}", "--precision", "fp32", "--device", "cpu", "--log-every", "5",
            "--monitor-every", "20", "--checkpoint-every", "10", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "contrastkit", *args]


def weights(run: Path) -> dict:
    return torch.load(run / "encoder.pt", weights_only=True)["encoder"]


def finished_ok(run: Path, reference: dict) -> tuple[bool, str]:
    if not (run / "encoder.pt").exists():
        return False, "no encoder.pt"
    w = weights(run)
    if w.keys() != reference.keys() or not all(torch.equal(w[k], reference[k]) for k in w):
        return False, "weights differ"
    if list(run.rglob("*.tmp")):
        return False, f"temporary files left: {[p.name for p in run.rglob('*.tmp')]}"
    steps = [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open())]
    if steps != sorted(set(steps)):
        return False, "metrics.csv has duplicate or unordered rows"
    if not (run / "report.html").exists():
        return False, "no report.html"
    return True, "ok"


def trial(run: Path, delay: float, rng: random.Random, reference: dict, log: list) -> tuple[bool, str, int]:
    proc = subprocess.Popen(cli("pretrain", *SETTINGS, "--out", str(run)), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    kills = 0
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    for attempt in range(10):  # resume until it finishes (each resume may itself be killed once, early on)
        if (run / "report.html").exists() and kills and attempt:
            break
        started = (run / "config.yaml").exists()
        # killed before the run wrote its settings: nothing to resume, so the user runs the command again
        args = ("pretrain", "--out", str(run), "--resume", "--no-progress") if started else \
            ("pretrain", *SETTINGS, "--out", str(run))
        resumed = subprocess.Popen(cli(*args), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        second_kill = attempt == 0 and rng.random() < 0.3
        try:
            resumed.wait(timeout=rng.uniform(0.5, 3.0) if second_kill else 600)
        except subprocess.TimeoutExpired:
            resumed.send_signal(signal.SIGKILL)
            resumed.wait()
            kills += 1
            continue
        if resumed.returncode != 0:
            err = resumed.stdout.read()
            if "Traceback" in err:
                return False, "traceback: " + err[-400:], kills
            return False, f"resume exited {resumed.returncode}: {err.strip()[-300:]}", kills
        break
    ok, why = finished_ok(run, reference)
    return ok, why, kills


def readonly_and_full_disk(base: Path) -> list[tuple[str, bool, str]]:
    """A run folder on a small tmpfs: remounted read-only, then filled up. Needs root (mount); root ignores
    file permissions, so a chmod would not make a folder read-only."""
    out: list[tuple[str, bool, str]] = []
    if os.geteuid() != 0 or not shutil.which("mount"):
        return out
    mnt = base / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)]).returncode != 0:
        return out
    try:
        run = mnt / "r"
        subprocess.run(cli("pretrain", *SETTINGS, "--epochs", "1", "--out", str(run)), env=ENV, capture_output=True)
        before = (run / "checkpoints" / "last.pt").read_bytes()
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        p = subprocess.run(cli("pretrain", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"),
                           env=ENV, capture_output=True, text=True)
        ok = (p.returncode == 2 and "Traceback" not in p.stdout + p.stderr
              and (run / "checkpoints" / "last.pt").read_bytes() == before)
        out.append(("read-only run folder", ok, (p.stdout + p.stderr).strip().splitlines()[-1:]))
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=True)
        filler = mnt / "filler"  # leave ~300 kB: the next checkpoint (≈ 480 kB) cannot be written
        free = shutil.disk_usage(mnt).free
        filler.write_bytes(b"\0" * max(0, free - 300_000))
        p = subprocess.run(cli("pretrain", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"),
                           env=ENV, capture_output=True, text=True)
        ok = (p.returncode == 2 and "Traceback" not in p.stdout + p.stderr and not list(mnt.rglob("*.tmp"))
              and (run / "checkpoints" / "last.pt").read_bytes() == before)
        out.append(("full disk", ok, (p.stdout + p.stderr).strip().splitlines()[-1:]))
    finally:
        subprocess.run(["umount", str(mnt)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="faults-"))
    t0 = time.perf_counter()
    ref = subprocess.run(cli("pretrain", *SETTINGS, "--out", str(base / "reference")), env=ENV, capture_output=True,
                         text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    duration = time.perf_counter() - t0
    reference = weights(base / "reference")
    print(f"uninterrupted run: {duration:.1f} s; kills at uniform random times in [0.3 s, {duration:.1f} s]")
    results = []
    for k in range(args.kills):
        delay = rng.uniform(0.3, duration)
        ok, why, kills = trial(base / f"t{k}", delay, rng, reference, [])
        results.append(ok)
        print(f"trial {k:2d}: first kill at {delay:5.1f} s, {kills} kill(s) → {'ok' if ok else 'FAILED'} ({why})")
    for name, ok, last in readonly_and_full_disk(base):
        print(f"{name}: {'ok' if ok else 'FAILED'} — {last}")
        results.append(ok)
    print(f"{sum(results)} of {len(results)} checks passed")
    shutil.rmtree(base, ignore_errors=True)
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
