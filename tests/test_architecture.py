"""The architecture is checked, not just drawn: the import-linter contracts in pyproject.toml
hold, no module imports another that imports it back (directly or through others), the command
line loads no heavy library at start-up, and modules and functions stay small enough to read."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "attnbench"
MAX_LINES = 400
# Modules allowed past MAX_LINES: each says in its docstring why it is one cohesive thing.
COHESIVE = "one cohesive"


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run([exe], capture_output=True, text=True, cwd=PACKAGE.parent, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for dep in graph.find_modules_directly_imported_by(module) & modules:
            if dep not in index:
                visit(dep)
                low[module] = min(low[module], low[dep])
            elif dep in on_stack:
                low[module] = min(low[module], index[dep])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    """Counting imports inside functions too (only `if TYPE_CHECKING:` imports are left out):
    a lazy import that closes a loop is still a cycle a reader has to untangle."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    graph = grimp.build_graph("attnbench", exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if m.startswith("attnbench")}
    assert _cycles(graph, modules) == []


def test_the_cli_starts_without_torch_mlflow_or_hydra() -> None:
    code = (
        "import sys, attnbench.cli; "
        "print(sorted(m for m in ('torch', 'mlflow', 'hydra', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_readable(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    if lines <= MAX_LINES:
        return
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert COHESIVE in doc, (
        f"{path.name} has {lines} lines (> {MAX_LINES}): split it by job, or say in its "
        f"docstring why it is {COHESIVE} thing"
    )


MAX_FUNCTION_LINES = 100


def _long_functions(source: str) -> list[str]:
    """`name (N lines)` for each function or method longer than MAX_FUNCTION_LINES, counted
    from its `def` (decorators aside) to its last line, nested functions included."""
    return [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_long_functions_are_found() -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    source = f"def short():\n    pass\n\n\nclass A:\n    def long(self):\n{body}\n"
    assert _long_functions(source) == [f"long ({MAX_FUNCTION_LINES + 1} lines)"]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_functions_stay_readable(path: Path) -> None:
    """No function over 100 lines: a long function is a sign that two concerns share it."""
    assert _long_functions(path.read_text(encoding="utf-8")) == [], f"{path.name}: split it"


TOOLS = PACKAGE.parent / "benchmarks"


def _imported_roots(path: Path) -> set[str]:
    """Top-level names of every module `path` imports (at any depth of the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_measurement_tools_live_outside_the_product() -> None:
    """Benchmark, stress and figure scripts sit in benchmarks/ beside the package: the wheel
    ships only attnbench/ (pyproject), and neither the package nor the tests import them."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    assert (TOOLS / "__init__.py").is_file()
    assert not (PACKAGE / "benchmarks").exists()
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["attnbench"]
    tests = PACKAGE.parent / "tests"
    importers = [p for p in [*PACKAGE.rglob("*.py"), *tests.rglob("*.py")]
                 if "benchmarks" in _imported_roots(p)]
    assert importers == []
