"""The engine: the training loop (`fit`), multi-process training through torchrun, precision, checkpoints,
and the callbacks it calls (progress, metrics.csv, monitors). It knows no method, no settings schema and no
front end: construction happens above it (`contrastkit.build`)."""

from .loop import Callback, FitPlan, FitResult, NonFiniteError, StepInfo, fit

__all__ = ["Callback", "FitPlan", "FitResult", "NonFiniteError", "StepInfo", "fit"]
