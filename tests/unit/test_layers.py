"""The library's imports point one way: no cycle between its modules or between its packages,
counting imports inside functions (only those under `if TYPE_CHECKING:` are left out, as they
never run), and never an import of `services`. Read from the source with `ast`, so an import
hidden in a function body counts as much as one at the top."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

LIBS = Path(__file__).resolve().parents[2] / "libs"
ROOT = LIBS / "eventpipe"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(LIBS).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those in an `if TYPE_CHECKING:` body."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from _imports(node)


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _targets(module: str, path: Path, known: dict[str, Path],
             source: str | None = None) -> Iterator[str]:
    """The modules (of any package) that `module` imports, resolved to names."""
    text = path.read_text(encoding="utf-8") if source is None else source
    for node in _imports(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
            continue
        base = node.module or ""
        if node.level:
            anchor = _package_of(module, path).split(".")
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            yield sub if sub in known else base


@functools.cache
def _graph() -> dict[str, set[str]]:
    """Every module of the library and what it imports (read once per session)."""
    known = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        graph[module] = {t for t in _targets(module, path, known) if t != module}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path of names, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _internal(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {m: {t for t in ts if t in graph} for m, ts in graph.items()}


def test_no_cycle_between_modules() -> None:
    cycle = _cycle(_internal(_graph()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_packages() -> None:
    known = _modules()
    graph = _internal(_graph())
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        source = _package_of(module, known[module])
        packages.setdefault(source, set())
        for target in targets:
            dest = _package_of(target, known[target])
            # A package's own `__init__` and its subpackages are one step down, not a cycle.
            if dest != source and not dest.startswith(source + "."):
                packages[source].add(dest)
    cycle = _cycle(packages)
    assert cycle is None, "package import cycle: " + " -> ".join(cycle or [])


def test_no_cycle_between_top_level_parts() -> None:
    # eventpipe.settings, eventpipe.nlp (with nlp.llm), eventpipe.stack, ...: each top-level
    # module or package is one part, the coarsest view of the layers.
    parts: dict[str, set[str]] = {}
    for module, targets in _internal(_graph()).items():
        source = ".".join(module.split(".")[:2])
        parts.setdefault(source, set())
        parts[source] |= {".".join(t.split(".")[:2]) for t in targets} - {source}
    cycle = _cycle(parts)
    assert cycle is None, "import cycle between parts: " + " -> ".join(cycle or [])


# The layers, lowest first (README, "Layout"). A part may import its own layer or those
# below, never one above; a new top-level module or package must be placed here.
LAYERS: list[set[str]] = [
    {"eventpipe", "errors", "constants", "settings", "atomic", "logs", "processes", "urls",
     "backoff"},
    {"models"},
    {"kafka", "storage", "nlp", "api", "inbox"},
    {"control", "checkpoint"},
    {"linking", "runtime", "jobs", "reprocess"},
    {"stack"},
    {"cli"},
]


def test_every_import_points_down_the_layers() -> None:
    rank = {f"eventpipe.{p}" if p != "eventpipe" else p: n
            for n, layer in enumerate(LAYERS) for p in layer}
    upward = []
    for module, targets in _internal(_graph()).items():
        source = ".".join(module.split(".")[:2])
        assert source in rank, f"{source} is in no layer: place it in LAYERS"
        upward += [f"{module} imports {t}" for t in targets
                   if rank[".".join(t.split(".")[:2])] > rank[source]]
    assert upward == []


def test_library_never_imports_services() -> None:
    offenders = sorted(
        f"{m} imports {t}"
        for m, ts in _graph().items()
        for t in ts
        if t == "services" or t.startswith("services.")
    )
    assert offenders == []


@pytest.mark.parametrize(
    "source, expected",
    [
        ("def f():\n    import eventpipe.a\n", {"eventpipe.a"}),
        ("if TYPE_CHECKING:\n    import eventpipe.a\nelse:\n    import eventpipe.b\n",
         {"eventpipe.b"}),
        ("class C:\n    def m(self):\n        from eventpipe import a\n", {"eventpipe.a"}),
        ("from . import b\nfrom .a import x\n", {"eventpipe.b", "eventpipe.a"}),
    ],
)
def test_the_walk_sees_imports_inside_functions(source: str, expected: set[str]) -> None:
    # The reader itself: an import in a function counts, one under TYPE_CHECKING does not.
    known = {"eventpipe.a": Path("a.py"), "eventpipe.b": Path("b.py")}
    assert set(_targets("eventpipe.c", Path("c.py"), known, source)) == expected


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
