"""Dependencies point one way: builder (authoring) uses the engine, the engine never imports
builder, and engine/core (the scheduler and blocks' core) never imports Django or the apps."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (lazy imports count)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = sorted(
            m
            for m in imported_modules(path)
            if any(m == f or m.startswith(f + ".") for f in forbidden)
        )
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_the_engine_never_imports_builder() -> None:
    assert offenders("engine", ("builder",)) == {}


def test_engine_core_imports_neither_django_nor_the_apps() -> None:
    forbidden = ("django", "channels", "asgiref", "rest_framework", "builder", "leads", "klyntos")
    apps_outside_core = ("engine.models", "engine.store", "engine.runner", "engine.config")
    assert offenders("engine/core", forbidden + apps_outside_core) == {}


def test_the_scan_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from builder.selectors import run_get\n    import django.db\n")
    assert imported_modules(module) == {"builder.selectors", "django.db"}
