"""The Python API: `pretrain(...)` trains, evaluates and writes the report, like `contrastkit pretrain`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import resolve_config
from .build import RunResult, train


def pretrain(config: str | Path | None = None, *, resume: bool = False, progress: bool = True,
             **settings: Any) -> RunResult:
    """Pretrain with the given settings (any key of `contrastkit methods` / TRAINER_DEFAULTS).

    >>> result = pretrain(method="simclr", data="digits", epochs=1, batch_size=64)   # doctest: +SKIP
    >>> result.eval_rows[0]["encoder"]                                                 # doctest: +SKIP
    """
    if resume and settings.get("out") and (Path(settings["out"]) / "config.yaml").exists() and config is None:
        config = Path(settings["out"]) / "config.yaml"  # continue the run with its own settings
    cfg = resolve_config(settings, config)
    result = train(cfg, resume=resume, progress=progress)
    if cfg["evaluate"] and result.is_main:  # under torchrun, rank 0 evaluates once
        finish_run(result, cfg)
    return result


def finish_run(result: RunResult, cfg: dict[str, Any]) -> None:
    """Evaluation table (with baselines) → eval.json, then report.html."""
    from .encoders import create_encoder
    from .evaluate.protocol import EVALUATIONS, evaluation_table

    def random_encoder():
        torch.manual_seed(int(cfg["seed"]))  # the same initialisation the trained encoder started from
        return create_encoder(cfg["encoder"], result.splits.info, **dict(cfg.get("encoder_kwargs") or {}))

    if is_anomaly_data(result.splits.info):
        from .evaluate.anomaly_protocol import anomaly_protocol
        from .evaluate.embed import embed
        from .run import untrained_anomaly_model
        from .views import create_preprocess

        preprocess = create_preprocess(result.splits.info)
        rows = anomaly_protocol(result.method.anomaly_model(), preprocess, result.splits, method_name=cfg["method"],
                                seed=int(cfg["seed"]), device=result.device,
                                random_encoder=lambda: untrained_anomaly_model(cfg, result.splits.info))
        extra = {"timings": {}, "test_emb": embed(result.method.encoder, result.splits.test.x, preprocess)}
    elif result.splits.info.kind in EVALUATIONS:
        rows, extra = EVALUATIONS.get(result.splits.info.kind)(result.method.encoder, random_encoder, result.splits,
                                                               result.device, cfg)
    else:
        rows, extra = evaluation_table(result.method.encoder, random_encoder, result.splits, result.device,
                                       knn_t=float(cfg["knn_t"]))
        extra["test_emb"] = extra["features"]["encoder"][1]
    result.eval_rows = rows
    (result.run_dir / "eval.json").write_text(json.dumps({"rows": rows, "timings": extra["timings"]}, indent=2))
    temperatures = getattr(result.method, "temperatures", None)
    temperatures = temperatures().detach().cpu().numpy() if callable(temperatures) else None
    if temperatures is not None:
        np.save(result.run_dir / "temperatures.npy", temperatures)
    write_run_report(result.run_dir, rows, extra["test_emb"], result.splits.test.y, temperatures)


def is_anomaly_data(info) -> bool:
    """Tables loaded with an anomaly (or normal) label are evaluated with the anomaly protocol."""
    return info.kind == "table" and (info.extra.get("anomaly_label") is not None
                                     or info.extra.get("normal_label") is not None)


def write_run_report(run_dir: Path, rows, test_emb, test_y, temperatures=None) -> Path:
    from .evaluate.report import write_report
    from .evaluate.similarity import positive_negative_similarities

    pos, neg = positive_negative_similarities(test_emb, test_y)
    return write_report(run_dir, metrics_csv=run_dir / "metrics.csv", eval_rows=rows, test_emb=test_emb,
                        test_y=None if test_y is None else test_y.cpu().numpy(), pos_sims=pos, neg_sims=neg,
                        temperatures=temperatures, title=f"contrastkit run {run_dir.name}")
