"""De-identified requests (issue 14): the identifiability of the data on the request.

Sources: NHS Digital, *National data opt-out operational policy guidance* (the opt-out covers
confidential patient information, "identifiable or likely identifiable"; data anonymised in line with
the ICO code of practice are outside it); the Government response to the Caldicott review, 7.3-7.7
(moving to de-identified data as the norm for commissioning; "linked but anonymised data sets").
"""

from __future__ import annotations

from dataclasses import replace

from consent_rules.decision import DecisionRequest, Identifiability, Outcome, decide, parse_request
from consent_wire.codes import ConsentDirective, LegalBasis, ObjectionKind, PurposeOfUse

from .factories import NOW_MS, PATIENT, consent, objection, request, researcher, state_of


def _planning(level: Identifiability) -> DecisionRequest:
    return replace(request(researcher(), PurposeOfUse.HOPERAT, legal_basis=LegalBasis.S251), identifiability=level)


def test_anonymised_data_fall_outside_the_national_opt_out_and_type_1() -> None:
    """NDOP guidance: data anonymised in line with the ICO code are not confidential patient information."""
    state = state_of([objection(ObjectionKind.NDOP), objection(ObjectionKind.TYPE1)])
    d = decide(_planning(Identifiability.ANONYMISED), state)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.codes == ("ANONYMISED_OUTSIDE_OPT_OUT", "S251_APPROVAL", "MINIMUM_DATA_SET")


def test_pseudonymised_data_are_still_covered_by_the_opt_out() -> None:
    """NDOP guidance: "identifiable or likely identifiable" - pseudonymised data are likely identifiable."""
    state = state_of([objection(ObjectionKind.NDOP)])
    d = decide(_planning(Identifiability.PSEUDONYMISED), state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("NDOP_ACTIVE",)


def test_an_explicit_refusal_still_holds_for_anonymised_data() -> None:
    """Product choice (docs/decision-rules.md): the anonymisation claim does not lift an explicit refusal."""
    state = state_of([consent(ConsentDirective.OPTOUT, PurposeOfUse.HOPERAT)])
    d = decide(_planning(Identifiability.ANONYMISED), state)
    assert d.outcome is Outcome.DENY
    assert "CONSENT_WITHDRAWN" in d.codes


def test_identifiability_travels_in_the_json_request_and_defaults_to_identifiable() -> None:
    body = {
        "nhs_number": "9434765919",
        "purpose": "HOPERAT",
        "data_classes": ["GENERAL"],
        "legal_basis": "S251",
        "identifiability": "ANONYMISED",
        "requester": {
            "organisation": "RESLAB1",
            "role": "RESEARCHER",
            "registered": True,
            "relationship": "NONE",
            "care_team": False,
        },
    }
    assert parse_request(body, lambda _: PATIENT, NOW_MS).request.identifiability is Identifiability.ANONYMISED
    del body["identifiability"]
    assert parse_request(body, lambda _: PATIENT, NOW_MS).request.identifiability is Identifiability.IDENTIFIABLE
