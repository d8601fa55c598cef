"""The import graph of the project's packages: no cycles, and the layers the architecture page draws.

Every ``import`` and ``from ... import`` in every module counts, function-local ones included: a cycle hidden
inside a function is still a cycle a reader has to untangle. Imports under ``if TYPE_CHECKING:`` run no code and
are left out (an annotation may name a type of the module that calls it).
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("config", "feature_repo", "simulator", "training", "monitoring", "serving", "storefront")
PLUGINS = REPO / "plugins"
MODEL_PACKAGES = ("conversion", "ranking", "recommendation", "elasticity", "promotion")


def project_modules() -> dict[str, Path]:
    """Module name -> file, for every module of the project's packages and the Airflow plugins."""
    modules: dict[str, Path] = {}
    roots = [(REPO, REPO / p) for p in PACKAGES] + [(PLUGINS, PLUGINS / "storefront_airflow")]
    for base, root in roots:
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # ``import a.b.c`` of a non-module attribute: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def model_package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "training" and parts[1] in MODEL_PACKAGES else None


def test_the_walk_sees_function_local_imports() -> None:
    graph = import_graph()
    assert "training.shared.registry" in graph["training.shared.pipeline"]  # imported inside gate_and_promote
    assert len(graph) > 100


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_no_model_package_imports_another_and_shared_imports_none() -> None:
    wrong = []
    for module, targets in import_graph().items():
        source = model_package(module)
        for target in targets:
            owner = model_package(target)
            if owner is None or owner == source:
                continue
            if source is not None or module.startswith("training.shared"):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_lower_layers_never_import_upper_ones() -> None:
    """config and the data side below everything; training and monitoring never import serving or the CLI."""
    below = {
        "config": ("feature_repo", "simulator", "training", "monitoring", "serving", "storefront",
                   "storefront_airflow"),
        "feature_repo": ("training", "monitoring", "serving", "storefront", "storefront_airflow"),
        "simulator": ("training", "monitoring", "serving", "storefront", "storefront_airflow"),
        "training": ("serving", "storefront", "storefront_airflow"),
        "monitoring": ("serving", "storefront", "storefront_airflow"),
        "serving": ("storefront", "storefront_airflow"),
    }
    wrong = [
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        for target in targets
        if target.split(".")[0] in below.get(module.split(".")[0], ())
    ]
    assert wrong == []
