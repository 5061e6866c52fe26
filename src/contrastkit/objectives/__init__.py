"""Contrastive objectives: pure functions (functional.py) over one tiled InfoNCE kernel (tiled.py)."""

from .functional import nt_xent

__all__ = ["nt_xent"]
