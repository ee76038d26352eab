"""The house's rules read from the source: the import graph, file sizes, what may import what.

Read with :mod:`ast`, never by importing, so a lazy import inside a function counts as much as
one at the top (that is how the cycles this guards against were hidden). Imports under
``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

PY_MAX_LINES = 600
JS_MAX_LINES = 550
#: A longer file says why in its module docstring (Python) or its first comment (JS).
LONG_MARKER = "longer than"

#: Packages of plain functions over a connection: no web framework, no CLI, no face.
PLAIN_PACKAGES = ("geomap.analysis", "geomap.routing", "geomap.ops", "geomap.planning")
FORBIDDEN_IN_PLAIN = ("flask", "werkzeug", "click", "geomap.web", "geomap.api", "geomap.maps")


@dataclass(frozen=True)
class Edge:
    """One import of a geomap module (or a third-party top-level package) by a module."""

    importer: str
    imported: str
    line: int


def module_names(root: Path) -> dict[str, Path]:
    """Every module of ``root/geomap`` by dotted name (a package by its ``__init__``)."""
    names = {}
    for path in sorted((root / "geomap").rglob("*.py")):
        if "migrations" in path.parts:
            continue  # alembic's revisions are loaded by alembic, not imported
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    for sub in ast.walk(child):
                        if hasattr(sub, "lineno"):
                            lines.add(sub.lineno)
    return lines


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    if not level:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def edges(root: Path) -> Iterator[Edge]:
    """Every import of every module under ``root/geomap``, lazy ones included.

    ``from pkg import name`` is an import of ``pkg.name`` where that is a module, else of ``pkg``.
    """
    names = module_names(root)
    for module, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skip = _type_checking_lines(tree)
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield Edge(module, _known(alias.name, names), node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    yield Edge(module, full if full in names else _known(base, names), node.lineno)


def _known(name: str, names: dict[str, Path]) -> str:
    """The longest prefix of ``name`` that is a geomap module, or its top-level package."""
    if not name.startswith("geomap"):
        return name.split(".")[0]
    parts = name.split(".")
    while parts and ".".join(parts) not in names:
        parts.pop()
    return ".".join(parts) or name


def cycles(graph_edges: Iterable[Edge]) -> list[list[str]]:
    """Strongly connected groups of more than one module (or a module importing itself)."""
    graph: dict[str, set[str]] = {}
    for edge in graph_edges:
        if edge.imported.startswith("geomap"):
            graph.setdefault(edge.importer, set()).add(edge.imported)
            graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        # Tarjan's algorithm without recursion: (node, iterator over its successors).
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph[node]:
                    found.append(sorted(group))
    return found


def forbidden(graph_edges: Iterable[Edge]) -> list[Edge]:
    """Imports of a web framework, the CLI or a face by the plain packages."""
    return [
        edge
        for edge in graph_edges
        if edge.importer.startswith(PLAIN_PACKAGES)
        and any(
            edge.imported == banned or edge.imported.startswith(banned + ".")
            for banned in FORBIDDEN_IN_PLAIN
        )
    ]


def _says_why(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        head = ast.get_docstring(ast.parse(text)) or ""
    else:
        head = text[: text.find("*/") + 2] if text.lstrip().startswith("/*") else ""
    return LONG_MARKER in head.lower() and "lines" in head.lower()


def long_files(root: Path) -> list[tuple[Path, int]]:
    """Python files of geomap/ over 600 lines and page JS over 550 that do not say why."""
    found = []
    candidates = [(p, PY_MAX_LINES) for p in (root / "geomap").rglob("*.py")]
    candidates += [(p, JS_MAX_LINES) for p in (root / "geomap/static/geomap").rglob("*.js")]
    for path, limit in sorted(candidates):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit and not _says_why(path):
            found.append((path.relative_to(root), lines))
    return found


def report(root: Path) -> int:
    """Print what breaks the rules under ``root``; the number of findings."""
    all_edges = list(edges(root))
    findings = 0
    for group in cycles(all_edges):
        findings += 1
        print("cycle:", " ↔ ".join(group))
        members = set(group)
        inside = sorted(
            {(e.importer, e.imported, e.line) for e in all_edges}
            & {(e.importer, e.imported, e.line) for e in all_edges if e.imported in members}
        )
        for importer, imported, line in inside:
            if importer in members:
                print(f"    {importer} → {imported} (line {line})")
    for edge in forbidden(all_edges):
        findings += 1
        print(f"forbidden: {edge.importer} imports {edge.imported} (line {edge.line})")
    for path, lines in long_files(root):
        findings += 1
        print(f"long: {path} has {lines} lines")
    print(f"{findings} findings")
    return findings
