"""Imports point one way (docs/architecture.md): the ground floor (sessions_app) imports no
feature app, the features import it (extraction before sideband and hostapi), and only the top
(config's wiring, routes and page) imports everything.

Every import counts, at module level or inside a function: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Which project packages each app may import (besides itself and CONFIG_HELPERS).
ALLOWED: dict[str, set[str]] = {
    "sessions_app": set(),
    "extraction": {"sessions_app"},
    "sideband": {"sessions_app", "extraction"},
    "hostapi": {"sessions_app", "extraction"},
}
PROJECT = {*ALLOWED, "config", "realtime_emulator", "tests", "bench"}
# config's helpers that sit below every app: settings read from the environment and the
# outages of the backing services. They import no app (`test_the_config_helpers_import_no_app`).
CONFIG_HELPERS = {"config.env", "config.outages"}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, absolute module) of every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            assert node.level == 0, f"{path}:{node.lineno}: a relative import"
            yield node.lineno, node.module


def _arrows_out(package: str) -> list[str]:
    """`file:line -> module` for each import of another project package by `package`."""
    arrows = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in PROJECT and top != package:
                arrows.append(f"{path.relative_to(ROOT)}:{line} -> {module}")
    return arrows


def _allowed(package: str, arrow: str) -> bool:
    module = arrow.rsplit(" -> ", 1)[1]
    if module in CONFIG_HELPERS:
        return True
    return module.split(".")[0] in ALLOWED[package]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_an_app_imports_only_the_floors_below_it(package: str) -> None:
    arrows = _arrows_out(package)
    upward = [arrow for arrow in arrows if not _allowed(package, arrow)]

    assert arrows, f"{package}: no import of another package found (is the walk broken?)"
    assert upward == []


def test_the_ground_floor_names_no_feature_app_even_in_its_migrations() -> None:
    migrations = ROOT / "sessions_app" / "migrations"
    named = [
        f"{path.name}: {feature}"
        for path in sorted(migrations.glob("*.py"))
        for feature in ("extraction", "sideband", "hostapi")
        if f'"{feature}"' in path.read_text() or f"'{feature}'" in path.read_text()
    ]

    assert named == []


@pytest.mark.parametrize("helper", sorted(CONFIG_HELPERS))
def test_the_config_helpers_import_no_app(helper: str) -> None:
    path = ROOT / (helper.replace(".", "/") + ".py")
    project = [
        module for _line, module in _imports(path) if module.split(".")[0] in PROJECT - {"config"}
    ]

    assert project == []
