"""The demo's modules form a chain, not a cycle: no module imports one that imports it back.

Imports inside functions count too (the old ``day`` <-> ``script`` cycle hid behind one).
"""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import broker.demo

DEMO = Path(broker.demo.__file__).parent


def _demo_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name.removeprefix("broker.demo.") for name in found if name.startswith("broker.demo.")}


def test_demo_modules_import_each_other_without_a_cycle() -> None:
    graph = {p.stem: _demo_imports(p) for p in DEMO.glob("*.py") if p.stem != "__init__"}
    assert graph["day"] >= {"script"}  # the day runs the script ...
    assert "day" not in graph["script"]  # ... and the script needs nothing from the day
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle in broker.demo: {exc.args[1]}") from exc
    assert order.index("script") < order.index("day")
