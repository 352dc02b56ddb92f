"""The shape of the code: services talk only through contracts, nothing under services/ imports
in a circle, shipped code never imports the development tools, and no module grows past what
a newcomer can read in one sitting."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
SHARED = "infra"  # the plumbing every service may use
MAX_LINES = 350


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in SERVICES.rglob("*.py")}


def imported_modules(path: Path) -> Iterator[str]:
    """Every module `path` imports, at any depth (functions, TYPE_CHECKING blocks included);
    `from package import name` counts as importing `package.name` when that is a module."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:
                if f"{node.module}.{alias.name}" in MODULES:
                    yield f"{node.module}.{alias.name}"


def graph() -> dict[str, set[str]]:
    return {
        name: {target for target in imported_modules(path) if target in MODULES}
        for name, path in MODULES.items()
    }


def service_of(module: str) -> str | None:
    """The service folder a module belongs to (`ingest`, `gateway`, ...), None for the
    top-level modules (the CLI) and the shared plumbing."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] == SHARED:
        return None
    return parts[1]


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(edges.get(node, ())):
            if cycle := visit(target):
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(edges):
        if cycle := visit(start):
            return cycle
    return None


def test_no_service_imports_another_services_code() -> None:
    crossings = [
        f"{source} imports {target}"
        for source, targets in graph().items()
        for target in targets
        if service_of(source) and service_of(target) and service_of(source) != service_of(target)
    ]
    assert crossings == []


def test_the_shared_plumbing_imports_no_service() -> None:
    leaks = [
        f"{source} imports {target}"
        for source, targets in graph().items()
        if source.startswith(f"services.{SHARED}.")
        for target in targets
        if service_of(target)
    ]
    assert leaks == []


def test_nothing_under_services_imports_in_a_circle() -> None:
    assert find_cycle(graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_shipped_code_never_imports_the_development_tools_or_tests() -> None:
    offenders = [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        for target in imported_modules(path)
        if target.split(".")[0] in {"devtools", "tests", "bench"}
        # `resultflow run` starts the development stack when a source checkout has it.
        and name != "services.cli"
    ]
    assert offenders == []


def test_no_module_under_services_is_longer_than_a_sitting() -> None:
    long_files = {
        str(path.relative_to(ROOT)): lines
        for path in SERVICES.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long_files == {}
