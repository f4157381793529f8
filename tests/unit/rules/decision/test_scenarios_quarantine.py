"""Rule 10 (issue 14): a protective request never fails open silently.

Source: the Government response to the Caldicott review, 10.6 (shielding requirements protect a
child's location or identity, used only when absolutely necessary, on an assessment of risk) and the
revised principle 7 (the duty to share can be as important as the duty to protect): a shielding SET
from a role without authority is kept in quarantine, visible with its reason code, alerted to the
safeguarding lead (the reconciler's SHIELDING_QUARANTINED alert) and honoured by decisions until an
authorised SET or CLEAR later than it decides.
"""

from __future__ import annotations

from consent_rules.decision import Obligation, Outcome, decide
from consent_wire.codes import DataClass, HiddenField, PurposeOfUse, ShieldingAction

from .factories import DAY_MS, NOW_MS, request, requester, shield, state_of


def test_unauthorised_shielding_set_is_honoured_provisionally_and_said() -> None:
    """10.6: the location of a child at risk is not released while the safeguarding lead decides."""
    state = state_of([shield((HiddenField.LOCATION,), role="RECEPTIONIST")])
    d = decide(request(requester(), PurposeOfUse.TREAT, (DataClass.GENERAL, DataClass.PATLOC)), state)
    assert state.shielding is None and state.quarantine is not None
    assert d.outcome is Outcome.PERMIT_WITH_OBLIGATIONS
    assert d.codes == ("DIRECT_CARE_IMPLIED_CONSENT", "SHIELDING_QUARANTINED")
    assert d.permitted == (DataClass.GENERAL,)
    assert d.withheld == (DataClass.PATLOC,)
    assert d.obligations == (Obligation.REDACT_LOCATION, Obligation.WITHHOLD_DATA_CLASSES)


def test_the_safeguarding_leads_later_clear_answers_the_quarantine() -> None:
    """10.6: shielding only when absolutely necessary - the authorised decision, once made, governs."""
    state = state_of(
        [
            shield((HiddenField.LOCATION,), role="RECEPTIONIST", at_ms=NOW_MS - 3 * DAY_MS),
            shield(action=ShieldingAction.CLEAR, role="SAFEGUARDING_LEAD", at_ms=NOW_MS - DAY_MS),
        ]
    )
    d = decide(request(requester(), PurposeOfUse.TREAT, (DataClass.PATLOC,)), state)
    assert state.quarantine is not None  # still visible in the state, with its reason
    assert state.pending_quarantine is None
    assert d.outcome is Outcome.PERMIT
    assert d.codes == ("DIRECT_CARE_IMPLIED_CONSENT",)


def test_an_earlier_authorised_clear_does_not_answer_a_later_quarantined_set() -> None:
    """Principle 7 and 10.6: a new protective request is a new risk; an older decision does not answer it."""
    state = state_of(
        [
            shield(action=ShieldingAction.CLEAR, role="SAFEGUARDING_LEAD", at_ms=NOW_MS - 3 * DAY_MS),
            shield((HiddenField.CONTACT,), role="RECEPTIONIST", at_ms=NOW_MS - DAY_MS),
        ]
    )
    d = decide(request(requester(), PurposeOfUse.TREAT, (DataClass.CONTACT, DataClass.GENERAL)), state)
    assert d.codes == ("DIRECT_CARE_IMPLIED_CONSENT", "SHIELDING_QUARANTINED")
    assert d.permitted == (DataClass.GENERAL,)
    assert Obligation.REDACT_CONTACT in d.obligations
