from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.R4B.consent import Consent

from consent_wire import (
    MAX_FHIR_EVENTS,
    ConsentDecision,
    ConsentDirective,
    DataClass,
    FhirExpansionError,
    FhirInvalidError,
    FhirUnsupportedError,
    InvalidFhirError,
    Objection,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    consent_to_fhir,
    fhir_nhs_number,
    fhir_to_events_payloads,
)

NHS = "9434765919"
AT = 1_704_067_200_000  # 2024-01-01T00:00:00Z
OPTIN, OPTOUT = ConsentDirective.OPTIN, ConsentDirective.OPTOUT
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

OPT_OUT_ALL = ConsentDecision(OPTOUT, PurposeOfUse.ANY, DataClass.ALL, "*")
DENY_ORG = ConsentDecision(OPTOUT, PurposeOfUse.ANY, DataClass.ALL, "RXX")
DENY_RESEARCH = ConsentDecision(OPTOUT, PurposeOfUse.HRESCH, DataClass.ALL, "*")
PERMIT_CARE = ConsentDecision(OPTIN, PurposeOfUse.TREAT, DataClass.ALL, "*")
TIME_BOUNDED = ConsentDecision(OPTIN, PurposeOfUse.HRESCH, DataClass.ALL, "*", AT, AT + 365 * 86_400_000)
PSY_EXCLUDED = ConsentDecision(OPTOUT, PurposeOfUse.TREAT, DataClass.PSY, "*")


def _export(decision: ConsentDecision | Objection, *exceptions: ConsentDecision) -> dict[str, Any]:
    return consent_to_fhir(decision, nhs_number=NHS, recorded_ms=AT, exceptions=exceptions)


def test_opt_out_of_all_sharing_is_a_bare_deny_provision() -> None:
    resource = _export(OPT_OUT_ALL)
    assert resource["provision"] == {"type": "deny"}
    assert resource["policyRule"]["coding"] == [{"system": ACT_CODE, "code": "OPTOUT"}]
    assert resource["scope"]["coding"][0]["code"] == "patient-privacy"
    assert fhir_to_events_payloads(resource) == [OPT_OUT_ALL]


def test_deny_one_organisation_names_it_as_recipient_actor() -> None:
    resource = _export(DENY_ORG)
    (actor,) = resource["provision"]["actor"]
    assert actor["role"]["coding"][0]["code"] == "IRCP"
    assert actor["reference"]["identifier"] == {
        "system": "https://fhir.nhs.uk/Id/ods-organization-code",
        "value": "RXX",
    }
    assert fhir_to_events_payloads(resource) == [DENY_ORG]


def test_deny_research_uses_act_reason_hresch() -> None:
    resource = _export(DENY_RESEARCH)
    assert resource["provision"] == {"type": "deny", "purpose": [{"system": ACT_REASON, "code": "HRESCH"}]}
    assert fhir_to_events_payloads(resource) == [DENY_RESEARCH]


def test_permit_direct_care_uses_act_reason_treat() -> None:
    resource = _export(PERMIT_CARE)
    assert resource["provision"] == {"type": "permit", "purpose": [{"system": ACT_REASON, "code": "TREAT"}]}
    assert fhir_to_events_payloads(resource) == [PERMIT_CARE]


def test_time_bounded_consent_carries_its_period() -> None:
    resource = _export(TIME_BOUNDED)
    assert resource["provision"]["period"] == {"start": "2024-01-01T00:00:00.000Z", "end": "2024-12-31T00:00:00.000Z"}
    assert fhir_to_events_payloads(resource) == [TIME_BOUNDED]


def test_sensitive_class_is_excluded_by_a_nested_deny_inside_a_permit() -> None:
    resource = _export(PERMIT_CARE, PSY_EXCLUDED)
    assert resource["provision"]["provision"] == [
        {"type": "deny", "securityLabel": [{"system": ACT_CODE, "code": "PSY"}]}
    ]
    assert fhir_to_events_payloads(resource) == [PERMIT_CARE, PSY_EXCLUDED]


def test_export_is_valid_r4_json_that_round_trips_through_bytes() -> None:
    resource = _export(PERMIT_CARE, PSY_EXCLUDED)
    Consent.model_validate(resource)
    assert fhir_to_events_payloads(json.dumps(resource).encode()) == [PERMIT_CARE, PSY_EXCLUDED]
    assert fhir_nhs_number(resource) == NHS


@pytest.mark.parametrize("kind", list(ObjectionKind))
@pytest.mark.parametrize("action", list(ObjectionAction))
def test_objections_round_trip(kind: ObjectionKind, action: ObjectionAction) -> None:
    objection = Objection(kind, action)
    resource = _export(objection)
    assert resource["status"] == ("active" if action is ObjectionAction.REGISTER else "inactive")
    assert fhir_to_events_payloads(resource) == [objection]


def test_type1_objection_carries_its_snomed_code() -> None:
    codes = _export(Objection(ObjectionKind.TYPE1, ObjectionAction.REGISTER))["policyRule"]["coding"]
    assert {"system": "http://snomed.info/sct", "code": "827241000000103"} in codes


def test_import_of_several_purposes_and_classes_yields_their_cross_product() -> None:
    resource = _export(PERMIT_CARE)
    resource["provision"]["purpose"].append({"system": ACT_REASON, "code": "COC"})
    resource["provision"]["securityLabel"] = [{"system": ACT_CODE, "code": "HIV"}, {"system": ACT_CODE, "code": "SDV"}]
    got = fhir_to_events_payloads(resource)
    assert [(d.purpose, d.data_class) for d in got] == [  # type: ignore[union-attr]
        (PurposeOfUse.TREAT, DataClass.HIV),
        (PurposeOfUse.TREAT, DataClass.SDV),
        (PurposeOfUse.COC, DataClass.HIV),
        (PurposeOfUse.COC, DataClass.SDV),
    ]


def _broken(change: str) -> dict[str, Any] | bytes:
    resource = _export(TIME_BOUNDED)
    if change == "not json":
        return b"{not json"
    if change == "not consent":
        return {"resourceType": "Patient"}
    if change == "missing scope":
        del resource["scope"]
    elif change == "draft":
        resource["status"] = "draft"
    elif change == "unknown purpose":
        resource["provision"]["purpose"] = [{"system": ACT_REASON, "code": "MARKETING"}]
    elif change == "partial date":
        resource["provision"]["period"]["end"] = "2023"  # the whole of 2023: before the start
    elif change == "end before start":
        resource["provision"]["period"]["end"] = "2023-01-01T00:00:00Z"
    elif change == "no provision":
        del resource["provision"]
    elif change == "bad type":
        resource["provision"]["type"] = "maybe"
    return resource


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ("not json", FhirInvalidError, "not JSON"),
        ("not consent", FhirInvalidError, "resourceType must be 'Consent'"),
        ("missing scope", FhirInvalidError, "scope"),
        ("draft", FhirUnsupportedError, "Consent.status 'draft': a draft is not yet in force"),
        ("unknown purpose", FhirUnsupportedError, "provision.purpose.0. .*MARKETING is not a supported v3-ActReason"),
        ("partial date", FhirInvalidError, "period.end is not after its start"),
        ("end before start", FhirInvalidError, "end is not after its start"),
        ("no provision", FhirUnsupportedError, "Consent.provision is missing"),
        ("bad type", FhirInvalidError, "provision"),
    ],
)
def test_invalid_resources_say_whether_fhir_or_policy_refuses_them(
    change: str, error: type[InvalidFhirError], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        fhir_to_events_payloads(_broken(change))
    assert caught.value.reason == ("FHIR_INVALID" if error is FhirInvalidError else "FHIR_UNSUPPORTED")


def _recipients(n: int) -> list[dict[str, Any]]:
    actor = _export(DENY_ORG)["provision"]["actor"][0]
    return [{**actor, "reference": {"identifier": {**actor["reference"]["identifier"], "value": f"R{i:04d}"}}}
            for i in range(n)]  # fmt: skip


def test_a_consent_expanding_into_the_bound_is_imported_whole() -> None:
    resource = _export(DENY_ORG)
    resource["provision"]["actor"] = _recipients(MAX_FHIR_EVENTS)
    assert len(fhir_to_events_payloads(resource)) == MAX_FHIR_EVENTS


def test_a_consent_expanding_past_the_bound_is_refused_before_building_it() -> None:
    """Issue 12 item 10: 219 KiB of FHIR expanded into 99,000 events; the bound is MAX_FHIR_EVENTS."""
    resource = _export(DENY_ORG)
    resource["provision"]["actor"] = _recipients(20)
    resource["provision"]["purpose"] = [{"system": ACT_REASON, "code": c} for c in ("TREAT", "COC", "HRESCH")]
    resource["provision"]["securityLabel"] = [
        {"system": ACT_CODE, "code": c} for c in ("HIV", "SDV", "PSY", "STD", "SUD")
    ]
    with pytest.raises(FhirExpansionError, match="more than 256") as caught:
        fhir_to_events_payloads(resource)  # 20 x 3 x 5 = 300
    assert caught.value.reason == "FHIR_TOO_MANY_EVENTS"


def test_nested_provisions_count_towards_the_bound() -> None:
    resource = _export(DENY_ORG)
    resource["provision"]["actor"] = _recipients(200)
    resource["provision"]["provision"] = [{"type": "permit", "actor": _recipients(57)}]
    with pytest.raises(FhirExpansionError):
        fhir_to_events_payloads(resource)
