"""The layout of tests/ itself: shared fixtures live in tests/conftest.py, once; shared helpers in
helper modules (tests/app_store.py, tests/app_helpers.py, tests/trainer_helpers.py, ...); and no
file imports a test module (test_*.py), so each test module can be run, moved or deleted alone.

``layout_problems`` reads the sources with ``ast`` only (nothing is imported), so it can be run on
any set of file texts, for instance an older commit's (``git show REV:tests/test_x.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _is_test_module(path: str) -> bool:
    return Path(path).name.startswith("test_") and path.endswith(".py")


def _package_of(path: str) -> list[str]:
    """The package a file (a path relative to the repository root) belongs to: tests/a/b.py -> [tests, a]."""
    return list(Path(path).parent.parts)


def _imported_modules(path: str, tree: ast.AST) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (inside functions too), as absolute dotted
    names; for ``from X import y`` both X and X.y (y may be a module)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path)[: len(_package_of(path)) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{a.name}") for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call):  # importlib.import_module("tests.test_x"), __import__(...)
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in ("import_module", "__import__") and node.args and \
                    isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytest_plugins"
                                                  for t in node.targets):
            out += [(node.lineno, c.value) for c in ast.walk(node.value)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return out


def _fixture_name(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The fixture name a function defines (``@pytest.fixture``, ``@fixture(...)``, ``name=``), or None."""
    for dec in fn.decorator_list:
        call = dec if isinstance(dec, ast.Call) else None
        target = call.func if call else dec
        name = target.attr if isinstance(target, ast.Attribute) else target.id if isinstance(target, ast.Name) else ""
        if name not in ("fixture", "yield_fixture"):
            continue
        for kw in call.keywords if call else []:
            if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                return kw.value.value
        return fn.name
    return None


def layout_problems(sources: dict[str, str]) -> list[str]:
    """What is wrong with the layout of these files ({path relative to the repository root: text},
    the .py files under tests/): one line per problem, none when all is well."""
    problems: list[str] = []
    modules = {".".join(Path(p).with_suffix("").parts): p for p in sources}  # tests.test_x -> tests/test_x.py
    test_modules = {m for m, p in modules.items() if _is_test_module(p)}
    conftests = {m for m, p in modules.items() if Path(p).name == "conftest.py"}
    fixtures: dict[str, list[str]] = {}
    for path, text in sorted(sources.items()):
        tree = ast.parse(text, filename=path)
        found: dict[tuple[int, str], None] = {}  # (line, imported file), in order, once each
        for line, module in _imported_modules(path, tree):
            # a bare `import test_x` is the same module, found through rootdir-relative sys.path
            full = module if module.split(".")[0] == "tests" else f"tests.{module}"
            for target in sorted(test_modules | conftests):
                if full == target or full.startswith(target + "."):
                    found[(line, target)] = None
        for line, target in found:
            what = "conftest" if target in conftests else "test module"
            problems.append(f"{path}:{line}: imports the {what} {modules[target]}")
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = _fixture_name(node)
                if name is None:
                    continue
                fixtures.setdefault(name, []).append(f"{path}:{node.lineno}")
                if not (_is_test_module(path) or Path(path).name == "conftest.py"):
                    problems.append(f"{path}:{node.lineno}: fixture {name!r} defined in a helper module "
                                    "(shared fixtures belong in tests/conftest.py)")
    for name, places in sorted(fixtures.items()):
        if len(places) > 1:
            problems.append(f"fixture {name!r} is defined in more than one place: {', '.join(places)}")
    return problems


def current_sources() -> dict[str, str]:
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sorted(TESTS.rglob("*.py"))}


def test_no_test_module_imports_another_and_each_fixture_is_defined_once():
    problems = layout_problems(current_sources())
    assert not problems, "\n".join(problems)


def test_the_check_finds_what_it_is_for():
    helper = "import pytest\n\n\n@pytest.fixture\ndef store():\n    return 1\n"
    sources = {
        "tests/conftest.py": "import pytest\n\n\n@pytest.fixture(scope='session')\ndef pg():\n    yield 1\n",
        "tests/helpers.py": helper,
        "tests/test_a.py": "import pytest\n\nK = 1\n\n\n@pytest.fixture(name='pg')\ndef _pg():\n    return 2\n",
        "tests/test_b.py": "from tests.test_a import K\n",
        "tests/test_c.py": "def test_x():\n    from .test_a import K\n    from . import test_b\n",
        "tests/test_d.py": "import tests.test_a\nfrom tests import test_c\nfrom tests.conftest import pg\n",
        "tests/test_e.py": "import importlib\n\nm = importlib.import_module('tests.test_a')\n",
        "tests/sub/test_f.py": "from ..test_a import K\nfrom .. import helpers\n",
    }
    problems = layout_problems(sources)
    expected = [
        "tests/test_b.py:1: imports the test module tests/test_a.py",
        "tests/test_c.py:2: imports the test module tests/test_a.py",
        "tests/test_c.py:3: imports the test module tests/test_b.py",
        "tests/test_d.py:1: imports the test module tests/test_a.py",
        "tests/test_d.py:2: imports the test module tests/test_c.py",
        "tests/test_d.py:3: imports the conftest tests/conftest.py",
        "tests/test_e.py:3: imports the test module tests/test_a.py",
        "tests/sub/test_f.py:1: imports the test module tests/test_a.py",
        "tests/helpers.py:5: fixture 'store' defined in a helper module (shared fixtures belong in tests/conftest.py)",
        "fixture 'pg' is defined in more than one place: tests/conftest.py:5, tests/test_a.py:7",
    ]
    assert sorted(problems) == sorted(expected)
    # and what is allowed: helpers imported anywhere, a fixture in a test module of its own
    ok = {"tests/conftest.py": "import pytest\nfrom tests.helpers import make\n\n\n@pytest.fixture\ndef a():\n    return make()\n",
          "tests/helpers.py": "def make():\n    return 1\n",
          "tests/test_a.py": "import pytest\n\nfrom .helpers import make\n\n\n@pytest.fixture\ndef b(a):\n    return a\n",
          "tests/test_b.py": "from tests import helpers\nimport test_helpers_like_name_elsewhere as x\n"}
    assert layout_problems(ok) == []
