"""Data path throughput and memory: in-memory vs memory-mapped (`--stream true`) on the same .npy, one run.

    .venv/bin/python bench/data.py                      # small file: img/s both ways; large file: RssAnon
    .venv/bin/python bench/data.py --large-gb 3 --large-minutes 1

1. A file that fits in memory (and in the page cache): the same SimCLR training, in memory and streamed,
   alternated `--rounds` times in this process; img/s is the median of the trainer's img_per_s column over the
   second half of each run. The ratio is what streaming costs when the data set fits.
2. A file larger than `--large-gb` GiB, streamed for `--large-minutes` minutes: the process's anonymous memory
   (RssAnon: heap, tensors — not the page cache, which the kernel reclaims) sampled every 0.2 s; its peak is the
   bound that matters on a machine whose memory the file exceeds.
3. `--photos N`: a folder of N generated JPEGs of mixed sizes (640x480 to 4000x3000) and modes, with a few corrupt
   files: the decode (and cache build) rate with 1 and 2 decoding threads, then the time a second load takes
   from the cache.
"""

from __future__ import annotations

import argparse
import csv
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


def run(path: Path, stream: bool, minutes: float, out: Path) -> tuple[float, int]:
    cfg = resolve_config({"data": str(path), "stream": stream, "minutes": minutes, "batch_size": 256,
                          "evaluate": False, "monitor_every": 0, "log_every": 5, "out": str(out)})
    result = train(cfg, progress=False)
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    ips = statistics.median(float(r["img_per_s"]) for r in rows[len(rows) // 2:])
    return ips, result.steps


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
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
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
