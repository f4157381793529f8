"""Data-sharing agreements (issue 14): the register and the decision's check.

Source: the Government response to the Caldicott review, recommendation 20 and 12.5 (data controller
to data controller agreements set out the common rules of a sharing operation, "particularly to
support issues around sharing with non-registered, non-regulated staff"); rec 3 for unregistered
staff. Exercised through the JSON request parser and :func:`decide`.
"""

from __future__ import annotations

from dataclasses import replace

from consent_rules.decision import DataSharingAgreement, DecisionPolicy, Outcome, decide, parse_request
from consent_rules.decision.request import DecisionRequest
from consent_wire.codes import ConsentDirective, DataClass, LegalBasis, PurposeOfUse

from .factories import (
    CARE_HOME,
    DAY_MS,
    NOW_MS,
    PATIENT,
    RESEARCH_UNIT,
    consent,
    request,
    requester,
    researcher,
    state_of,
)

DSA = DataSharingAgreement(
    "DSA-2025-014",
    frozenset({RESEARCH_UNIT, CARE_HOME}),
    frozenset({PurposeOfUse.HRESCH, PurposeOfUse.TREAT}),
    frozenset({DataClass.GENERAL}),
    expires_ms=NOW_MS + 30 * DAY_MS,
)
POLICY = DecisionPolicy(agreements={DSA.reference: DSA}, agreements_required=True)
STATE = state_of([consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH)])


def _research(ref: str = DSA.reference, classes: tuple[DataClass, ...] = (DataClass.GENERAL,)) -> DecisionRequest:
    return replace(request(researcher(), PurposeOfUse.HRESCH, classes), agreement_ref=ref)


def test_a_use_beyond_direct_care_under_its_agreement_is_decided_on_as_before() -> None:
    """Rec 20: the agreement names the parties, purposes and classes; within it the usual rules apply."""
    d = decide(_research(), STATE, POLICY)
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.codes == ("UNDER_AGREEMENT", "EXPLICIT_CONSENT", "MINIMUM_DATA_SET")
    assert "DSA-2025-014" in d.reasons[0]


def test_a_use_beyond_direct_care_naming_no_or_an_unknown_agreement_is_denied() -> None:
    """Rec 20: sharing between controllers rests on a registered agreement."""
    for ref in ("", "DSA-1999-001"):
        d = decide(_research(ref), STATE, POLICY)
        assert d.outcome is Outcome.DENY
        assert d.codes == ("AGREEMENT_MISSING",)


def test_an_expired_agreement_a_non_party_or_an_uncovered_purpose_is_denied() -> None:
    """Rec 20: an agreement binds its parties, for its purposes, while in force."""
    expired = decide(replace(_research(), at_ms=NOW_MS + 31 * DAY_MS), STATE, POLICY)
    stranger = decide(replace(_research(), requester=researcher("OTHERLAB")), STATE, POLICY)
    planning = decide(replace(_research(), purpose=PurposeOfUse.HOPERAT, legal_basis=LegalBasis.S251), STATE, POLICY)
    assert expired.codes == ("AGREEMENT_EXPIRED",)
    assert stranger.codes == ("AGREEMENT_NOT_A_PARTY",)
    assert planning.codes == ("AGREEMENT_PURPOSE_NOT_COVERED",)
    assert {expired.outcome, stranger.outcome, planning.outcome} == {Outcome.DENY}


def test_classes_outside_the_agreement_are_withheld() -> None:
    """Principle 3 (minimum necessary) and rec 20: only the data classes agreed are shared."""
    d = decide(_research(classes=(DataClass.GENERAL, DataClass.HIV)), STATE, POLICY)
    assert d.permitted == (DataClass.GENERAL,)
    assert d.withheld == (DataClass.HIV,)
    assert d.codes[:2] == ("DATA_CLASS_NOT_IN_AGREEMENT", "UNDER_AGREEMENT")


def test_unregistered_care_staff_need_an_agreement_registered_clinicians_in_direct_care_do_not() -> None:
    """Rec 20 ("sharing with non-registered, non-regulated staff") and rec 3; registered staff in
    direct care rely on implied consent (recs 2-4)."""
    carer = requester(CARE_HOME, "CARE_WORKER", registered=False)
    without = decide(request(carer, PurposeOfUse.TREAT), state_of([]), POLICY)
    within = decide(replace(request(carer, PurposeOfUse.TREAT), agreement_ref=DSA.reference), state_of([]), POLICY)
    clinician = decide(request(requester(), PurposeOfUse.TREAT), state_of([]), POLICY)
    assert without.codes == ("AGREEMENT_MISSING",)
    assert within.codes == ("UNDER_AGREEMENT", "UNREGISTERED_IN_CARE_TEAM", "DIRECT_CARE_IMPLIED_CONSENT")
    assert clinician.codes == ("DIRECT_CARE_IMPLIED_CONSENT",)


def test_without_a_required_register_nothing_changes_and_the_agreement_travels_in_json() -> None:
    """Backwards compatible: agreements are checked only where a deployment requires them."""
    assert decide(_research(""), STATE).codes == ("EXPLICIT_CONSENT", "MINIMUM_DATA_SET")
    body = {
        "nhs_number": "9434765919",
        "purpose": "HRESCH",
        "data_classes": ["GENERAL"],
        "agreement_ref": DSA.reference,
        "requester": {
            "organisation": RESEARCH_UNIT,
            "role": "RESEARCHER",
            "registered": True,
            "relationship": "NONE",
            "care_team": False,
        },
    }
    parsed = parse_request(body, lambda _: PATIENT, NOW_MS)
    assert parsed.request.agreement_ref == DSA.reference
    assert decide(parsed.request, STATE, POLICY).outcome is Outcome.PERMIT_WITH_OBLIGATIONS


def test_the_consents_policy_ref_is_kept_in_the_state() -> None:
    """Rec 20: the agreement or form a consent was collected under stays with it."""
    from consent_wire.model import ConsentDecision

    from .factories import event

    grant = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, DataClass.ALL, "*", policy_ref="DSA-2025-014")
    state = state_of([event(grant, at_ms=NOW_MS - DAY_MS)])
    assert [r.policy_ref for r in state.consents.values()] == ["DSA-2025-014"]
