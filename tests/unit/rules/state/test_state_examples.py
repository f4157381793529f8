"""Exact-outcome examples of the per-patient merge."""

from __future__ import annotations

import pytest

from consent_rules.shielding import UnauthorisedShieldingClearError
from consent_rules.state import (
    NATIONAL,
    PatientMismatchError,
    PatientState,
    Provenance,
    QuarantinedShielding,
    Stamp,
    apply,
    classify,
    effective_consent,
    empty_state,
    merge,
    replay,
)
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)
from consent_wire.model import AccessRecord, ConsentDecision, Event, Objection, ShieldingFlag

from .strategies import BASE_MS, PATIENT, hlc_of, make_event

OPTIN, OPTOUT = ConsentDirective.OPTIN, ConsentDirective.OPTOUT
TREAT, ANY = PurposeOfUse.TREAT, PurposeOfUse.ANY
ALL, GENERAL = DataClass.ALL, DataClass.GENERAL
KEY = (TREAT, GENERAL, "RX1")


def consent(
    directive: ConsentDirective,
    ms: int,
    *,
    purpose: PurposeOfUse = TREAT,
    data_class: DataClass = GENERAL,
    recipient: str = "RX1",
    period_start_ms: int | None = None,
    period_end_ms: int | None = None,
) -> Event:
    decision = ConsentDecision(directive, purpose, data_class, recipient, period_start_ms, period_end_ms)
    return make_event(decision, hlc=hlc_of(ms))


def shield(action: ShieldingAction, role: str, ms: int) -> Event:
    flag = ShieldingFlag(action, (HiddenField.LOCATION, HiddenField.CONTACT), role, "DOMESTIC_ABUSE")
    return make_event(flag, hlc=hlc_of(ms))


def test_later_withdrawal_wins_regardless_of_arrival_order() -> None:
    grant, withdraw = consent(OPTIN, BASE_MS), consent(OPTOUT, BASE_MS + 1)
    in_order = replay(PATIENT, [grant, withdraw])
    late_grant = replay(PATIENT, [withdraw, grant])
    assert in_order.consents[KEY].directive is OPTOUT
    assert in_order.consents[KEY].stamp.event_id == withdraw.event_id
    assert late_grant.to_bytes() == in_order.to_bytes()
    assert in_order.applied == {grant.event_id, withdraw.event_id}
    assert in_order.version == 2


def test_offline_agent_with_slow_clock_loses_to_higher_hlc_whatever_it_recorded_later() -> None:
    online = make_event(ConsentDecision(OPTOUT, TREAT, GENERAL, "RX1"), hlc=hlc_of(BASE_MS), agent_id="a")
    offline = make_event(ConsentDecision(OPTIN, TREAT, GENERAL, "RX1"), hlc=hlc_of(BASE_MS - 3_600_000), agent_id="b")
    assert replay(PATIENT, [online, offline]).consents[KEY].directive is OPTOUT


def test_equal_hlc_breaks_tie_by_agent_id_then_event_id() -> None:
    payload = ConsentDecision(OPTIN, TREAT, GENERAL, "RX1")
    a = make_event(payload, hlc=hlc_of(BASE_MS), agent_id="agent-z", event_id="0" * 32)
    b = make_event(payload, hlc=hlc_of(BASE_MS), agent_id="agent-a", event_id="f" * 32)
    c = make_event(payload, hlc=hlc_of(BASE_MS), agent_id="agent-z", event_id="1" * 32)
    assert replay(PATIENT, [a, b, c]).consents[KEY].stamp == Stamp(hlc_of(BASE_MS), "agent-z", "1" * 32)


def test_unauthorised_shielding_clear_is_not_applied() -> None:
    set_flag = shield(ShieldingAction.SET, "GP", BASE_MS)
    bad_clear = shield(ShieldingAction.CLEAR, "RECEPTIONIST", BASE_MS + 1)
    state = replay(PATIENT, [set_flag, bad_clear])
    assert classify(bad_clear) == UnauthorisedShieldingClearError.reason == "UNAUTHORISED_SHIELDING_CLEAR"
    assert state.shielding is not None
    assert state.shielding.active is True
    assert state.shielding.hides == (HiddenField.CONTACT, HiddenField.LOCATION)
    assert state.applied == {set_flag.event_id}


def test_unauthorised_shielding_set_is_quarantined_not_applied() -> None:
    """Issue 14, rule 10: a protective request from a role without authority is kept, never dropped."""
    bad_set = shield(ShieldingAction.SET, "NURSE", BASE_MS)
    assert classify(bad_set) == "UNAUTHORISED_SHIELDING_SET"
    state = apply(empty_state(PATIENT), bad_set, (3, 9))
    assert state.shielding is None
    assert state.quarantine == QuarantinedShielding(
        (HiddenField.CONTACT, HiddenField.LOCATION), "NURSE", "UNAUTHORISED_SHIELDING_SET", Stamp.of(bad_set), (3, 9)
    )
    assert state.pending_quarantine == state.quarantine
    assert state.provenance["quarantine/shielding"] == Provenance(bad_set.event_id, (3, 9))
    assert PatientState.from_bytes(state.to_bytes()) == state


def test_a_later_authorised_shielding_event_answers_the_quarantine_an_earlier_one_does_not() -> None:
    bad_set = shield(ShieldingAction.SET, "NURSE", BASE_MS)
    earlier = shield(ShieldingAction.CLEAR, "SAFEGUARDING_LEAD", BASE_MS - 1)
    later = shield(ShieldingAction.CLEAR, "SAFEGUARDING_LEAD", BASE_MS + 1)
    assert replay(PATIENT, [bad_set, earlier]).pending_quarantine is not None
    answered = replay(PATIENT, [later, bad_set])
    assert answered.pending_quarantine is None
    assert answered.quarantine is not None  # still visible, with its reason


def test_authorised_shielding_clear_deactivates_and_hides_nothing() -> None:
    state = replay(
        PATIENT,
        [
            shield(ShieldingAction.CLEAR, "SAFEGUARDING_LEAD", BASE_MS + 1),
            shield(ShieldingAction.SET, "GP", BASE_MS),
        ],
    )
    assert state.shielding is not None
    assert (state.shielding.active, state.shielding.hides) == (False, ())


def test_objection_withdrawal_after_registration_is_inactive_with_sorted_exemptions() -> None:
    exemptions = (LegalBasis.STATUTORY_MANDATE, LegalBasis.S251, LegalBasis.S251)
    register = make_event(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, exemptions), hlc=hlc_of(BASE_MS))
    withdraw = make_event(Objection(ObjectionKind.NDOP, ObjectionAction.WITHDRAW), hlc=hlc_of(BASE_MS + 5))
    registered = replay(PATIENT, [register]).objections[(ObjectionKind.NDOP, NATIONAL)]
    assert (registered.active, registered.exemptions) == (
        True,
        (LegalBasis.S251, LegalBasis.STATUTORY_MANDATE),
    )
    assert registered.site == "A81001"
    assert replay(PATIENT, [withdraw, register]).objections[(ObjectionKind.NDOP, NATIONAL)].active is False


def test_access_record_changes_neither_registers_nor_applied() -> None:
    access = AccessRecord("c0ffee", "RX1", "GP", True, Relationship.LEGITIMATE, TREAT, (GENERAL,))
    state = replay(PATIENT, [consent(OPTIN, BASE_MS)])
    assert apply(state, make_event(access, hlc=hlc_of(BASE_MS + 1))) is state


def test_consent_with_period_ending_before_it_starts_is_rejected() -> None:
    bad = consent(OPTIN, BASE_MS, period_start_ms=BASE_MS, period_end_ms=BASE_MS)
    assert classify(bad) == "INVALID_PERIOD"
    assert replay(PATIENT, [bad]).consents == {}


def test_state_event_without_patient_key_is_rejected() -> None:
    orphan = make_event(ConsentDecision(OPTIN, TREAT, GENERAL, "RX1"), hlc=hlc_of(BASE_MS), patient_key="")
    assert classify(orphan) == "MISSING_PATIENT_KEY"


def test_apply_refuses_an_event_for_another_patient() -> None:
    other = make_event(ConsentDecision(OPTIN, TREAT, GENERAL, "RX1"), hlc=hlc_of(BASE_MS), patient_key="beef")
    with pytest.raises(PatientMismatchError) as info:
        apply(empty_state(PATIENT), other)
    assert info.value.reason == "PATIENT_KEY_MISMATCH"


def test_merge_refuses_states_of_two_patients() -> None:
    with pytest.raises(PatientMismatchError):
        merge(empty_state(PATIENT), empty_state("beef"))


def test_replay_skips_events_of_other_patients() -> None:
    other = make_event(ConsentDecision(OPTIN, TREAT, GENERAL, "RX1"), hlc=hlc_of(BASE_MS), patient_key="beef")
    assert replay(PATIENT, [other]) == empty_state(PATIENT)


def test_replay_as_at_ignores_events_stamped_after_it() -> None:
    grant, withdraw = consent(OPTIN, BASE_MS), consent(OPTOUT, BASE_MS + 10)
    before = replay(PATIENT, [withdraw, grant], as_at_hlc=hlc_of(BASE_MS + 9))
    assert before.consents[KEY].directive is OPTIN
    assert before.applied == {grant.event_id}
    assert replay(PATIENT, [withdraw, grant], as_at_hlc=withdraw.hlc).consents[KEY].directive is OPTOUT


def test_exact_recipient_permission_beats_an_older_wildcard_refusal() -> None:
    state = replay(PATIENT, [consent(OPTOUT, BASE_MS, recipient="*"), consent(OPTIN, BASE_MS + 1)])
    reg = effective_consent(state, TREAT, GENERAL, "RX1", BASE_MS)
    assert reg is not None and reg.directive is OPTIN
    other = effective_consent(state, TREAT, GENERAL, "Y02", BASE_MS)
    assert other is not None and other.directive is OPTOUT


def test_later_wildcard_withdrawal_beats_an_older_exact_recipient_permission() -> None:
    """Issue 14, rule 2: a withdrawal takes effect when made, for everything it covers.

    This replaces ``test_exact_recipient_beats_wildcard_even_when_older``, which enshrined the old
    rule (specificity before time, so a consent for one recipient survived the patient's later,
    unqualified opt-out).
    """
    state = replay(PATIENT, [consent(OPTIN, BASE_MS), consent(OPTOUT, BASE_MS + 1, recipient="*")])
    reg = effective_consent(state, TREAT, GENERAL, "RX1", BASE_MS)
    assert reg is not None and reg.directive is OPTOUT


def test_recipient_specificity_outranks_purpose_and_data_class_specificity() -> None:
    wide_purpose = consent(OPTOUT, BASE_MS, purpose=ANY, data_class=ALL)
    wide_recipient = consent(OPTIN, BASE_MS + 1, recipient="*")
    reg = effective_consent(replay(PATIENT, [wide_purpose, wide_recipient]), TREAT, GENERAL, "RX1", BASE_MS)
    assert reg is not None and reg.stamp.event_id == wide_purpose.event_id


def test_exact_purpose_beats_any_and_exact_data_class_beats_all() -> None:
    """Specificity ranks registers that no later withdrawal overrides (the refusals here are older)."""
    any_purpose = consent(OPTOUT, BASE_MS, purpose=ANY)
    all_classes = consent(OPTIN, BASE_MS + 1, data_class=ALL)
    state = replay(PATIENT, [any_purpose, all_classes])
    reg = effective_consent(state, TREAT, GENERAL, "RX1", BASE_MS)
    assert reg is not None and reg.stamp.event_id == all_classes.event_id
    exact = consent(OPTOUT, BASE_MS - 1, purpose=ANY, data_class=GENERAL)
    reg = effective_consent(apply(state, exact), TREAT, GENERAL, "RX1", BASE_MS)
    assert reg is not None and reg.stamp.event_id == all_classes.event_id


def test_expired_specific_consent_falls_back_to_wider_scope_and_end_is_exclusive() -> None:
    end = BASE_MS + 1000
    specific = consent(OPTIN, BASE_MS + 1, period_start_ms=BASE_MS, period_end_ms=end)
    wide = consent(OPTOUT, BASE_MS, recipient="*")
    state = replay(PATIENT, [specific, wide])
    inside = effective_consent(state, TREAT, GENERAL, "RX1", end - 1)
    at_end = effective_consent(state, TREAT, GENERAL, "RX1", end)
    before_start = effective_consent(state, TREAT, GENERAL, "RX1", BASE_MS - 1)
    assert inside is not None and inside.directive is OPTIN
    assert at_end is not None and at_end.directive is OPTOUT
    assert before_start is not None and before_start.directive is OPTOUT


def test_no_matching_register_gives_none() -> None:
    state = replay(PATIENT, [consent(OPTIN, BASE_MS, recipient="Y02")])
    assert effective_consent(state, TREAT, GENERAL, "RX1", BASE_MS) is None
    assert effective_consent(state, PurposeOfUse.HRESCH, GENERAL, "Y02", BASE_MS) is None


def test_provenance_names_the_winning_event_and_its_source() -> None:
    grant, withdraw = consent(OPTIN, BASE_MS), consent(OPTOUT, BASE_MS + 1)
    state = apply(apply(empty_state(PATIENT), withdraw, (3, 42)), grant, (1, 7))
    assert state.provenance == {"consent/TREAT/GENERAL/RX1": Provenance(withdraw.event_id, (3, 42))}


def test_source_is_kept_when_the_same_event_is_redelivered_without_one() -> None:
    grant = consent(OPTIN, BASE_MS)
    with_source = apply(empty_state(PATIENT), grant, (2, 9))
    assert apply(with_source, grant) == with_source
    assert apply(apply(empty_state(PATIENT), grant), grant, (2, 9)) == with_source
    assert with_source.consents[KEY].source == (2, 9)
