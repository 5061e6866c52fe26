"""Data path throughput and memory: in-memory vs memory-mapped (`--stream true`) on the same .npy, one run.

    .venv/bin/python bench/data.py                      # small file: img/s both ways; large file: RssAnon
    .venv/bin/python bench/data.py --large-gb 3 --large-minutes 1

1. A file that fits in memory (and in the page cache): the same SimCLR training, in memory and streamed,
   alternated `--rounds` times in this process; img/s is the median of the trainer's img_per_s column over the
   second half of each run. The ratio is what streaming costs when the data set fits.
2. A file larger than `--large-gb` GiB, streamed for `--large-minutes` minutes: the process's anonymous memory
   (RssAnon: heap, tensors — not the page cache, which the kernel reclaims) sampled every 0.2 s; its peak is the
   bound that matters on a machine whose memory the file exceeds.
3. `--epoch-gb G --memory-limit-gb M`: one full epoch over a generated file of G GiB, in a child process whose
   memory (anonymous + page cache, a cgroup v1/v2 memory limit; needs root) is limited to M GiB; first the same
   settings on a 256 MiB file in memory for `--large-minutes` in this process (the reference img/s). Prints both
   img/s, the epoch's peak RssAnon, the cgroup's peak usage and how often it hit the limit.
4. `--table-mb N`: a generated CSV of about N MB (12 numeric columns, 2 categorical, a label), loaded the
   streamed way (3 chunked passes into a float32 cache) and the in-memory way, each in a fresh child process:
   seconds and peak RssAnon of each, and the two loaders' features compared.
5. `--photos N`: a folder of N generated JPEGs of mixed sizes (640x480 to 4000x3000) and modes, with a few corrupt
   files: the decode (and cache build) rate with 1 and 2 decoding threads, then the time a second load takes
   from the cache.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from contrastkit.build import train  # noqa: E402
from contrastkit.config import resolve_config  # noqa: E402


def rss_anon_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakAnon(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = 0.0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_anon_mib())
            time.sleep(0.2)


def write_images(path: Path, n: int, size: int, chunk: int = 20_000) -> None:
    """A uint8 (n, 3, size, size) .npy written chunk by chunk (never whole in memory)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
    rng = np.random.default_rng(0)
    for s in range(0, n, chunk):
        out[s:s + chunk] = rng.integers(0, 256, (min(chunk, n - s), 3, size, size), dtype=np.uint8)
    out.flush()
    del out


def run(path: Path, stream: bool, minutes: float | None, out: Path, **extra) -> tuple[float, int]:
    budget = {"minutes": minutes} if minutes else {"epochs": 1}
    cfg = resolve_config({"data": str(path), "stream": stream, **budget, "batch_size": 256,
                          "evaluate": False, "monitor_every": 0, "log_every": 5, "out": str(out), **extra})
    result = train(cfg, progress=False)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    ips = statistics.median(float(r["img_per_s"]) for r in rows[len(rows) // 2:])
    return ips, result.steps


# The full-epoch part trains a small encoder so that reading the data, not the model, sets the pace.
EPOCH_SETTINGS = {"encoder": "convnet", "encoder_kwargs": {"width": 8}, "proj_hidden_dim": 64, "proj_dim": 32}


def drop_from_page_cache(path: Path) -> None:
    """Evict the file's pages (written by this process) so the epoch reads them from disk, charged to its cgroup."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


class MemoryCgroup:
    """A child memory cgroup of this process's own (v2: memory.max; v1: memory.limit_in_bytes), removed on exit."""

    def __init__(self, limit_bytes: int):
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        v1 = [ln.split(":", 2)[2] for ln in lines if ln.split(":")[1] == "memory"]
        if v1:
            self.v2, base = False, Path("/sys/fs/cgroup/memory") / v1[0].lstrip("/")
        else:
            self.v2, base = True, Path("/sys/fs/cgroup") / lines[0].split(":", 2)[2].lstrip("/")
        self.path = base / f"contrastkit-bench-{os.getpid()}"
        self.path.mkdir()
        (self.path / ("memory.max" if self.v2 else "memory.limit_in_bytes")).write_text(str(limit_bytes))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def report(self) -> str:
        if self.v2:
            peak = self.path / "memory.peak"
            events = dict(ln.split() for ln in (self.path / "memory.events").read_text().splitlines())
            return (f"cgroup peak {int(peak.read_text()) / 2**20:.0f} MiB, " if peak.exists() else "") + \
                   f"limit hit {events.get('max', '?')} times, OOM kills {events.get('oom_kill', '?')}"
        peak = int((self.path / "memory.max_usage_in_bytes").read_text())
        fails = (self.path / "memory.failcnt").read_text().strip()
        return f"cgroup peak usage {peak / 2**20:.0f} MiB (RSS + page cache), limit hit {fails} times"

    def remove(self) -> None:
        try:
            self.path.rmdir()
        except OSError as e:
            print(f"note: could not remove {self.path}: {e}")


def epoch_child(large: Path, tmp: Path) -> None:
    """In the limited process: one streamed epoch over the large file, RssAnon sampled."""
    peak = PeakAnon()
    peak.start()
    t0 = time.perf_counter()
    ips, steps = run(large, True, None, tmp / "streamed-epoch", **EPOCH_SETTINGS)
    peak.stop = True
    peak.join()
    print(json.dumps({"img_per_s": ips, "steps": steps, "seconds": time.perf_counter() - t0,
                      "peak_rss_anon_mib": peak.peak}), flush=True)


def full_epoch(gb: float, limit_gb: float, size: int, minutes: float, tmp: Path) -> None:
    small, large = tmp / "epoch-small.npy", tmp / "epoch-large.npy"
    n_small = int(256 * 2**20 / (3 * size * size))
    write_images(small, n_small, size)
    n = int(gb * 2**30 / (3 * size * size))
    t0 = time.perf_counter()
    write_images(large, n, size)
    drop_from_page_cache(large)
    print(f"full epoch: {large.stat().st_size / 2**30:.2f} GiB ({n} images {size}x{size}), written in "
          f"{time.perf_counter() - t0:.0f} s; reference file {small.stat().st_size / 2**20:.0f} MiB "
          f"({n_small} images); process memory limited to {limit_gb:g} GiB", flush=True)
    ips, steps = run(small, False, minutes, tmp / "in-memory", **EPOCH_SETTINGS)  # the reference: not limited
    mem = {"img_per_s": ips}
    print(f"  in memory ({small.stat().st_size / 2**20:.0f} MiB file, this process, not limited): {ips:.0f} img/s "
          f"({steps} steps)", flush=True)
    cg = MemoryCgroup(int(limit_gb * 2**30))
    try:
        child = subprocess.Popen([sys.executable, __file__, "--epoch-child", str(large), str(tmp)],
                                 preexec_fn=lambda: cg.add(os.getpid()), stdout=subprocess.PIPE, text=True)
        disk = None
        for line in child.stdout:
            print("  " + line.rstrip(), flush=True)
            if line.startswith("{"):
                disk = json.loads(line)
        rc = child.wait()
        print(f"  child exit status {rc}; {cg.report()}")
    finally:
        cg.remove()
    if disk is not None:
        print(f"full epoch of {n} images in {disk['seconds']:.0f} s ({disk['steps']} steps): "
              f"{disk['img_per_s']:.0f} img/s, {disk['img_per_s'] / mem['img_per_s']:.3f}x the in-memory "
              f"{mem['img_per_s']:.0f} img/s; peak RssAnon {disk['peak_rss_anon_mib']:.0f} MiB; "
              f"file / memory limit = {gb / limit_gb:.1f}")


def write_table(path: Path, mb: float, chunk: int = 200_000) -> int:
    import pandas as pd

    rng, n, first = np.random.default_rng(0), 0, True
    while path.exists() is False or path.stat().st_size < mb * 1e6:
        df = pd.DataFrame({f"f{j}": rng.normal(j, 1 + j, chunk).round(4) for j in range(12)})
        df["proto"] = rng.choice(["tcp", "udp", "icmp"], chunk)
        df["port"] = rng.integers(0, 50, chunk)
        df["label"] = rng.choice(["normal", "normal", "normal", "attack"], chunk)
        df.to_csv(path, mode="w" if first else "a", header=first, index=False)
        first, n = False, n + chunk
    return n


def table_child(path: Path, stream: bool, out: Path) -> None:
    from contrastkit.data import load_data

    peak = PeakAnon()
    peak.start()
    t0 = time.perf_counter()
    splits = load_data(str(path), {"label_column": "label", "categorical_columns": ["port"], "stream": stream,
                                   "cache_dir": str(out.parent / "cache")})
    dt = time.perf_counter() - t0
    peak.stop = True
    peak.join()
    rows = np.arange(0, len(splits.train), max(1, len(splits.train) // 1000))
    np.save(out, splits.train.x[torch_index(rows)].numpy())
    print(json.dumps({"seconds": dt, "peak_rss_anon_mib": peak.peak, "train": len(splits.train),
                      "features": int(splits.train.x.shape[1])}), flush=True)


def torch_index(rows):
    import torch

    return torch.as_tensor(rows)


def table_bench(mb: float, tmp: Path) -> None:
    path = tmp / "table.csv"
    t0 = time.perf_counter()
    n = write_table(path, mb)
    print(f"table: {path.stat().st_size / 2**20:.0f} MiB CSV, {n} rows, written in {time.perf_counter() - t0:.0f} s",
          flush=True)
    res = {}
    for stream in (True, False):
        out = tmp / f"sample-{stream}.npy"
        line = subprocess.run([sys.executable, __file__, "--table-child", str(path), str(stream), str(out)],
                              stdout=subprocess.PIPE, text=True, check=True).stdout.strip().splitlines()[-1]
        res[stream] = json.loads(line)
        print(f"  {'streamed (3 chunked passes + float32 cache)' if stream else 'in memory (pandas, whole)':44s} "
              f"{res[stream]['seconds']:6.1f} s, peak RssAnon {res[stream]['peak_rss_anon_mib']:6.0f} MiB", flush=True)
    a, b = np.load(tmp / "sample-True.npy"), np.load(tmp / "sample-False.npy")
    print(f"streamed / in memory: time {res[True]['seconds'] / res[False]['seconds']:.2f}x, peak RssAnon "
          f"{res[True]['peak_rss_anon_mib'] / res[False]['peak_rss_anon_mib']:.2f}x; features of 1,000 training rows: "
          f"max |difference| {np.abs(a - b).max():.2g}")


def write_photos(folder: Path, n: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = [(640, 480), (1024, 768), (1920, 1080), (3000, 2000), (4000, 3000)]
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        if i % 7 == 0:
            w, h = h, w  # some portrait photos
        yy, xx = np.mgrid[0:h:8, 0:w:8]  # smooth content (fast to encode), upsampled
        base = ((np.sin(xx / (37 + i % 11)) + np.cos(yy / (23 + i % 13))) * 60 + 128).astype(np.uint8)
        img = Image.fromarray(base).resize((w, h))
        if i % 3:
            img = Image.merge("RGB", (img, img.rotate(90, expand=False), img))
        img.save(folder / f"{i:05d}.jpg", quality=80)
    for k in range(3):  # a few corrupt files
        (folder / f"corrupt{k}.jpg").write_bytes(rng.integers(0, 256, 200, dtype=np.uint8).tobytes())


def photos(n: int, tmp: Path) -> None:
    from contrastkit.data import load_data

    folder = tmp / "photos"
    folder.mkdir()
    t0 = time.perf_counter()
    write_photos(folder, n)
    print(f"photos: {n} JPEGs (640x480 .. 4000x3000, grey and RGB) + 3 corrupt, written in "
          f"{time.perf_counter() - t0:.0f} s")
    for workers in (1, 2):
        cache = tmp / f"cache{workers}"
        t0 = time.perf_counter()
        splits = load_data(str(folder), {"decode_workers": workers, "cache_dir": str(cache)})
        dt = time.perf_counter() - t0
        print(f"  decode + cache build, {workers} thread(s): {dt:.1f} s = {n / dt:.0f} images/s "
              f"(shape {tuple(splits.info.shape)}, skipped {len(splits.info.extra.get('skipped_files', []))})")
    t0 = time.perf_counter()
    load_data(str(folder), {"cache_dir": str(tmp / "cache2")})
    print(f"  second load, from the cache: {time.perf_counter() - t0:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small-n", type=int, default=30_000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--minutes", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--large-gb", type=float, default=3.0)
    ap.add_argument("--large-minutes", type=float, default=1.0)
    ap.add_argument("--photos", type=int, default=0, help="also the photo-folder part with this many JPEGs")
    ap.add_argument("--epoch-gb", type=float, default=0, help="only the full-epoch part, over a file of this size")
    ap.add_argument("--memory-limit-gb", type=float, default=1.0, help="the full-epoch process's memory limit")
    ap.add_argument("--epoch-size", type=int, default=64, help="image side of the full-epoch part")
    ap.add_argument("--table-mb", type=float, default=0, help="only the table part, with a CSV of this size")
    ap.add_argument("--epoch-child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--table-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.epoch_child:
        return epoch_child(Path(args.epoch_child[0]), Path(args.epoch_child[1]))
    if args.table_child:
        return table_child(Path(args.table_child[0]), args.table_child[1] == "True", Path(args.table_child[2]))
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    if args.table_mb:
        return table_bench(args.table_mb, tmp)
    if args.epoch_gb:
        return full_epoch(args.epoch_gb, args.memory_limit_gb, args.epoch_size, args.large_minutes, tmp)
    if args.photos:
        photos(args.photos, tmp)

    small = tmp / "small.npy"
    write_images(small, args.small_n, args.size)
    print(f"small file: {small.stat().st_size / 2**20:.0f} MiB ({args.small_n} images {args.size}x{args.size})")
    rates = {False: [], True: []}
    for r in range(args.rounds):
        for stream in (False, True):
            ips, steps = run(small, stream, args.minutes, tmp / f"s{r}-{stream}")
            rates[stream].append(ips)
            print(f"  round {r}: {'streamed ' if stream else 'in memory'} {ips:7.0f} img/s ({steps} steps)")
    mem, disk = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"streamed / in memory: {disk / mem:.3f} (median img/s {disk:.0f} vs {mem:.0f})")

    large = tmp / "large.npy"
    n = int(args.large_gb * 2**30 / (3 * args.size * args.size))
    t0 = time.perf_counter()
    write_images(large, n, args.size)
    print(f"large file: {large.stat().st_size / 2**30:.2f} GiB ({n} images), written in "
          f"{time.perf_counter() - t0:.0f} s; RssAnon before training {rss_anon_mib():.0f} MiB")
    peak = PeakAnon()
    peak.start()
    ips, steps = run(large, True, args.large_minutes, tmp / "large-run")
    peak.stop = True
    peak.join()
    print(f"streamed the large file: {steps} steps, {ips:.0f} img/s, peak RssAnon {peak.peak:.0f} MiB "
          f"(file {large.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
