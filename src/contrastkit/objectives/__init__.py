"""Contrastive objectives: pure functions (functional.py) over one tiled InfoNCE kernel (tiled.py)."""

from .clan import clan_loss
from .functional import clip_loss, dcl, dclw, dclw_weights, info_nce, nt_xent, supcon
from .regression import byol_loss, simsiam_loss
from .tiled import contrastive_rows, logsumexp_rows, logsumexp_rows_cols

__all__ = [
    "byol_loss",
    "simsiam_loss",
    "clan_loss",
    "clip_loss",
    "contrastive_rows",
    "dcl",
    "dclw",
    "dclw_weights",
    "info_nce",
    "logsumexp_rows",
    "logsumexp_rows_cols",
    "nt_xent",
    "supcon",
]
