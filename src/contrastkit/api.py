"""The Python API: `pretrain(...)` trains, evaluates and writes the report, like `contrastkit pretrain`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    try:
        if cfg["evaluate"] and result.is_main:  # under torchrun, rank 0 evaluates once
            finish_run(result, cfg, progress)
    finally:
        result.release()  # the run folder's lock: another process may use it now
    return result


def finish_run(result: RunResult, cfg: dict[str, Any], progress: bool = True) -> None:
    """Evaluation (with baselines) → eval.json, then report.html (see evaluate/pipeline.py)."""
    from .evaluate.pipeline import evaluate_trained, save_results
    from .run import untrained_scoring_model

    info, method = result.splits.info, result.method
    head = method.scoring_head()
    spec = None if head is None else head.spec
    # --layer projection: every protocol sees encoder → projection head (and so does its random-init baseline)
    projection = method.projection_head() if cfg.get("layer") == "projection" else None
    model = method.encoder if projection is None else torch.nn.Sequential(method.encoder, projection)

    def fresh(head_spec=None):
        torch.manual_seed(int(cfg["seed"]))  # the same seed the trained model started from
        return untrained_scoring_model(cfg, info, head_spec)

    random_model = (lambda: fresh(None if projection is None else projection.spec))
    rows, extra = evaluate_trained(model, random_model, result.splits, result.device, cfg,
                                   scoring_model=method.anomaly_model() if head is not None else model,
                                   make_random_scoring=lambda: fresh(spec) if head is not None else random_model(),
                                   centroid=method.anomaly_centroid, progress=None if progress else False)
    result.eval_rows = rows
    temperatures = getattr(result.method, "temperatures", None)
    temperatures = temperatures().detach().cpu().numpy() if callable(temperatures) else None
    save_results(result.run_dir, rows, extra, result.splits.test.y, temperatures, splits=result.splits,
                 encoder=model)
