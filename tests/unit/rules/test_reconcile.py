"""The reconciler core: what the Kafka stage is told to write for each event."""

from __future__ import annotations

import orjson
import pytest

from consent_rules.reconcile import Outcome, ReconcileOutput, Reconciler
from consent_rules.state import PatientMismatchError, PatientState, empty_state, replay
from consent_wire.codes import (
    BreachSeverity,
    ConsentDirective,
    DataClass,
    HiddenField,
    PurposeOfUse,
    ShieldingAction,
)
from consent_wire.model import BreachReport, ConsentDecision, Event, ShieldingFlag
from tests.unit.rules.state.strategies import BASE_MS, PATIENT, hlc_of, make_event


def grant(ms: int = BASE_MS) -> Event:
    decision = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.GENERAL, "RX1")
    return make_event(decision, hlc=hlc_of(ms))


def flag(action: ShieldingAction, role: str, ms: int) -> Event:
    payload = ShieldingFlag(action, (HiddenField.LOCATION,), role, "DOMESTIC_ABUSE")
    return make_event(payload, hlc=hlc_of(ms), event_id=f"{ms:032x}")


def test_consent_event_yields_new_state_bytes_and_no_shielding_record() -> None:
    event = grant()
    out = Reconciler().process(event, (2, 17))
    assert out.outcome is Outcome.APPLIED
    assert out.shielding_bytes is None and out.reason is None
    assert out.state_bytes is not None
    state = PatientState.from_bytes(out.state_bytes)
    assert state.provenance["consent/TREAT/GENERAL/RX1"].source == (2, 17)


def test_redelivered_event_is_a_duplicate_with_nothing_to_write() -> None:
    rec, event = Reconciler(), grant()
    rec.process(event, (0, 1))
    assert rec.process(event, (0, 1)) == ReconcileOutput(Outcome.DUPLICATE, PATIENT)


def test_shielding_set_emits_minimal_shielding_record_without_reason() -> None:
    event = flag(ShieldingAction.SET, "GP", BASE_MS)
    out = Reconciler().process(event, (1, 5))
    assert out.shielding_bytes is not None
    assert orjson.loads(out.shielding_bytes) == {
        "patient_key": PATIENT,
        "active": True,
        "hides": ["LOCATION"],
        "stamp": {"hlc": event.hlc, "agent_id": "agent-a", "event_id": event.event_id},
    }


def test_older_shielding_event_arriving_late_changes_state_but_not_the_shielding_record() -> None:
    rec = Reconciler()
    rec.process(flag(ShieldingAction.SET, "GP", BASE_MS + 1))
    out = rec.process(flag(ShieldingAction.CLEAR, "GP", BASE_MS))
    assert out.outcome is Outcome.APPLIED
    assert out.state_bytes is not None and out.shielding_bytes is None


def test_unauthorised_clear_is_rejected_and_leaves_state_untouched() -> None:
    rec = Reconciler()
    rec.process(flag(ShieldingAction.SET, "GP", BASE_MS))
    before = rec.state(PATIENT)
    out = rec.process(flag(ShieldingAction.CLEAR, "RECEPTIONIST", BASE_MS + 1))
    assert out == ReconcileOutput(Outcome.REJECTED, PATIENT, reason="UNAUTHORISED_SHIELDING_CLEAR")
    assert rec.state(PATIENT) is before


def test_unauthorised_set_is_quarantined_with_new_state_and_no_shielding_record() -> None:
    """Issue 14, rule 10: kept in the state (the stage writes it and alerts), never applied to shielding."""
    rec = Reconciler()
    out = rec.process(flag(ShieldingAction.SET, "RECEPTIONIST", BASE_MS), (0, 4))
    assert (out.outcome, out.reason, out.shielding_bytes) == (Outcome.QUARANTINED, "UNAUTHORISED_SHIELDING_SET", None)
    assert out.state is not None and out.state.shielding is None
    assert out.state.quarantine is not None and out.state.quarantine.role == "RECEPTIONIST"
    assert rec.state(PATIENT) == out.state
    assert rec.process(flag(ShieldingAction.SET, "RECEPTIONIST", BASE_MS), (0, 4)).outcome is Outcome.DUPLICATE


def test_breach_report_is_ignored() -> None:
    report = BreachReport("RX1", BreachSeverity.LEVEL_1, "LOST_IN_TRANSIT", "", "", True, 1)
    out = Reconciler().process(make_event(report, hlc=hlc_of(BASE_MS), patient_key=""))
    assert out == ReconcileOutput(Outcome.IGNORED, "")


def test_restore_then_replay_from_an_earlier_offset_converges() -> None:
    first, second = grant(BASE_MS), grant(BASE_MS + 1)
    live = Reconciler()
    live.process(first, (0, 0))
    checkpoint = live.state(PATIENT).to_bytes()
    live.process(second, (0, 1))
    restarted = Reconciler()
    restarted.restore(PATIENT, checkpoint)
    outs = [restarted.process(first, (0, 0)), restarted.process(second, (0, 1))]
    assert [o.outcome for o in outs] == [Outcome.DUPLICATE, Outcome.APPLIED]
    assert outs[1].state_bytes == live.state(PATIENT).to_bytes()
    assert len(restarted) == 1


def test_restore_refuses_a_record_under_another_key() -> None:
    with pytest.raises(PatientMismatchError):
        Reconciler().restore("beef", empty_state(PATIENT).to_bytes())


def test_unknown_patient_starts_empty() -> None:
    assert Reconciler().state(PATIENT) == replay(PATIENT, [])


def test_forget_drops_held_state_for_moved_partitions() -> None:
    rec = Reconciler()
    rec.process(grant(), (0, 0))
    rec.forget([PATIENT, "beef"])
    assert len(rec) == 0
    assert rec.state(PATIENT) == empty_state(PATIENT)
