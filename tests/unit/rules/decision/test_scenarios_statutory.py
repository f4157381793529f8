"""Statutory sensitive classes (issue 14): restricted by default beyond the common-law duty.

Sources: Human Fertilisation and Embryology Act 1990 s33A (fertility treatment information: with
consent, a legal requirement, or to avert imminent danger when consent cannot be obtained); Gender
Recognition Act 2004 s22 and SI 2005/635 (gender history: with consent, legal proceedings, or medical
purposes where the person cannot consent); adoption case records (Adoption Agencies Regulations 2005,
regs 41-42). Revised principle 3 (use the minimum necessary).
"""

from __future__ import annotations

from dataclasses import replace

from consent_rules.decision import AccessRight, Obligation, Outcome, OverrideEvidence, StatutoryClass, decide
from consent_wire.codes import ConsentDirective, LegalBasis, PurposeOfUse

from .factories import consent, request, requester, researcher, state_of

FERT, GRA, ADOPT = StatutoryClass.FERTILITY, StatutoryClass.GENDER_HISTORY, StatutoryClass.ADOPTION
ALL_THREE = (FERT, GRA, ADOPT)


def test_direct_care_on_implied_consent_does_not_open_the_restricted_classes() -> None:
    """HFE Act s33A, GRA s22: implied consent for direct care is not the person's consent to these."""
    d = decide(replace(request(requester(), PurposeOfUse.TREAT), statutory_classes=ALL_THREE), state_of([]))
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.codes == ("DIRECT_CARE_IMPLIED_CONSENT", "STATUTORY_RESTRICTION")
    assert d.obligations == (
        Obligation.WITHHOLD_FERTILITY_DATA,
        Obligation.WITHHOLD_GENDER_HISTORY,
        Obligation.WITHHOLD_ADOPTION_RECORDS,
    )


def test_explicit_consent_or_the_persons_own_request_opens_them() -> None:
    """s33A and s22: disclosure with the person's consent; the person's own access (UK GDPR art 15)."""
    state = state_of([consent(ConsentDirective.OPTIN, PurposeOfUse.HRESCH)])
    research = decide(replace(request(researcher(), PurposeOfUse.HRESCH), statutory_classes=(FERT,)), state)
    own = decide(
        replace(request(requester(), PurposeOfUse.TREAT), statutory_classes=ALL_THREE, access_right=AccessRight.SELF),
        state_of([]),
    )
    assert "STATUTORY_RESTRICTION" not in research.codes and research.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert "STATUTORY_RESTRICTION" not in own.codes


def test_an_emergency_opens_fertility_and_gender_history_but_not_adoption_records() -> None:
    """s33A (imminent danger, consent impracticable); SI 2005/635 (person cannot consent)."""
    req = replace(request(requester(role="ED_DOCTOR"), PurposeOfUse.BTG), statutory_classes=ALL_THREE)
    d = decide(req, state_of([]))
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert "STATUTORY_RESTRICTION" in d.codes
    assert Obligation.WITHHOLD_ADOPTION_RECORDS in d.obligations
    assert Obligation.WITHHOLD_FERTILITY_DATA not in d.obligations
    assert Obligation.WITHHOLD_GENDER_HISTORY not in d.obligations


def test_a_court_order_opens_them() -> None:
    """s33A(2) and GRA s22(4): a court order or other legal requirement (evidenced, rule 4)."""
    order = OverrideEvidence(instrument="Order of the Family Court, case FD25P00001")
    req = replace(
        request(researcher(), PurposeOfUse.HOPERAT, legal_basis=LegalBasis.STATUTORY_MANDATE, evidence=order),
        statutory_classes=ALL_THREE,
    )
    d = decide(req, state_of([]))
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert "STATUTORY_RESTRICTION" not in d.codes
