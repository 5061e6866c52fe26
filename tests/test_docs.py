"""Docs that ship: docs/methods.md is what scripts/gen_method_docs.py renders from the registry today, the docs
index links pages that exist, and nothing in README, docs/ or the source sends users to documents outside the
repository (`../shared/...`)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_method_docs", ROOT / "scripts" / "gen_method_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_methods_page_is_up_to_date_with_the_registry():
    from contrastkit.methods import METHODS

    text = (ROOT / "docs" / "methods.md").read_text()
    assert text == _generator().render(), \
        "docs/methods.md is stale: run .venv/bin/python scripts/gen_method_docs.py and commit docs/methods.md"
    for name in METHODS.names():  # every registered method has its section, summary and defaults
        cls = METHODS.get(name)
        assert f"\n## {name}\n" in text and cls.summary in text
        for key in cls.defaults:
            assert f"| `{key}` |" in text


def test_every_method_has_an_objective_and_a_citation():
    from contrastkit.methods import METHODS

    formulas = _generator().FORMULA
    missing = [n for n in METHODS.names() if n not in formulas or not all(formulas[n])]
    assert not missing, f"add the objective and citation of {missing} to FORMULA in scripts/gen_method_docs.py"


def _shipped_text_files():
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").glob("*.md"))
    yield from sorted((ROOT / "src" / "contrastkit").rglob("*.py"))


def test_nothing_points_users_outside_the_repository():
    bad = []
    for path in _shipped_text_files():
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\.\./shared|shared/(DESIGN|reference|METHODS|LESSONS)|LESSONS\.md|DESIGN\.md", line):
                bad.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not bad, "point to docs/ or the README instead:\n" + "\n".join(bad)


def test_every_cited_section_number_is_explained_in_docs():
    """Docstrings cite the design notes as "METHODS.md §N": docs/methods.md says where each § lives in docs/."""
    table = (ROOT / "docs" / "methods.md").read_text().split("## Section numbers cited in the source", 1)[1]
    explained = set(re.findall(r"^\| §(\d+) \|", table, flags=re.M))
    cited = set()
    for path in _shipped_text_files():
        cited |= set(re.findall(r"§\s?(\d+)", path.read_text()))
    assert cited <= explained, f"§{sorted(cited - explained, key=int)} cited but not in docs/methods.md's table"


def test_docs_index_links_resolve_and_the_readme_links_the_docs():
    index = ROOT / "docs" / "index.md"
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", index.read_text())
    assert {"methods.md", "../README.md"} <= set(links)
    missing = [link for link in links if not link.startswith("http") and not (index.parent / link).exists()]
    assert not missing, missing
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert pages <= set(links), f"docs/index.md does not link {sorted(pages - set(links))}"
    assert "docs/index.md" in (ROOT / "README.md").read_text()
