"""FHIR Consent import fidelity: HL7's R4 example shapes and their R5 equivalents."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

import pytest

from consent_wire import (
    ConsentDecision,
    ConsentDirective,
    DataClass,
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
from consent_wire.fhir_import import MAX_FHIR_EVENTS
from tests.fhir import hl7_examples as ex

OPTIN, OPTOUT = ConsentDirective.OPTIN, ConsentDirective.OPTOUT
ANY, ALL = PurposeOfUse.ANY, DataClass.ALL


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_basic_partial_dates_cover_whole_days_in_uk_time_and_policy_rule_gives_the_root_type() -> None:
    (got,) = fhir_to_events_payloads(ex.BASIC)
    assert got == ConsentDecision(
        OPTIN, ANY, ALL, "*", ms("1964-01-01T00:00:00+00:00"), ms("2016-01-02T00:00:00+00:00")
    )
    assert fhir_nhs_number(ex.BASIC) == ex.NHS


def test_a_date_only_end_in_summer_ends_at_midnight_british_summer_time() -> None:
    (got,) = fhir_to_events_payloads(ex.NOT_TIME)
    assert got == ConsentDecision(
        OPTOUT, ANY, ALL, "*", ms("2015-01-01T00:00:00+00:00"), ms("2015-07-01T00:00:00+01:00")
    )


def test_research_scope_defaults_the_purpose_to_research_and_takes_month_and_year_dates() -> None:
    (got,) = fhir_to_events_payloads(ex.RESEARCH)
    assert got == ConsentDecision(
        OPTIN, PurposeOfUse.HRESCH, ALL, "*", ms("2024-07-01T00:00:00+01:00"), ms("2026-01-01T00:00:00+00:00")
    )


def test_out_withholds_everything_from_a_primary_recipient() -> None:
    assert fhir_to_events_payloads(ex.OUT) == [ConsentDecision(OPTOUT, ANY, ALL, "RXX")]


def test_not_org_with_access_is_a_deny_to_that_organisation() -> None:
    assert fhir_to_events_payloads(ex.NOT_ORG) == [ConsentDecision(OPTOUT, ANY, ALL, "RXX")]


def test_pkb_nests_permits_per_recipient_and_deeper_denies_per_sensitivity() -> None:
    assert fhir_to_events_payloads(ex.PKB) == [
        ConsentDecision(OPTOUT, ANY, ALL, "*"),
        ConsentDecision(OPTIN, ANY, ALL, "A81001"),
        ConsentDecision(OPTIN, PurposeOfUse.TREAT, ALL, "B82002"),
        ConsentDecision(OPTOUT, PurposeOfUse.TREAT, DataClass.PSY, "B82002"),
        ConsentDecision(OPTOUT, PurposeOfUse.TREAT, DataClass.HIV, "B82002"),
    ]


def test_emergency_and_tpo_map_their_purposes() -> None:
    assert fhir_to_events_payloads(ex.EMERGENCY) == [
        ConsentDecision(OPTOUT, ANY, ALL, "*"),
        ConsentDecision(OPTIN, PurposeOfUse.ETREAT, ALL, "*"),
    ]
    assert [d.purpose for d in fhir_to_events_payloads(ex.TPO)] == [  # type: ignore[union-attr]
        PurposeOfUse.TREAT,
        PurposeOfUse.HPAYMT,
        PurposeOfUse.HOPERAT,
    ]


@pytest.mark.parametrize("depth", [1, 2, 12, 60])
def test_nested_provisions_of_any_depth_inherit_and_alternate(depth: int) -> None:
    got = fhir_to_events_payloads(ex.nested(depth))
    assert len(got) == depth
    assert [d.directive for d in got] == [OPTIN if level % 2 else OPTOUT for level in range(1, depth + 1)]  # type: ignore[union-attr]
    assert got[-1].purpose is PurposeOfUse.TREAT  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("resource", "error", "element"),
    [
        (ex.OUT_LITERAL, FhirUnsupportedError, r"Consent\.provision\.actor\[0\] must identify an organisation"),
        (ex.NOT_ORG_CORRECT, FhirUnsupportedError, r"Consent\.provision\.action\[1\] .*correct"),
        (ex.NOT_AUTHOR, FhirUnsupportedError, r"Consent\.provision\.actor\[0\]\.role must be .*PRCP or IRCP"),
        (ex.NOT_THIS, FhirUnsupportedError, r"Consent\.provision\.data"),
        (ex.SMART, FhirUnsupportedError, r"Consent\.provision\.provision\[0\]\.class"),
        (ex.PKB_CONFIDENTIALITY, FhirUnsupportedError, r"provision\[0\]\.securityLabel\[0\] .*v3-Confidentiality\|N"),
        (ex.TREATMENT, FhirUnsupportedError, r"Consent\.scope 'treatment': a consent to treatment"),
        (ex.ADR, FhirUnsupportedError, r"Consent\.scope 'adr': an advance directive"),
        (ex.DRAFT, FhirUnsupportedError, r"Consent\.status 'draft': a draft is not yet in force"),
        (ex.NO_PROVISION, FhirUnsupportedError, r"Consent\.provision is missing"),
        (ex.R5_NO_DECISION, FhirUnsupportedError, r"Consent\.decision is missing"),
        (ex.R5_DRAFT, FhirUnsupportedError, r"Consent\.status 'draft'"),
        (ex.R5_DOCUMENT_TYPE, FhirUnsupportedError, r"Consent\.provision\[0\]\.documentType"),
    ],
)
def test_valid_fhir_the_product_cannot_represent_is_refused_by_policy_naming_the_element(
    resource: dict[str, Any], error: type[InvalidFhirError], element: str
) -> None:
    with pytest.raises(error, match=element) as caught:
        fhir_to_events_payloads(resource)
    assert caught.value.reason == "FHIR_UNSUPPORTED"


def test_a_patient_given_only_by_literal_reference_is_refused_by_policy() -> None:
    resource = copy.deepcopy(ex.BASIC)
    resource["patient"] = {"reference": "Patient/f001"}
    with pytest.raises(FhirUnsupportedError, match=r"Consent\.patient\.identifier must be an NHS number"):
        fhir_nhs_number(resource)


def _without(resource: dict[str, Any], *names: str) -> dict[str, Any]:
    out = copy.deepcopy(resource)
    for name in names:
        out.pop(name, None)
    return out


@pytest.mark.parametrize(
    ("resource", "element"),
    [
        (_without(ex.TPO, "policyRule"), r"ppc-1: it needs a policy or a policyRule"),
        (_without(ex.TPO, "patient"), r"ppc-2\.\.5: Consent\.patient is required"),
        ({**ex.TPO, "status": "maybe"}, r"Consent\.status 'maybe' is not one of"),
        ({**ex.TPO, "provision": {"type": "perhaps"}}, r"Consent\.provision\.type 'perhaps'"),
        ({**ex.NOT_TIME, "provision": {"type": "deny", "period": {"start": "2015-01-01T10:00:00"}}}, r"period\.start"),
        ({**ex.NOT_TIME, "provision": {"type": "deny", "period": {"start": "2015-02-30"}}}, r"period\.start"),
        ({**ex.R5_BASIC, "decision": "maybe"}, r"Consent\.decision 'maybe'"),
        ({**ex.R5_BASIC, "scope": ex.TPO["scope"]}, r"R5 Consent"),
    ],
)
def test_invalid_fhir_is_refused_as_invalid_naming_the_element(resource: dict[str, Any], element: str) -> None:
    with pytest.raises(FhirInvalidError, match=element) as caught:
        fhir_to_events_payloads(resource)
    assert caught.value.reason == "FHIR_INVALID"


def test_r5_decision_is_the_base_rule_and_provisions_negate_their_parent() -> None:
    (basic,) = fhir_to_events_payloads(ex.R5_BASIC)
    assert basic == ConsentDecision(
        OPTIN, ANY, ALL, "*", ms("1964-01-01T00:00:00+00:00"), ms("2016-01-02T00:00:00+00:00")
    )
    assert fhir_to_events_payloads(ex.R5_NOT_ORG) == [
        ConsentDecision(OPTIN, ANY, ALL, "*"),
        ConsentDecision(OPTOUT, ANY, ALL, "RXX"),
    ]
    assert fhir_to_events_payloads(ex.R5_GRANTEE) == [ConsentDecision(OPTIN, ANY, ALL, "A81001")]
    assert fhir_nhs_number(ex.R5_PKB) == ex.NHS


def test_r5_pkb_means_what_the_r4_pkb_means() -> None:
    r5 = fhir_to_events_payloads(ex.R5_PKB)
    assert r5 == [
        ConsentDecision(OPTOUT, ANY, ALL, "*"),
        ConsentDecision(OPTIN, ANY, ALL, "A81001"),
        ConsentDecision(OPTIN, PurposeOfUse.TREAT, ALL, "B82002"),
        ConsentDecision(OPTOUT, PurposeOfUse.TREAT, DataClass.PSY, "B82002"),
    ]
    assert r5 == fhir_to_events_payloads(ex.PKB)[:4]


def test_one_resource_expands_to_at_most_the_documented_number_of_events() -> None:
    resource = copy.deepcopy(ex.TPO)
    codes = [c.value for c in PurposeOfUse if c is not PurposeOfUse.ANY]
    labels = [c for c in ("PSY", "HIV", "SDV", "STD", "SUD", "ETH", "GDIS", "SEX", "LOCIS")]
    resource["provision"]["purpose"] = [ex.purpose(c) for c in codes]
    resource["provision"]["securityLabel"] = [ex.label(c) for c in labels]
    resource["provision"]["actor"] = [ex.org(f"R{i:03d}") for i in range(8)]
    assert len(codes) * len(labels) * 8 > MAX_FHIR_EVENTS
    with pytest.raises(FhirUnsupportedError, match=f"more than {MAX_FHIR_EVENTS} events"):
        fhir_to_events_payloads(resource)
    resource["provision"]["actor"] = resource["provision"]["actor"][:1]
    assert len(fhir_to_events_payloads(resource)) == len(codes) * len(labels)


def test_export_writes_locis_for_patient_location_and_reads_back_the_old_code_too() -> None:
    decision = ConsentDecision(OPTOUT, ANY, DataClass.PATLOC, "*")
    resource = consent_to_fhir(decision, nhs_number=ex.NHS, recorded_ms=0)
    assert resource["provision"]["securityLabel"] == [ex.label("LOCIS")]
    assert fhir_to_events_payloads(resource) == [decision]
    resource["provision"]["securityLabel"] = [ex.label("PATLOC")]  # what earlier releases wrote
    assert fhir_to_events_payloads(resource) == [decision]


def test_r5_objection_is_carried_by_regulatory_basis_and_status() -> None:
    kind = {"coding": [{"system": "urn:uk-nhs-consent:objection-kind", "code": "NDOP"}]}
    register = {**ex.R5_BASIC, "regulatoryBasis": [kind]}
    withdraw = {**register, "status": "inactive"}
    assert fhir_to_events_payloads(register) == [Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER)]
    assert fhir_to_events_payloads(withdraw) == [Objection(ObjectionKind.NDOP, ObjectionAction.WITHDRAW)]


def test_r5_nested_provisions_alternate_at_any_depth() -> None:
    provision: dict[str, Any] = {"purpose": [ex.purpose("TREAT")]}
    for _ in range(9):
        provision = {"provision": [provision]}
    got = fhir_to_events_payloads({**ex.R5_BASIC, "decision": "deny", "provision": [provision]})
    assert [d.directive for d in got] == [
        OPTOUT,
        OPTIN,
        OPTOUT,
        OPTIN,
        OPTOUT,
        OPTIN,
        OPTOUT,
        OPTIN,
        OPTOUT,
        OPTIN,
        OPTOUT,
    ]  # type: ignore[union-attr]
    assert got[-1].purpose is PurposeOfUse.TREAT  # type: ignore[union-attr]


def test_r5_subject_by_literal_reference_is_refused_by_policy() -> None:
    with pytest.raises(FhirUnsupportedError, match=r"Consent\.subject\.identifier must be an NHS number"):
        fhir_nhs_number({**ex.R5_BASIC, "subject": {"reference": "Patient/f001"}})
