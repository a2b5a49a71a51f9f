"""The core knows nothing of the camera kit, and envkit's modules import each other in layers.

Both are read from the source with :mod:`ast`, not by importing: an import that only runs
in one branch or inside a function counts all the same for the first rule, and a cycle
shows before it ever bites at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import envkit

PACKAGE = Path(envkit.__file__).resolve().parent
KIT = "envkit.camera"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources() -> dict[str, Path]:
    """Every module of the package; the build contexts ship files, not envkit modules."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
            if "contexts" not in p.relative_to(PACKAGE).parts}


MODULES = sources()
CORE = sorted(name for name in MODULES if name != KIT and not name.startswith(f"{KIT}."))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute name an ``import from`` names, resolving relative levels."""
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """Every module an import statement loads, ``from p import m`` naming ``p.m`` if a module."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = _absolute(module, node)
    yield base
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:
            yield f"{base}.{alias.name}"


def all_imports(module: str) -> set[str]:
    """Everything *module* imports anywhere: at the top, in functions, under TYPE_CHECKING."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    return {name for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
            for name in imported(module, node)}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _load_time(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported: not in functions, not TYPE_CHECKING."""
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            yield stmt
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
            yield from _load_time(stmt.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(stmt, field, [])
                yield from _load_time([s for s in inner if isinstance(s, ast.stmt)])
            for handler in getattr(stmt, "handlers", []):
                yield from _load_time(handler.body)


def load_time_graph() -> dict[str, set[str]]:
    """Module -> the envkit modules (and their parent packages) it imports on import."""
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: set[str] = set()
        for node in _load_time(tree.body):
            for name in imported(module, node):
                parts = name.split(".")
                # Importing a.b.c runs a and a.b first.
                edges |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        graph[module] = {e for e in edges if e in MODULES and e != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One path per cycle found by depth-first search (each reported once, by its members)."""
    found: dict[frozenset[str], list[str]] = {}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                loop = [*path[path.index(nxt):], nxt]
                found.setdefault(frozenset(loop), loop)
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return list(found.values())


def test_the_package_and_the_kit_are_both_found() -> None:
    assert {"envkit", "envkit.plugin", "envkit.session", "envkit.kits"} <= set(CORE)
    assert {KIT, f"{KIT}.mediamtx", f"{KIT}.plugin"} <= set(MODULES)


@pytest.mark.parametrize("module", CORE)
def test_no_core_module_imports_the_camera_kit(module: str) -> None:
    reaching = sorted(name for name in all_imports(module)
                      if name == KIT or name.startswith(f"{KIT}."))
    assert reaching == [], f"{module} imports {reaching}: the core must not know the kit"


def test_no_import_cycles_at_load_time() -> None:
    found = cycles(load_time_graph())
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_type_checking_and_function_imports_are_not_load_time() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import envkit.errors\n"
        "if TYPE_CHECKING:\n    import envkit.runtime\nelse:\n    import envkit.labels\n"
        "try:\n    import envkit.config\nexcept ImportError:\n    import envkit.spec\n"
        "def f():\n    import envkit.session\n"
    )
    names = {alias.name for node in _load_time(ast.parse(source).body)
             for alias in node.names}
    assert names == {"TYPE_CHECKING", "envkit.errors", "envkit.labels", "envkit.config",
                     "envkit.spec"}
