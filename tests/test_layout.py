"""The shape of the package, kept by tests: one package per area, layered, views at the top.

The rules (docs/developing.md, "Layering"): no import cycle between modules, nor between
areas; the basics import no area; domain modules import no Flask; nothing but the app
factory imports a view. Imports are read from the source (all of them: module level, inside
functions and under TYPE_CHECKING), so a rule holds however a module is loaded.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "verifier"
# Cross-area basics at the top of the package: they may import each other, never an area.
BASICS = {"verifier.config", "verifier.db", "verifier.models", "verifier.errors"}
# The wiring on top of everything: it may import any area.
WIRING = {
    "verifier",
    "verifier.app",
    "verifier.__main__",
    "verifier.cli",
    "verifier.commands",
    "verifier.rule_commands",
    "verifier.worker",
}
# Flask plumbing every area's pages stand on: it holds no domain code.
WEB_AREA = "web"
FLASK_MODULES = ("flask", "flask_wtf", "flask_login", "flask_limiter", "werkzeug", "wtforms")
MAX_TOP_LEVEL_MODULES = 12
MAX_MODULE_LINES = 500


def module_files() -> dict[str, Path]:
    files = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.relative_to(PACKAGE).parts:
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = path
    return files


def imported_names(module: str, path: Path, known: Iterable[str]) -> set[str]:
    """Every module of the package and every outside top-level package that `module` imports."""
    known = set(known)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(_longest_known(alias.name, known))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in known else _longest_known(source, known))
    found.discard(module)
    return found


def _longest_known(name: str, known: set[str]) -> str:
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in known:
            return ".".join(parts[:end])
    return parts[0]


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {module: imported_names(module, path, files) for module, path in files.items()}


def area_of(module: str) -> str | None:
    """The area package a module belongs to, or None for the basics and the wiring."""
    parts = module.split(".")
    if len(parts) < 2 or module in BASICS or module in WIRING:
        return None
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return None


def is_view(module: str) -> bool:
    leaf = module.rpartition(".")[2]
    return area_of(module) is not None and (leaf == "views" or leaf.endswith("_views"))


def is_form(module: str) -> bool:
    leaf = module.rpartition(".")[2]
    return leaf == "forms" or leaf.endswith("_forms")


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One cycle of the directed graph as a path that returns to its start, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def area_graph(graph: Mapping[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """area -> area it imports -> the module edges that make that import."""
    areas: dict[str, dict[str, list[str]]] = {}
    for module, deps in graph.items():
        source = area_of(module)
        if source is None:
            continue
        for dep in deps:
            target = area_of(dep)
            if target is not None and target != source:
                areas.setdefault(source, {}).setdefault(target, []).append(f"{module} -> {dep}")
    return areas


def test_the_cycle_finder_finds_a_cycle_and_only_a_real_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_imports_are_read_from_every_place_they_can_stand(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import verifier.core.cases\n"
        "from verifier.portal import links\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    from verifier.models import Order\n"
        "def f():\n    from flask import g\n"
    )
    known = {
        "verifier.core.cases",
        "verifier.portal.links",
        "verifier.models",
        "verifier.x.sibling",
    }
    found = imported_names("verifier.x.mod", source, known)
    assert found >= {"verifier.core.cases", "verifier.portal.links", "verifier.models", "flask"}
    assert "verifier.x.sibling" in found


def test_no_import_cycle_between_modules():
    graph = import_graph()
    internal = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    assert find_cycle(internal) is None


def test_no_two_areas_import_each_other_directly_or_round_a_loop():
    areas = area_graph(import_graph())
    cycle = find_cycle({a: set(targets) for a, targets in areas.items()})
    if cycle:
        edges = [edge for a, b in itertools.pairwise(cycle) for edge in areas[a][b]]
        pytest.fail(f"areas in a loop: {' -> '.join(cycle)}; made by {edges}")


def test_the_basics_import_no_area():
    graph = import_graph()
    offending = sorted(
        f"{module} -> {dep}"
        for module in BASICS
        for dep in graph[module]
        if area_of(dep) is not None or dep in WIRING - {"verifier"}
    )
    assert offending == []


def test_domain_modules_import_no_flask():
    graph = import_graph()
    offending = sorted(
        f"{module} -> {dep}"
        for module, deps in graph.items()
        if area_of(module) not in (None, WEB_AREA) and not is_view(module) and not is_form(module)
        for dep in deps
        if dep.split(".")[0] in FLASK_MODULES
    )
    assert offending == []


def test_only_the_app_factory_imports_a_view():
    graph = import_graph()
    offending = sorted(
        f"{module} -> {dep}"
        for module, deps in graph.items()
        if module not in ("verifier", "verifier.app")
        for dep in deps
        if is_view(dep)
    )
    assert offending == []


def test_every_area_has_its_tests_beside_it():
    tests = Path(__file__).resolve().parent
    areas = {area_of(m) for m in import_graph()} - {None}
    assert sorted(a for a in areas if not list((tests / a).glob("test_*.py"))) == ["demo"]


def test_the_top_level_stays_small_and_no_module_grows_past_its_limit():
    top = [p for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(top) <= MAX_TOP_LEVEL_MODULES, sorted(p.name for p in top)
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in module_files().values()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
