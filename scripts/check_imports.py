"""Check a package's layout: no import cycles, no module too long without a stated reason.

Usage: ``python scripts/check_imports.py [PACKAGE_DIR] [--max-lines N]`` (default: the
``s2vt`` package next to this script, 500 lines). Exits 1 and prints every problem found,
0 when there is none.

Imports are read with ``ast``, never by importing anything. Every import is an edge of the
import graph, and each edge of a reported cycle says which of three kinds it is: one that
runs when the module loads (its top level, including ``try`` / ``if`` blocks there), one
inside a function (runs on first call), or one under ``if TYPE_CHECKING:`` (never runs).
A cycle of any kind is a loop in what depends on what, which is what keeps two modules
from being read, tested or moved apart, so all three count by default; ``--runtime-only``
leaves out the TYPE_CHECKING ones (the loops that can break an import at run time).

A module longer than the limit passes only if its docstring has a line starting with
``Size:`` that says why it is one coherent thing nonetheless.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

SIZE_MARKER = "Size:"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line``; ``kind`` is ``module``, ``function`` or
    ``typing`` (under TYPE_CHECKING)."""

    source: str
    target: str
    line: int
    kind: str


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package at ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import statement with its kind: ``module``, ``function`` or ``typing``."""
    found: list[tuple[ast.Import | ast.ImportFrom, str]] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append((child, kind))
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for item in child.body:
                    visit_one(item, "typing")
                for item in child.orelse:
                    visit_one(item, kind)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                visit(child, "typing" if kind == "typing" else "function")
            else:
                visit(child, kind)

    def visit_one(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append((node, kind))
        else:
            visit(node, kind)

    visit(tree, "module")
    return found


def _resolve(node: ast.Import | ast.ImportFrom, module: str, is_package: bool,
             known: set[str]) -> list[str]:
    """The known modules an import statement loads (the deepest known name of each)."""
    def deepest(name: str) -> str | None:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            candidate = ".".join(parts[:end])
            if candidate in known:
                return candidate
        return None

    if isinstance(node, ast.Import):
        targets = [deepest(alias.name) for alias in node.names]
        return [t for t in targets if t]
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[:len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    targets = []
    for alias in node.names:
        full = f"{base}.{alias.name}" if base else alias.name
        target = full if full in known else deepest(base)
        if target:
            targets.append(target)
    return targets


def import_edges(root: Path, typing: bool = True) -> list[Edge]:
    """Every import between modules of the package at ``root`` (one edge per module pair
    and kind, at its first line); ``typing=False`` leaves out the TYPE_CHECKING ones."""
    names = module_names(root)
    known = set(names)
    edges: dict[tuple[str, str, str], Edge] = {}
    for module, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, kind in _imports(tree):
            if kind == "typing" and not typing:
                continue
            for target in _resolve(node, module, path.name == "__init__.py", known):
                if target != module:
                    edges.setdefault((module, target, kind),
                                     Edge(module, target, node.lineno, kind))
    return sorted(edges.values(), key=lambda e: (e.source, e.line, e.target))


def find_cycles(edges: list[Edge]) -> list[list[Edge]]:
    """One cycle (as its edges) per strongly connected group of modules that has one."""
    graph: dict[str, list[Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
        graph.setdefault(edge.target, [])
    # Tarjan's algorithm, iterative so a deep package cannot hit the recursion limit.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            out = graph[node]
            if position < len(out):
                work.append((node, position + 1))
                nxt = out[position].target
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: list[str], graph: dict[str, list[Edge]]) -> list[Edge]:
    """A shortest cycle through the first module of a strongly connected group."""
    members = set(group)
    start = group[0]
    paths: dict[str, list[Edge]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for edge in sorted(graph[node], key=lambda e: (e.target, e.line)):
                if edge.target not in members:
                    continue
                if edge.target == start:
                    return paths[node] + [edge]
                if edge.target not in paths:
                    paths[edge.target] = paths[node] + [edge]
                    following.append(edge.target)
        frontier = following
    raise AssertionError(f"no cycle in strongly connected group {group}")


def oversized_modules(root: Path, max_lines: int) -> list[tuple[str, int]]:
    """Modules over ``max_lines`` lines whose docstring has no ``Size:`` reason line."""
    found = []
    for module, path in module_names(root).items():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines <= max_lines:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        reasons = [line.strip()[len(SIZE_MARKER):].strip() for line in docstring.splitlines()
                   if line.strip().startswith(SIZE_MARKER)]
        if not any(reasons):
            found.append((module, lines))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", nargs="?", type=Path,
                        default=Path(__file__).resolve().parent.parent / "s2vt",
                        help="the package folder to check (default: s2vt)")
    parser.add_argument("--max-lines", type=int, default=500,
                        help="longest module allowed without a 'Size:' reason (default 500)")
    parser.add_argument("--runtime-only", action="store_true",
                        help="leave out imports under 'if TYPE_CHECKING:' (they never run)")
    args = parser.parse_args(argv)
    root = args.package.resolve()
    if not (root / "__init__.py").is_file():
        print(f"error: {root} is not a package folder (no __init__.py)", file=sys.stderr)
        return 2
    problems = 0
    for cycle in find_cycles(import_edges(root, typing=not args.runtime_only)):
        problems += 1
        print(f"import cycle: {' -> '.join([cycle[0].source] + [e.target for e in cycle])}")
        for edge in cycle:
            where = {"module": "at module level", "function": "inside a function",
                     "typing": "under TYPE_CHECKING"}[edge.kind]
            print(f"  {edge.source} imports {edge.target} (line {edge.line}, {where})")
    for module, lines in oversized_modules(root, args.max_lines):
        problems += 1
        print(f"too long: {module} has {lines} lines (> {args.max_lines}) and its docstring "
              f"has no '{SIZE_MARKER} <why it is one thing>' line; split it or say why")
    if problems:
        print(f"{problems} layout problem(s) in {root}")
        return 1
    print(f"layout ok: no import cycle, no module over {args.max_lines} lines without a reason")
    return 0


if __name__ == "__main__":
    sys.exit(main())
