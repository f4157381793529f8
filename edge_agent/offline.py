"""Offline sharing decisions from the local replica, marked ``offline: true`` and "as at T".

The request document, its parser and the answer are the core's (:mod:`consent_rules.decision`):
the agent accepts everything the core's ``POST /v1/decisions`` accepts (``docs/openapi.yaml``),
``requester.accessor_id`` and ``as_at`` included, and answers in the same shape with
``offline: true`` and ``as_at_ms`` the time as at which the state it decided on is known.

``as_at`` asks for the state as it stood at a past time. The replica keeps one state per patient
(no history), so it can answer only when that state is the state as at ``as_at``:

- ``as_at`` at or after the replica's state time: the replica's state is the latest it knows, as
  for a live question (``as_at_ms`` is the replica's state time);
- ``as_at`` before it, but no register changed after ``as_at``: the state then was this state
  (``as_at_ms`` is ``as_at``);
- otherwise :class:`~edge_agent.errors.AsAtNotReplicatedError` (``AS_AT_NOT_REPLICATED``): ask
  the core, which keeps the history.
"""

from __future__ import annotations

from consent_rules.decision import DecisionAnswer, ParsedRequest, decide
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from consent_rules.state import PatientState, empty_state
from consent_wire.hlc import LOGICAL_BITS
from edge_agent.errors import AsAtNotReplicatedError
from edge_agent.replica import ReplicaRecord

__all__ = ["decide_offline"]


def decide_offline(
    parsed: ParsedRequest, record: ReplicaRecord | None, now_ms: int, policy: DecisionPolicy = DEFAULT_POLICY
) -> DecisionAnswer:
    """Apply the shared rules to the replica's state (an empty state if none is held), under ``policy``."""
    request = parsed.request
    if record is None or record.state is None:
        state, known_at = empty_state(request.patient_key), None
    else:
        state, known_at = PatientState.from_bytes(record.state), record.state_as_at_ms
    if parsed.as_at_ms is not None and state.version:  # an empty state is the same at any time
        known_at = _as_at(state, known_at, parsed.as_at_ms)
    return DecisionAnswer(decide(request, state, policy), now_ms, known_at, None, offline=True)


def _as_at(state: PatientState, known_at_ms: int | None, as_at_ms: int) -> int:
    """The time as at which ``state`` answers for ``as_at_ms``; raises when the replica cannot tell."""
    if known_at_ms is not None and as_at_ms >= known_at_ms:
        return known_at_ms
    newest = state.newest_stamp
    if newest is None or newest.hlc >> LOGICAL_BITS <= as_at_ms:
        return as_at_ms
    raise AsAtNotReplicatedError(
        f"the replica holds only this patient's current state, which changed after as_at {as_at_ms} ms; "
        "ask the core's API (POST /v1/decisions), which keeps the history"
    )
