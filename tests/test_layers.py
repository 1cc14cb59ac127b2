"""The layering, checked: pure modules import no I/O, and only the presentation layers import
rich or typer. A test of the source, read as an AST, so it fails on a stray import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kitefan"

PURE = [
    "errors.py",
    "models.py",
    "events.py",
    "codec.py",
    "columnar.py",
    "session.py",
    "planner.py",
    "change.py",
    "stats.py",
    "retry.py",
    "lease.py",
    "simulator/market.py",
    "simulator/feed.py",
    "simulator/orders.py",
    "simulator/faults.py",
]
NO_IO = {"asyncio", "websockets", "socket", "rich", "typer", "subprocess", "urllib", "http"}
PRESENTATION = ("render/", "cli/")


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def modules() -> list[str]:
    return sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_do_no_io(module: str) -> None:
    assert imported(PACKAGE / module) & NO_IO == set()


@pytest.mark.parametrize("module", modules())
def test_only_presentation_imports_rich_or_typer(module: str) -> None:
    if module.startswith(PRESENTATION):
        return
    assert imported(PACKAGE / module) & {"rich", "typer"} == set()


def test_no_module_is_named_for_nothing() -> None:
    vague = {"utils", "helpers", "common", "misc", "util", "helper"}
    assert [m for m in modules() if Path(m).stem in vague] == []
