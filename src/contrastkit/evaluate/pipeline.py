"""The one evaluation pipeline: what runs at the end of pretraining and what `contrastkit report` redraws.

    evaluate_trained(encoder, make_random_encoder, splits, device, cfg, scoring=...) -> (rows, extra)

picks the protocol by the data: an anomaly table → the anomaly protocol (the method's scoring model next
to IsolationForest, raw kNN distance and the random-init model); a kind with a registered evaluation
(`register_evaluation`, e.g. series, graphs, pairs) → that; anything else → kNN + linear probe next to the
raw input and the random-init encoder. Unlabelled data get no accuracy rows, but their test embeddings
still go to the report (embedding map, diagnostics). It imports no method, loop or front end: it works
from modules and data alone, so a run folder is enough to evaluate (see `run_eval`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from torch import nn

from ..data.base import DataInfo, DataSplits
from ..data.stream import EVAL_ROWS, StreamingDataset
from ..views import create_preprocess
from ._common import evaluation_progress
from .embed import embed
from .protocol import EVALUATIONS, evaluation_table


def is_anomaly_data(info: DataInfo) -> bool:
    """Tables loaded with an anomaly (or normal) label are evaluated with the anomaly protocol."""
    return info.kind == "table" and (info.extra.get("anomaly_label") is not None
                                     or info.extra.get("normal_label") is not None)


def _registered(kind: str) -> bool:
    """Whether `kind` has an evaluation; the module evaluate/<kind>.py registers it when imported."""
    if kind not in EVALUATIONS:
        import importlib

        try:
            importlib.import_module(f"{__package__}.{kind}")
        except ModuleNotFoundError as e:
            if e.name != f"{__package__}.{kind}":
                raise
    return kind in EVALUATIONS


def evaluation_splits(splits: DataSplits) -> DataSplits:
    """What is evaluated (and drawn in the report): the splits themselves, or for data streamed from disk a seeded
    sample of at most EVAL_ROWS rows of each (tables: read into memory, EVAL_ROWS feature rows are small)."""
    if not isinstance(splits.train, StreamingDataset):
        return splits
    splits = DataSplits(splits.train.sample(EVAL_ROWS), splits.test.sample(EVAL_ROWS, seed=1))
    if splits.info.kind == "table":
        splits = DataSplits(splits.train.in_memory(), splits.test.in_memory())
    return splits


def evaluate_trained(*args, progress: Optional[bool] = None, **kwargs) -> tuple[list[dict], dict]:
    """`_evaluate` with a progress line per protocol step (each embedding, kNN search, linear probe, clustering,
    with its count and elapsed time) on a terminal; silent when `progress` is False or stderr is no terminal."""
    with evaluation_progress(progress, "evaluating the encoder next to its baselines (same split, same run)"):
        return _evaluate(*args, **kwargs)


def _evaluate(encoder: nn.Module, make_random_encoder: Callable[[], nn.Module], splits: DataSplits,
              device, cfg: dict[str, Any], scoring_model: Optional[nn.Module] = None,
              make_random_scoring: Optional[Callable[[], nn.Module]] = None,
              centroid: str = "normalized") -> tuple[list[dict], dict]:
    """Rows for the report (the schema of the protocol used) and extra = {"timings", "test_emb"}."""
    info = splits.info
    preprocess = create_preprocess(info)
    splits = evaluation_splits(splits)
    if is_anomaly_data(info):
        from .anomaly_protocol import anomaly_protocol

        rows = anomaly_protocol(scoring_model if scoring_model is not None else encoder, preprocess, splits,
                                method_name=str(cfg.get("method", "encoder")), seed=int(cfg.get("seed", 0)),
                                device=device, random_encoder=make_random_scoring or make_random_encoder,
                                centroid=centroid)
        return rows, {"timings": {}, "test_emb": embed(encoder, splits.test.x, preprocess, device=device)}
    if _registered(info.kind):
        rows, extra = EVALUATIONS.get(info.kind)(encoder, make_random_encoder, splits, device, cfg)
        extra.setdefault("timings", {})
        if extra.get("test_emb") is None:
            extra["test_emb"] = embed(encoder, splits.test.x, preprocess, device=device)
        return rows, extra
    if splits.train.y is None or splits.test.y is None:  # unlabelled: nothing to score, still a report
        return [], {"timings": {}, "test_emb": embed(encoder, splits.test.x, preprocess, device=device)}
    rows, extra = evaluation_table(encoder, make_random_encoder, splits, device, knn_t=float(cfg.get("knn_t", 0.1)))
    return rows, {"timings": extra["timings"], "test_emb": extra["features"]["encoder"][1],
                  "train_emb": extra["features"]["encoder"][0]}  # the report's per-class table and neighbours


def write_run_report(run_dir: Path, rows, test_emb, test_y, temperatures=None, *, splits=None, train_emb=None,
                     encoder=None) -> Path:
    """report.html; `splits`/`train_emb`/`encoder` when at hand (else reloaded from the run folder) feed the
    per-class, nearest-neighbour, views and ROC sections (report.run_report_inputs)."""
    from .report import run_report_inputs, write_report
    from .similarity import positive_negative_similarities

    run_dir = Path(run_dir)
    if splits is not None and isinstance(splits.train, StreamingDataset):  # the evaluated sample (test_emb's rows)
        splits = evaluation_splits(splits)
        test_y = splits.test.y
    pos, neg = positive_negative_similarities(test_emb, test_y)
    more = run_report_inputs(run_dir, test_emb, test_y, splits=splits, train_emb=train_emb, encoder=encoder)
    return write_report(run_dir, metrics_csv=run_dir / "metrics.csv", eval_rows=rows, test_emb=test_emb,
                        test_y=None if test_y is None else test_y.cpu().numpy(), pos_sims=pos, neg_sims=neg,
                        temperatures=temperatures, title=f"contrastkit run {run_dir.name}", **more)


def save_results(run_dir: Path, rows: list[dict], extra: dict, test_y, temperatures=None, *, splits=None,
                 encoder=None) -> Path:
    """eval.json (written atomically), temperatures.npy when the method learned some, then report.html (given
    the run's `splits` and `encoder` when at hand, so the report does not load them again)."""
    import json

    from ..core.checkpoint import write_text_atomic

    run_dir = Path(run_dir)
    write_text_atomic(run_dir / "eval.json", json.dumps({"rows": rows, "timings": extra.get("timings", {})},
                                                        indent=2))
    if temperatures is not None:
        np.save(run_dir / "temperatures.npy", temperatures)
    return write_run_report(run_dir, rows, extra["test_emb"], test_y, temperatures,
                            train_emb=extra.get("train_emb"), splits=splits, encoder=encoder)


__all__ = ["evaluate_trained", "evaluation_splits", "is_anomaly_data", "save_results", "write_run_report"]
