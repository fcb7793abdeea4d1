"""The package's shape: an import graph without cycles, a core that never imports the batch
package, and a DESIGN.md map that names every module and only modules that exist.

The graph is read from the source with the standard library's ast (every import, the
deferred ones inside functions included: a cycle hidden by a late import is still a cycle)
and checked with graphlib, which refuses to order a graph that has one.
"""

from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "harness"

ENTRY = {"harness.cli"}
"""The entry point may route to either side: a lone idea or a batch."""


def _modules(root: Path) -> dict[str, Path]:
    out = {}
    for path in (root / "harness").rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the harness modules it imports (a name imported from a package counts as
    the submodule when one of that name exists)."""
    mods = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in targets:
                while name and name not in mods:
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    graph[mod].add(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


def test_the_single_idea_core_never_imports_the_batch_package():
    upward = sorted(f"{a} -> {b}" for a, deps in import_graph().items() for b in deps
                    if b.startswith("harness.batch") and not a.startswith("harness.batch") and a not in ENTRY)
    assert not upward, "the core imports batch/: " + ", ".join(upward)


def test_the_cycle_check_sees_a_cycle_hidden_by_a_late_import(tmp_path):
    # the check itself must be able to fail: two modules importing each other, one of them
    # only inside a function, as the old pipeline <-> stages cycle did
    pkg = tmp_path / "harness"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from harness.b import f\n")
    (pkg / "b.py").write_text("def f():\n    from harness import a\n")
    assert set(find_cycle(import_graph(tmp_path))) == {"harness.a", "harness.b"}


def _design_map() -> set[str]:
    """The files DESIGN.md's layout block names under harness/, as paths."""
    text = (ROOT / "DESIGN.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    named, stack = set(), []
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m:
            continue
        depth, word = len(m.group(1)) // 2, m.group(2)
        stack = stack[:depth]
        if word.endswith("/"):
            stack.append(word)
            continue
        path = "".join(stack) + word
        if path.startswith("harness/") and path.endswith(".py"):
            named.add(path)
    return named


def test_design_md_maps_every_module_and_only_real_ones():
    named = _design_map()
    real = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}
    assert not (real - named), f"DESIGN.md's layout does not mention: {sorted(real - named)}"
    assert not (named - real), f"DESIGN.md's layout names files that do not exist: {sorted(named - real)}"
