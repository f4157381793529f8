"""The package graph: consent_wire <- consent_rules <- {edge_agent, broker}; pure packages import no I/O library.

Checked twice: statically (every import statement in the source tree, parsed with ``ast``, including
imports inside functions and under ``TYPE_CHECKING``) and dynamically (what a fresh interpreter has
in ``sys.modules`` after importing a package).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
OURS = frozenset({"consent_wire", "consent_rules", "consent_io", "broker", "edge_agent", "loadtests", "tests"})
IO_LIBRARIES = ("aiokafka", "aiomqtt", "aiohttp", "sqlite3", "prometheus_client", "paho")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module named by an import statement in the file ``path`` (relative imports resolved)."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    return imports_in(path.read_text(encoding="utf-8"), package)


def imports_in(source: str, package: str) -> set[str]:
    """Every module named by an import statement in ``source``, a module of ``package``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def our_imports(package: str) -> dict[str, set[str]]:
    """File (relative path) -> the top-level packages of ours it imports, for every file of ``package``."""
    out: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        tops = {name.split(".")[0] for name in imports_of(path)} & OURS
        out[str(path.relative_to(ROOT))] = tops
    return out


def test_the_parser_sees_plain_relative_typing_and_function_level_imports() -> None:
    source = (
        "import broker.api\n"
        "from . import sibling\n"
        "from ..decision import rules\n"
        "if TYPE_CHECKING:\n"
        "    import aiokafka\n"
        "def f():\n"
        "    from edge_agent.outbox import Outbox\n"
    )
    found = imports_in(source, "consent_rules.state")

    assert {"broker.api", "consent_rules.state.sibling", "consent_rules.decision.rules", "aiokafka"} <= found
    assert "edge_agent.outbox.Outbox" in found
    assert "consent_rules.state.registers" in imports_of(ROOT / "consent_rules" / "state" / "codec.py")


def test_consent_wire_imports_nothing_of_ours() -> None:
    offenders = {
        f: tops - {"consent_wire"} for f, tops in our_imports("consent_wire").items() if tops - {"consent_wire"}
    }
    assert offenders == {}


def test_consent_rules_imports_only_consent_wire_among_ours() -> None:
    allowed = {"consent_wire", "consent_rules"}
    offenders = {f: tops - allowed for f, tops in our_imports("consent_rules").items() if tops - allowed}
    assert offenders == {}


@pytest.mark.parametrize("package", ["consent_wire", "consent_rules"])
def test_no_import_statement_of_a_pure_package_names_an_io_library(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(tops & set(IO_LIBRARIES))
        for path in sorted((ROOT / package).rglob("*.py"))
        if (tops := {name.split(".")[0] for name in imports_of(path)}) & set(IO_LIBRARIES)
    }
    assert offenders == {}


def test_edge_agent_never_imports_broker() -> None:
    offenders = [f for f, tops in our_imports("edge_agent").items() if "broker" in tops]
    assert offenders == []


def test_broker_imports_edge_agent_only_in_its_demo() -> None:
    offenders = [
        f
        for f, tops in our_imports("broker").items()
        if "edge_agent" in tops and not f.startswith(f"broker{os.sep}demo{os.sep}")
    ]
    assert offenders == []


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT, env=os.environ
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("package", ["consent_wire", "consent_rules"])
def test_importing_a_pure_package_loads_no_io_library(package: str) -> None:
    code = f"import pkgutil, {package}\nfor m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
    code += "    __import__(m.name)"
    loaded = _loaded_after(code)

    assert package in loaded  # the probe did import it
    assert sorted(loaded & set(IO_LIBRARIES)) == []
    assert sorted(loaded & OURS) == sorted({"consent_wire", package})


def test_importing_every_edge_agent_module_loads_no_broker_module() -> None:
    code = "import pkgutil, edge_agent\nfor m in pkgutil.walk_packages(edge_agent.__path__, 'edge_agent.'):\n"
    code += "    __import__(m.name)"
    loaded = _loaded_after(code)

    assert {"edge_agent", "consent_rules", "aiohttp"} <= loaded  # the probe reached the agent's I/O modules
    assert "broker" not in loaded
