"""Structural rules from STYLE.md that a reviewer would otherwise have to remember."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ordercli"
CLI_MODULES = {"cli.py", "render.py", "__main__.py"}
CORE_MODULES = sorted(p.name for p in PACKAGE.glob("*.py") if p.name not in CLI_MODULES)


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_never_imports_the_cli_libraries(module):
    assert not _imported_roots(PACKAGE / module) & {"typer", "rich", "click"}


def test_core_modules_exist():
    assert {"db.py", "queries.py", "orders.py", "seeding.py", "migrations.py"} <= set(CORE_MODULES)


def test_no_code_path_deletes_a_customer():
    """The original bug: a signal called customer.delete(). Nothing here may delete one."""
    for path in PACKAGE.glob("*.py"):
        source = path.read_text()
        for forbidden in ("Customer.delete", ".delete_instance(", "DELETE FROM customer"):
            assert forbidden not in source, f"{path.name} contains {forbidden}"
