"""The project's import graph, read from the source with ``ast`` (``host.code_digest.imported_names``; none of the
modules read is imported): the board side (``host``) never imports the offline tooling (``model``) or the
benchmarks, and no modules import each other in a circle.

Every import counts, those inside functions included, and ``importlib.import_module("literal")`` too; importing
``a.b.c`` also runs the packages ``a`` and ``a.b``, so those are edges as well.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

from host.code_digest import imported_names

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("host", "model", "benchmarks")
BOARD_SIDE = "host"
OFFLINE = ("model", "benchmarks")

Graph = Dict[str, Set[str]]  # module -> the project modules (and packages) it imports


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of a source file under ``root`` (a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: Tuple[str, ...] = PACKAGES) -> Graph:
    """The import graph of every ``.py`` file of ``packages`` under ``root``: an edge to each module of those
    packages that an import names or runs (the packages above it included), the importer's own packages left out."""
    files = {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph: Graph = {}
    for module, path in files.items():
        edges = set()
        for name in imported_names(ast.parse(path.read_text(), str(path)), module, path.name == "__init__.py"):
            if name.split(".")[0] not in packages:
                continue
            parts = name.split(".")
            known = {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & files.keys()
            edges |= known or {name}  # a module missing from the tree still counts, by the name it was given
        ancestors = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        graph[module] = {t for t in edges if t != module and t not in ancestors}
    return graph


def forbidden_imports(graph: Graph, side: str = BOARD_SIDE, offline: Tuple[str, ...] = OFFLINE) -> List[str]:
    """``"importer -> imported"`` for every import of an ``offline`` package by a module of package ``side``."""
    return sorted(
        f"{m} -> {t}" for m, ts in graph.items() if m.split(".")[0] == side for t in ts if t.split(".")[0] in offline
    )


def cycles(graph: Graph) -> List[List[str]]:
    """One circle ``[a, b, ..., a]`` per strongly connected group of modules (Tarjan), smallest names first."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    groups: List[Set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(_circle(graph, g) for g in groups)


def _circle(graph: Graph, group: Set[str]) -> List[str]:
    """A shortest circle through the first module of ``group`` that stays inside it (breadth-first)."""
    start = min(group)
    came: Dict[str, Optional[str]] = {start: None}
    queue = [start]
    for v in queue:
        for w in sorted(graph[v] & group):
            if w == start:
                path = [v]
                while came[path[-1]] is not None:
                    path.append(came[path[-1]])
                return [*reversed(path), start]
            if w not in came:
                came[w] = v
                queue.append(w)
    raise AssertionError(f"{sorted(group)} is not strongly connected")


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(ROOT)


def test_board_side_never_imports_offline_tooling(graph):
    assert graph and any(m.startswith("host.") for m in graph)
    assert forbidden_imports(graph) == []


def test_no_import_cycles(graph):
    found = cycles(graph)
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_checker_finds_a_cycle_and_a_board_import_of_the_tooling(tmp_path):
    """The checker itself, on a synthetic tree: host.a -> host.b -> host.a (one inside a function, one
    relative), host.b -> model.x, and model.x -> host.a (legal); importlib's literal name counts too."""
    files = {
        "host/__init__.py": "",
        "host/a.py": "def f():\n    from host import b\n",
        "host/b.py": "from . import a\nimport importlib\nimportlib.import_module('model.x')\n",
        "host/c.py": "import numpy\nfrom host.a import f\n",
        "model/__init__.py": "",
        "model/x.py": "from host.a import f\n",
        "benchmarks/__init__.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    g = import_graph(tmp_path)
    assert g["host.c"] == {"host.a"}  # numpy is no project module; the package host is the importer's own
    assert forbidden_imports(g) == ["host.b -> model", "host.b -> model.x"]
    assert cycles(g) == [["host.a", "host.b", "host.a"]]
    (tmp_path / "host/a.py").write_text("")
    assert cycles(import_graph(tmp_path)) == []


# The board side's rooms (docs/architecture.md draws them). A room imports its own modules and the rooms listed
# for it; a new host module must be given a room here.
ROOMS = {
    "facts": {
        "boards",
        "kernel_spec",
        "whisper_layers",
        "whisper_weights",
        "ct2_reader",
        "calls",
        "cache",
        "errors",
        "recommended_exports",
    },
    "asr": {"audio", "features", "tokenizer", "whisper", "longform", "dataset", "text_normalize"},
    "accelerator": {"quant", "blocksparse", "package", "stream", "cycle_model", "emulator", "pynq_backend", "driver"},
    "performance": {"system_model", "resources", "power"},
    "application": {"session", "report", "asr_demo", "cli", "cache_usage", "code_digest"},
}
ALLOWED = {
    "facts": {"facts"},
    "asr": {"facts", "asr"},
    "accelerator": {"facts", "accelerator"},
    "performance": {"facts", "accelerator", "performance"},
    "application": set(ROOMS),
}


def room_violations(graph: Graph, rooms: Dict[str, Set[str]] = ROOMS, allowed=ALLOWED) -> List[str]:
    """``"importer (room) -> imported (room)"`` for each host import that crosses into a room not allowed, and
    ``"module: no room"`` for each host module without one."""
    room_of = {f"host.{m}": room for room, mods in rooms.items() for m in mods}
    out = [f"{m}: no room" for m in sorted(graph) if m.startswith("host.") and m not in room_of]
    for m, targets in sorted(graph.items()):
        for t in sorted(targets):
            if m in room_of and t in room_of and room_of[t] not in allowed[room_of[m]]:
                out.append(f"{m} ({room_of[m]}) -> {t} ({room_of[t]})")
    return out


def test_board_side_rooms_import_only_the_rooms_below_them(graph):
    assert room_violations(graph) == []


def test_room_checker_names_a_crossing_and_a_homeless_module():
    g = {"host.driver": {"host.whisper", "host.calls"}, "host.whisper": {"host.whisper_layers"}, "host.new": set()}
    assert room_violations(g) == ["host.new: no room", "host.driver (accelerator) -> host.whisper (asr)"]
