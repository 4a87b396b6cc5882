"""No import circles in the core or the adapters.

The graph is read from the code: every ``import`` and ``from ... import`` at module level
of each module under ``paygate/`` and ``providers/*/paygate_*`` (imports inside functions
and under ``if TYPE_CHECKING:`` are deferred on purpose and not counted). A circle is a
set of modules that import each other at load time.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [ROOT / "paygate", *sorted((ROOT / "providers").glob("*/paygate_*"))]


def _module_name(path: Path) -> str:
    base = path.parent if path.name == "__init__.py" else path.with_suffix("")
    for package in PACKAGES:
        if path.is_relative_to(package):
            rel = base.relative_to(package.parent)
            return ".".join(rel.parts)
    raise AssertionError(path)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
                continue
            if isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1])
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                found.add(target)
                for alias in node.names:  # "from . import _operations"
                    found.add(f"{target}.{alias.name}")

    visit(tree.body)
    return {m for m in found if m in modules and m != name}


@functools.cache  # read once for the tests below (nothing changes it)
def _graph() -> dict[str, set[str]]:
    files = {
        _module_name(p): p
        for package in PACKAGES
        for p in package.rglob("*.py")
        if "tests" not in p.relative_to(package).parts
    }
    modules = set(files)
    return {name: _imports(path, name, modules) for name, path in files.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def strong(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _without_package_faces(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """A package's ``__init__`` importing its own submodules is how it hands names on,
    not a circle; drop those edges."""
    return {
        name: {m for m in targets if not m.startswith(name + ".")}
        for name, targets in graph.items()
    }


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "paygate._gateway" in graph
    assert "paygate._webhooks" in graph["paygate._gateway"]


def test_no_import_circles() -> None:
    cycles = _cycles(_without_package_faces(_graph()))
    assert cycles == [], "import circles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_a_circle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "p": {"p.x"}, "p.x": {"p"}}
    assert _cycles(_without_package_faces(graph)) == [["a", "b", "c"]]
