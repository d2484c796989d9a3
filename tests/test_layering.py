"""The layers stand on each other in one direction (docs/DESIGN.md, "Layout"):

- the core, lambdascope/ (terms, spans, traces, store, vocabulary, …), imports nothing from
  trainer/, app/ or the command line;
- trainer/ and app/ import the core and never each other, nor the command line;
- the command line (lambdascope.commands, started by lambdascope.cli) is the only code that
  imports both;
- no import cycles, function-level imports and ``importlib.import_module("…")`` included.

Every module is parsed with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lambdascope", "trainer", "app")
ROOT_MODULES = ("lambdascope.commands", "lambdascope.cli")  # the composition root


def module_sources(root: Path = ROOT) -> dict[str, str]:
    """{dotted module name: source} of every module of the three packages (migration revisions,
    which alembic loads by path, left out)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root)
            if "migrations" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path.read_text(encoding="utf-8")
    return out


def is_package(name: str, modules: dict[str, str]) -> bool:
    return any(m.startswith(name + ".") for m in modules)


def imports_of(name: str, source: str, modules: dict[str, str]) -> set[str]:
    """The modules of ``modules`` that ``name`` imports, anywhere in its code."""
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in modules:  # a name inside a module: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)

    package = name if is_package(name, modules) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            add(target)
            for a in node.names:  # `from pkg import submodule`
                if f"{target}.{a.name}" in modules:
                    add(f"{target}.{a.name}")
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__")))):
            add(node.args[0].value)
    return found


def layer(name: str) -> str:
    if any(name == r or name.startswith(r + ".") for r in ROOT_MODULES):
        return "commands"
    return {"lambdascope": "core", "trainer": "trainer", "app": "app"}[name.split(".")[0]]


ALLOWED = {
    "core": {"core"},
    "trainer": {"core", "trainer"},
    "app": {"core", "app"},
    "commands": {"core", "trainer", "app", "commands"},
}


def violations(modules: dict[str, str]) -> list[str]:
    graph = {m: imports_of(m, src, modules) for m, src in modules.items()}
    out = [f"{m} ({layer(m)}) imports {t} ({layer(t)})"
           for m, targets in sorted(graph.items()) for t in sorted(targets)
           if layer(t) not in ALLOWED[layer(m)]]
    out += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
                found.append(path_within(graph, sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def path_within(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A cycle from the component's first module back to it, inside the component."""
    inside, start = set(component), component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & inside):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                todo.append(w)
    return component


def test_the_layers_import_in_one_direction_without_cycles():
    modules = module_sources()
    assert "lambdascope.commands" in modules and "trainer.train" in modules and "app.main" in modules
    assert violations(modules) == []


def test_the_checker_finds_upward_imports_cycles_and_importlib():
    modules = {
        "lambdascope": "", "lambdascope.terms": "from lambdascope import store\n",
        "lambdascope.store": "def f():\n    from . import terms\n",  # a cycle, inside a function
        "lambdascope.cli": "import trainer.train, app.main\n",  # the composition root: allowed
        "trainer": "", "trainer.train": "from lambdascope.cli import main\n",  # upward
        "app": "", "app.main": "import importlib\nimportlib.import_module('trainer.train')\n",
    }
    found = violations(modules)
    assert "trainer.train (trainer) imports lambdascope.cli (commands)" in found
    assert "app.main (app) imports trainer.train (trainer)" in found
    assert "import cycle: lambdascope.store -> lambdascope.terms -> lambdascope.store" in found
    # the upward import closes a second circle through the composition root
    assert "import cycle: app.main -> trainer.train -> lambdascope.cli -> app.main" in found
    assert not any(f.startswith("lambdascope.cli ") for f in found)
    assert len(found) == 4
