"""The layering, checked: every module has a rank (the table of ``docs/architecture.md``), imports
only modules of its rank or below, the pure ranks load no I/O even indirectly, and the package's
imports have no circle. The source is read as an AST, so a stray import fails here; the pure
modules are also imported, each in a fresh interpreter, and what that loaded is looked at."""

from __future__ import annotations

import ast
import asyncio
import fnmatch
import json
import os
import re
import sys
import sysconfig
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
from processes import run

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "kitefan"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

#: The highest rank that is pure (no I/O, even indirectly).
PURE_RANK = 3
#: What no pure module may load, directly or through anything it imports.
NO_IO = frozenset(
    {
        "asyncio",
        "concurrent.futures",
        "http.client",
        "http.server",
        "multiprocessing",
        "redis",
        "rich",
        "selectors",
        "socket",
        "ssl",
        "subprocess",
        "tempfile",
        "typer",
        "urllib.error",
        "urllib.request",
        "websockets",
    }
)
#: The lowest rank that may import each presentation library.
LIBRARY_RANK = {"rich": 7, "typer": 8}


@dataclass(frozen=True)
class Import:
    """One import of a module: what it names, the line, and whether it runs only on a call."""

    name: str
    line: int
    lazy: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (``kitefan.cli.app``)."""
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def short(name: str) -> str:
    """A module's name as the table writes it: without ``kitefan.``, except the package."""
    return name if name == "kitefan" else name.removeprefix("kitefan.")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, lazy: bool) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:  # only the else branch runs
                yield other, lazy
                yield from _walk(other, lazy)
            continue
        inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield child, inner
        yield from _walk(child, inner)


@cache
def imports(name: str) -> tuple[Import, ...]:
    """Every import a module runs (at its top or in a function), as absolute dotted names.

    ``from a.b import c`` names ``a.b.c`` when that is a module of the package, else ``a.b``.
    Imports under ``if TYPE_CHECKING:`` are left out: they never run.
    """
    path = modules()[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, lazy in _walk(ast.parse(path.read_text(encoding="utf-8")), False):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno, lazy) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                found.append(Import(full if full in modules() else source, node.lineno, lazy))
    return tuple(found)


def kitefan_imports(name: str) -> set[str]:
    """The modules of the package that ``name`` imports (the package itself for ``_records``)."""
    out = set()
    for item in imports(name):
        if item.name == "kitefan" or item.name.startswith("kitefan."):
            target = item.name
            while target not in modules():
                target = target.rpartition(".")[0]
            if target != name:
                out.add(target)
    return out


@cache
def ranks() -> dict[str, int]:
    """The rank of every pattern in the layer table of ``docs/architecture.md``."""
    table: dict[str, int] = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            for pattern in re.findall(r"`([^`]+)`", cells[2]):
                assert pattern not in table, f"{pattern} is ranked twice"
                table[pattern] = int(cells[0])
    assert table, f"no layer table in {ARCHITECTURE}"
    return table


def rank_of(name: str) -> int | None:
    table = ranks()
    matches = [rank for pattern, rank in table.items() if fnmatch.fnmatchcase(short(name), pattern)]
    return matches[0] if len(matches) == 1 else None


def reachable(name: str) -> dict[str, list[str]]:
    """Every module ``name`` imports, directly or not, each with the path that reaches it."""
    paths: dict[str, list[str]] = {name: [name]}
    todo = [name]
    while todo:
        current = todo.pop()
        for target in sorted(kitefan_imports(current)):
            if target not in paths:
                paths[target] = [*paths[current], target]
                todo.append(target)
    del paths[name]
    return paths


def chain(path: list[str]) -> str:
    return " -> ".join(short(step) for step in path)


PURE = [name for name in modules() if (rank_of(name) or 99) <= PURE_RANK]


@pytest.mark.parametrize("name", list(modules()))
def test_every_module_has_one_rank(name: str) -> None:
    assert rank_of(name) is not None, (
        f"{short(name)} has no rank (or more than one): give it one in the layer table of "
        "docs/architecture.md"
    )


def test_every_pattern_of_the_table_names_a_module() -> None:
    names = [short(name) for name in modules()]
    assert [p for p in ranks() if not fnmatch.filter(names, p)] == []


@pytest.mark.parametrize("name", list(modules()))
def test_a_module_reaches_only_modules_of_its_rank_or_below(name: str) -> None:
    own = rank_of(name)
    assert own is not None
    above = {
        chain(path): rank_of(target)
        for target, path in reachable(name).items()
        if (rank_of(target) or 0) > own
    }
    assert above == {}, f"{short(name)} (rank {own}) reaches modules ranked above it"


@pytest.mark.parametrize("name", PURE)
def test_pure_modules_import_no_io_even_indirectly(name: str) -> None:
    found = {}
    for target, path in {name: [name], **reachable(name)}.items():
        for item in imports(target):
            if any(item.name == io or item.name.startswith(io + ".") for io in NO_IO):
                found[f"{chain(path)}: {item.name} (line {item.line})"] = item.lazy
    assert found == {}


@pytest.mark.parametrize("name", list(modules()))
def test_only_presentation_imports_rich_or_typer(name: str) -> None:
    own = rank_of(name)
    assert own is not None
    for item in imports(name):
        top = item.name.split(".")[0]
        if top in LIBRARY_RANK:
            assert own >= LIBRARY_RANK[top], f"{short(name)} imports {item.name}"


def loaded_by(names: list[str]) -> Mapping[str, list[str]]:
    """What importing each module loads, each in a fresh interpreter with no site hooks.

    ``-S`` keeps the site's ``.pth`` files (which import whatever they like) out; the package
    and its dependencies are found through ``PYTHONPATH``.
    """
    script = "import json, sys\nimport {}\nprint(json.dumps(sorted(sys.modules)))\n"
    paths = [str(ROOT), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}

    async def all_of() -> list[tuple[int, str, str]]:
        return await asyncio.gather(
            *(run(sys.executable, "-S", "-c", script.format(name), env=env) for name in names)
        )

    out = {}
    for name, (code, stdout, stderr) in zip(names, asyncio.run(all_of()), strict=True):
        assert code == 0, stderr
        out[name] = json.loads(stdout)
    return out


def test_importing_a_pure_module_loads_no_io() -> None:
    loaded = loaded_by(PURE)
    assert "kitefan.planner" in loaded and "kitefan.codec" in loaded
    assert {name: sorted(NO_IO.intersection(mods)) for name, mods in loaded.items()} == {
        name: [] for name in PURE
    }
    # The check sees what it looks for: the runtime does load it.
    assert {"asyncio", "socket", "websockets"} <= set(
        loaded_by(["kitefan.manager"])["kitefan.manager"]
    )


def strongly_connected(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The circles of ``graph``: its strongly connected parts of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.append(member)
                if member == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_strongly_connected_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_circle() -> None:
    graph = {name: kitefan_imports(name) for name in modules()}
    assert [[short(m) for m in part] for part in strongly_connected(graph)] == []


def test_no_module_is_named_for_nothing() -> None:
    vague = {"utils", "helpers", "common", "misc", "util", "helper"}
    assert [name for name in modules() if name.rpartition(".")[2] in vague] == []
