"""Submissions from the clinical system -> validated event payloads (pure).

A submission is one JSON object::

    {"type": "consent_decision", "nhs_number": "9434765919",
     "event_id": "<optional 32 lowercase hex>", "payload": {...}}

``type`` is one of :data:`EVENT_TYPES`; ``payload`` has exactly the fields of the matching
:mod:`consent_wire.model` class (enum fields take the published codes, tuples are JSON
arrays). ``nhs_number`` is required for every type about a patient and forbidden for a
breach report. ``subject_deceased`` (consent decisions, objections and shielding flags only; issue 14)
states the patient's death (true) or withdraws a death stated earlier (false, e.g. a withdrawn PDS
notification); only a GP practice's agent may send it. The NHS number is turned into the keyed
pseudonym at once and is never kept, logged or echoed in an error message. Key lifecycle events are not accepted here:
they are signed by the operator root key, not submitted by a clinical system.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from consent_rules.proxy import proxy_rejection
from consent_wire.codes import (
    BreachSeverity,
    ConsentDirective,
    DataClass,
    HiddenField,
    LegalBasis,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
    Relationship,
    ShieldingAction,
)
from consent_wire.errors import FhirInvalidError, InvalidNhsNumberError, OutOfRangeError
from consent_wire.model import (
    MAX_INDIVIDUALS_AFFECTED,
    AccessRecord,
    BreachReport,
    ConsentDecision,
    Objection,
    Payload,
    ProxyAuthority,
    ShieldingFlag,
)
from edge_agent import fields
from edge_agent.errors import (
    InvalidFieldError,
    MalformedJsonError,
    MissingFieldError,
    UnknownEventTypeError,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_BATCH_BYTES",
    "MAX_SUBMISSION_BYTES",
    "Pseudonymiser",
    "Submission",
    "load_json",
    "parse_fhir_consent",
    "parse_submission",
    "parse_submission_list",
]

# One event is a few hundred bytes; 64 KiB leaves room for long explanations and refuses abuse.
MAX_SUBMISSION_BYTES = 64 * 1024
# A batch of up to 10,000 submissions (the HTTP body limit of POST /v1/events/batch).
MAX_BATCH_BYTES = 16 * 1024 * 1024
_EVENT_ID = re.compile(r"^[0-9a-f]{32}$")
_ODS_OR_ANY = re.compile(r"^(\*|[A-Z0-9]{3,10})$")

FieldParser = Callable[[str, object], object]


class Pseudonymiser(Protocol):
    """NHS number -> patient key; raises InvalidNhsNumberError for an invalid number."""

    def __call__(self, nhs_number: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated submission: no NHS number, only the patient's keyed pseudonym."""

    event_id: str | None  # the client's id, if it sent one (the outbox answers a retried POST once)
    patient_key: str  # "" for events about no patient (breach reports)
    payload: Payload
    # the patient's death stated (True) or withdrawn (False) with this event (issue 14); None = neither
    subject_deceased: bool | None = None


def load_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJsonError(f"body is not valid JSON: {exc}") from exc


def parse_submission_list(doc: object, pseudonymise: Pseudonymiser) -> list[Submission]:
    """A batch body: ``{"events": [submission, ...]}``; the whole batch is rejected if one is bad."""
    body = fields.object_("", doc)
    events = body.get("events")
    if not isinstance(events, list) or not events:
        raise MissingFieldError('a batch needs "events": a non-empty array of submissions')
    return [parse_submission(item, pseudonymise, path=f"events[{i}].") for i, item in enumerate(events)]


def parse_submission(doc: object, pseudonymise: Pseudonymiser, *, path: str = "") -> Submission:
    body = fields.object_(path or "body", doc)
    _only(path, body, ("type", "nhs_number", "event_id", "payload", "subject_deceased"))
    kind = body.get("type")
    spec = _SPECS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise UnknownEventTypeError(f"{path}type={kind!r} is not one of {', '.join(EVENT_TYPES)}")
    cls, parsers = spec
    event_id = _event_id(path, body)
    patient_key = _patient_key(path, body, cls, pseudonymise)
    payload = _build(cls, parsers, fields.object_(f"{path}payload", body.get("payload")), f"{path}payload.")
    _check_payload(payload, f"{path}payload.")
    return Submission(event_id, patient_key, payload, _subject_deceased(path, body, cls))


def parse_fhir_consent(body: bytes, pseudonymise: Pseudonymiser) -> list[Submission]:
    """A FHIR R4 Consent (JSON) -> one submission per decision it holds (or one objection).

    ``consent_wire.fhir`` (and with it fhir.resources) is imported on first use only: it is
    large and most sites submit the native JSON form.
    """
    from consent_wire import fhir  # lazy: keeps the agent's resident memory small

    doc = load_json(body)
    if not isinstance(doc, dict):
        raise FhirInvalidError("resource is not a FHIR Consent (resourceType must be 'Consent')")
    payloads = fhir.fhir_to_events_payloads(doc)
    key = pseudonymise(fhir.fhir_nhs_number(doc))
    return [Submission(None, key, p) for p in payloads]


def _event_id(path: str, body: Mapping[str, object]) -> str | None:
    value = body.get("event_id")
    if value is None:
        return None
    if not isinstance(value, str) or not _EVENT_ID.match(value):
        raise InvalidFieldError(f"{path}event_id must be 32 lowercase hex characters (uuid4().hex)")
    return value


def _subject_deceased(path: str, body: Mapping[str, object], cls: type) -> bool | None:
    value = body.get("subject_deceased")
    if value is None:
        return None
    if cls not in (ConsentDecision, Objection, ShieldingFlag):
        raise InvalidFieldError(
            f"{path}subject_deceased goes with a consent_decision, objection or shielding_flag only"
        )
    if type(value) is not bool:
        raise InvalidFieldError(f"{path}subject_deceased must be true (the patient has died) or false (withdrawn)")
    return value


def _patient_key(path: str, body: Mapping[str, object], cls: type, pseudonymise: Pseudonymiser) -> str:
    nhs = body.get("nhs_number")
    if cls is BreachReport:
        if nhs is not None:
            raise InvalidFieldError(f"{path}nhs_number must not be sent with a breach report")
        return ""
    if nhs is None:
        raise MissingFieldError(f"{path}nhs_number is required for this event type")
    if not isinstance(nhs, str):
        raise InvalidNhsNumberError(f"{path}nhs_number must be a string of 10 digits")
    try:
        return pseudonymise(nhs)
    except InvalidNhsNumberError as exc:
        # never echo the number itself: it is personal data
        raise InvalidNhsNumberError(f"{path}nhs_number is not a valid NHS number (modulus 11)") from exc


def _build(cls: type[Any], parsers: Mapping[str, FieldParser], body: Mapping[str, object], path: str) -> Any:
    _only(path, body, tuple(parsers))
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.name in body:
            values[f.name] = parsers[f.name](path + f.name, body[f.name])
        elif f.default is dataclasses.MISSING:
            raise MissingFieldError(f"{path}{f.name} is required")
    return cls(**values)


def _check_payload(payload: Payload, path: str) -> None:
    if isinstance(payload, ConsentDecision):
        start, end = payload.period_start_ms, payload.period_end_ms
        if start is not None and end is not None and end <= start:
            raise InvalidFieldError(f"{path}period_end_ms ({end}) must be after period_start_ms ({start})")
        if not _ODS_OR_ANY.match(payload.recipient):
            raise InvalidFieldError(f'{path}recipient={payload.recipient!r} must be an ODS code or "*"')
    if isinstance(payload, ShieldingFlag) and payload.action is ShieldingAction.SET and not payload.hides:
        raise InvalidFieldError(f"{path}hides must name at least one field when setting shielding")
    if isinstance(payload, BreachReport):
        if payload.individuals_affected < 0:
            raise InvalidFieldError(f"{path}individuals_affected must be >= 0")
        if payload.individuals_affected > MAX_INDIVIDUALS_AFFECTED:
            raise OutOfRangeError(
                f"{path}individuals_affected={payload.individuals_affected} is over {MAX_INDIVIDUALS_AFFECTED}"
            )


def _only(path: str, body: Mapping[str, object], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidFieldError(f"{path or 'body'}: unknown field(s) {', '.join(unknown)}")


def _opt_proxy(path: str, value: object) -> ProxyAuthority | None:
    """``{"authority": ..., "reference": ...}`` or null; a proxy without authority over health data is
    refused here, as the core's reconciler would reject it (issue 14; ``consent_rules.proxy``)."""
    if value is None:
        return None
    body = fields.object_(path, value)
    _only(path, body, ("authority", "reference"))
    if "authority" not in body:
        raise InvalidFieldError(f"{path}.authority is required")
    authority = fields.enum(ProxyAuthorityKind)(f"{path}.authority", body["authority"])
    reference = body.get("reference", "")
    if not isinstance(reference, str) or len(reference) > fields.MAX_REFERENCE_TEXT:
        raise InvalidFieldError(f"{path}.reference must be a string of at most {fields.MAX_REFERENCE_TEXT} characters")
    proxy = ProxyAuthority(authority, reference)
    reason = proxy_rejection(proxy)
    if reason is not None:
        raise InvalidFieldError(
            f"{path}: {reason}: {authority.value} cannot record this (health and care decisions need parental "
            "responsibility, a registered health and welfare LPA or a personal welfare deputy, with its reference)"
        )
    return proxy


_SPECS: Mapping[str, tuple[type[Any], Mapping[str, FieldParser]]] = {
    "consent_decision": (
        ConsentDecision,
        {
            "directive": fields.enum(ConsentDirective),
            "purpose": fields.enum(PurposeOfUse),
            "data_class": fields.enum(DataClass),
            "recipient": fields.text,
            "period_start_ms": fields.opt_int,
            "period_end_ms": fields.opt_int,
            "recorded_by_role": fields.text,
            "policy_ref": fields.opt_reference,
            "proxy": _opt_proxy,
        },
    ),
    "objection": (
        Objection,
        {
            "kind": fields.enum(ObjectionKind),
            "action": fields.enum(ObjectionAction),
            "exemptions": fields.enums(LegalBasis),
            "exempt_flows": fields.references,
            "proxy": _opt_proxy,
        },
    ),
    "access_record": (
        AccessRecord,
        {
            "accessor_id": fields.text,
            "organisation": fields.text,
            "role": fields.text,
            "registered": fields.bool_,
            "relationship": fields.enum(Relationship),
            "purpose": fields.enum(PurposeOfUse),
            "data_classes": fields.enums(DataClass),
            "legal_basis": fields.opt_enum(LegalBasis),
            "disclosed_to": fields.text,
        },
    ),
    "shielding_flag": (
        ShieldingFlag,
        {
            "action": fields.enum(ShieldingAction),
            "hides": fields.enums(HiddenField),
            "set_by_role": fields.text,
            "reason": fields.text,
        },
    ),
    "breach_report": (
        BreachReport,
        {
            "organisation": fields.text,
            "severity": fields.enum(BreachSeverity),
            "category": fields.text,
            "explanation": fields.text,
            "remedial_action": fields.text,
            "apology_given": fields.bool_,
            "individuals_affected": fields.int_,
        },
    ),
}
EVENT_TYPES: tuple[str, ...] = tuple(_SPECS)
