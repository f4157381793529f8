"""The reconciler's pure core: fold verified events into per-patient state.

The Kafka stage stays a thin shell around :class:`Reconciler`: it restores the
states it owns from the compacted state topic (:meth:`Reconciler.restore`), then
for each verified event calls :meth:`Reconciler.process` and writes what the
:class:`ReconcileOutput` asks for: the new state record (state topic, key =
patient key; one per patient per transaction is enough), a shielding record
when the effective shielding changed (shielding topic), or a dead-letter with
the rejection reason. A shielding SET from a role without authority is ``QUARANTINED`` (issue 14,
rule 10): the new state (holding it in its ``quarantine`` register) is written *and* the stage
raises an alert for the safeguarding lead with the reason; the shielding topic does not change.

Processing is idempotent (a redelivered event is reported as ``DUPLICATE`` with
nothing to write) and order-insensitive (see :mod:`consent_rules.state.merge`), so replaying
the events topic from any committed offset after a crash converges on the same
bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import orjson

from consent_rules.state import (
    QUARANTINED_REASONS,
    PatientMismatchError,
    PatientState,
    ShieldingRegister,
    Source,
    affects_state,
    apply,
    classify,
    empty_state,
    merge,
)
from consent_wire.model import Event

__all__ = ["Outcome", "ReconcileOutput", "Reconciler", "shielding_record"]


class Outcome(StrEnum):
    APPLIED = "APPLIED"  # state changed: write state_bytes (and shielding_bytes if set)
    DUPLICATE = "DUPLICATE"  # already folded in: nothing to write
    REJECTED = "REJECTED"  # not applied: dead-letter with ``reason``
    IGNORED = "IGNORED"  # not a per-patient state event (access, breach, key): nothing to write
    # kept in the state's quarantine register, not applied to shielding: write state_bytes and alert
    # the safeguarding lead with ``reason`` (issue 14, rule 10)
    QUARANTINED = "QUARANTINED"


@dataclass(frozen=True, slots=True)
class ReconcileOutput:
    outcome: Outcome
    patient_key: str
    # the new state when APPLIED; serialised on demand, so a stage folding many events of one patient
    # into one transaction pays for one to_bytes() per patient, not one per event
    state: PatientState | None = None
    shielding_bytes: bytes | None = None  # shielding_record(...) when the shielding register changed
    reason: str | None = None  # rejection reason code when outcome is REJECTED

    @property
    def state_bytes(self) -> bytes | None:
        """The new ``PatientState.to_bytes()`` for the state topic."""
        return None if self.state is None else self.state.to_bytes()


def shielding_record(patient_key: str, reg: ShieldingRegister) -> bytes:
    """The minimal shielding-topic record: no reason code, nothing beyond what hides fields."""
    stamp = {"hlc": reg.stamp.hlc, "agent_id": reg.stamp.agent_id, "event_id": reg.stamp.event_id}
    record = {
        "patient_key": patient_key,
        "active": reg.active,
        "hides": [h.value for h in reg.hides],
        "stamp": stamp,
    }
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def _shielding_view(state: PatientState) -> tuple[object, ...] | None:
    reg = state.shielding
    return None if reg is None else (reg.active, reg.hides, reg.stamp)


class Reconciler:
    """Holds the current state of each patient seen; pure (no I/O, no clock)."""

    def __init__(self) -> None:
        self._states: dict[str, PatientState] = {}

    def __len__(self) -> int:
        return len(self._states)

    def state(self, patient_key: str) -> PatientState:
        return self._states.get(patient_key) or empty_state(patient_key)

    def forget(self, patient_keys: Iterable[str]) -> None:
        """Drop patients whose partition moved to another instance."""
        for key in patient_keys:
            self._states.pop(key, None)

    def restore(self, patient_key: str, state_bytes: bytes) -> None:
        """Load a state record (from the state topic); joined with anything already held."""
        restored = PatientState.from_bytes(state_bytes)
        if restored.patient_key != patient_key:
            raise PatientMismatchError("state record key does not match the patient key inside it")
        current = self._states.get(patient_key)
        self._states[patient_key] = restored if current is None else merge(current, restored)

    def process(self, event: Event, source: Source | None = None) -> ReconcileOutput:
        """Fold one verified event; ``source`` is its (partition, offset) in the events topic."""
        key = event.patient_key
        if not affects_state(event):
            return ReconcileOutput(Outcome.IGNORED, key)
        reason = classify(event)
        if reason is not None and reason not in QUARANTINED_REASONS:
            return ReconcileOutput(Outcome.REJECTED, key, reason=reason)
        before = self.state(key)
        after = apply(before, event, source)
        if after == before:
            return ReconcileOutput(Outcome.DUPLICATE, key)
        self._states[key] = after
        if reason is not None:
            return ReconcileOutput(Outcome.QUARANTINED, key, after, reason=reason)
        shielding = None
        if after.shielding is not None and _shielding_view(after) != _shielding_view(before):
            shielding = shielding_record(key, after.shielding)
        return ReconcileOutput(Outcome.APPLIED, key, after, shielding)
