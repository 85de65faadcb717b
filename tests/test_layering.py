"""The reliability app sits below everything and must stay reusable."""

from __future__ import annotations

import ast
from pathlib import Path

RELIABILITY = Path(__file__).resolve().parent.parent / "reliability"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_reliability_imports_nothing_from_analysis_or_the_project():
    offenders = {
        str(path.relative_to(RELIABILITY.parent)): sorted(
            name for name in imported_modules(path) if name.split(".")[0] in {"analysis", "vexxy"}
        )
        for path in RELIABILITY.rglob("*.py")
    }
    assert {path: names for path, names in offenders.items() if names} == {}
