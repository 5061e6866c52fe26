"""Loss benchmark: forward+backward time and peak extra memory of every contrastkit objective.

For each objective and batch size N (D = 128 by default) it measures, in the same run:

* ``ours``         — the contrastkit function (tiled kernel);
* ``materialised`` — a straightforward implementation written below (full logit matrix + cross-entropy);
* ``floor``        — three plain matrix products of the same shapes as the loss's logit matrix
                     (S = A Bᵀ, then (G A), (Gᵀ B) with a preallocated random G): the unavoidable work of a
                     loss that materialises or recomputes its similarities once;
* ``lightly`` / ``pml`` — their equivalents, when those packages are importable (see bench/README.md).

Timing: best of ``--repeat`` runs, implementations interleaved (so a busy machine slows all alike), in this
process. Memory: each (objective, implementation, N) runs once in a fresh subprocess that resets the
kernel's peak-RSS counter (``/proc/self/clear_refs``), runs one forward+backward and reports
``VmHWM − VmRSS(before)``: the peak resident memory the call added on top of its inputs. This counts every
allocation (PyTorch's, BLAS workspaces, the autograd graph), not only tensors.

    python bench/losses.py                      # quick: N = 256, 1024, 4096
    python bench/losses.py --sizes 8192         # the acceptance size
    python bench/losses.py --sizes 8192 --objectives nt_xent --bf16
    python bench/losses.py --sizes 32768 --no-materialised
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from contrastkit.objectives import clip_loss, dcl, dclw, info_nce, nt_xent, supcon

OBJECTIVES = ["nt_xent", "dcl", "dclw", "supcon", "clip", "info_nce"]
TAU = {"nt_xent": 0.5, "dcl": 0.1, "dclw": 0.1, "supcon": 0.1, "info_nce": 0.2}
CLIP_SCALE = 1 / 0.07


# ---------------------------------------------------------------------------- straightforward versions


def mat_nt_xent(z1, z2, tau):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / tau
    logits.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, target)


def _mat_dcl_rows(z1, z2, tau, weights=None):
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = z @ z.T / tau
    idx = torch.arange(2 * n)
    pos_idx = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    pos = logits[idx, pos_idx]
    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[idx, idx] = True
    mask[idx, pos_idx] = True
    w = 1.0 if weights is None else torch.cat([weights, weights])
    return (-w * pos + logits.masked_fill(mask, float("-inf")).logsumexp(1)).mean()


def mat_dcl(z1, z2, tau):
    return _mat_dcl_rows(z1, z2, tau)


def mat_dclw(z1, z2, tau, sigma=0.5):
    s = (F.normalize(z1.float(), dim=1) * F.normalize(z2.float(), dim=1)).sum(1).detach()
    return _mat_dcl_rows(z1, z2, tau, 2 - z1.shape[0] * torch.softmax(s / sigma, 0))


def mat_supcon(z, labels, tau):
    n, v, _ = z.shape
    zz = F.normalize(z.transpose(0, 1).reshape(n * v, -1).float(), dim=1)
    ll = labels.repeat(v)
    logits = zz @ zz.T / tau
    eye = torch.eye(n * v, dtype=torch.bool)
    logprob = logits - logits.masked_fill(eye, float("-inf")).logsumexp(1, keepdim=True)
    pos = (ll[:, None] == ll[None, :]) & ~eye
    cnt = pos.sum(1)
    per = -(logprob * pos).sum(1) / cnt.clamp(min=1)
    return per[cnt > 0].mean()


def mat_clip(u, v, scale):
    u, v = F.normalize(u.float(), dim=1), F.normalize(v.float(), dim=1)
    logits = scale * u @ v.T
    t = torch.arange(u.shape[0])
    return (F.cross_entropy(logits, t) + F.cross_entropy(logits.T, t)) / 2


def mat_info_nce(q, k, queue, tau):
    q, k, queue = (F.normalize(x.float(), dim=1) for x in (q, k, queue))
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ queue.T], 1) / tau
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long))


# ------------------------------------------------------------------------------------------- cases


def make_inputs(obj: str, n: int, d: int, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g).to(dtype).requires_grad_()
    b = torch.randn(n, d, generator=g).to(dtype).requires_grad_()
    extra = {}
    if obj == "supcon":
        extra["labels"] = torch.randint(0, max(2, n // 8), (n,), generator=g)
    if obj == "clip":
        extra["scale"] = torch.tensor(CLIP_SCALE, requires_grad=True)
    if obj == "info_nce":
        extra["queue"] = torch.randn(n, d, generator=g).to(dtype)
    return a, b, extra


def floor_shapes(obj: str, n: int) -> tuple[int, int]:
    """(rows, cols) of the loss's logit matrix."""
    return (n, n) if obj in ("clip", "info_nce") else (2 * n, 2 * n)


def loss_fn(obj: str, impl: str):
    tau = TAU.get(obj)
    if impl == "ours":
        return {
            "nt_xent": lambda a, b, e: nt_xent(a, b, tau),
            "dcl": lambda a, b, e: dcl(a, b, tau),
            "dclw": lambda a, b, e: dclw(a, b, tau, sigma=0.5),
            "supcon": lambda a, b, e: supcon(torch.stack([a, b], 1), e["labels"], tau),
            "clip": lambda a, b, e: clip_loss(a, b, e["scale"]),
            "info_nce": lambda a, b, e: info_nce(a, b, e["queue"], tau),
        }[obj]
    if impl == "materialised":
        return {
            "nt_xent": lambda a, b, e: mat_nt_xent(a, b, tau),
            "dcl": lambda a, b, e: mat_dcl(a, b, tau),
            "dclw": lambda a, b, e: mat_dclw(a, b, tau),
            "supcon": lambda a, b, e: mat_supcon(torch.stack([a, b], 1), e["labels"], tau),
            "clip": lambda a, b, e: mat_clip(a, b, e["scale"]),
            "info_nce": lambda a, b, e: mat_info_nce(a, b, e["queue"], tau),
        }[obj]
    if impl == "lightly":
        import lightly.loss as L  # noqa: N812

        mods = {
            "nt_xent": lambda: L.NTXentLoss(temperature=tau),
            "dcl": lambda: L.DCLLoss(temperature=tau),
            "dclw": lambda: L.DCLWLoss(temperature=tau, sigma=0.5),
        }
        if obj not in mods:
            return None
        mod = mods[obj]()
        return lambda a, b, e: mod(a, b)
    if impl == "pml":
        from pytorch_metric_learning import losses as P  # noqa: N812

        if obj == "nt_xent":
            mod = P.SelfSupervisedLoss(P.NTXentLoss(temperature=tau), symmetric=True)
            return lambda a, b, e: mod(a, b)
        if obj == "supcon":
            mod = P.SupConLoss(temperature=tau)
            return lambda a, b, e: mod(torch.cat([a, b]), e["labels"].repeat(2))
        return None
    raise ValueError(impl)


def make_floor(obj: str, n: int, d: int):
    """Three products of the logit matrix's shapes; full matrices when they fit, else row blocks."""
    rows, cols = floor_shapes(obj, n)
    a, b = torch.randn(rows, d), torch.randn(cols, d)
    block = rows if rows * cols * 4 * 2 <= (4 << 30) else max(1, (1 << 28) // (cols * 4))
    s = torch.empty(block, cols)
    gmat = torch.randn(block, cols)
    ga, gb = torch.empty(block, d), torch.empty(cols, d)

    def run():
        for r0 in range(0, rows, block):
            r1 = min(rows, r0 + block)
            torch.mm(a[r0:r1], b.T, out=s[: r1 - r0])
            torch.mm(gmat[: r1 - r0], b, out=ga[: r1 - r0])
            torch.mm(gmat[: r1 - r0].T, a[r0:r1], out=gb)

    return run


def fwd_bwd(fn, a, b, extra):
    for t in (a, b, extra.get("scale")):
        if t is not None:
            t.grad = None
    loss = fn(a, b, extra)
    loss.backward()
    return loss


def materialised_fits(obj: str, n: int) -> bool:
    rows, cols = floor_shapes(obj, n)
    need = rows * cols * 4 * 4  # logits, exp/softmax, grad, masks: ~4 matrices
    avail = _mem_available()
    return avail is None or need < avail * 0.6


def _mem_available():
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# ------------------------------------------------------------------------------------------ memory


def _status(key: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def child(spec: dict) -> dict:
    """Run one forward+backward in this (fresh) process and report the peak extra resident memory."""
    obj, impl, n, d = spec["obj"], spec["impl"], spec["n"], spec["d"]
    dtype = torch.bfloat16 if spec.get("bf16") else torch.float32
    if impl == "floor":
        run = make_floor(obj, min(n, 64), d)
        run()
        run = make_floor(obj, n, d)
        before = _status("VmRSS")
        _reset_hwm()
        run()
        return {"peak_mib": (_status("VmHWM") - before) / 2**20}
    fn = loss_fn(obj, impl)
    a, b, e = make_inputs(obj, 64, d, dtype)
    fwd_bwd(fn, a, b, e)  # load libraries, JIT kernels
    a, b, e = make_inputs(obj, n, d, dtype)
    before = _status("VmRSS")
    _reset_hwm()
    loss = fwd_bwd(fn, a, b, e)
    return {"peak_mib": (_status("VmHWM") - before) / 2**20, "loss": float(loss.detach())}


def _reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:  # older kernels: HWM then includes the warm-up, which is small
        pass


def measure_memory(spec: dict, timeout: float = 3600) -> float | None:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        sys.stderr.write(f"memory run {spec} failed:\n{out.stderr[-2000:]}\n")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"]


# ------------------------------------------------------------------------------------------- main


def available_impls(no_materialised: bool) -> list[str]:
    impls = ["ours"] if no_materialised else ["ours", "materialised"]
    for name, mod in (("lightly", "lightly"), ("pml", "pytorch_metric_learning")):
        try:
            __import__(mod)
            impls.append(name)
        except Exception:
            pass
    return impls


def bench(args) -> list[dict]:
    rows = []
    impls = available_impls(args.no_materialised)
    for n in args.sizes:
        for obj in args.objectives:
            fns = {}
            for impl in impls:
                if impl == "materialised" and not materialised_fits(obj, n):
                    continue
                fn = loss_fn(obj, impl)
                if fn is not None:
                    fns[impl] = fn
            inputs = make_inputs(obj, n, args.dim)
            floor = make_floor(obj, n, args.dim)
            floor()
            for fn in fns.values():
                fwd_bwd(fn, *inputs)  # warm-up
            best = {k: math.inf for k in [*fns, "floor"]}
            reps = args.repeat if n <= 8192 else 1
            for _ in range(reps):
                t = time.perf_counter()
                floor()
                best["floor"] = min(best["floor"], time.perf_counter() - t)
                for impl, fn in fns.items():
                    t = time.perf_counter()
                    fwd_bwd(fn, *inputs)
                    best[impl] = min(best[impl], time.perf_counter() - t)
            ref_loss = float(fns["ours"](*inputs).detach())
            extra_rows = {}
            if args.bf16:
                a, b, e = make_inputs(obj, n, args.dim, torch.bfloat16)
                fwd_bwd(fns["ours"], a, b, e)
                tb = math.inf
                for _ in range(reps):
                    t = time.perf_counter()
                    lb = fwd_bwd(fns["ours"], a, b, e)
                    tb = min(tb, time.perf_counter() - t)
                extra_rows["ours_bf16"] = (tb, abs(float(lb.detach()) - ref_loss) / max(1e-12, abs(ref_loss)))
            for impl in [*fns, "floor"]:
                rows.append(dict(obj=obj, n=n, impl=impl, time=best[impl]))
            for impl, (tb, err) in extra_rows.items():
                rows.append(dict(obj=obj, n=n, impl=impl, time=tb, rel_err=err))
            if not args.no_memory:
                for r in rows:
                    if r["obj"] == obj and r["n"] == n and r["impl"] != "floor":
                        spec = dict(obj=obj, impl=r["impl"].replace("_bf16", ""), n=n, d=args.dim,
                                    bf16=r["impl"].endswith("_bf16"), threads=args.threads)
                        r["peak_mib"] = measure_memory(spec)
            report(rows, args, final=False)
    return rows


def report(rows, args, final=True):
    floors = {(r["obj"], r["n"]): r["time"] for r in rows if r["impl"] == "floor"}
    mats = {(r["obj"], r["n"]): r["time"] for r in rows if r["impl"] == "materialised"}
    header = ["objective", "N", "impl", "fwd+bwd ms", "× floor", "× materialised", "peak extra MiB",
              "bf16 rel err"]
    table = []
    for r in rows:
        key = (r["obj"], r["n"])
        table.append([
            r["obj"], str(r["n"]), r["impl"], f"{r['time'] * 1e3:.1f}",
            f"{r['time'] / floors[key]:.2f}" if key in floors and r["impl"] != "floor" else "—",
            f"{r['time'] / mats[key]:.2f}"
            if key in mats and r["impl"] not in ("floor", "materialised") else "—",
            "—" if r.get("peak_mib") is None else f"{r['peak_mib']:.0f}",
            f"{r['rel_err']:.1e}" if "rel_err" in r else "",
        ])
    if not final:  # progress on stderr: the rows of the case just finished
        for row in table:
            if (row[0], row[1]) == (rows[-1]["obj"], str(rows[-1]["n"])):
                print("  ".join(row), file=sys.stderr, flush=True)
        return
    title = (f"contrastkit losses, D={args.dim}, threads={torch.get_num_threads()}, "
             f"torch {torch.__version__}, best of {args.repeat}")
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for h in header:
            t.add_column(h, justify="left" if h in ("objective", "impl") else "right")
        for row in table:
            t.add_row(*row)
        Console(width=max(120, Console().width)).print(t)
    except ImportError:
        print(title)
        widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        for row in table:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096],
                   help="batch sizes N (pairs); the full set is 256 1024 4096 8192 32768")
    p.add_argument("--objectives", nargs="+", default=OBJECTIVES, choices=OBJECTIVES)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bf16", action="store_true", help="also run ours on bf16 inputs; report error vs fp32")
    p.add_argument("--no-memory", action="store_true", help="skip the per-case memory subprocesses")
    p.add_argument("--no-materialised", action="store_true", help="skip the materialised baseline")
    p.add_argument("--json", help="also write the raw rows to this file")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's choice); "
                   "1 gives steadier small-N numbers on a busy shared CPU")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        if spec.get("threads"):
            torch.set_num_threads(spec["threads"])
        print(json.dumps(child(spec)))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = bench(args)
    report(rows, args)


if __name__ == "__main__":
    main()
