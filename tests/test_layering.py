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


ANALYSIS = RELIABILITY.parent / "analysis"


def module_name(path: Path) -> str:
    parts = path.relative_to(ANALYSIS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path, known: set[str]) -> set[str]:
    """``analysis`` modules imported when ``path`` is imported (not those inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports never run
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found & known


def test_analysis_imports_nothing_from_the_project():
    offenders = {
        module_name(path): sorted(n for n in imported_modules(path) if n.split(".")[0] == "vexxy")
        for path in ANALYSIS.rglob("*.py")
    }
    assert {module: names for module, names in offenders.items() if names} == {}


def test_no_import_cycle_among_analysis_modules():
    paths = [p for p in ANALYSIS.rglob("*.py") if "migrations" not in p.parts]
    known = {module_name(p) for p in paths}
    graph = {module_name(p): top_level_imports(p, known) - {module_name(p)} for p in paths}
    assert len(graph) > 40  # the walk saw the app
    assert sum(map(len, graph.values())) > 80

    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []
