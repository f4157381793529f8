"""The CDS Hooks cards' FHIR content (issue 17): exported as R4 Parameters a FHIR validator can check."""

from __future__ import annotations

from pathlib import Path

import orjson
from fhir.resources.R4B.parameters import Parameters

from broker.api.cds import export_fhir_content
from consent_rules.cds_hooks import example_responses


def test_every_kind_of_card_is_exported_as_parameters_that_a_fhir_model_accepts(tmp_path: Path) -> None:
    paths = export_fhir_content(tmp_path)
    assert sorted(p.name for p in paths) == [
        "cds-deny.parameters.json",
        "cds-no-consent.parameters.json",
        "cds-permit.parameters.json",
        "cds-shielded.parameters.json",
    ]
    for path in paths:
        Parameters.model_validate(orjson.loads(path.read_bytes()))  # raises on invalid FHIR
    shielded = orjson.loads((tmp_path / "cds-shielded.parameters.json").read_bytes())
    codes = [p["valueCoding"]["code"] for o in shielded["parameter"][1:] for p in o["part"]]
    assert codes == ["REDACT", "LOCIS", "CONTACT", "IDENTITY", "PSY"]  # PATLOC and LOCATION are both LOCIS


def test_summaries_follow_the_leap_decisions() -> None:
    summaries = {name: r["cards"][0]["summary"] for name, r in example_responses().items()}  # type: ignore[index]
    assert summaries == {
        "permit": "CONSENT_PERMIT",
        "deny": "CONSENT_DENY",
        "shielded": "CONSENT_PERMIT",
        "no-consent": "NO_CONSENT",
    }
