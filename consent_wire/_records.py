"""Dataclass <-> Avro record conversion for the Event envelope and its payloads.

Internal to :mod:`consent_wire.avro_codec`. Enum lookups use prebuilt
value -> member tables (an ``Enum(value)`` call costs several times more and
this runs once per field per event on the verifier's hot path).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, TypeVar

from consent_wire.codes import (
    BreachSeverity,
    Capability,
    ConsentDirective,
    DataClass,
    HiddenField,
    KeyAction,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)
from consent_wire.model import (
    AccessRecord,
    BreachReport,
    ConsentDecision,
    Event,
    KeyEvent,
    Objection,
    Payload,
    ProxyAuthority,
    ShieldingFlag,
)

__all__ = [
    "NAMESPACE",
    "PAYLOAD_DISCRIMINATORS",
    "event_to_record",
    "key_event_to_record",
    "payload_to_record",
    "record_to_event",
    "record_to_key_event",
    "record_to_payload",
]

NAMESPACE = "uk.nhs.consent.v1"  # the Avro namespace of every schema in avro_schemas/

_E = TypeVar("_E", bound=Enum)
Record = dict[str, Any]


def _table(enum_type: type[_E]) -> dict[str, _E]:
    return {member.value: member for member in enum_type}


_DIRECTIVE = _table(ConsentDirective)
_PURPOSE = _table(PurposeOfUse)
_DATA_CLASS = _table(DataClass)
_OBJ_KIND = _table(ObjectionKind)
_OBJ_ACTION = _table(ObjectionAction)
_BASIS = _table(LegalBasis)
_RELATIONSHIP = _table(Relationship)
_HIDDEN = _table(HiddenField)
_SHIELD_ACTION = _table(ShieldingAction)
_SEVERITY = _table(BreachSeverity)
_KEY_ACTION = _table(KeyAction)
_CAPABILITY = _table(Capability)
_PROXY_KIND = _table(ProxyAuthorityKind)


def _proxy_to(p: ProxyAuthority | None) -> Record | None:
    return None if p is None else {"authority": p.authority.value, "reference": p.reference}


def _proxy_from(r: Record | None) -> ProxyAuthority | None:
    return None if r is None else ProxyAuthority(_PROXY_KIND[r["authority"]], r["reference"])


def _consent_to(p: ConsentDecision) -> Record:
    return {
        "directive": p.directive.value,
        "purpose": p.purpose.value,
        "data_class": p.data_class.value,
        "recipient": p.recipient,
        "period_start_ms": p.period_start_ms,
        "period_end_ms": p.period_end_ms,
        "recorded_by_role": p.recorded_by_role,
        "policy_ref": p.policy_ref,
        "proxy": _proxy_to(p.proxy),
    }


def _consent_from(r: Record) -> ConsentDecision:
    return ConsentDecision(
        _DIRECTIVE[r["directive"]],
        _PURPOSE[r["purpose"]],
        _DATA_CLASS[r["data_class"]],
        r["recipient"],
        r["period_start_ms"],
        r["period_end_ms"],
        r["recorded_by_role"],
        r.get("policy_ref"),
        _proxy_from(r.get("proxy")),
    )


def _objection_to(p: Objection) -> Record:
    return {
        "kind": p.kind.value,
        "action": p.action.value,
        "exemptions": [b.value for b in p.exemptions],
        "exempt_flows": list(p.exempt_flows),
        "proxy": _proxy_to(p.proxy),
    }


def _objection_from(r: Record) -> Objection:
    return Objection(
        _OBJ_KIND[r["kind"]],
        _OBJ_ACTION[r["action"]],
        tuple(_BASIS[b] for b in r["exemptions"]),
        tuple(r.get("exempt_flows", ())),
        _proxy_from(r.get("proxy")),
    )


def _access_to(p: AccessRecord) -> Record:
    return {
        "accessor_id": p.accessor_id,
        "organisation": p.organisation,
        "role": p.role,
        "registered": p.registered,
        "relationship": p.relationship.value,
        "purpose": p.purpose.value,
        "data_classes": [c.value for c in p.data_classes],
        "legal_basis": None if p.legal_basis is None else p.legal_basis.value,
        "disclosed_to": p.disclosed_to,
    }


def _access_from(r: Record) -> AccessRecord:
    basis = r["legal_basis"]
    return AccessRecord(
        r["accessor_id"],
        r["organisation"],
        r["role"],
        r["registered"],
        _RELATIONSHIP[r["relationship"]],
        _PURPOSE[r["purpose"]],
        tuple(_DATA_CLASS[c] for c in r["data_classes"]),
        None if basis is None else _BASIS[basis],
        r["disclosed_to"],
    )


def _shielding_to(p: ShieldingFlag) -> Record:
    return {
        "action": p.action.value,
        "hides": [h.value for h in p.hides],
        "set_by_role": p.set_by_role,
        "reason": p.reason,
    }


def _shielding_from(r: Record) -> ShieldingFlag:
    return ShieldingFlag(
        _SHIELD_ACTION[r["action"]], tuple(_HIDDEN[h] for h in r["hides"]), r["set_by_role"], r["reason"]
    )


def _breach_to(p: BreachReport) -> Record:
    return {
        "organisation": p.organisation,
        "severity": p.severity.value,
        "category": p.category,
        "explanation": p.explanation,
        "remedial_action": p.remedial_action,
        "apology_given": p.apology_given,
        "individuals_affected": p.individuals_affected,
    }


def _breach_from(r: Record) -> BreachReport:
    return BreachReport(
        r["organisation"],
        _SEVERITY[r["severity"]],
        r["category"],
        r["explanation"],
        r["remedial_action"],
        r["apology_given"],
        r["individuals_affected"],
    )


def _key_event_payload_to(p: KeyEvent) -> Record:
    """A key event as an Event payload: the KeyEvent v1 branch of the Event schema (no authority)."""
    return {
        "action": p.action.value,
        "agent_id": p.agent_id,
        "key_id": p.key_id,
        "public_key": p.public_key,
        "effective_ms": p.effective_ms,
        "endorsement": p.endorsement,
    }


def key_event_to_record(p: KeyEvent) -> Record:
    """A key event for the keys topic (KeyEvent v2: with the key's site and capabilities)."""
    return {
        **_key_event_payload_to(p),
        "site": p.site,
        "capabilities": [c.value for c in p.capabilities],
    }


def record_to_key_event(r: Record) -> KeyEvent:
    """A v2 record (a v1 one resolves to it with site "" and no capabilities) or an Event's v1 payload branch."""
    return KeyEvent(
        _KEY_ACTION[r["action"]],
        r["agent_id"],
        r["key_id"],
        r["public_key"],
        r["effective_ms"],
        r["endorsement"],
        r.get("site", ""),
        tuple(_CAPABILITY[c] for c in r.get("capabilities", ())),
    )


_TO: dict[type, tuple[str, Callable[[Any], Record]]] = {
    ConsentDecision: (f"{NAMESPACE}.ConsentDecision", _consent_to),
    Objection: (f"{NAMESPACE}.Objection", _objection_to),
    AccessRecord: (f"{NAMESPACE}.AccessRecord", _access_to),
    ShieldingFlag: (f"{NAMESPACE}.ShieldingFlag", _shielding_to),
    BreachReport: (f"{NAMESPACE}.BreachReport", _breach_to),
    KeyEvent: (f"{NAMESPACE}.KeyEvent", _key_event_payload_to),
}

_FROM: dict[str, Callable[[Record], Payload]] = {
    f"{NAMESPACE}.ConsentDecision": _consent_from,
    f"{NAMESPACE}.Objection": _objection_from,
    f"{NAMESPACE}.AccessRecord": _access_from,
    f"{NAMESPACE}.ShieldingFlag": _shielding_from,
    f"{NAMESPACE}.BreachReport": _breach_from,
    f"{NAMESPACE}.KeyEvent": record_to_key_event,
}


def payload_to_record(payload: Payload) -> tuple[str, Record]:
    """The payload as fastavro's union tuple notation: (full record name, record)."""
    name, convert = _TO[type(payload)]
    return name, convert(payload)


# fastavro returns a union's record branch as a plain dict (asking it for the branch name
# doubles the decode time), so the branch is told by a field only that record has; a test
# checks against the schemas that each of these fields is unique to its record.
PAYLOAD_DISCRIMINATORS: tuple[tuple[str, str], ...] = (
    ("directive", f"{NAMESPACE}.ConsentDecision"),
    ("exemptions", f"{NAMESPACE}.Objection"),
    ("accessor_id", f"{NAMESPACE}.AccessRecord"),
    ("hides", f"{NAMESPACE}.ShieldingFlag"),
    ("severity", f"{NAMESPACE}.BreachReport"),
    ("effective_ms", f"{NAMESPACE}.KeyEvent"),
)
_BY_FIELD = tuple((field, _FROM[name]) for field, name in PAYLOAD_DISCRIMINATORS)


def record_to_payload(record: Record) -> Payload:
    """The payload dataclass for a decoded payload record (branch told by its unique field)."""
    for field_name, convert in _BY_FIELD:
        if field_name in record:
            return convert(record)
    raise KeyError(f"record with fields {sorted(record)} is no known payload")


def event_to_record(e: Event) -> Record:
    return {
        "event_id": e.event_id,
        "agent_id": e.agent_id,
        "site": e.site,
        "seq": e.seq,
        "prev_hash": e.prev_hash,
        "hlc": e.hlc,
        "recorded_ms": e.recorded_ms,
        "patient_key": e.patient_key,
        "payload": payload_to_record(e.payload),
        "subject_deceased_ms": e.subject_deceased_ms,
    }


def record_to_event(r: Record) -> Event:
    return Event(
        r["event_id"],
        r["agent_id"],
        r["site"],
        r["seq"],
        r["prev_hash"],
        r["hlc"],
        r["recorded_ms"],
        r["patient_key"],
        record_to_payload(r["payload"]),
        r.get("subject_deceased_ms"),
    )
