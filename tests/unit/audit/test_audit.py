"""The audit chain: a clean log verifies, and each kind of tampering is named exactly."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit import (
    GENESIS_HASH,
    AccessView,
    AuditEntry,
    AuditError,
    AuditLog,
    AuditProblem,
    AuditRecord,
    AuditRecordError,
    Checkpoint,
    RecordKind,
    Tamper,
    access_record,
    accesses_for,
    chain_hash,
    decision_record,
    verify,
)
from consent_rules.decision import DecisionRequest, Outcome, Requester, decide
from consent_rules.state import empty_state
from consent_wire.codes import BreachSeverity, DataClass, LegalBasis, PurposeOfUse, Relationship
from consent_wire.model import AccessRecord, BreachReport, Event

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))  # fixed test key
PUB = KEY.public_key()
PATIENTS = ("p1aaaa", "p2bbbb")
T0 = 1_760_000_000_000


def record(i: int, patient: str = PATIENTS[0]) -> AuditRecord:
    return AuditRecord(
        RecordKind.ACCESS,
        T0 + i * 1000,
        patient,
        f"staff-{i}",
        "RX1" if i % 2 else "A81001",
        "NURSE",
        PurposeOfUse.TREAT,
        (DataClass.GENERAL,),
        "VIEWED",
    )


def build(n: int, every: int = 4) -> tuple[list[AuditEntry], list[Checkpoint]]:
    log = AuditLog(checkpoint_every=every)
    for i in range(n):
        log.append(record(i, PATIENTS[i % 2]))
        if log.checkpoint_due:
            log.checkpoint(KEY)
    return list(log.entries), list(log.checkpoints)


def problems(entries: list[AuditEntry], cps: list[Checkpoint]) -> list[tuple[Tamper, int, int | None]]:
    return [(p.kind, p.index, p.other_index) for p in verify(entries, cps, PUB).problems]


def test_clean_log_verifies() -> None:
    entries, cps = build(10)
    result = verify(entries, cps, PUB)
    assert result.ok
    assert (result.entries_checked, result.checkpoints_checked) == (10, 2)
    assert [c.index for c in cps] == [3, 7]
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[5].hash == chain_hash(entries[4].hash, entries[5].record)


def test_edited_record_is_reported_at_its_index() -> None:
    entries, cps = build(10)
    tampered = record(5, PATIENTS[1]).to_bytes().replace(b"VIEWED", b"DENIED")
    entries[5] = replace(entries[5], record=tampered)
    assert problems(entries, cps) == [(Tamper.EDITED, 5, None)]


def test_deleted_record_is_reported_after_the_previous_index() -> None:
    entries, cps = build(10)
    del entries[6]
    assert problems(entries, cps) == [(Tamper.DELETED, 5, 7)]


def test_deletion_with_renumbering_is_a_chain_break() -> None:
    entries, cps = build(10)
    del entries[6]
    entries = [replace(e, index=i) for i, e in enumerate(entries)]
    found = problems(entries, cps)
    assert found[0] == (Tamper.DELETED, 5, None)
    assert (Tamper.CHECKPOINT_MISMATCH, 7, None) in found


def test_two_swapped_records_are_reported_as_reordered() -> None:
    entries, cps = build(10)
    entries[2], entries[8] = entries[8], entries[2]
    assert problems(entries, cps) == [(Tamper.REORDERED, 2, 8)]


def test_records_swapped_in_place_with_indexes_rewritten_are_reordered() -> None:
    entries, cps = build(10)
    a, b = entries[3], entries[4]
    entries[3], entries[4] = replace(b, index=3), replace(a, index=4)
    assert problems(entries, cps) == [(Tamper.REORDERED, 3, 4)]


def test_truncation_of_the_tail_after_a_checkpoint_is_reported() -> None:
    entries, cps = build(10)
    assert problems(entries[:6], cps) == [(Tamper.TRUNCATED, 5, 7)]


def test_rewritten_and_rehashed_history_fails_the_checkpoint() -> None:
    entries, cps = build(8)
    log = AuditLog()
    for i in range(8):
        log.append(record(i, "someone-else") if i == 2 else AuditRecord.from_bytes(entries[i].record))
    assert problems(list(log.entries), cps) == [
        (Tamper.CHECKPOINT_MISMATCH, 3, None),
        (Tamper.CHECKPOINT_MISMATCH, 7, None),
    ]


def test_forged_checkpoint_signature_is_bad_checkpoint() -> None:
    entries, cps = build(8)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    forged = Checkpoint(7, entries[7].hash, other.sign(b"x"))
    assert problems(entries, [cps[0], forged]) == [(Tamper.BAD_CHECKPOINT, 7, None)]


def test_duplicated_entry_is_reported_as_inserted() -> None:
    entries, cps = build(6)
    entries.insert(3, entries[2])
    assert problems(entries, cps) == [(Tamper.INSERTED, 2, None)]


def test_checkpoint_of_empty_log_is_refused() -> None:
    with pytest.raises(AuditError):
        AuditLog().checkpoint(KEY)


def test_bad_checkpoint_interval_is_refused() -> None:
    with pytest.raises(AuditError, match="checkpoint_every"):
        AuditLog(checkpoint_every=0)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 30), st.data())
def test_any_single_edit_or_deletion_is_detected(n: int, data: st.DataObject) -> None:
    entries, cps = build(n, every=3)
    i = data.draw(st.integers(0, n - 1))
    if data.draw(st.booleans()):
        entries[i] = replace(entries[i], record=entries[i].record + b" ")
        assert problems(entries, cps)[0] == (Tamper.EDITED, i, None)
    elif i < n - 1:  # removing the very last entry is visible only via a later checkpoint
        del entries[i]
        assert problems(entries, cps)[0] == (Tamper.DELETED, i - 1, i + 1)


def test_patient_access_list_shows_who_when_why_and_outcome() -> None:
    log = AuditLog()
    req = DecisionRequest(
        Requester("RXA", "RESEARCHER", True, Relationship.NONE, False),
        PurposeOfUse.HRESCH,
        PATIENTS[0],
        (DataClass.GENERAL,),
        None,
        T0 + 5000,
    )
    decision = decide(req, empty_state(PATIENTS[0]))
    log.append(decision_record(req, decision, "staff-r"))
    log.append(record(1, PATIENTS[0]))
    log.append(record(2, PATIENTS[1]))
    views = accesses_for(log.entries, PATIENTS[0])
    entries = log.entries
    assert views == [
        AccessView("staff-1", "RX1", "NURSE", PurposeOfUse.TREAT, T0 + 1000, "VIEWED", RecordKind.ACCESS, "",
                   None, 1, entries[1].record),
        AccessView(
            "staff-r", "RXA", "RESEARCHER", PurposeOfUse.HRESCH, T0 + 5000, Outcome.DENY.value,
            RecordKind.DECISION, "", None, 0, entries[0].record,
        ),
    ]  # fmt: skip


def test_the_patients_access_list_explains_a_decision_that_set_their_wish_aside() -> None:
    """Issue 14 (rec 7, principle 8 of 2020): a plain-English notice the patient can read later."""
    from consent_rules.decision import OverrideEvidence
    from consent_rules.state import replay
    from consent_wire.codes import ObjectionAction, ObjectionKind
    from consent_wire.model import Objection

    ndop = Event("1" * 32, "agent-1", "A81001", 1, bytes(32), T0 << 16, T0, PATIENTS[0],
                 Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER))  # fmt: skip
    req = DecisionRequest(
        Requester("RXA", "RESEARCHER", True, Relationship.NONE, False),
        PurposeOfUse.HRESCH,
        PATIENTS[0],
        (DataClass.GENERAL,),
        LegalBasis.STATUTORY_MANDATE,
        T0 + 5000,
        evidence=OverrideEvidence(instrument="Health and Social Care Act 2012 s259 direction"),
    )
    log = AuditLog()
    decision = decide(req, replay(PATIENTS[0], [ndop]))
    log.append(decision_record(req, decision, "staff-r"))
    (view,) = accesses_for(log.entries, PATIENTS[0])
    assert view.notice is not None and view.notice == decision.notice
    assert "the law required your information to be shared" in view.notice


def test_audit_record_carries_no_nhs_number_and_round_trips() -> None:
    event = Event(
        "0" * 32, "agent-1", "A81001", 1, bytes(32), T0 << 16, T0, PATIENTS[1],
        AccessRecord("staff-9", "A81001", "GP", True, Relationship.LEGITIMATE, PurposeOfUse.COC,
                     (DataClass.GENERAL,), LegalBasis.IMPLIED_CONSENT_DIRECT_CARE, "RX1"),
    )  # fmt: skip
    rec = access_record(event)
    assert rec.outcome == "DISCLOSED"
    assert AuditRecord.from_bytes(rec.to_bytes()) == rec
    assert sorted(orjson.loads(rec.to_bytes())) == [
        "accessor_id", "at_ms", "codes", "data_classes", "disclosed_to", "kind", "legal_basis",
        "organisation", "outcome", "patient_key", "purpose", "role", "state_version",
    ]  # fmt: skip


def test_access_record_of_another_payload_is_refused() -> None:
    breach = BreachReport("A81001", BreachSeverity.LEVEL_1, "LOST", "x", "y", True, 1)
    event = Event("1" * 32, "agent-1", "A81001", 1, bytes(32), 0, 0, "", breach)
    with pytest.raises(AuditRecordError) as exc:
        access_record(event)
    assert exc.value.reason == "BAD_AUDIT_RECORD"


def test_garbage_record_bytes_are_refused() -> None:
    with pytest.raises(AuditRecordError):
        AuditRecord.from_bytes(b'{"kind": "NOPE"}')


def test_problem_detail_is_plain_english() -> None:
    entries, cps = build(10)
    del entries[6]
    (p,) = verify(entries, cps, PUB).problems
    assert p == AuditProblem(Tamper.DELETED, 5, 7, "1 entry missing before index 7")
