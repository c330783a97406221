"""The shape of the house: no import circles in scratchnet, no borrowed underscore names.

Every `import` and `from ... import` in scratchnet/, at module level or inside a function, is
an edge from the importing module to the imported one (`from package import name` points at
the submodule when `name` is one). The graph must have no cycle, and no module may import
another module's underscore name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "scratchnet"
# The command lines that stand at the library's door and hand over to the application.
ENTRY_POINTS = {
    "scratchnet.train",
    "scratchnet.predict",
    "scratchnet.export",
    "scratchnet.robustness",
}


def modules(root: Path) -> dict[str, Path]:
    """{dotted module name: file} for the package at root."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import of a known module."""
    found: list[tuple[str, str | None]] = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names if alias.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..nn import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base not in known:
                continue
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append((submodule, None) if submodule in known else (base, alias.name))
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    found = modules(root)
    known = set(found)
    return {
        name: {target for target, _ in imports(name, path, known) if target != name}
        for name, path in found.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as [a, b, ..., a], or None: an iterative depth-first search."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        state[start] = "open"
        stack = [iter(sorted(graph[start]))]
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = "done"
                stack.pop()
            elif state.get(target) == "open":
                return [*path[path.index(target) :], target]
            elif target not in state:
                state[target] = "open"
                path.append(target)
                stack.append(iter(sorted(graph[target])))
    return None


def borrowed_names(*roots: Path) -> list[str]:
    """Every import of another module's underscore name, as "importer imports module.name"."""
    found = {name: path for root in roots for name, path in modules(root).items()}
    return [
        f"{name} imports {target}.{imported}"
        for name, path in found.items()
        for target, imported in imports(name, path, set(found))
        if imported is not None and imported.startswith("_") and target != name
    ]


def test_no_import_circles():
    graph = import_graph(PACKAGE)
    assert len(graph) > 30 and "scratchnet.tensor" in graph["scratchnet.ops"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_module_imports_another_modules_underscore_names():
    borrowed = borrowed_names(PACKAGE, REPO / "server", REPO / "reference")
    assert not borrowed, "\n".join(borrowed)


def test_the_library_does_not_import_the_mnist_application():
    graph = import_graph(PACKAGE)
    library = [name for name in graph if not name.startswith("scratchnet.mnist")]
    assert "scratchnet.tensor" in library and "scratchnet.mnist.train" in graph
    reaches = {
        name: sorted(t for t in graph[name] if t.startswith("scratchnet.mnist"))
        for name in library
        if name not in ENTRY_POINTS
    }
    assert not any(reaches.values()), {k: v for k, v in reaches.items() if v}


# The checks themselves must be able to fail: a small package with both faults.
@pytest.fixture
def faulty_package(tmp_path):
    root = tmp_path / "scratchnet"
    (root / "nn").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "nn" / "__init__.py").write_text("from scratchnet.nn.layer import Layer\n")
    (root / "tensor.py").write_text("def relu(x):\n    from scratchnet.nn import layer\n")
    (root / "nn" / "layer.py").write_text(
        "from scratchnet.tensor import relu\nfrom . import _private\nclass Layer: ...\n"
    )
    (root / "nn" / "_private.py").write_text("from ..utils import _helper\n")
    (root / "utils.py").write_text("def _helper(): ...\n")
    return root


def test_the_checks_find_a_function_level_circle_and_a_borrowed_name(faulty_package):
    graph = import_graph(faulty_package)
    assert graph["scratchnet.nn.layer"] == {"scratchnet.tensor", "scratchnet.nn._private"}
    assert find_cycle(graph) in (
        ["scratchnet.nn.layer", "scratchnet.tensor", "scratchnet.nn.layer"],
        ["scratchnet.tensor", "scratchnet.nn.layer", "scratchnet.tensor"],
    )
    assert borrowed_names(faulty_package) == [
        "scratchnet.nn._private imports scratchnet.utils._helper"
    ]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
