"""Per-patient consent state and its deterministic merge (pure).

The state of one patient is a set of last-writer-wins registers: one per
consent scope ``(purpose, data_class, recipient)``, one per objection kind and
one shielding register. Registers are ordered by :class:`Stamp`
``(hlc, agent_id, event_id)``, never by arrival order, so :func:`merge` is a
join (commutative, associative, idempotent) and any permutation of a set of
events, with any duplicates, folds to byte-identical :meth:`PatientState.to_bytes`.

Only :class:`ConsentDecision`, :class:`Objection` and :class:`ShieldingFlag`
change the state. :class:`AccessRecord`, :class:`BreachReport` and
:class:`KeyEvent` are not part of it (the pipeline routes them to the audit,
breach and key topics): :func:`apply` returns the state unchanged for them and
their ids are not added to ``applied``. An event that :func:`classify` rejects
(e.g. a shielding flag from an unauthorised role) is not applied either.

Provenance: ``applied`` holds the id of every event folded in, and each register
carries the id (in its stamp) and the ``(partition, offset)`` source of the event
that set it. A given event id has one fixed offset in the events topic, so
keeping the winner's source keeps the output deterministic; a register that was
applied both with and without a source keeps the one with it.

Errors::

    ValidationError (consent_wire.errors)
    +-- PatientMismatchError   PATIENT_KEY_MISMATCH
    DecodeError (consent_wire.errors)
    +-- StateDecodeError       BAD_STATE
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeAlias, TypeVar

import orjson

from broker.shielding import shielding_rejection
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
    ShieldingAction,
)
from consent_wire.errors import DecodeError, ValidationError
from consent_wire.model import ConsentDecision, Event, Objection, ShieldingFlag

__all__ = [
    "ANY_RECIPIENT",
    "REASON_INVALID_PERIOD",
    "REASON_MISSING_PATIENT_KEY",
    "STATE_FORMAT",
    "ConsentKey",
    "ConsentRegister",
    "ObjectionRegister",
    "PatientMismatchError",
    "PatientState",
    "Provenance",
    "ShieldingRegister",
    "Source",
    "Stamp",
    "StateDecodeError",
    "affects_state",
    "apply",
    "classify",
    "effective_consent",
    "empty_state",
    "merge",
    "replay",
]

ANY_RECIPIENT = "*"  # same wildcard as consent_wire.model.ANY_RECIPIENT
REASON_MISSING_PATIENT_KEY = "MISSING_PATIENT_KEY"  # a per-patient payload with patient_key ""
REASON_INVALID_PERIOD = "INVALID_PERIOD"  # consent period ending at or before its start

Source: TypeAlias = tuple[int, int]  # (partition, offset) of the event in the events topic
ConsentKey: TypeAlias = tuple[PurposeOfUse, DataClass, str]  # (purpose, data_class, recipient)

STATE_FORMAT = 1  # layout version of to_bytes(); bump when the JSON layout changes


class StateDecodeError(DecodeError):
    reason = "BAD_STATE"


class PatientMismatchError(ValidationError):
    reason = "PATIENT_KEY_MISMATCH"


@dataclass(frozen=True, slots=True, order=True)
class Stamp:
    """Total order used by the merge: ``(hlc, agent_id, event_id)`` compared as a tuple."""

    hlc: int
    agent_id: str
    event_id: str

    @staticmethod
    def of(event: Event) -> Stamp:
        return Stamp(event.hlc, event.agent_id, event.event_id)


@dataclass(frozen=True, slots=True)
class ConsentRegister:
    """Last-writer-wins register for one consent scope."""

    directive: ConsentDirective
    period_start_ms: int | None
    period_end_ms: int | None  # exclusive; None = open-ended
    stamp: Stamp
    source: Source | None = None

    def covers(self, at_ms: int) -> bool:
        """Whether ``at_ms`` lies in ``[period_start_ms, period_end_ms)``."""
        after_start = self.period_start_ms is None or self.period_start_ms <= at_ms
        return after_start and (self.period_end_ms is None or at_ms < self.period_end_ms)


@dataclass(frozen=True, slots=True)
class ObjectionRegister:
    active: bool
    exemptions: tuple[LegalBasis, ...]  # sorted, unique
    stamp: Stamp
    site: str
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class ShieldingRegister:
    active: bool
    hides: tuple[HiddenField, ...]  # sorted, unique; () when inactive
    reason: str
    stamp: Stamp
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class Provenance:
    """The event that set one register."""

    event_id: str
    source: Source | None


@dataclass(frozen=True, slots=True)
class PatientState:
    patient_key: str
    consents: Mapping[ConsentKey, ConsentRegister]
    objections: Mapping[ObjectionKind, ObjectionRegister]
    shielding: ShieldingRegister | None
    applied: frozenset[str]  # event ids applied (idempotence + provenance)
    version: int  # == len(applied)

    def to_bytes(self) -> bytes:
        """Canonical JSON (orjson, sorted keys): byte-identical for equal states."""
        return orjson.dumps(_state_json(self), option=orjson.OPT_SORT_KEYS)

    @staticmethod
    def from_bytes(data: bytes) -> PatientState:
        """Inverse of :meth:`to_bytes`; raises :class:`StateDecodeError` on bad input."""
        return _load_state(data)

    @property
    def provenance(self) -> Mapping[str, Provenance]:
        """Register name (``consent/TREAT/ALL/*``, ``objection/TYPE1``, ``shielding``) -> setter."""
        out: dict[str, Provenance] = {}
        for (purpose, data_class, recipient), c in self.consents.items():
            out[f"consent/{purpose.value}/{data_class.value}/{recipient}"] = Provenance(c.stamp.event_id, c.source)
        for kind, o in self.objections.items():
            out[f"objection/{kind.value}"] = Provenance(o.stamp.event_id, o.source)
        if self.shielding is not None:
            out["shielding"] = Provenance(self.shielding.stamp.event_id, self.shielding.source)
        return out


Register: TypeAlias = ConsentRegister | ObjectionRegister | ShieldingRegister
R = TypeVar("R", ConsentRegister, ObjectionRegister, ShieldingRegister)
K = TypeVar("K")


def empty_state(patient_key: str) -> PatientState:
    return PatientState(patient_key, {}, {}, None, frozenset(), 0)


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
    if isinstance(payload, ConsentDecision):
        start, end = payload.period_start_ms, payload.period_end_ms
        if start is not None and end is not None and end <= start:
            return REASON_INVALID_PERIOD
    if isinstance(payload, ShieldingFlag):
        return shielding_rejection(payload)
    return None


def apply(state: PatientState, event: Event, source: Source | None = None) -> PatientState:
    """Fold one event into ``state`` (pure, idempotent; a no-op for non-state or rejected events)."""
    if not affects_state(event) or classify(event) is not None:
        return state
    if event.patient_key != state.patient_key:
        raise PatientMismatchError(
            f"event {event.event_id} is for another patient than this state; route by patient_key"
        )
    stamp = Stamp.of(event)
    payload = event.payload
    applied = state.applied | {event.event_id}
    base = replace(state, applied=applied, version=len(applied))
    if isinstance(payload, ConsentDecision):
        key = (payload.purpose, payload.data_class, payload.recipient)
        reg = ConsentRegister(payload.directive, payload.period_start_ms, payload.period_end_ms, stamp, source)
        return replace(base, consents=_put(state.consents, key, reg))
    if isinstance(payload, Objection):
        obj = ObjectionRegister(
            payload.action is ObjectionAction.REGISTER,
            tuple(sorted(set(payload.exemptions), key=lambda b: b.value)),
            stamp,
            event.site,
            source,
        )
        return replace(base, objections=_put(state.objections, payload.kind, obj))
    assert isinstance(payload, ShieldingFlag)  # guaranteed by affects_state
    active = payload.action is ShieldingAction.SET
    hides = tuple(sorted(set(payload.hides), key=lambda h: h.value)) if active else ()
    shield = ShieldingRegister(active, hides, payload.reason, stamp, source)
    current = state.shielding
    return replace(base, shielding=shield if current is None else _later(current, shield))


def merge(a: PatientState, b: PatientState) -> PatientState:
    """Join of two states of the same patient: pointwise later register, union of ``applied``."""
    if a.patient_key != b.patient_key:
        raise PatientMismatchError("cannot merge the states of two different patients")
    applied = a.applied | b.applied
    shielding = a.shielding
    if b.shielding is not None:
        shielding = b.shielding if shielding is None else _later(shielding, b.shielding)
    return PatientState(
        a.patient_key,
        _join_maps(a.consents, b.consents),
        _join_maps(a.objections, b.objections),
        shielding,
        applied,
        len(applied),
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
    state: PatientState, purpose: PurposeOfUse, data_class: DataClass, recipient: str, at_ms: int
) -> ConsentRegister | None:
    """The most specific register matching the request whose period contains ``at_ms``.

    Specificity is lexicographic: exact recipient beats ``"*"``, then exact purpose
    beats ``ANY``, then exact data class beats ``ALL``; among equals the later stamp wins.
    """
    best: tuple[tuple[bool, bool, bool, Stamp], ConsentRegister] | None = None
    for (p, d, r), reg in state.consents.items():
        if p not in (purpose, PurposeOfUse.ANY) or d not in (data_class, DataClass.ALL):
            continue
        if r not in (recipient, ANY_RECIPIENT) or not reg.covers(at_ms):
            continue
        rank = (r == recipient, p == purpose, d == data_class, reg.stamp)
        if best is None or rank > best[0]:
            best = (rank, reg)
    return None if best is None else best[1]


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


# --- canonical JSON codec -------------------------------------------------------------------------


def _tiebreak(reg: Register) -> bytes:
    return orjson.dumps(_register_json(reg), option=orjson.OPT_SORT_KEYS)


def _register_json(reg: Register) -> dict[str, object]:
    s = reg.stamp
    out: dict[str, object] = {
        "stamp": {"hlc": s.hlc, "agent_id": s.agent_id, "event_id": s.event_id},
        "source": None if reg.source is None else [reg.source[0], reg.source[1]],
    }
    if isinstance(reg, ConsentRegister):
        out.update(
            directive=reg.directive.value,
            period_start_ms=reg.period_start_ms,
            period_end_ms=reg.period_end_ms,
        )
    elif isinstance(reg, ObjectionRegister):
        out.update(active=reg.active, exemptions=[b.value for b in reg.exemptions], site=reg.site)
    else:
        out.update(active=reg.active, hides=[h.value for h in reg.hides], reason=reg.reason)
    return out


def _state_json(state: PatientState) -> dict[str, object]:
    consents = sorted(state.consents.items(), key=lambda kv: (kv[0][0].value, kv[0][1].value, kv[0][2]))
    objections = sorted(state.objections.items(), key=lambda kv: kv[0].value)
    return {
        "format": STATE_FORMAT,
        "patient_key": state.patient_key,
        "version": state.version,
        "applied": sorted(state.applied),
        "consents": [
            {"purpose": p.value, "data_class": d.value, "recipient": r, **_register_json(reg)}
            for (p, d, r), reg in consents
        ],
        "objections": [{"kind": k.value, **_register_json(reg)} for k, reg in objections],
        "shielding": None if state.shielding is None else _register_json(state.shielding),
    }


def _typed(value: Any, kind: type[Any]) -> Any:
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(_typed(value, int))


def _stamp_source(obj: Any) -> tuple[Stamp, Source | None]:
    s = obj["stamp"]
    stamp = Stamp(_typed(s["hlc"], int), _typed(s["agent_id"], str), _typed(s["event_id"], str))
    src = obj["source"]
    if src is None:
        return stamp, None
    partition, offset = _typed(src, list)
    return stamp, (_typed(partition, int), _typed(offset, int))


def _load_consent(obj: Any) -> tuple[ConsentKey, ConsentRegister]:
    stamp, source = _stamp_source(obj)
    key = (PurposeOfUse(obj["purpose"]), DataClass(obj["data_class"]), _typed(obj["recipient"], str))
    start, end = _opt_int(obj["period_start_ms"]), _opt_int(obj["period_end_ms"])
    return key, ConsentRegister(ConsentDirective(obj["directive"]), start, end, stamp, source)


def _load_objection(obj: Any) -> tuple[ObjectionKind, ObjectionRegister]:
    stamp, source = _stamp_source(obj)
    exemptions = tuple(LegalBasis(b) for b in _typed(obj["exemptions"], list))
    active, site = _typed(obj["active"], bool), _typed(obj["site"], str)
    return ObjectionKind(obj["kind"]), ObjectionRegister(active, exemptions, stamp, site, source)


def _load_shielding(obj: Any) -> ShieldingRegister | None:
    if obj is None:
        return None
    stamp, source = _stamp_source(obj)
    hides = tuple(HiddenField(h) for h in _typed(obj["hides"], list))
    active, reason = _typed(obj["active"], bool), _typed(obj["reason"], str)
    return ShieldingRegister(active, hides, reason, stamp, source)


def _load_state(data: bytes) -> PatientState:
    try:
        obj = _typed(orjson.loads(data), dict)
        if obj["format"] != STATE_FORMAT:
            raise ValueError(f"unsupported state format {obj['format']!r}, expected {STATE_FORMAT}")
        applied = frozenset(_typed(i, str) for i in _typed(obj["applied"], list))
        state = PatientState(
            _typed(obj["patient_key"], str),
            dict(_load_consent(c) for c in _typed(obj["consents"], list)),
            dict(_load_objection(o) for o in _typed(obj["objections"], list)),
            _load_shielding(obj["shielding"]),
            applied,
            _typed(obj["version"], int),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StateDecodeError(f"not a patient state record: {exc}") from exc
    if state.version != len(applied) or state.to_bytes() != data:
        raise StateDecodeError("patient state record is not in canonical form; rebuild it by replay")
    return state
