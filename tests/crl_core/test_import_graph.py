"""The library is a DAG below the recipes: no import cycle between crl_core's packages, and no import of
``sweeps``, ``bench`` or ``ray`` anywhere in crl_core (docs/extending.md, "The library's layers").

The graph is read from the source (every ``import`` and ``from ... import``, at module level and inside
functions, plus ``importlib.import_module`` / ``__import__`` of a constant name), so a lazy import cannot
hide an edge. A unit is one of crl_core's subpackages (``crl_core.training``) or top-level modules
(``crl_core.metrics``). The registries' ``populate`` names (crl_core/registry.py) are strings that a
registry imports on first use: the plugin mechanism, not an edge of the graph.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "crl_core"
FORBIDDEN = ("sweeps", "bench", "ray")


def _module_name(path: Path, root: Path) -> str:
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The absolute module names one AST node imports (``from a import b`` names both a and a.b: b may be
    a submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        return [target] + [f"{target}.{a.name}" for a in node.names if a.name != "*"]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
            and isinstance(node.args[0].value, str):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("import_module", "__import__"):
            return [node.args[0].value]
    return []


def import_graph(root: Path) -> dict[str, dict[str, list[str]]]:
    """module -> {imported module -> [``file:line``, ...]} for every .py file under ``root``."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            for target in _imported(node, module, path.name == "__init__.py"):
                if target:
                    graph[module][target].append(f"{path.relative_to(root.parent)}:{node.lineno}")
    return graph


def _unit(module: str, top: str) -> str | None:
    parts = module.split(".")
    if parts[0] != top:
        return None
    return ".".join(parts[:2])


def package_graph(graph: dict[str, dict[str, list[str]]], top: str) -> dict[str, dict[str, list[str]]]:
    """The graph between units (``top.<subpackage or module>``), each edge with the places that make it."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for src, targets in graph.items():
        a = _unit(src, top)
        for target, where in targets.items():
            b = _unit(target, top)
            if a and b and a != b and a != top and b != top:
                out[a][b].extend(where)
    return out


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The strongly connected components with more than one unit (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def forbidden_imports(graph: dict[str, dict[str, list[str]]]) -> list[str]:
    """One ``file:line imports module`` per import statement that reaches sweeps, bench or ray."""
    found: dict[str, str] = {}
    for targets in graph.values():
        for target, where in targets.items():
            if target.split(".")[0] in FORBIDDEN:
                for place in where:
                    if place not in found or len(target) < len(found[place]):
                        found[place] = target
    return sorted(f"{place} imports {target}" for place, target in found.items())


def _explain(pkg: dict[str, dict[str, list[str]]], comp: list[str]) -> str:
    return "; ".join(f"{a} -> {b} ({pkg[a][b][0]})" for a in comp for b in comp if b in pkg.get(a, {}))


def test_crl_core_has_no_cycle_between_its_packages():
    pkg = package_graph(import_graph(ROOT), "crl_core")
    assert len(pkg) > 10  # the graph was really read (a broken reader finds no edge and no cycle)
    found = cycles(pkg)
    assert not found, "import cycles in crl_core: " + " | ".join(_explain(pkg, c) for c in found)


def test_crl_core_imports_no_recipe_and_no_ray():
    graph = import_graph(ROOT)
    assert "crl_core.training.trainer" in graph and "torch" in graph["crl_core.training.trainer"]
    assert forbidden_imports(graph) == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "lib"


PLANTED = {
    "lib/__init__.py": "",
    "lib/config.py": "X = 1\n",
    "lib/data/__init__.py": "from lib.config import X\n",
    "lib/models/__init__.py": "from .loading import load\n",
    "lib/models/loading.py": "from ..data import X\n\ndef load():\n    return X\n",
    # the planted edge closes models -> data -> models, and only inside a function
    "lib/data/loading.py": "def rows():\n    from lib.models.loading import load\n    return load()\n",
    "lib/training.py": "import lib.models\n",
}


def test_a_planted_cycle_is_found_even_behind_a_function_level_import(tmp_path):
    pkg = package_graph(import_graph(_write(tmp_path, PLANTED)), "lib")
    assert cycles(pkg) == [["lib.data", "lib.models"]]
    assert "lib/data/loading.py:2" in _explain(pkg, ["lib.data", "lib.models"])
    fixed = {**PLANTED, "lib/data/loading.py": "def rows():\n    return []\n"}
    assert cycles(package_graph(import_graph(_write(tmp_path / "fixed", fixed)), "lib")) == []


@pytest.mark.parametrize("line", ["import ray\n", "from sweeps import margin_sweep\n",
                                  "def f():\n    from bench.step_cost import main\n",
                                  "import importlib\nimportlib.import_module('sweeps.engine')\n"])
def test_a_planted_recipe_or_ray_import_is_found(tmp_path, line):
    root = _write(tmp_path, {"lib/__init__.py": "", "lib/cli.py": line})
    assert len(forbidden_imports(import_graph(root))) == 1
