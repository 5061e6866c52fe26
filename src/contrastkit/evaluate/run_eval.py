"""Back ends of `contrastkit evaluate`, `embed` and `report` on a finished run folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..data import load_data
from ..errors import ContrastkitError
from ..run import load_config, load_encoder
from ..views import create_preprocess
from ._common import evaluation_progress, progress_label, progress_task
from .embed import embed
from .pipeline import evaluation_splits

PROTOCOLS = ("knn", "linear", "cluster", "anomaly", "retrieval")


def _open(run: Path, data: str | None, layer: str = "backbone"):
    encoder, info, cfg = load_encoder(run, layer)
    splits = load_data(data or str(cfg["data"]), cfg)
    if tuple(splits.info.shape) != tuple(info.shape):
        raise ContrastkitError(f"--data {data}: samples have shape {splits.info.shape}, the run's encoder "
                               f"expects {info.shape}; evaluate on data of the same kind and size")
    preprocess = create_preprocess(info)  # the training statistics, not the new data's
    return encoder, info, cfg, splits, preprocess


def evaluate_run(run: Path, protocols: list[str], data: str | None = None,
                 progress: bool | None = None, layer: str | None = None) -> list[dict[str, Any]]:
    """Rows {"metric", "value"} of each protocol; a progress line per step on a terminal (not when `progress`
    is False). `layer` (backbone | projection) defaults to the run's own `--layer`."""
    bad = [p for p in protocols if p not in PROTOCOLS]
    if bad:
        raise ContrastkitError(f"--protocol {','.join(bad)}: unknown; valid protocols: {', '.join(PROTOCOLS)}")
    layer = layer or str(load_config(Path(run)).get("layer") or "backbone")
    encoder, info, cfg, splits, preprocess = _open(Path(run), data, layer)
    splits = evaluation_splits(splits)  # data streamed from disk: the seeded sample the run was evaluated on
    with evaluation_progress(progress, f"evaluating {Path(run).name}: {', '.join(protocols)}"):
        return _evaluate_run(Path(run), protocols, encoder, info, cfg, splits, preprocess)


def _evaluate_run(run: Path, protocols, encoder, info, cfg, splits, preprocess) -> list[dict[str, Any]]:
    if "anomaly" in protocols:
        from ..run import load_centroid, load_scoring_model, untrained_scoring_model
        from .anomaly_protocol import anomaly_protocol

        model, _, _, head_spec = load_scoring_model(Path(run))
        rows = anomaly_protocol(model, preprocess, splits, method_name=str(cfg.get("method", "encoder")),
                                seed=int(cfg.get("seed", 0)),  # anomaly_protocol seeds the untrained copy with it
                                random_encoder=lambda: untrained_scoring_model(cfg, info, head_spec),
                                centroid=load_centroid(Path(run)))
        protocols = [p for p in protocols if p != "anomaly"]
    else:
        rows = []
    if not protocols:
        return rows
    if splits.train.y is None or splits.test.y is None:
        raise ContrastkitError(f"--protocol {','.join(protocols)} needs labels, and {splits.info.name} has none")
    with progress_label("train"):
        tr = embed(encoder, splits.train.x, preprocess)
    with progress_label("test"):
        te = embed(encoder, splits.test.x, preprocess)
    ytr, yte = splits.train.y, splits.test.y
    if "knn" in protocols:
        from .knn import knn_accuracies

        t = float(cfg.get("knn_t", 0.1))
        ks = sorted({min(k, len(ytr)) for k in (200, 20)}, reverse=True)  # small data: k clamped, named
        accs = knn_accuracies(tr, ytr, te, yte, ks=ks, t=t)
        rows += [{"metric": f"kNN k={k} t={t}", "value": accs[k]} for k in ks]
    if "linear" in protocols:
        from .linear import linear_probe

        rows.append({"metric": "linear probe", "value": linear_probe(tr, ytr, te, yte)})
    if "cluster" in protocols:
        from .cluster import cluster_scores

        rows += [{"metric": f"k-means {k}", "value": v} for k, v in cluster_scores(te, yte).items()]
    if "retrieval" in protocols:
        from .retrieval import map_at_r

        with progress_task(f"retrieval: MAP@R over {len(te):,} test rows"):
            rows.append({"metric": "MAP@R (test vs test)", "value": map_at_r(te, yte)})
    return rows


def embed_to_file(run: Path, data: str, out: Path, split: str = "test", id_column: str | None = None,
                  layer: str = "backbone") -> int:
    """Embeddings of `data` with the run's encoder → `out` (.npy, .npz, .csv or .parquet).

    A path the run's data kind can read row by row (image folder or array, table) is embedded whole, in input
    order, with ids (file names, row numbers or `id_column`) and labels when present; other data (built-in
    names, series, graphs, pairs) are loaded like the training data and `split` is embedded.
    """
    from ..data.inference import load_for_inference

    out = Path(out)
    if out.suffix not in (".npy", ".npz", ".csv", ".parquet"):
        raise ContrastkitError(f"--out {out}: use a .npy, .npz, .csv or .parquet file name")
    encoder, info, cfg = load_encoder(Path(run), layer)
    new = load_for_inference(data, info, id_column)
    if new is not None:
        x, ids, labels = new.x, new.ids, new.labels
        if new.skipped:
            import logging

            logging.getLogger("contrastkit").warning(
                f"note: skipped {len(new.skipped)} unreadable file(s): {', '.join(new.skipped[:5])}")
    else:
        if split not in ("train", "test"):
            raise ContrastkitError(f"--split {split!r}: use train or test")
        _, info, cfg, splits, _ = _open(Path(run), data)
        part = getattr(splits, split)
        x, labels = part.x, None if part.y is None else part.y.tolist()
        ids = [str(i) for i in range(len(x))]
    emb = embed(encoder, x, create_preprocess(info)).numpy()
    _write_embeddings(out, emb, ids, labels)
    return len(emb)


def _write_embeddings(out: Path, emb: np.ndarray, ids: list[str], labels) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":  # the matrix alone; ids and labels beside it
        np.save(out, emb)
        import csv

        with out.with_suffix(".ids.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "label"] if labels is not None else ["id"])
            w.writerows(zip(ids, labels) if labels is not None else ([i] for i in ids))
        return
    if out.suffix == ".npz":
        arrays = {"embeddings": emb, "ids": np.asarray(ids)}
        if labels is not None:
            arrays["labels"] = np.asarray([str(v) for v in labels])
        np.savez(out, **arrays)
        return
    import pandas as pd

    df = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])])
    if labels is not None:
        df.insert(0, "label", labels)
    df.insert(0, "id", ids)
    if out.suffix == ".csv":
        df.to_csv(out, index=False)
        return
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ContrastkitError("--out *.parquet needs pyarrow: pip install 'contrastkit[parquet]', or use .csv/.npz")
    df.to_parquet(out, index=False)


def regenerate_report(run: Path) -> Path:
    from .pipeline import write_run_report

    run = Path(run)
    encoder, info, cfg, splits, preprocess = _open(run, None)
    splits = evaluation_splits(splits)
    rows = json.loads((run / "eval.json").read_text())["rows"] if (run / "eval.json").exists() else []
    te = embed(encoder, splits.test.x, preprocess)
    temps = run / "temperatures.npy"
    return write_run_report(run, rows, te, splits.test.y, np.load(temps) if temps.exists() else None,
                            splits=splits, encoder=encoder)


__all__ = ["evaluate_run", "embed_to_file", "regenerate_report", "PROTOCOLS"]
