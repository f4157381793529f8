"""The one decision-request parser (core API and edge agent) and the one answer shape."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consent_rules.decision import (
    BadRequestError,
    DataHolder,
    Decision,
    DecisionAnswer,
    HolderKind,
    Outcome,
    OverrideEvidence,
    Requester,
    parse_as_at,
    parse_request,
)
from consent_wire.codes import DataClass, LegalBasis, PurposeOfUse, Relationship
from consent_wire.errors import InvalidCodeError

NOW_MS = 1_790_000_000_000


def body(**change: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "requester": {
            "organisation": "RX1",
            "role": "CONSULTANT",
            "registered": True,
            "relationship": "LEGITIMATE",
            "care_team": True,
        },
        "purpose": "TREAT",
        "nhs_number": "9434765919",
        "data_classes": ["GENERAL", "PATLOC"],
    }
    doc.update(change)
    return doc


def test_as_at_accepts_iso_times_with_an_offset_only() -> None:
    midnight = int(datetime(2026, 9, 21, tzinfo=UTC).timestamp()) * 1000
    assert parse_as_at("2026-09-21T00:00:00Z") == midnight
    assert parse_as_at("2026-09-21T01:00:00+01:00") == midnight
    assert parse_as_at(midnight) == midnight
    with pytest.raises(BadRequestError):
        parse_as_at("2026-09-21T00:00:00")
    with pytest.raises(BadRequestError):
        parse_as_at(True)


def test_a_live_request_is_decided_at_now_and_names_no_accessor_by_default() -> None:
    parsed = parse_request(body(legal_basis="S251"), lambda nhs: f"key-{nhs}", NOW_MS)

    assert parsed.request.requester == Requester("RX1", "CONSULTANT", True, Relationship.LEGITIMATE, True)
    assert parsed.request.purpose is PurposeOfUse.TREAT
    assert parsed.request.patient_key == "key-9434765919"
    assert parsed.request.data_classes == (DataClass.GENERAL, DataClass.PATLOC)
    assert parsed.request.legal_basis is LegalBasis.S251
    assert (parsed.request.at_ms, parsed.as_at_ms, parsed.accessor_id) == (NOW_MS, None, "")


def test_an_as_at_request_is_decided_at_that_time() -> None:
    parsed = parse_request(body(as_at=1_000), lambda nhs: nhs, NOW_MS)

    assert (parsed.request.at_ms, parsed.as_at_ms) == (1_000, 1_000)


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"purpose": "SHOPPING"}, InvalidCodeError, "purpose 'SHOPPING' is not a known code"),
        ({"data_classes": "ALL"}, BadRequestError, "field data_classes must be list, got str"),
        ({"data_classes": ["ALL"] * 33}, BadRequestError, "at most 32 data classes per request"),
        ({"requester": "RX1"}, BadRequestError, "field requester must be an object"),
        ({"nhs_number": 9434765919}, BadRequestError, "field nhs_number must be str, got int"),
    ],
)
def test_malformed_requests_name_the_field(change: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_request(body(**change), lambda nhs: nhs, NOW_MS)


def test_requester_accessor_id_must_be_a_short_string() -> None:
    requester = {**body()["requester"], "accessor_id": "x" * 129}  # type: ignore[dict-item]
    with pytest.raises(BadRequestError, match=r"requester\.accessor_id must be a short string"):
        parse_request(body(requester=requester), lambda nhs: nhs, NOW_MS)


def test_the_answer_json_is_one_shape_for_core_and_agent() -> None:
    decision = Decision(Outcome.PERMIT, (), ("ok",), LegalBasis.CONSENT, ("EXPLICIT_CONSENT",), 3, (DataClass.ALL,))

    live = DecisionAnswer(decision, NOW_MS, None, 7).to_json()
    offline = DecisionAnswer(decision, NOW_MS, 5, offline=True).to_json()

    assert live == {
        "outcome": "PERMIT",
        "obligations": [],
        "reasons": ["ok"],
        "legal_basis": "CONSENT",
        "codes": ["EXPLICIT_CONSENT"],
        "state_version": 3,
        "permitted": ["ALL"],
        "withheld": [],
        "decided_at_ms": NOW_MS,
        "as_at_ms": None,
        "audit_index": 7,
        "offline": False,
        "patient_notice": None,
        "audit_request": None,  # issue 16: the core's answers name the audit request (null: appended directly)
    }
    core_fields = {k: v for k, v in live.items() if k != "audit_request"}
    assert offline == {**core_fields, "as_at_ms": 5, "audit_index": None, "offline": True}
    requested = DecisionAnswer(decision, NOW_MS, None, None, audit_request=(2, 41)).to_json()
    assert requested == {**live, "audit_index": None, "audit_request": {"partition": 2, "offset": 41}}


def test_the_data_holder_is_optional_and_parsed_when_given() -> None:
    """Issue 14, rule 8: a request may name which organisation holds the data, and its kind."""
    assert parse_request(body(), lambda nhs: nhs, NOW_MS).request.data_holder is None
    parsed = parse_request(body(data_holder={"organisation": "A81001", "kind": "GP_PRACTICE"}), str, NOW_MS)
    assert parsed.request.data_holder == DataHolder("A81001", HolderKind.GP_PRACTICE)
    with pytest.raises(InvalidCodeError):
        parse_request(body(data_holder={"organisation": "A81001", "kind": "SURGERY"}), str, NOW_MS)
    with pytest.raises(BadRequestError, match="data_holder"):
        parse_request(body(data_holder="A81001"), str, NOW_MS)


def test_override_evidence_is_optional_and_parsed_when_given() -> None:
    """Issue 14, rule 4: a statutory mandate names its instrument; safeguarding its justification and approver."""
    assert parse_request(body(), str, NOW_MS).request.evidence is None
    given = {"instrument": "Children Act 1989 s47", "justification": "risk of harm", "approver": "Caldicott Guardian"}
    parsed = parse_request(body(legal_basis="SAFEGUARDING", evidence=given), str, NOW_MS)
    assert parsed.request.evidence == OverrideEvidence("Children Act 1989 s47", "risk of harm", "Caldicott Guardian")
    partial = parse_request(body(evidence={"instrument": "Coroners and Justice Act 2009 sch 5"}), str, NOW_MS)
    assert partial.request.evidence == OverrideEvidence(instrument="Coroners and Justice Act 2009 sch 5")
    with pytest.raises(BadRequestError, match="evidence"):
        parse_request(body(evidence="a court order"), str, NOW_MS)
    with pytest.raises(BadRequestError, match=r"evidence\.approver"):
        parse_request(body(evidence={"approver": 7}), str, NOW_MS)
