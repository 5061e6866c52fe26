"""Data sources → DataSplits. Built-in names register with `@register_source`; paths dispatch on suffix."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import ContrastkitError
from ..registry import Registry
from .base import Batch, DataInfo, DataSplits, Dataset

__all__ = ["Batch", "DataInfo", "DataSplits", "Dataset", "load_data", "register_source", "SOURCES"]

# A source is f(cfg: dict) -> DataSplits for built-in names, f(path: Path, cfg: dict) -> DataSplits for suffixes.
SOURCES: Registry[Callable[..., DataSplits]] = Registry("data set")
SUFFIX_LOADERS: dict[str, Callable[[Path, dict], DataSplits]] = {}


def register_source(name: str):
    return SOURCES.register(name)


def register_suffix(*suffixes: str):
    def decorator(fn):
        for s in suffixes:
            SUFFIX_LOADERS[s] = fn
        return fn

    return decorator


def load_data(data: str, cfg: dict[str, Any] | None = None) -> DataSplits:
    """`data` is a built-in name (see `SOURCES.names()`) or a path: a folder of images, .npy/.npz, .csv/.parquet."""
    cfg = cfg or {}
    if cfg.get("graph"):  # --graph knn:K / edges:PATH builds a graph over the data (data/graph.py)
        from .graph import load_graph_data

        return load_graph_data(data, cfg)
    if data in SOURCES:
        return SOURCES.get(data)(cfg)
    if data.partition(":")[0] in ("mfeat", "paired"):  # paired data: mfeat:pix,mor / paired:A,B (data/paired.py)
        from .paired import load_paired_spec

        return load_paired_spec(data, cfg)
    path = Path(data).expanduser()
    if not path.exists():
        names = ", ".join(SOURCES.names())
        raise ContrastkitError(
            f"--data {data!r} is neither a built-in data set ({names}) nor an existing path; "
            "pass one of the names or the path of an image folder, .npy/.npz, .csv or .parquet file"
        )
    if path.is_dir():
        from .images import load_image_folder

        return load_image_folder(path, cfg)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    from .stream import load_streamed, wants_stream

    if wants_stream(path, cfg):  # a .npy or a table larger than memory: read from disk in rows / chunks
        return load_streamed(path, cfg)
    loader = SUFFIX_LOADERS.get(suffix.lower())
    if loader is None:
        raise ContrastkitError(
            f"--data {str(path)!r}: unsupported file type {suffix!r}; supported: {', '.join(sorted(SUFFIX_LOADERS))}"
        )
    return loader(path, cfg)


# Importing the modules registers their sources.
from . import images  # noqa: E402,F401

try:
    from . import table  # noqa: F401
except ImportError:  # pragma: no cover - only while the module is being written
    pass
from . import paired  # noqa: E402,F401

from . import series  # noqa: E402,F401  (after images: its .npy/.npz loader routes arrays to images or series)
from . import graph  # noqa: E402,F401  (graphs: karate, --graph knn:K / edges:PATH; data/graph.py)
