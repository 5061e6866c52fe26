"""Checkpoints are data, not code: tensors + plain values, written atomically, loaded with weights_only=True."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ..errors import ContrastkitError


def _write_atomic(path: Path, write) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: a crash never leaves a torn file,
    and a full disk or a read-only folder leaves the previous file intact (one clear error)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise ContrastkitError(f"cannot write {path}: {e.strerror}; free space or choose a writable --out") from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, (OSError, RuntimeError)):  # torch.save reports a full disk as a RuntimeError
            why = e.strerror if isinstance(e, OSError) and e.strerror else "write failed (disk full?)"
            raise ContrastkitError(f"cannot write {path}: {why}; the previous file is intact; free space "
                                   "or choose a writable --out") from None
        raise


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save(obj) to `path` atomically (see `_write_atomic`)."""
    _write_atomic(path, lambda f: torch.save(obj, f))


def write_text_atomic(path: Path, text: str) -> None:
    _write_atomic(path, lambda f: f.write(text.encode()))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ContrastkitError(f"no checkpoint at {path}; start without --resume or point --out at an earlier run")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling errors, truncated files, code objects refused by weights_only
        raise ContrastkitError(f"cannot load checkpoint {path}: {e}")
