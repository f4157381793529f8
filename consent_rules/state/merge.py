"""The deterministic merge of consent events into a patient's state (pure).

Registers (:mod:`consent_rules.state.registers`) are ordered by their :class:`Stamp`
``(hlc, agent_id, event_id)``, never by arrival order, so :func:`merge` is a join (commutative,
associative, idempotent) and any permutation of a set of events, with any duplicates, folds to
byte-identical :meth:`PatientState.to_bytes`.

Only :class:`ConsentDecision`, :class:`Objection` and :class:`ShieldingFlag` change the state.
:class:`AccessRecord`, :class:`BreachReport` and :class:`KeyEvent` are not part of it (the pipeline
routes them to the audit, breach and key topics): :func:`apply` returns the state unchanged for
them and they are not counted in the ledger. An event that :func:`classify` rejects (e.g. a
shielding CLEAR from an unauthorised role, see :mod:`consent_rules.shielding`) is not applied either,
except a shielding SET from a role without authority (reason in :data:`QUARANTINED_REASONS`): a
protective request never fails open silently (issue 14, rule 10), so it is kept in the state's
``quarantine`` register (never in ``shielding``) for the safeguarding lead to confirm or clear.

Provenance: the ledger (:mod:`consent_rules.state.ledger`: the last events applied and per-agent
high-water marks, bounded whatever the history) records what was folded in, and each register
carries the id (in its stamp) and the ``(partition, offset)`` source of the event that set it. A given event id
has one fixed offset in the events topic, so keeping the winner's source keeps the output
deterministic; a register that was applied both with and without a source keeps the one with it.

Errors::

    ValidationError (consent_wire.errors)
    +-- PatientMismatchError   PATIENT_KEY_MISMATCH
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import orjson

from consent_rules.hierarchy import depth, is_a
from consent_rules.proxy import proxy_rejection
from consent_rules.shielding import shielding_rejection
from consent_rules.state import ledger
from consent_rules.state.codec import register_json
from consent_rules.state.ledger import Applied
from consent_rules.state.registers import (
    ANY_RECIPIENT,
    ConsentRegister,
    DeceasedRegister,
    ObjectionRegister,
    PatientState,
    QuarantinedShielding,
    Register,
    ShieldingRegister,
    Source,
    Stamp,
    objection_key,
)
from consent_wire.codes import ConsentDirective, DataClass, ObjectionAction, PurposeOfUse, ShieldingAction
from consent_wire.errors import ValidationError
from consent_wire.model import ConsentDecision, Event, Objection, ShieldingFlag

__all__ = [
    "QUARANTINED_REASONS",
    "REASON_INVALID_DECEASED_STATUS",
    "REASON_INVALID_PERIOD",
    "REASON_MISSING_PATIENT_KEY",
    "PatientMismatchError",
    "affects_state",
    "apply",
    "classify",
    "effective_consent",
    "empty_state",
    "merge",
    "replay",
]

REASON_MISSING_PATIENT_KEY = "MISSING_PATIENT_KEY"  # a per-patient payload with patient_key ""
REASON_INVALID_PERIOD = "INVALID_PERIOD"  # consent period ending at or before its start
REASON_INVALID_DECEASED_STATUS = "INVALID_DECEASED_STATUS"  # subject_deceased_ms below 0 (Event v5)
# Rejections that are kept in quarantine rather than dropped (issue 14, rule 10): a protective request
# (a shielding SET) from a role without authority. An unauthorised CLEAR is not protective: dropped.
QUARANTINED_REASONS = frozenset({"UNAUTHORISED_SHIELDING_SET"})

R = TypeVar("R", ConsentRegister, ObjectionRegister, ShieldingRegister, QuarantinedShielding, DeceasedRegister)
K = TypeVar("K")


class PatientMismatchError(ValidationError):
    reason = "PATIENT_KEY_MISMATCH"


def empty_state(patient_key: str) -> PatientState:
    return PatientState(patient_key, {}, {}, None, {}, frozenset(), 0)


def affects_state(event: Event) -> bool:
    """Whether the payload is one that changes per-patient consent state."""
    return isinstance(event.payload, ConsentDecision | Objection | ShieldingFlag)


def classify(event: Event) -> str | None:
    """A rejection reason code for an event that must not be applied, else ``None``.

    Events that do not affect state are never rejected here.
    """
    payload = event.payload
    if not affects_state(event):
        return None
    if not event.patient_key:
        return REASON_MISSING_PATIENT_KEY
    if event.subject_deceased_ms is not None and event.subject_deceased_ms < 0:
        return REASON_INVALID_DECEASED_STATUS
    if isinstance(payload, ConsentDecision):
        start, end = payload.period_start_ms, payload.period_end_ms
        if start is not None and end is not None and end <= start:
            return REASON_INVALID_PERIOD
    if isinstance(payload, ConsentDecision | Objection):  # a proxy needs authority over health (issue 14)
        return proxy_rejection(payload.proxy)
    if isinstance(payload, ShieldingFlag):
        return shielding_rejection(payload)
    return None


def apply(state: PatientState, event: Event, source: Source | None = None) -> PatientState:
    """Fold one event into ``state`` (pure, idempotent; a no-op for non-state or rejected events).

    Idempotent on ``event_id``, not only on (agent, seq): a second copy of an id already applied
    (a client's retried POST that an agent enqueued twice, under another seq and a later HLC) is
    a no-op, so a stale retry can never re-stamp a register and win over newer events.
    """
    reason = classify(event) if affects_state(event) else None
    if not affects_state(event) or (reason is not None and reason not in QUARANTINED_REASONS):
        return state
    if _another_copy(state, event):
        return state
    if event.patient_key != state.patient_key:
        raise PatientMismatchError(
            f"event {event.event_id} is for another patient than this state; route by patient_key"
        )
    stamp = Stamp.of(event)
    payload = event.payload
    admitted = ledger.admit(state.marks, state.recent, Applied(event.agent_id, event.seq, event.event_id))
    # every change goes into one ``replace`` at the end (each costs ~2.5 us; once per event, issue 18)
    changes: dict[str, Any] = {}
    if admitted is not None:  # None: a redelivery; the registers are idempotent, it may still attach its source
        marks, recent = admitted
        changes.update(marks=marks, recent=recent, version=state.version + 1)  # admit keeps every count
    if reason is None and event.subject_deceased_ms is not None:  # a death stated, or withdrawn (0)
        death = DeceasedRegister(event.subject_deceased_ms > 0, stamp, source)
        changes["deceased"] = death if state.deceased is None else _later(state.deceased, death)
    if isinstance(payload, ConsentDecision):
        key = (payload.purpose, payload.data_class, payload.recipient)
        reg = ConsentRegister(
            payload.directive,
            payload.period_start_ms,
            payload.period_end_ms,
            stamp,
            source,
            payload.policy_ref,
            payload.proxy,
        )
        return replace(state, consents=_put(state.consents, key, reg), **changes)
    if isinstance(payload, Objection):
        obj = ObjectionRegister(
            payload.action is ObjectionAction.REGISTER,
            tuple(sorted(set(payload.exemptions), key=lambda b: b.value)),
            stamp,
            event.site,
            source,
            tuple(sorted(set(payload.exempt_flows))),
            payload.proxy,
        )
        return replace(
            state, objections=_put(state.objections, objection_key(payload.kind, event.site), obj), **changes
        )
    assert isinstance(payload, ShieldingFlag)  # guaranteed by affects_state
    hidden = tuple(sorted(set(payload.hides), key=lambda h: h.value))
    if reason is not None:  # quarantined (rule 10): kept, never applied to the shielding register
        held = QuarantinedShielding(hidden, payload.set_by_role, reason, stamp, source)
        return replace(
            state, quarantine=held if state.quarantine is None else _later(state.quarantine, held), **changes
        )
    active = payload.action is ShieldingAction.SET
    hides = hidden if active else ()
    shield = ShieldingRegister(active, hides, stamp, source)  # the reason stays on the events topic
    current = state.shielding
    return replace(state, shielding=shield if current is None else _later(current, shield), **changes)


def _another_copy(state: PatientState, event: Event) -> bool:
    """True for an event id already applied under another (agent, seq) or stamp (a re-enqueued
    retry), False for a new id or a redelivery of the very same event (which may still attach its
    source offset). Ids are known while in the ledger's window or as a register's winner."""
    if any(e.event_id == event.event_id and (e.agent_id, e.seq) != (event.agent_id, event.seq) for e in state.recent):
        return True
    stamp = Stamp.of(event)
    stamps = [r.stamp for r in state.consents.values()] + [r.stamp for r in state.objections.values()]
    if state.shielding is not None:
        stamps.append(state.shielding.stamp)
    if state.quarantine is not None:
        stamps.append(state.quarantine.stamp)
    if state.deceased is not None:
        stamps.append(state.deceased.stamp)
    return any(s.event_id == event.event_id and s != stamp for s in stamps)


def merge(a: PatientState, b: PatientState) -> PatientState:
    """Join of two states of the same patient: pointwise later register, join of the ledgers."""
    if a.patient_key != b.patient_key:
        raise PatientMismatchError("cannot merge the states of two different patients")
    marks, recent = ledger.join((a.marks, a.recent), (b.marks, b.recent))
    shielding = a.shielding
    if b.shielding is not None:
        shielding = b.shielding if shielding is None else _later(shielding, b.shielding)
    quarantine = a.quarantine
    if b.quarantine is not None:
        quarantine = b.quarantine if quarantine is None else _later(quarantine, b.quarantine)
    deceased = a.deceased
    if b.deceased is not None:
        deceased = b.deceased if deceased is None else _later(deceased, b.deceased)
    return PatientState(
        a.patient_key,
        _join_maps(a.consents, b.consents),
        _join_maps(a.objections, b.objections),
        shielding,
        marks,
        recent,
        ledger.version_of(marks, recent),
        quarantine,
        deceased,
    )


def replay(patient_key: str, events: Iterable[Event], *, as_at_hlc: int | None = None) -> PatientState:
    """Fold the events of ``patient_key`` (others skipped); with ``as_at_hlc`` only those with hlc <= it."""
    state = empty_state(patient_key)
    for event in events:
        if event.patient_key != patient_key or (as_at_hlc is not None and event.hlc > as_at_hlc):
            continue
        state = apply(state, event)
    return state


def effective_consent(
    state: PatientState,
    purpose: PurposeOfUse,
    data_class: DataClass,
    recipient: str,
    at_ms: int,
    *,
    any_purpose_permits: bool = True,
) -> ConsentRegister | None:
    """The register that governs the request: the most specific match, unless a later withdrawal covers it.

    Only registers whose scope covers the request and whose period contains ``at_ms`` match; a
    register for a purpose covers its descendants (:mod:`consent_rules.hierarchy`, issue 14
    rule 3). Specificity is lexicographic: exact recipient beats ``"*"``, then the nearer
    purpose (exact, then its parent, ... then ``ANY``), then exact data class beats ``ALL``;
    among equals the later stamp wins.

    Withdrawals rank time before specificity (issue 14, rule 2): an OPTOUT that covers the
    request and is later than the most specific match wins over it, so a consent for one
    recipient does not survive the patient's later, wider opt-out. A later permission does
    not symmetrically beat an earlier, narrower refusal: a broader permission is never
    assumed to lift a specific refusal.

    ``any_purpose_permits=False`` leaves out OPTIN registers whose purpose is ``ANY``: the
    decision asks so for uses beyond direct care, where only consent to the specific use counts
    (NDOP operational policy 6.1; issue 14, rule 1).
    """
    best: tuple[tuple[bool, int, bool, Stamp], ConsentRegister] | None = None
    latest_optout: ConsentRegister | None = None
    for (p, d, r), reg in state.consents.items():
        if not is_a(purpose, p) or d not in (data_class, DataClass.ALL):
            continue
        if r not in (recipient, ANY_RECIPIENT) or not reg.covers(at_ms):
            continue
        if not any_purpose_permits and p is PurposeOfUse.ANY and reg.directive is ConsentDirective.OPTIN:
            continue
        rank = (r == recipient, depth(p), d == data_class, reg.stamp)
        if best is None or rank > best[0]:
            best = (rank, reg)
        if reg.directive is ConsentDirective.OPTOUT and (latest_optout is None or reg.stamp > latest_optout.stamp):
            latest_optout = reg
    if best is None:
        return None
    if latest_optout is not None and latest_optout.stamp > best[1].stamp:
        return latest_optout
    return best[1]


def _later(a: R, b: R) -> R:
    """The register with the later stamp; equal stamps (same event) break ties canonically."""
    if a.stamp != b.stamp:
        return a if a.stamp > b.stamp else b
    if a == b:
        return a
    # a register that knows its source offset beats the same event applied without one
    return a if (a.source is not None, _tiebreak(a)) >= (b.source is not None, _tiebreak(b)) else b


def _put(registers: Mapping[K, R], key: K, reg: R) -> Mapping[K, R]:
    current = registers.get(key)
    winner = reg if current is None else _later(current, reg)
    if winner is current:
        return registers
    return {**registers, key: winner}


def _join_maps(a: Mapping[K, R], b: Mapping[K, R]) -> Mapping[K, R]:
    out = dict(a)
    for key, reg in b.items():
        current = out.get(key)
        out[key] = reg if current is None else _later(current, reg)
    return out


def _tiebreak(reg: Register) -> bytes:
    return orjson.dumps(register_json(reg), option=orjson.OPT_SORT_KEYS)
