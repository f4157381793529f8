"""A decision request from its JSON document, the one parser of the core's and the agent's APIs (pure).

The document (``docs/openapi.yaml``, ``DecisionRequest``)::

    {"nhs_number": "9434765919", "purpose": "TREAT", "data_classes": ["ALL"],
     "legal_basis": null, "as_at": null,
     "requester": {"organisation": "A12345", "role": "GP", "registered": true,
                   "relationship": "LEGITIMATE", "care_team": true, "accessor_id": "staff-42"}}

``data_holder`` (optional, ``{"organisation": "A81001", "kind": "GP_PRACTICE"}``) names who holds the
data asked for (a type 1 objection covers GP-held data only; local dissent its recorder's data).
``evidence`` (optional, ``{"instrument": ..., "justification": ..., "approver": ...}``) is what an
override rests on: a STATUTORY_MANDATE applies only naming its instrument, SAFEGUARDING only with a
justification and an approver.
``gateway`` (optional, ``COPI_REG3`` or ``COPI_REG5``) refines an S251 basis with the COPI regulation
relied on, and ``flow_ref`` (optional) names the data flow asked under (a CAG approval, a COPI notice,
a data-sharing agreement): the national opt-out does not reach regulation 3 flows, and an exemption on
an objection holds only for the flows it names (issue 14, rule 5).
``identifiability`` (optional, ``IDENTIFIABLE`` by default, ``PSEUDONYMISED``, ``ANONYMISED``): anonymised
data fall outside the national opt-out, type 1 and type 2.
``access_right`` (optional: SELF, PARENTAL_RESPONSIBILITY, LASTING_POWER_OF_ATTORNEY, COURT_DEPUTY,
PERSONAL_REPRESENTATIVE) marks a request from the patient's side (PATRQT, FAMRQT, PWATRNY) and
``subject`` (optional, ``{"age_years": 14, "gillick_competent": false, "deceased": false}``) what is known
of the patient where the rules depend on it.
``statutory_classes`` (optional, e.g. ``["FERTILITY"]``) says the data include information a statute
restricts (HFE Act 1990 s33A, GRA 2004 s22, adoption records); each is withheld unless the route allows it.
``purpose`` may also be HLEGAL, HDECD or THREAT (HL7 ActReason codes the wire does not carry): the
request is then decided as one for their parent (HOPERAT, HOPERAT, PUBHLTH) with their own conditions.
``agreement_ref`` (optional) names the data-sharing agreement the request is made under (rec 20).
``as_at`` (epoch milliseconds or ISO 8601 with a UTC offset) asks for a re-evaluation as at that
time; ``requester.accessor_id`` names the person (recorded in the audit, never decided on).

Errors::

    ValidationError (consent_wire.errors)
    +-- BadRequestError          BAD_REQUEST
    InvalidCodeError             INVALID_CODE (an unknown purpose, data class, basis or relationship)
    (and whatever the caller's ``patient_key`` raises for a bad NHS number)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from consent_rules.decision.request import (
    DataHolder,
    DecisionRequest,
    Gateway,
    HolderKind,
    Identifiability,
    OverrideEvidence,
    Requester,
)
from consent_rules.decision.statutory import StatutoryClass
from consent_rules.decision.subject import AccessRight, Subject
from consent_rules.hierarchy import REQUEST_ONLY_PARENT, RequestOnlyPurpose
from consent_wire.codes import DataClass, LegalBasis, PurposeOfUse, Relationship
from consent_wire.errors import InvalidCodeError, ValidationError

__all__ = [
    "MAX_DATA_CLASSES",
    "MAX_EVIDENCE_TEXT",
    "MAX_TEXT",
    "BadRequestError",
    "ParsedRequest",
    "parse_as_at",
    "parse_request",
]

MAX_DATA_CLASSES = 32  # more than every DataClass code; bounds a hostile list
MAX_TEXT = 128  # organisation / role / accessor id: ODS codes and role names are short
MAX_AS_AT_MS = 2**63 - 1  # a time is an Avro long everywhere it is stored; larger is not a time
MAX_AGE_YEARS = 150  # older than anyone has lived (122, Guinness); bounds a hostile number
MAX_EVIDENCE_TEXT = 512  # an instrument's citation or a one-paragraph justification, recorded in the audit

E = TypeVar("E", bound=StrEnum)


class BadRequestError(ValidationError):
    """A request document that is not the documented shape; the message names the field."""

    reason = "BAD_REQUEST"


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    request: DecisionRequest  # at_ms is as_at_ms when given, else the now_ms passed to the parser
    accessor_id: str  # "" when the requester names no person
    as_at_ms: int | None  # the re-evaluation time asked for; None = a live decision


def parse_request(body: object, patient_key: Callable[[str], str], now_ms: int) -> ParsedRequest:
    """A decision request from JSON; ``patient_key`` pseudonymises (and validates) the NHS number."""
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    requester, accessor = _requester(body.get("requester"))
    purpose, detail = _purpose(_field(body, "purpose", str))
    key = patient_key(_field(body, "nhs_number", str))
    classes = _field(body, "data_classes", list)
    if len(classes) > MAX_DATA_CLASSES:
        raise BadRequestError(f"at most {MAX_DATA_CLASSES} data classes per request")
    data_classes = tuple(_code(DataClass, c, "data class") for c in classes)
    basis_value = body.get("legal_basis")
    basis = None if basis_value is None else _code(LegalBasis, basis_value, "legal_basis")
    as_at = None if body.get("as_at") is None else parse_as_at(body["as_at"])
    at_ms = now_ms if as_at is None else as_at
    holder = None if body.get("data_holder") is None else _data_holder(body["data_holder"])
    evidence = None if body.get("evidence") is None else _evidence(body["evidence"])
    gateway = None if body.get("gateway") is None else _code(Gateway, body["gateway"], "gateway")
    flow_ref = "" if body.get("flow_ref") is None else _field(body, "flow_ref", str)
    agreement = "" if body.get("agreement_ref") is None else _field(body, "agreement_ref", str)
    level_value = body.get("identifiability")
    level = (
        Identifiability.IDENTIFIABLE if level_value is None else _code(Identifiability, level_value, "identifiability")
    )
    right = None if body.get("access_right") is None else _code(AccessRight, body["access_right"], "access_right")
    subject = Subject() if body.get("subject") is None else _subject(body["subject"])
    statutory = () if body.get("statutory_classes") is None else _statutory(body["statutory_classes"])
    request = DecisionRequest(
        requester,
        purpose,
        key,
        data_classes,
        basis,
        at_ms,
        holder,
        evidence,
        gateway,
        flow_ref,
        agreement,
        level,
        right,
        statutory,
        subject,
        detail,
    )
    return ParsedRequest(request, accessor, as_at)


def _purpose(value: str) -> tuple[PurposeOfUse, RequestOnlyPurpose | None]:
    """A wire purpose, or a request-only ActReason code with its parent (issue 14, vocabulary)."""
    if value in RequestOnlyPurpose.__members__:
        detail = RequestOnlyPurpose(value)
        return REQUEST_ONLY_PARENT[detail], detail
    try:
        return PurposeOfUse(value), None
    except ValueError as exc:
        known = ", ".join([*(m.value for m in PurposeOfUse), *(m.value for m in RequestOnlyPurpose)])
        raise InvalidCodeError(f"purpose {value!r} is not a known code; use one of {known}") from exc


def parse_as_at(value: object) -> int:
    """Milliseconds since the epoch, from an integer or an ISO 8601 time with a UTC offset."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value > MAX_AS_AT_MS:
            raise BadRequestError(f"as_at in milliseconds is at most {MAX_AS_AT_MS} (an Avro long)")
        return value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError as exc:
            raise BadRequestError(f"as_at is not an ISO 8601 time: {exc}") from exc
        if moment.tzinfo is None:
            raise BadRequestError("as_at needs a UTC offset (e.g. 2026-09-01T12:00:00Z)")
        return int(moment.timestamp() * 1000)
    raise BadRequestError("as_at must be milliseconds since the epoch or an ISO 8601 time")


def _field(body: Mapping[str, Any], name: str, kind: type[Any], where: str = "") -> Any:
    if name not in body:
        raise BadRequestError(f"missing field {where}{name}")
    value = body[name]
    if type(value) is not kind:
        raise BadRequestError(f"field {where}{name} must be {kind.__name__}, got {type(value).__name__}")
    if kind is str and len(value) > MAX_TEXT:
        raise BadRequestError(f"field {where}{name} is longer than {MAX_TEXT} characters")
    return value


def _code(enum: type[E], value: object, name: str) -> E:
    if isinstance(value, str):
        member = enum._value2member_map_.get(value)  # the lookup Enum(value) starts with, without its call overhead
        if member is not None:
            return member  # type: ignore[return-value]
    known = ", ".join(m.value for m in enum)  # only for the error (profiled: ~2% of a decision when built always)
    if not isinstance(value, str):
        raise InvalidCodeError(f"{name} must be a code string; use one of {known}")
    raise InvalidCodeError(f"{name} {value!r} is not a known code; use one of {known}")


def _data_holder(body: object) -> DataHolder:
    if not isinstance(body, dict):
        raise BadRequestError(
            'field data_holder must be an object like {"organisation": "A81001", "kind": "GP_PRACTICE"}'
        )
    w = "data_holder."
    return DataHolder(_field(body, "organisation", str, w), _code(HolderKind, _field(body, "kind", str, w), "kind"))


def _evidence(body: object) -> OverrideEvidence:
    if not isinstance(body, dict):
        raise BadRequestError("field evidence must be an object with instrument, justification and/or approver")
    texts: dict[str, str] = {}
    for name in ("instrument", "justification", "approver"):
        value = body.get(name, "")
        if not isinstance(value, str) or len(value) > MAX_EVIDENCE_TEXT:
            raise BadRequestError(f"field evidence.{name} must be a string of at most {MAX_EVIDENCE_TEXT} characters")
        texts[name] = value
    return OverrideEvidence(**texts)


def _statutory(value: object) -> tuple[StatutoryClass, ...]:
    if not isinstance(value, list) or len(value) > len(StatutoryClass):
        raise BadRequestError(f"field statutory_classes must be a list of at most {len(StatutoryClass)} codes")
    return tuple(_code(StatutoryClass, v, "statutory class") for v in value)


def _subject(body: object) -> Subject:
    if not isinstance(body, dict):
        raise BadRequestError("field subject must be an object with age_years, gillick_competent and/or deceased")
    age = body.get("age_years")
    if age is not None and (type(age) is not int or not 0 <= age <= MAX_AGE_YEARS):
        raise BadRequestError(f"field subject.age_years must be an integer from 0 to {MAX_AGE_YEARS}")
    gillick = body.get("gillick_competent")
    if gillick is not None and type(gillick) is not bool:
        raise BadRequestError("field subject.gillick_competent must be true, false or null")
    deceased = body.get("deceased", False)
    if type(deceased) is not bool:
        raise BadRequestError("field subject.deceased must be true or false")
    return Subject(age, gillick, deceased)


def _requester(body: object) -> tuple[Requester, str]:
    if not isinstance(body, dict):
        raise BadRequestError("field requester must be an object")
    w = "requester."
    accessor = body.get("accessor_id", "")
    if not isinstance(accessor, str) or len(accessor) > MAX_TEXT:
        raise BadRequestError("field requester.accessor_id must be a short string")
    requester = Requester(
        _field(body, "organisation", str, w),
        _field(body, "role", str, w),
        _field(body, "registered", bool, w),
        _code(Relationship, _field(body, "relationship", str, w), "relationship"),
        _field(body, "care_team", bool, w),
    )
    return requester, accessor
