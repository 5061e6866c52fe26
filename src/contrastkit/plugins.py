"""Plug-ins: user modules imported before the registries are read (`--import MODULE`, setting `import_modules`).

A module that registers a backbone (`@register_encoder("mynet")`) or a method (`@register_method("mine")`) is
imported by name, so `--encoder mynet` works in `pretrain`; the run's config.yaml records `import_modules`, so
`evaluate`, `embed`, `report` and `export` of that run import it again by themselves (each also takes
`--import`). The current folder is searched too, as `python -m` would.

An installed package can instead declare an entry point in the group `contrastkit.plugins`
(pyproject: `[project.entry-points."contrastkit.plugins"] mynets = "mynets"`): every such module is imported
once, before the first registry read of any subcommand, with nothing to pass on the command line.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Iterable

from .errors import ContrastkitError


def module_names(value: Any) -> list[str]:
    """`mymod`, `a,b`, `[a, b]` or None → ["a", "b"]."""
    if value is None:
        return []
    items: Iterable[Any] = [value] if isinstance(value, str) else value
    out: list[str] = []
    for item in items:
        out += [part.strip() for part in str(item).split(",") if part.strip()]
    return out


ENTRY_POINT_GROUP = "contrastkit.plugins"
_entry_points_loaded = False


def load_entry_points() -> list[str]:
    """Import the modules installed packages declare in the `contrastkit.plugins` entry-point group (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # a broken plug-in names itself instead of a traceback from deep inside
            raise ContrastkitError(f"plug-in {ep.name!r} ({ep.value}, entry point group {ENTRY_POINT_GROUP}) failed "
                                   f"to import: {type(e).__name__}: {e}") from None
        loaded.append(ep.name)
    return loaded


def import_plugins(value: Any, recorded_in: Path | None = None) -> list[str]:
    """Import each named module (once); one clear error naming a module that cannot be imported (and, for the
    modules a run recorded, the config.yaml that names them). Entry-point plug-ins are imported first."""
    load_entry_points()
    names = module_names(value)
    if names and "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # `--import mymod` finds ./mymod.py, as `python -m` does
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            if recorded_in is not None:
                raise ContrastkitError(f"the run imports {name} ({recorded_in}: import_modules), which cannot be "
                                       f"imported here ({e}); run from the folder that holds {name}.py or add its "
                                       "folder to PYTHONPATH") from None
            raise ContrastkitError(f"--import {name}: cannot import it ({e}); give a module on the Python path "
                                   "(e.g. mymod for ./mymod.py, or an installed package)") from None
    return names


def import_for_run(run: Path | str | None, extra: Any = None) -> list[str]:
    """The modules given on the command line, then those the run's config.yaml records (`import_modules`)."""
    names = module_names(extra)
    import_plugins(names)
    if run is not None:
        config = Path(run) / "config.yaml"
        if config.is_file():
            import yaml

            try:
                cfg = yaml.safe_load(config.read_text()) or {}
            except yaml.YAMLError:
                cfg = {}
            if isinstance(cfg, dict):
                recorded = [n for n in module_names(cfg.get("import_modules")) if n not in names]
                names += import_plugins(recorded, recorded_in=config)
    return names
