"""Each package's modules import one another without circles, type-only imports included: a
circle means two modules that cannot be read, tested or moved one without the other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "pipecat_responses_ws"


def imports_within(package: Path) -> dict[str, set[str]]:
    """Module name → the modules of the same package it imports (under ``TYPE_CHECKING`` too)."""
    modules = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for module in modules:
        tree = ast.parse((package / f"{module}.py").read_text())
        imported: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module is None:  # from . import a, b
                    imported.update(alias.name for alias in node.names if alias.name in modules)
                elif node.module.split(".")[0] in modules:
                    imported.add(node.module.split(".")[0])
        graph[module] = imported - {module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each module that lies on one (depth first, so each found once per start)."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            module, path = stack.pop()
            for imported in sorted(graph[module]):
                if imported == start:
                    key = frozenset(path)
                    if key not in seen:
                        seen.add(key)
                        found.append([*path, start])
                elif imported not in path and imported > start:
                    stack.append((imported, [*path, imported]))
    return found


def test_the_circle_finder_finds_a_circle_and_only_that() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


@pytest.mark.xfail(
    strict=True,
    reason="response and actions name the session's ConnectionState (type-only), which imports them back",
)
def test_protocol_has_no_import_circle() -> None:
    found = circles(imports_within(PACKAGE / "protocol"))
    assert not found, "import circles in protocol/: " + "; ".join(" → ".join(c) for c in found)


@pytest.mark.xfail(reason="harness/ still has an import circle")
def test_harness_has_no_import_circle() -> None:
    found = circles(imports_within(PACKAGE / "harness"))
    assert not found, "import circles in harness/: " + "; ".join(" → ".join(c) for c in found)
