"""The layers import only downward (DESIGN: core ← data/views/encoders/heads/objectives ← methods ← engine ←
evaluation ← front ends). Read from the source with `ast`, including imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "contrastkit"

FRONT = {"api", "cli", "build", "config", "__main__"}
LOOP = {"engine", "train"}
# layer → the top-level contrastkit modules it must never import
FORBIDDEN = {
    "core": {"data", "views", "encoders", "heads", "objectives", "methods", "evaluate", "run"} | LOOP | FRONT,
    "data": {"views", "encoders", "heads", "objectives", "methods", "evaluate", "run"} | LOOP | FRONT,
    "views": {"methods", "evaluate", "run", "objectives"} | LOOP | FRONT,
    "encoders": {"methods", "evaluate", "run", "objectives"} | LOOP | FRONT,  # views: preprocessing may be bundled
    "heads": {"methods", "evaluate", "run", "objectives", "views"} | LOOP | FRONT,
    "objectives": {"methods", "evaluate", "run", "views", "encoders"} | LOOP | FRONT,
    "methods": {"evaluate", "run"} | LOOP | FRONT,
    "evaluate": {"methods"} | LOOP | FRONT,
    "run": {"methods", "evaluate"} | LOOP | FRONT,
    "engine": {"methods"} | FRONT,
}


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_top_modules(path: Path) -> set[str]:
    """contrastkit top-level modules imported by `path` (relative or absolute imports)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    depth_of_file = len(path.relative_to(PKG).parts) - 1  # 0 for contrastkit/x.py, 1 for contrastkit/pkg/x.py
    out: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = node.level - 1  # "from ." is this package
                if up > depth_of_file:
                    continue
                base = list(path.relative_to(PKG).parts[:depth_of_file - up])
                mod = base + (node.module.split(".") if node.module else [])
                if mod:
                    names.append(mod[0])
                else:  # "from .. import x" at the package root: x are modules
                    names += [a.name for a in node.names]
            elif node.module and node.module.startswith("contrastkit"):
                parts = node.module.split(".")
                names.append(parts[1] if len(parts) > 1 else "")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("contrastkit."):
                    names.append(a.name.split(".")[1])
        out.update(n for n in names if n)
    return out


def test_every_layer_imports_only_the_layers_below_it():
    violations = []
    for path in sorted(PKG.rglob("*.py")):
        layer = _layer(path)
        bad = _imported_top_modules(path) & FORBIDDEN.get(layer, set())
        violations += [f"{path.relative_to(PKG)} imports {m}" for m in sorted(bad)]
    assert not violations, "\n".join(violations)


def test_the_checker_sees_relative_and_function_level_imports(tmp_path):
    fake = PKG / "evaluate" / "_layering_probe.py"
    fake.write_text("def f():\n    from ..methods import create_method\n    from ..engine.loop import fit\n")
    try:
        assert {"methods", "engine"} <= _imported_top_modules(fake)
    finally:
        fake.unlink()
