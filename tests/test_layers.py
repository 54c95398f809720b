"""Each package's modules import one another in layers: no module reaches, however indirectly, one that
reaches back to it. Every import counts, those under ``TYPE_CHECKING`` and inside functions too: a
circle hidden from the interpreter that way still ties two modules' meanings together, so neither can be
read, tested or moved without the other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pipecat_responses_ws

ROOT = Path(pipecat_responses_ws.__file__).parent
PACKAGES = ["protocol", "client", "emulator", "harness"]


def import_graph(package: str) -> dict[str, set[str]]:
    """Module name → the modules of the same package it imports anywhere in it (``from .x import y``,
    ``from . import x`` and ``from pipecat_responses_ws.<package>.x import y``)."""
    trees = {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted((ROOT / package).glob("*.py"))}
    absolute = f"{pipecat_responses_ws.__name__}.{package}."
    graph: dict[str, set[str]] = {}
    for name, tree in trees.items():
        imported: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1 and node.module is not None:
                imported.add(node.module.split(".")[0])
            elif node.level == 1:
                imported.update(alias.name for alias in node.names)
            elif node.level == 0 and node.module is not None and node.module.startswith(absolute):
                imported.add(node.module.removeprefix(absolute).split(".")[0])
        graph[name] = (imported & set(trees)) - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle through each module that lies on any, as the path that closes it (``[a, b, a]``)."""
    found: list[list[str]] = []
    on_one: set[str] = set()
    for start in sorted(graph):
        if start in on_one:
            continue
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for target in sorted(graph[node]):
                if target == start:
                    found.append([*path, start])
                    on_one.update(path)
                    stack.clear()
                    break
                if target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    return found


def test_circles_finds_a_circle_however_long_and_only_that() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_type_checking_and_function_level_imports() -> None:
    graph = import_graph("harness")
    # Only imported under TYPE_CHECKING or inside run_scenario, to keep Silero and espeak-ng out of
    # every frame-level run: the graph must see both.
    assert {"voice", "eager_voice"} <= graph["runner"]
    assert "runner" in graph["__init__"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_one_that_imports_it_back(package: str) -> None:
    found = circles(import_graph(package))
    assert not found, f"import circles in {package}/: " + "; ".join(" → ".join(c) for c in found)
