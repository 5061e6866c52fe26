"""CLAN on Shuttle (ODDS, via river): train on normal rows only, then the anomaly protocol table.

    .venv/bin/python bench/shuttle.py                     # pinned CLAN defaults, 2 CPU threads
    .venv/bin/python bench/shuttle.py --epochs 40 --lr 3e-4 --seed 1

Prints AUROC / AUPR on the test split (40 % of the normal rows + every anomaly, see data/table.py) for CLAN's
encoder (centroid-cosine and kNN scores), the same architecture at random initialisation, IsolationForest on
the standardised features, and kNN distance on the standardised features, all computed in this run on the
same split, plus wall-clock times. The training loop is deliberately minimal (the library's optimizer and
warm-up + cosine schedule, the method's training_step), so the numbers depend on nothing but the recipe.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from contrastkit.data import load_data  # noqa: E402
from contrastkit.data.base import Batch  # noqa: E402
from contrastkit.encoders import create_encoder  # noqa: E402
from contrastkit.evaluate.anomaly_protocol import anomaly_protocol, format_anomaly_table  # noqa: E402
from contrastkit.methods.base import METHODS, method_defaults  # noqa: E402
from contrastkit.train.optim import build_optimizer, lr_factor, set_lr  # noqa: E402

import contrastkit.methods  # noqa: E402,F401  (registers the methods)


def train_clan(cfg: dict, splits) -> tuple[torch.nn.Module, float, int, float]:
    torch.manual_seed(cfg["seed"])
    encoder = create_encoder(cfg["encoder"], splits.info, **cfg["encoder_kwargs"])
    method = METHODS.get("clan")(encoder, splits.info, cfg)
    method.setup(splits.train)
    optimizer = build_optimizer(method.parameter_groups(), cfg)
    x = splits.train.x
    n, bs = x.shape[0], int(cfg["batch_size"])
    steps_per_epoch = n // bs
    total = steps_per_epoch * int(cfg["epochs"])
    warmup = int(round(float(cfg["warmup_epochs"]) * steps_per_epoch))
    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    perm_gen = torch.Generator().manual_seed(cfg["seed"] + 2)
    step, t0, loss = 0, time.perf_counter(), float("nan")
    method.train()
    for epoch in range(int(cfg["epochs"])):
        order = torch.randperm(n, generator=perm_gen)
        for i in range(steps_per_epoch):
            index = order[i * bs : (i + 1) * bs]
            set_lr(optimizer, lr_factor(step, total, warmup))
            out = method.training_step(Batch(x[index], index), gen)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            step += 1
        loss = float(out["loss"].detach())
        if cfg["verbose"]:
            print(f"epoch {epoch + 1:3d}  loss {loss:.4f}  l_sim {float(out['l_sim']):.4f}  "
                  f"l_dis {float(out['l_dis']):.4f}  frac_neg {float(out['frac_neg']):.3f}  "
                  f"{time.perf_counter() - t0:.0f}s", flush=True)
    return method, time.perf_counter() - t0, step, loss


def main() -> None:
    defaults = method_defaults("clan")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=defaults["epochs"])
    p.add_argument("--lr", type=float, default=defaults["lr"])
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    p.add_argument("--encoder", default=defaults["encoder"])
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--out-dim", type=int, default=128)
    p.add_argument("--margin", type=float, default=defaults["margin"])
    p.add_argument("--p-f", type=float, default=defaults["p_f"])
    p.add_argument("--aug-range", type=float, default=defaults["aug_high"],
                   help="CLAN augmentation draws U(-R, R) (standardised units); reference 1.7")
    p.add_argument("--min-features", type=int, default=defaults["aug_min_features"],
                   help="aug_min_features: 0 = the reference augmentation (rows may stay unchanged)")
    p.add_argument("--scaler", default="standard", choices=["standard", "quantile"],
                   help="table scaler (data/table.py): standard = mean/std, quantile = rank-Gauss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: small matrices, and much faster when the cores are shared)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    splits = load_data("shuttle", {"seed": args.seed, "scaler": args.scaler})
    t_load = time.perf_counter() - t_start
    cfg = {**defaults, "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "encoder": args.encoder,
           "margin": args.margin, "p_f": args.p_f, "aug_min_features": args.min_features, "seed": args.seed,
           "aug_low": -args.aug_range, "aug_high": args.aug_range,
           "verbose": not args.quiet,
           "encoder_kwargs": {"width": args.width, "depth": args.depth, "out_dim": args.out_dim}}
    n_anom = int(splits.test.y.sum())
    print(f"shuttle: train {len(splits.train)} normal rows; test {len(splits.test)} rows "
          f"({n_anom} anomalies, {n_anom / len(splits.test):.1%}); loaded in {t_load:.1f}s; "
          f"scaler {args.scaler}; torch threads {torch.get_num_threads()}")
    print(f"clan: encoder {args.encoder} {cfg['encoder_kwargs']}, epochs {args.epochs}, batch {args.batch_size}, "
          f"lr {args.lr}, alpha {cfg['alpha']}, margin {cfg['margin']}, p_f {cfg['p_f']}, "
          f"U(-{args.aug_range}, {args.aug_range}), aug_min_features {cfg['aug_min_features']}")

    method, t_train, steps, loss = train_clan(cfg, splits)
    print(f"trained {steps} steps in {t_train:.1f}s (final loss {loss:.4f})")

    def fresh():
        return create_encoder(args.encoder, splits.info, **cfg["encoder_kwargs"])

    t0 = time.perf_counter()
    rows = anomaly_protocol(method.encoder, None, splits, method_name="clan", seed=args.seed, random_encoder=fresh)
    # CLAN's reference evaluation scores the full model (MLP + linear projection): report that space too
    with_head = torch.nn.Sequential(method.encoder, method.head)
    rows[2:2] = anomaly_protocol(with_head, None, splits, method_name="clan encoder+head", baselines=False)
    t_eval = time.perf_counter() - t0
    print()
    print(format_anomaly_table(rows))
    print()
    forest = next(r for r in rows if r["model"] == "isolation forest")
    for name in ("clan", "clan encoder+head"):
        r = next(r for r in rows if r["model"] == name and r["scorer"] == "centroid")
        verdict = "CLAN >= IsolationForest" if r["auroc"] >= forest["auroc"] else "CLAN LOSES to IsolationForest"
        print(f"{name} centroid AUROC {r['auroc']:.4f} AUPR {r['aupr']:.4f} vs IsolationForest AUROC "
              f"{forest['auroc']:.4f} AUPR {forest['aupr']:.4f}: {verdict}")
    print(f"wall-clock: load {t_load:.1f}s, train {t_train:.1f}s, protocol {t_eval:.1f}s, "
          f"total {time.perf_counter() - t_start:.1f}s")


if __name__ == "__main__":
    main()
