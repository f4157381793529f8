from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import consent_wire

MODULES = [
    "ack",
    "authority",
    "avro_codec",
    "codes",
    "dsse",
    "errors",
    "fhir",
    "hlc",
    "identity",
    "keys",
    "merkle",
    "model",
    "schemas",
    "signing",
    "site_pseudonyms",
]


def _isort_style(names: list[str]) -> list[str]:
    """ruff RUF022's order: SCREAMING_CASE constants, then CamelCase classes, then the rest."""
    return sorted(names, key=lambda n: (not n.isupper(), not n[:1].isupper(), n))


def test_public_api_is_sorted_and_complete() -> None:
    assert consent_wire.__all__ == _isort_style(consent_wire.__all__)
    exported = set()
    for name in MODULES:
        module = importlib.import_module(f"consent_wire.{name}")
        assert module.__all__ == _isort_style(module.__all__), name
        exported |= set(module.__all__)
    assert set(consent_wire.__all__) == exported
    assert all(hasattr(consent_wire, n) for n in consent_wire.__all__)


def test_importing_the_wire_package_does_not_import_network_or_fhir_libraries() -> None:
    heavy = "('aiokafka', 'aiohttp', 'aiomqtt', 'uvloop', 'sqlite3', 'fhir.resources', 'pydantic')"
    code = f"import sys, consent_wire; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", [n for n in consent_wire.__all__ if n.endswith("Error")])
def test_every_error_has_a_stable_upper_case_reason(name: str) -> None:
    error = getattr(consent_wire, name)
    assert issubclass(error, consent_wire.WireError)
    assert error.reason.isupper() and " " not in error.reason


def test_every_reason_code_is_documented() -> None:
    from pathlib import Path

    table = (Path(__file__).parents[3] / "docs" / "reason-codes.md").read_text(encoding="utf-8")
    leaves = [getattr(consent_wire, n) for n in consent_wire.__all__ if n.endswith("Error")]
    leaves = [e for e in leaves if not e.__subclasses__()]
    missing = [e.reason for e in leaves if f"| `{e.reason}` | `{e.__name__}`" not in table]
    assert missing == []
