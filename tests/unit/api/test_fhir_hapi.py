"""The HAPI FHIR validator (independent checker, tools/install-hapi.sh) over every resource the product emits.

One JVM run validates them all offline (packaged R4 definitions, no terminology server). Zero errors; every
remaining warning must be listed, by its message id, in docs/fhir.md with the reason it is accepted.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.fhir import emitted
from tests.fhir import hl7_examples as ex
from tests.tools import ROOT, tool_path

pytestmark = pytest.mark.slow

DOC = ROOT / "docs" / "fhir.md"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, str]]]:
    folder: Path = tmp_path_factory.mktemp("fhir")
    resources = [
        *emitted.exports(),
        *emitted.all_classes_export(),
        *asyncio.run(emitted.http_resources()),
        *emitted.cds_resources(),
        *ex.R4_VALID.items(),  # HL7-shaped inputs: valid FHIR, whether imported or refused by policy
    ]
    for name, resource in resources:
        (folder / f"{name}.json").write_text(json.dumps(resource))
    done = subprocess.run(
        [str(tool_path("hapi")), str(folder)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["validator"] == "8.8.0"
    results = {r["file"].removesuffix(".json"): r["messages"] for r in out["results"]}
    assert set(results) == {name for name, _ in resources}
    return results


def test_every_emitted_kind_was_validated(report: dict[str, list[dict[str, str]]]) -> None:
    kinds = {name.split("-")[0] for name in report}
    assert {"export", "capability", "consent", "audit", "outcome"} <= kinds
    assert {n for n in report if n.startswith("outcome-")} >= {
        "outcome-not-found",
        "outcome-method",
        "outcome-not-ready",
    }


def test_no_resource_the_product_emits_has_a_validation_error(report: dict[str, list[dict[str, str]]]) -> None:
    errors = [
        f"{name}: {m['location']}: {m['message']}"
        for name, messages in report.items()
        for m in messages
        if m["severity"] in ("ERROR", "FATAL")
    ]
    assert errors == []


def test_every_remaining_warning_is_listed_in_docs_with_why(report: dict[str, list[dict[str, str]]]) -> None:
    documented = DOC.read_text()
    keys = {warning_key(m) for messages in report.values() for m in messages if m["severity"] == "WARNING"}
    assert sorted(k for k in keys if f"`{k}`" not in documented) == []


def warning_key(message: dict[str, str]) -> str:
    """The message id and the first code system or value set it names: ``Terminology_TX_NoValid_13 http://...``."""
    match = re.search(r"(?:https?://|urn:)[^\s'#|)]+", message["message"])
    return f"{message['id']} {match[0]}" if match else message["id"]
