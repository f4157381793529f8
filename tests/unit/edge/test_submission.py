from __future__ import annotations

from typing import Any

import pytest

from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
    ShieldingAction,
)
from consent_wire.errors import InvalidNhsNumberError, ValidationError
from consent_wire.model import BreachReport, ConsentDecision, Objection, ProxyAuthority, ShieldingFlag
from edge_agent.submission import load_json, parse_submission, parse_submission_list
from tests.fakes import VALID_NHS, fake_pseudonymise


def consent(**payload: Any) -> dict[str, Any]:
    base = {"directive": "OPTIN", "purpose": "TREAT", "data_class": "ALL", "recipient": "*"}
    return {"type": "consent_decision", "nhs_number": VALID_NHS, "payload": base | payload}


def rejection(doc: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse_submission(doc, fake_pseudonymise)
    return info.value


def test_consent_decision_becomes_payload_with_pseudonym_only() -> None:
    sub = parse_submission(consent(period_start_ms=10, period_end_ms=20, recorded_by_role="GP"), fake_pseudonymise)

    assert sub.payload == ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.ALL, "*", 10, 20, "GP")
    assert sub.patient_key == fake_pseudonymise(VALID_NHS)
    assert VALID_NHS not in repr(sub)
    assert sub.event_id is None


def test_objection_shielding_and_breach_parse_to_their_models() -> None:
    objection = {"kind": "NDOP", "action": "REGISTER", "exemptions": ["STATUTORY_MANDATE"]}
    shield = {"action": "SET", "hides": ["LOCATION", "CONTACT"], "set_by_role": "SAFEGUARDING_LEAD"}
    breach = {
        "organisation": "A12345",
        "severity": "LEVEL_2",
        "category": "DISCLOSED_IN_ERROR",
        "explanation": "letter sent to old address",
        "remedial_action": "retrieved",
        "apology_given": True,
        "individuals_affected": 1,
    }
    subs = [
        parse_submission({"type": "objection", "nhs_number": VALID_NHS, "payload": objection}, fake_pseudonymise),
        parse_submission({"type": "shielding_flag", "nhs_number": VALID_NHS, "payload": shield}, fake_pseudonymise),
        parse_submission({"type": "breach_report", "payload": breach}, fake_pseudonymise),
    ]

    assert subs[0].payload == Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, (LegalBasis.STATUTORY_MANDATE,))
    assert subs[1].payload == ShieldingFlag(
        ShieldingAction.SET, (HiddenField.LOCATION, HiddenField.CONTACT), "SAFEGUARDING_LEAD"
    )
    assert isinstance(subs[2].payload, BreachReport)
    assert subs[2].patient_key == ""


@pytest.mark.parametrize(
    ("doc", "reason", "fragment"),
    [
        ({"type": "key_event", "payload": {}}, "UNKNOWN_EVENT_TYPE", "type='key_event'"),
        (consent(purpose="GOSSIP"), "INVALID_CODE", "payload.purpose='GOSSIP' is not a PurposeOfUse code"),
        (consent(colour="red"), "INVALID_FIELD", "unknown field(s) colour"),
        (
            {"type": "consent_decision", "nhs_number": VALID_NHS, "payload": {"directive": "OPTIN"}},
            "MISSING_FIELD",
            "payload.purpose is required",
        ),
        (consent(period_start_ms=20, period_end_ms=10), "INVALID_FIELD", "period_end_ms (10) must be after"),
        (consent(period_start_ms="soon"), "INVALID_FIELD", "payload.period_start_ms must be an integer"),
        (consent(recipient="not an ods code"), "INVALID_FIELD", "must be an ODS code"),
        ({**consent(), "nhs_number": None}, "MISSING_FIELD", "nhs_number is required"),
        ({**consent(), "event_id": "XYZ"}, "INVALID_FIELD", "event_id must be 32 lowercase hex"),
        ([1, 2], "INVALID_FIELD", "body must be a JSON object"),
        (
            {"type": "breach_report", "nhs_number": VALID_NHS, "payload": {}},
            "INVALID_FIELD",
            "must not be sent with a breach report",
        ),
    ],
)
def test_invalid_submission_is_rejected_with_reason_and_path(doc: object, reason: str, fragment: str) -> None:
    error = rejection(doc)

    assert error.reason == reason
    assert fragment in error.message


def test_invalid_nhs_number_is_rejected_without_echoing_it() -> None:
    error = rejection({**consent(), "nhs_number": "9434765918"})

    assert isinstance(error, InvalidNhsNumberError)
    assert error.reason == "INVALID_NHS_NUMBER"
    assert "9434765918" not in error.message


def test_duplicate_codes_in_a_list_are_rejected() -> None:
    shield = {"action": "SET", "hides": ["LOCATION", "LOCATION"], "set_by_role": "GP"}
    error = rejection({"type": "shielding_flag", "nhs_number": VALID_NHS, "payload": shield})

    assert error.reason == "INVALID_FIELD"
    assert "lists a code twice" in error.message


def test_batch_is_rejected_whole_naming_the_bad_item() -> None:
    with pytest.raises(ValidationError) as info:
        parse_submission_list({"events": [consent(), consent(purpose="NOPE")]}, fake_pseudonymise)

    assert info.value.reason == "INVALID_CODE"
    assert info.value.message.startswith("events[1].payload.purpose")


def test_malformed_json_has_its_own_reason() -> None:
    with pytest.raises(ValidationError) as info:
        load_json(b"{not json")

    assert info.value.reason == "MALFORMED_JSON"


def test_objection_exempt_flows_and_consent_policy_ref_reach_the_event_payloads() -> None:
    """Issue 14: per-flow exemptions (rule 5) and the agreement a consent was collected under (rec 20)."""
    objection = {"kind": "NDOP", "action": "REGISTER", "exemptions": ["S251"], "exempt_flows": ["21/CAG/0032"]}
    sub = parse_submission({"type": "objection", "nhs_number": VALID_NHS, "payload": objection}, fake_pseudonymise)
    assert sub.payload == Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, (LegalBasis.S251,), ("21/CAG/0032",))
    grant = parse_submission(consent(policy_ref="DSA-2025-014"), fake_pseudonymise)
    assert isinstance(grant.payload, ConsentDecision) and grant.payload.policy_ref == "DSA-2025-014"


@pytest.mark.parametrize("flows", [["x", "x"], [""], ["  "], ["y" * 129], "21/CAG/0032", [7]])
def test_bad_exempt_flows_are_refused_naming_the_field(flows: object) -> None:
    objection = {"kind": "NDOP", "action": "REGISTER", "exempt_flows": flows}
    error = rejection({"type": "objection", "nhs_number": VALID_NHS, "payload": objection})
    assert "exempt_flows" in error.message


def test_a_proxys_authority_reaches_the_event_payload() -> None:
    """Issue 14 (MCA 2005 s9(1)(a), registered s9(2)(b)): an attorney's objection carries the authority."""
    proxy = {"authority": "LPA_HEALTH_WELFARE", "reference": "7000-1234-5678"}
    objection = {"kind": "NDOP", "action": "REGISTER", "proxy": proxy}
    sub = parse_submission({"type": "objection", "nhs_number": VALID_NHS, "payload": objection}, fake_pseudonymise)
    assert isinstance(sub.payload, Objection)
    assert sub.payload.proxy == ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678")
    parent = parse_submission(consent(proxy={"authority": "PARENTAL_RESPONSIBILITY"}), fake_pseudonymise)
    assert isinstance(parent.payload, ConsentDecision)
    assert parent.payload.proxy == ProxyAuthority(ProxyAuthorityKind.PARENTAL_RESPONSIBILITY, "")


@pytest.mark.parametrize(
    ("proxy", "expected"),
    [
        ({"authority": "LPA_PROPERTY_FINANCIAL", "reference": "7000-1"}, "PROXY_AUTHORITY_NOT_FOR_HEALTH"),
        ({"authority": "DEPUTY_PROPERTY_AFFAIRS", "reference": "COP-1"}, "PROXY_AUTHORITY_NOT_FOR_HEALTH"),
        ({"authority": "UNRECOGNISED"}, "PROXY_AUTHORITY_NOT_FOR_HEALTH"),
        ({"authority": "LPA_HEALTH_WELFARE"}, "PROXY_REFERENCE_MISSING"),
        ({"authority": "GUARDIAN"}, "proxy.authority"),
        ({"reference": "x"}, "proxy.authority is required"),
        ({"authority": "PARENTAL_RESPONSIBILITY", "name": "Jane"}, "unknown field"),
        ("PARENT", "proxy must be a JSON object"),
    ],
)
def test_a_proxy_without_authority_over_health_is_refused_at_the_agent(proxy: object, expected: str) -> None:
    """Issue 14: MCA 2005 s9(1)(b) and s18 give no say over health data; the agent answers 400 naming why."""
    objection = {"kind": "NDOP", "action": "REGISTER", "proxy": proxy}
    error = rejection({"type": "objection", "nhs_number": VALID_NHS, "payload": objection})
    assert expected in error.message
