"""FHIR R4 resources the core's API serves (pure): Consent materialised from the state, searchset
Bundles, AuditEvent from the audit trail (IHE Basic Audit Log Patterns), OperationOutcome, and the
CapabilityStatement.

- Consent: one per consent register and per active objection of the authoritative state, ``id`` = the
  event id that set it, built by :func:`consent_wire.fhir.consent_to_fhir` (as the FAST consent
  registry materialises its Consents). A search names the patient by NHS number, so results carry it;
  a read by id (no NHS number in the request; the core stores only keyed pseudonyms) names the patient
  by the pseudonym (:data:`PSEUDONYM_SYSTEM`).
- AuditEvent (BALP 1.1): a sharing decision is ``IHE.BasicAudit.AuthZconsent``-shaped (DICOM 110113
  Security Alert, subtype AuthZ-Consent, outcome 0 for a permit and 4 for a deny); a disclosure a site
  reported is ``PrivacyDisclosure``-shaped (ISO 21089 ``disclose``, source and recipient agents); a view
  a site reported or a read through this API is ``PatientRead``-shaped (``rest``/``read``, action R).
- Bundles are ``searchset`` with ``total``, a ``self`` link (and ``next`` when a page is full),
  ``fullUrl`` and ``search.mode = match`` per entry and no ``entry`` at all when empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import urlencode

from broker.audit import AuditRecord, RecordKind
from consent_rules.state import PatientState
from consent_wire.codes import ACT_REASON_SYSTEM, ObjectionAction, PurposeOfUse
from consent_wire.fhir import NHS_NUMBER_SYSTEM, ODS_SYSTEM, consent_to_fhir
from consent_wire.hlc import LOGICAL_BITS
from consent_wire.model import ConsentDecision, Objection

__all__ = [
    "FHIR_JSON",
    "PSEUDONYM_SYSTEM",
    "audit_event",
    "capability_statement",
    "consents_of",
    "operation_outcome",
    "searchset",
]

FHIR_JSON = "application/fhir+json"
PSEUDONYM_SYSTEM = "urn:uk-nhs-consent:patient-pseudonym"  # HMAC-SHA256 of the NHS number (consent_wire.identity)
ACCESSOR_SYSTEM = "urn:uk-nhs-consent:accessor-id"  # pseudonymous staff id, as recorded
CLIENT_SYSTEM = "urn:uk-nhs-consent:api-client"  # OAuth client id
CORE_SOURCE = "consent-broker-core"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
AUTHZ_SUBTYPE = "https://profiles.ihe.net/ITI/BALP/CodeSystem/AuthZsubType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
OBJECT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
EXTRA_SECURITY_ROLE = "http://terminology.hl7.org/CodeSystem/extra-security-role-type"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PERMITS = ("PERMIT", "PERMIT_WITH_OBLIGATIONS")
# OperationOutcome.issue.code (required binding, IssueType) per HTTP status
_ISSUE_BY_STATUS = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported",
                    413: "too-long", 503: "transient"}  # fmt: skip
Json = dict[str, Any]


def instant(ms: int) -> str:
    """A FHIR ``instant`` (UTC, milliseconds)."""
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _div(text: str) -> Json:
    return {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escape(text)}</p></div>'}


# --- Consent --------------------------------------------------------------------------------------


def consents_of(state: PatientState, nhs_number: str | None) -> list[tuple[int, Json]]:
    """(recorded ms, Consent) for every consent register and active objection of ``state``, oldest first.

    ``nhs_number`` None names the patient by pseudonym (a read by id).
    """
    out: list[tuple[int, str, Json]] = []
    for (purpose, data_class, recipient), reg in state.consents.items():
        decision = ConsentDecision(
            reg.directive, purpose, data_class, recipient, reg.period_start_ms, reg.period_end_ms
        )
        out.append(_consent(decision, nhs_number, state.patient_key, reg.stamp.hlc, reg.stamp.event_id))
    for (kind, _site), obj in state.objections.items():
        if obj.active:
            objection = Objection(kind, ObjectionAction.REGISTER, obj.exemptions)
            out.append(_consent(objection, nhs_number, state.patient_key, obj.stamp.hlc, obj.stamp.event_id))
    out.sort(key=lambda t: (t[0], t[1]))
    return [(ms, resource) for ms, _, resource in out]


_PLACEHOLDER_NHS = "9434765919"  # valid; replaced by the pseudonym before the resource leaves


def _consent(
    payload: ConsentDecision | Objection, nhs: str | None, key: str, hlc: int, event_id: str
) -> tuple[int, str, Json]:
    ms = hlc >> LOGICAL_BITS
    resource = consent_to_fhir(payload, nhs_number=nhs or _PLACEHOLDER_NHS, recorded_ms=ms, consent_id=event_id)
    if nhs is None:
        resource["patient"] = {"identifier": {"system": PSEUDONYM_SYSTEM, "value": key}}
    return ms, event_id, resource


# --- Bundle ---------------------------------------------------------------------------------------


def searchset(
    base: str,
    resource_type: str,
    matches: Sequence[Json],
    *,
    total: int,
    query: Sequence[tuple[str, str]],
    offset: int,
    count: int,
) -> Json:
    """One page of a searchset Bundle: ``matches`` are the page's resources, ``total`` all of them.

    ``query`` is the request's parameters (repeats kept): the links repeat them with their own ``_offset``.
    """
    params = [(k, v) for k, v in query if k != "_offset"]
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": _url(base, resource_type, params, offset)}],
    }
    if offset + count < total and count > 0:
        bundle["link"].append({"relation": "next", "url": _url(base, resource_type, params, offset + count)})
    if offset > 0:
        bundle["link"].append(
            {"relation": "previous", "url": _url(base, resource_type, params, max(0, offset - count))}
        )
    if matches:
        bundle["entry"] = [
            {"fullUrl": f"{base}/{resource_type}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in matches
        ]
    return bundle


def _url(base: str, resource_type: str, params: Sequence[tuple[str, str]], offset: int) -> str:
    query = sorted([*params, ("_offset", str(offset))] if offset else params)
    return f"{base}/{resource_type}" + (f"?{urlencode(query)}" if query else "")


# --- AuditEvent (IHE BALP) ------------------------------------------------------------------------


def audit_event(index: int, record: AuditRecord, nhs_number: str) -> Json:
    """The AuditEvent of audit entry ``index`` (``id`` ``audit-<index>``), shaped per BALP."""
    patient = {
        "what": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs_number}},
        "type": {"system": OBJECT_TYPE, "code": "1", "display": "Person"},
        "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
    }
    if record.data_classes:
        patient["securityLabel"] = [
            {"system": "urn:uk-nhs-consent:data-class", "code": c.value} for c in record.data_classes
        ]
    entities = [patient]
    if record.codes:
        entities.append(
            {
                "what": {"display": "consent decision"},
                "type": {"system": OBJECT_TYPE, "code": "2", "display": "System Object"},
                "detail": [{"type": "reason", "valueString": code} for code in record.codes],
            }
        )
    resource: Json = {
        "resourceType": "AuditEvent",
        "id": f"audit-{index}",
        "text": _div(f"{record.kind.value} {record.outcome} by {record.organisation} for {record.purpose.value}"),
        **_kind_parts(record),
        "recorded": instant(record.at_ms),
        "outcomeDesc": record.outcome,
        "purposeOfEvent": _purpose(record.purpose),
        "agent": _agents(record),
        "source": {
            "observer": {
                "identifier": {"system": CLIENT_SYSTEM, "value": CORE_SOURCE},
                "display": "consent broker core",
            },
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    }
    return resource


def _kind_parts(record: AuditRecord) -> Json:
    if record.kind is RecordKind.DECISION:
        return {
            "type": {"system": DCM, "code": "110113", "display": "Security Alert"},
            "subtype": [
                {
                    "system": AUTHZ_SUBTYPE,
                    "code": "AuthZ-Consent",
                    "display": "Authorization Decision using Roles and Consent",
                }
            ],
            "action": "E",
            "outcome": "0" if record.outcome in _PERMITS else "4",
        }
    if record.kind is RecordKind.ACCESS and record.disclosed_to:
        return {
            "type": {"system": LIFECYCLE, "code": "disclose", "display": "Disclose Record Lifecycle Event"},
            "action": "R",
            "outcome": "0",
        }
    return {
        "type": {"system": AUDIT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": RESTFUL, "code": "read", "display": "read"}],
        "action": "R",
        "outcome": "0",
    }


def _purpose(purpose: PurposeOfUse) -> list[Json]:
    if purpose is PurposeOfUse.ANY:
        return []
    return [{"coding": [{"system": ACT_REASON_SYSTEM, "code": purpose.value}]}]


def _agents(record: AuditRecord) -> list[Json]:
    person: Json = {
        "type": {"coding": [{"system": EXTRA_SECURITY_ROLE, "code": "humanuser", "display": "human user"}]},
        "who": {"identifier": {"system": ACCESSOR_SYSTEM, "value": record.accessor_id or "unknown"}},
        "requestor": True,
        "role": [{"text": record.role}] if record.role else [],
        "purposeOfUse": _purpose(record.purpose),
    }
    if record.organisation:
        person["location"] = {"identifier": {"system": ODS_SYSTEM, "value": record.organisation}}
    agents = [{k: v for k, v in person.items() if v != []}]
    if record.organisation:
        agents.append(
            {
                "type": {
                    "coding": [{"system": EXTRA_SECURITY_ROLE, "code": "dataprocessor", "display": "data processor"}]
                },
                "who": {"identifier": {"system": ODS_SYSTEM, "value": record.organisation}},
                "requestor": False,
            }
        )
    if record.client_id:
        agents.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
                "who": {"identifier": {"system": CLIENT_SYSTEM, "value": record.client_id}},
                "requestor": False,
            }
        )
    if record.disclosed_to:
        agents.append(
            {
                "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
                "who": {"identifier": {"system": ODS_SYSTEM, "value": record.disclosed_to}},
                "requestor": False,
            }
        )
    return agents


# --- OperationOutcome, CapabilityStatement --------------------------------------------------------


def operation_outcome(status: int, reason: str, message: str) -> Json:
    """An OperationOutcome with one error issue: the product's reason code and message (never personal data)."""
    return {
        "resourceType": "OperationOutcome",
        "text": _div(f"{reason}: {message}"),
        "issue": [
            {
                "severity": "error",
                "code": _ISSUE_BY_STATUS.get(status, "exception"),
                "details": {"coding": [{"system": "urn:uk-nhs-consent:reason", "code": reason}], "text": message},
                "diagnostics": message,
            }
        ],
    }


def capability_statement(base: str, software_version: str, published: str) -> Json:
    """What the FHIR endpoint serves: Consent (read, search) and AuditEvent (search), JSON, OAuth."""
    reader = [
        {
            "name": "accessor_id",
            "type": "string",
            "documentation": "Who reads (pseudonymous staff id), for the audit trail",
        },
        {"name": "role", "type": "string", "documentation": "The reader's role (one the client is registered for)"},
        {"name": "purpose", "type": "token", "documentation": "The reader's purpose of use (v3-ActReason)"},
    ]
    paging = [
        {"name": "_count", "type": "number", "documentation": "Page size, 0..100 (default 50)"},
        {"name": "_offset", "type": "number", "documentation": "Where the page starts (from the next link)"},
    ]
    return {
        "resourceType": "CapabilityStatement",
        "text": _div("Consent broker core: FHIR R4 Consent (read, search) and AuditEvent (search)"),
        "status": "active",
        "date": published,
        "publisher": "consent-broker",
        "kind": "instance",
        "software": {"name": "consent-broker", "version": software_version},
        "implementation": {"description": "Consent broker core FHIR endpoint", "url": base},
        "fhirVersion": "4.0.1",
        "format": [FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "OAuth",
                                }
                            ]
                        }
                    ],
                    "description": "OAuth 2.0 client credentials with private_key_jwt (POST /oauth2/token); "
                    "Consent needs scope patient.read, AuditEvent audit.read",
                },
                "resource": [
                    {
                        "type": "Consent",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            {
                                "name": "patient",
                                "type": "reference",
                                "documentation": "Required: NHS number, or system|value",
                            },
                            {"name": "status", "type": "token"},
                            {"name": "scope", "type": "token"},
                            {
                                "name": "date",
                                "type": "date",
                                "documentation": "Consent.dateTime; prefixes eq ne lt le gt ge",
                            },
                            *paging,
                            *reader,
                        ],
                    },
                    {
                        "type": "AuditEvent",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            {
                                "name": "patient",
                                "type": "reference",
                                "documentation": "Required: NHS number, or system|value",
                            },
                            {
                                "name": "date",
                                "type": "date",
                                "documentation": "AuditEvent.recorded; prefixes eq ne lt le gt ge",
                            },
                            *paging,
                            *reader,
                        ],
                    },
                ],
            }
        ],
    }
