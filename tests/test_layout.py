"""The house keeps its shape: no import cycle, a small top for `bot/`, small modules,
and a test for every module (import-linter's layers run in `make test` beside this)."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "channels", "integrations", "handlers", "surveys", "dashboard")
LONG = 450  # lines; the schema and the migrations are longer by nature


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycle_function_level_imports_included() -> None:
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_bot_has_at_most_ten_modules_at_its_top() -> None:
    top = [p.name for p in (ROOT / "bot").glob("*.py") if p.name != "__init__.py"]
    assert len(top) <= 10, sorted(top)


def _modules() -> list[Path]:
    return [
        p
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "migrations" not in p.parts and p.name != "__init__.py"
    ]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_long(path: Path) -> None:
    if path.name == "tables.py":
        return
    lines = len(path.read_text().splitlines())
    assert lines <= LONG, f"{lines} lines: split it by concept"


def test_every_module_of_bot_has_its_tests() -> None:
    """`bot/x/y.py` has `tests/bot/x/test_y.py`, or a test module's docstring names it."""
    docstrings = " ".join(
        ast.get_docstring(ast.parse(p.read_text())) or "" for p in (ROOT / "tests").rglob("*.py")
    )
    missing = []
    for path in (ROOT / "bot").rglob("*.py"):
        if "migrations" in path.parts or path.name in ("__init__.py", "__main__.py"):
            continue
        relative = path.relative_to(ROOT).with_suffix("")
        test = ROOT / "tests" / relative.parent / f"test_{relative.name}.py"
        if not test.exists() and ".".join(relative.parts) not in docstrings:
            missing.append(".".join(relative.parts))
    assert missing == []
