"""The patient as requester, proxies, children and deceased patients (issue 14).

Sources: UK GDPR art 15 (the right of access: PATRQT); Children Act 1989 s3 (parental responsibility:
FAMRQT), Family Law Reform Act 1969 s8 and Gillick v West Norfolk and Wisbech AHA [1986] AC 112 (a
young person of 16, or a Gillick-competent child, controls their own confidential information);
Mental Capacity Act 2005 ss9, 16 (lasting power of attorney, deputies: PWATRNY), whose authority ends at
death; Access to Health Records Act 1990 s3(1)(f) (a deceased patient's personal representative); NHS
Digital, *Understanding the national data opt-out* (an opt-out "will remain ... even after they have
died"); the Caldicott review's principle 1 and rec 1 (access recorded and visible to the patient).
"""

from __future__ import annotations

from dataclasses import replace

from consent_rules.decision import AccessRight, Obligation, Outcome, Subject, decide, parse_request
from consent_rules.decision.request import DecisionRequest
from consent_wire.codes import DataClass, HiddenField, LegalBasis, ObjectionKind, PurposeOfUse, Relationship

from .factories import NOW_MS, PATIENT, objection, request, requester, researcher, shield, state_of

UNKNOWN = Subject()
PATIENT_SIDE = requester("PATIENT", "PATIENT", registered=False, relationship=Relationship.NONE, care_team=False)


def _asks(right: AccessRight, subject: Subject = UNKNOWN) -> DecisionRequest:
    return replace(request(PATIENT_SIDE, PurposeOfUse.TREAT), access_right=right, subject=subject)


def test_the_patient_reads_their_own_record_and_the_read_is_recorded() -> None:
    """UK GDPR art 15 (PATRQT); principle 1 and rec 1: the access is recorded in the patient's access log."""
    d = decide(_asks(AccessRight.SELF), state_of([objection(ObjectionKind.NDOP)]))
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.codes == ("PATIENT_ACCESS",)
    assert d.obligations == (Obligation.RECORD_ACCESS,)
    assert d.legal_basis is LegalBasis.CONSENT


def test_a_parent_reads_a_young_childs_record_not_a_gillick_competent_childs_or_a_16_year_olds() -> None:
    """Children Act 1989 s3 (FAMRQT); FLRA 1969 s8 and Gillick: the competent child decides."""
    young = decide(_asks(AccessRight.PARENTAL_RESPONSIBILITY, Subject(age_years=9)), state_of([]))
    competent = decide(_asks(AccessRight.PARENTAL_RESPONSIBILITY, Subject(13, gillick_competent=True)), state_of([]))
    sixteen = decide(_asks(AccessRight.PARENTAL_RESPONSIBILITY, Subject(age_years=16)), state_of([]))
    unknown = decide(_asks(AccessRight.PARENTAL_RESPONSIBILITY), state_of([]))
    assert (young.outcome, young.codes) == (Outcome.PERMIT_WITH_OBLIGATIONS, ("PROXY_ACCESS",))
    assert (competent.outcome, competent.codes) == (Outcome.DENY, ("CHILD_DECIDES",))
    assert (sixteen.outcome, sixteen.codes) == (Outcome.DENY, ("CHILD_DECIDES",))
    assert (unknown.outcome, unknown.codes) == (Outcome.DENY, ("CHILD_AGE_UNKNOWN",))


def test_an_attorney_or_deputy_acts_while_the_patient_lives_a_personal_representative_after_death() -> None:
    """MCA 2005 ss9, 16 (PWATRNY; authority ends at death) and AHRA 1990 s3(1)(f)."""
    living, dead = Subject(age_years=80), Subject(age_years=80, deceased=True)
    attorney = decide(_asks(AccessRight.LASTING_POWER_OF_ATTORNEY, living), state_of([]))
    deputy_after = decide(_asks(AccessRight.COURT_DEPUTY, dead), state_of([]))
    representative = decide(_asks(AccessRight.PERSONAL_REPRESENTATIVE, dead), state_of([]))
    representative_early = decide(_asks(AccessRight.PERSONAL_REPRESENTATIVE, living), state_of([]))
    assert attorney.codes == ("PROXY_ACCESS",)
    assert (deputy_after.outcome, deputy_after.codes) == (
        Outcome.DENY,
        ("DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_AUTHORITY_ENDED"),
    )
    assert representative.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert representative_early.codes == ("PROXY_AUTHORITY_ENDED",)


def test_the_opt_out_and_confidentiality_continue_after_death() -> None:
    """NHS Digital: an opt-out remains after death; the duty of confidence survives the patient."""
    state = state_of([objection(ObjectionKind.NDOP)])
    req = replace(
        request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.S251), subject=Subject(deceased=True)
    )
    d = decide(req, state)
    assert d.outcome is Outcome.DENY
    assert d.codes == ("DECEASED_CONFIDENTIALITY_CONTINUES", "NDOP_ACTIVE")


def test_shielding_still_applies_to_a_proxy() -> None:
    """Rec 10.6: a shielded child's location is hidden from every recipient, a parent included."""
    state = state_of([shield((HiddenField.LOCATION,))])
    req = replace(_asks(AccessRight.PARENTAL_RESPONSIBILITY, Subject(age_years=5)), data_classes=(DataClass.PATLOC,))
    d = decide(req, state)
    assert d.outcome is Outcome.DENY
    assert d.withheld == (DataClass.PATLOC,)


def test_access_right_and_subject_travel_in_the_json_request() -> None:
    body = {
        "nhs_number": "9434765919",
        "purpose": "TREAT",
        "data_classes": ["GENERAL"],
        "access_right": "PARENTAL_RESPONSIBILITY",
        "subject": {"age_years": 9, "gillick_competent": None, "deceased": False},
        "requester": {
            "organisation": "PATIENT",
            "role": "PARENT",
            "registered": False,
            "relationship": "NONE",
            "care_team": False,
        },
    }
    parsed = parse_request(body, lambda _: PATIENT, NOW_MS).request
    assert (parsed.access_right, parsed.subject) == (AccessRight.PARENTAL_RESPONSIBILITY, Subject(9, None, False))
