"""Patient-facing notices (issue 14): when a patient's wish is set aside, a plain-English notice.

Sources: the Government response to the Caldicott review, rec 7 (people are told how their information
is used, including where it is shared without consent) and the 2020 revised principle 8 ("inform
patients and service users about how their confidential information is used"). The notice comes with
the decision's answer and, for any past decision, with the patient's access log (tests/unit/api).
"""

from __future__ import annotations

from consent_rules.decision import DecisionAnswer, OverrideEvidence, decide
from consent_wire.codes import LegalBasis, ObjectionKind, PurposeOfUse

from .factories import RESEARCH_UNIT, objection, request, requester, researcher, state_of

MANDATE = OverrideEvidence(instrument="Health and Social Care Act 2012 s259 direction")


def test_a_mandate_over_the_opt_out_comes_with_a_plain_english_notice() -> None:
    """Rec 7 and principle 8: the patient is told, in plain words, that and why their objection was set aside."""
    state = state_of([objection(ObjectionKind.NDOP)])
    d = decide(
        request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.STATUTORY_MANDATE, evidence=MANDATE), state
    )
    assert d.notice is not None
    assert d.notice.startswith(f"Your information was shared with organisation {RESEARCH_UNIT} for research.")
    assert "the law required your information to be shared" in d.notice
    assert DecisionAnswer(d, 0, None).to_json()["patient_notice"] == d.notice


def test_no_notice_when_the_wish_was_respected_or_there_was_none_to_set_aside() -> None:
    """Principle 8: notices explain departures from the patient's wishes; a refusal upheld needs none."""
    state = state_of([objection(ObjectionKind.NDOP)])
    denied = decide(request(researcher(), PurposeOfUse.HRESCH, legal_basis=LegalBasis.S251), state)
    care = decide(request(requester(), PurposeOfUse.TREAT), state)
    assert (denied.notice, care.notice) == (None, None)
