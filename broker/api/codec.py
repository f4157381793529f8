"""JSON in and out of the HTTP API (pure): request parsing with typed errors, response bodies.

Errors::

    ValidationError (consent_wire.errors)
    +-- ApiRequestError          BAD_REQUEST
    InvalidCodeError             INVALID_CODE (an unknown purpose, data class, basis or relationship)
    InvalidNhsNumberError        INVALID_NHS_NUMBER (from the backend's pseudonymisation)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import orjson

from broker.audit import AccessView
from broker.decision import Decision, DecisionRequest, Requester
from broker.state import PatientState
from consent_wire.codes import DataClass, LegalBasis, ObjectionAction, PurposeOfUse, Relationship
from consent_wire.errors import InvalidCodeError, ValidationError
from consent_wire.fhir import consent_to_fhir
from consent_wire.hlc import LOGICAL_BITS
from consent_wire.model import ConsentDecision, Objection

__all__ = [
    "ApiRequestError",
    "HealthInfo",
    "ParsedDecision",
    "accesses_json",
    "consent_fhir_json",
    "decision_json",
    "parse_as_at",
    "parse_decision",
    "parse_list_sizes",
    "parse_window",
    "state_json",
]

MAX_DATA_CLASSES = 32  # more than every DataClass code; bounds a hostile list
MAX_TEXT = 128  # organisation / role / accessor id: ODS codes and role names are short

E = TypeVar("E", bound=StrEnum)
Json = dict[str, Any]


class ApiRequestError(ValidationError):
    reason = "BAD_REQUEST"


@dataclass(frozen=True, slots=True)
class HealthInfo:
    ready: bool  # the views have caught up with the topics as they stood at start
    patients: int
    events: int
    audit_next_index: int


@dataclass(frozen=True, slots=True)
class ParsedDecision:
    request: DecisionRequest
    accessor_id: str
    as_at_ms: int | None


def _field(body: Mapping[str, Any], name: str, kind: type[Any], where: str = "") -> Any:
    if name not in body:
        raise ApiRequestError(f"missing field {where}{name}")
    value = body[name]
    if type(value) is not kind:
        raise ApiRequestError(f"field {where}{name} must be {kind.__name__}, got {type(value).__name__}")
    if kind is str and len(value) > MAX_TEXT:
        raise ApiRequestError(f"field {where}{name} is longer than {MAX_TEXT} characters")
    return value


def _code(enum: type[E], value: object, name: str) -> E:
    known = ", ".join(m.value for m in enum)
    if not isinstance(value, str):
        raise InvalidCodeError(f"{name} must be a code string; use one of {known}")
    try:
        return enum(value)
    except ValueError as exc:
        raise InvalidCodeError(f"{name} {value!r} is not a known code; use one of {known}") from exc


def _requester(body: object) -> tuple[Requester, str]:
    if not isinstance(body, dict):
        raise ApiRequestError("field requester must be an object")
    w = "requester."
    accessor = body.get("accessor_id", "")
    if not isinstance(accessor, str) or len(accessor) > MAX_TEXT:
        raise ApiRequestError("field requester.accessor_id must be a short string")
    requester = Requester(
        _field(body, "organisation", str, w),
        _field(body, "role", str, w),
        _field(body, "registered", bool, w),
        _code(Relationship, _field(body, "relationship", str, w), "relationship"),
        _field(body, "care_team", bool, w),
    )
    return requester, accessor


def parse_as_at(value: object) -> int:
    """Milliseconds since the epoch, from an integer or an ISO 8601 time with a UTC offset."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ApiRequestError(f"as_at is not an ISO 8601 time: {exc}") from exc
        if moment.tzinfo is None:
            raise ApiRequestError("as_at needs a UTC offset (e.g. 2026-09-01T12:00:00Z)")
        return int(moment.timestamp() * 1000)
    raise ApiRequestError("as_at must be milliseconds since the epoch or an ISO 8601 time")


def parse_decision(body: object, patient_key: Callable[[str], str], now_ms: int) -> ParsedDecision:
    """A decision request from JSON; ``patient_key`` pseudonymises (and validates) the NHS number."""
    if not isinstance(body, dict):
        raise ApiRequestError("request body must be a JSON object")
    requester, accessor = _requester(body.get("requester"))
    purpose = _code(PurposeOfUse, _field(body, "purpose", str), "purpose")
    key = patient_key(_field(body, "nhs_number", str))
    classes = _field(body, "data_classes", list)
    if len(classes) > MAX_DATA_CLASSES:
        raise ApiRequestError(f"at most {MAX_DATA_CLASSES} data classes per request")
    data_classes = tuple(_code(DataClass, c, "data class") for c in classes)
    basis_value = body.get("legal_basis")
    basis = None if basis_value is None else _code(LegalBasis, basis_value, "legal_basis")
    as_at = None if body.get("as_at") is None else parse_as_at(body["as_at"])
    at_ms = now_ms if as_at is None else as_at
    return ParsedDecision(DecisionRequest(requester, purpose, key, data_classes, basis, at_ms), accessor, as_at)


def parse_list_sizes(text: str | None, configured: Mapping[str, int]) -> dict[str, int]:
    """``A81001:6000,B82002:4000`` (query) or else the configured sizes."""
    if not text:
        if not configured:
            raise ApiRequestError("no list sizes: pass ?list_sizes=PRACTICE:SIZE,... or configure them")
        return dict(configured)
    sizes: dict[str, int] = {}
    for part in text.split(","):
        practice, sep, size = part.partition(":")
        if not sep or not practice or not size.isdigit():
            raise ApiRequestError(f"list_sizes entry {part!r} is not PRACTICE:SIZE")
        sizes[practice] = int(size)
    return sizes


def parse_window(query: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``from`` / ``to`` (ms or ISO 8601) query parameters: the half-open period reported."""
    return _instant(query.get("from")), _instant(query.get("to"))


def _instant(value: str | None) -> int | None:
    if value is None:
        return None
    return parse_as_at(int(value) if value.isdigit() else value)


def decision_json(decision: Decision, decided_at_ms: int, as_at_ms: int | None, audit_index: int | None) -> Json:
    return {
        "outcome": decision.outcome.value,
        "obligations": [o.value for o in decision.obligations],
        "reasons": list(decision.reasons),
        "legal_basis": None if decision.legal_basis is None else decision.legal_basis.value,
        "codes": list(decision.codes),
        "state_version": decision.state_version,
        "permitted": [c.value for c in decision.permitted],
        "withheld": [c.value for c in decision.withheld],
        "decided_at_ms": decided_at_ms,
        "as_at_ms": as_at_ms,
        "audit_index": audit_index,
    }


def state_json(state: PatientState) -> Json:
    """The state's canonical JSON without the (unbounded) list of applied event ids."""
    body: Json = orjson.loads(state.to_bytes())
    body.pop("applied", None)
    body.pop("format", None)
    return body


def consent_fhir_json(state: PatientState, nhs_number: str) -> Json:
    """A FHIR R4 searchset Bundle of Consents: one per consent register and per active objection."""
    resources: list[Json] = []
    for (purpose, data_class, recipient), reg in sorted(state.consents.items(), key=lambda kv: kv[1].stamp):
        decision = ConsentDecision(
            reg.directive, purpose, data_class, recipient, reg.period_start_ms, reg.period_end_ms
        )
        resources.append(_fhir(decision, nhs_number, reg.stamp.hlc, reg.stamp.event_id))
    for kind, obj in sorted(state.objections.items(), key=lambda kv: kv[1].stamp):
        if obj.active:
            objection = Objection(kind, ObjectionAction.REGISTER, obj.exemptions)
            resources.append(_fhir(objection, nhs_number, obj.stamp.hlc, obj.stamp.event_id))
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def _fhir(payload: ConsentDecision | Objection, nhs_number: str, hlc: int, event_id: str) -> Json:
    return consent_to_fhir(payload, nhs_number=nhs_number, recorded_ms=hlc >> LOGICAL_BITS, consent_id=event_id)


def accesses_json(views: Sequence[AccessView]) -> Json:
    return {
        "accesses": [
            {
                "at_ms": v.at_ms,
                "kind": v.kind.value,
                "accessor_id": v.accessor_id,
                "organisation": v.organisation,
                "role": v.role,
                "purpose": v.purpose.value,
                "outcome": v.outcome,
                "disclosed_to": v.disclosed_to,
            }
            for v in views
        ]
    }
