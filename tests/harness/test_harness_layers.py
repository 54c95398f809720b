"""The harness's modules import one another in layers: no module reaches, however indirectly, one that
reaches back to it. Every import counts, those under ``TYPE_CHECKING`` and inside functions too: a
circle hidden from the interpreter that way still ties the modules' meanings together."""

from __future__ import annotations

import ast
from pathlib import Path

import pipecat_responses_ws.harness as harness

PACKAGE = Path(harness.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.glob("*.py"))}


def _imported(tree: ast.Module, modules: set[str]) -> set[str]:
    """The harness modules ``tree`` imports anywhere in it: ``from .x import y`` and ``from . import x``."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1 and node.module is not None:
            out.add(node.module.split(".")[0])
        elif node.level == 1:
            out.update(alias.name for alias in node.names)
        elif node.level == 0 and node.module is not None and node.module.startswith(f"{harness.__name__}."):
            out.add(node.module.removeprefix(f"{harness.__name__}.").split(".")[0])
    return out & modules


def import_graph() -> dict[str, set[str]]:
    trees = _modules()
    return {name: _imported(tree, set(trees)) for name, tree in trees.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
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


def test_the_graph_sees_type_checking_and_function_level_imports() -> None:
    graph = import_graph()
    # Only imported under TYPE_CHECKING or inside run_scenario, to keep Silero and espeak-ng out of
    # every frame-level run: the graph must see both.
    assert {"voice", "eager_voice"} <= graph["runner"]
    assert "runner" in graph["__init__"]


def test_cycles_finds_a_circle_however_long() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_harness_module_imports_one_that_imports_it_back() -> None:
    found = cycles(import_graph())
    assert not found, "; ".join(" → ".join(circle) for circle in found)
