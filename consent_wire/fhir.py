"""FHIR R4 Consent import and export, validated by ``fhir.resources``.

Validation uses the ``fhir.resources.R4B`` models: R4B's Consent is
structurally identical to R4's (R4B changed no Consent element), so a resource
valid here is valid R4. Mapping:

============================  ================================================
ConsentDecision               Consent (status active, scope patient-privacy,
                              category LOINC 59284-0, policyRule v3-ActCode
                              OPTIN / OPTOUT)
directive                     provision.type permit / deny
purpose (ANY = omitted)       provision.purpose, v3-ActReason coding
data_class (ALL = omitted)    provision.securityLabel, v3-ActCode
                              InformationSensitivityPolicy coding
recipient ("*" = omitted)     provision.actor: role v3-ParticipationType IRCP,
                              reference.identifier ODS organisation code
period                        provision.period (dateTime with time zone)
exceptions                    nested provision.provision; unspecified elements
                              inherit from the enclosing provision
Objection                     Consent whose policyRule codes the objection
                              kind (status active = REGISTER, inactive =
                              WITHDRAW), provision.type deny
============================  ================================================

Objection exemptions have no standard Consent element and are not exported.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir.resources.R4B.consent import Consent
from pydantic import ValidationError as PydanticValidationError

from consent_wire.codes import (
    ACT_CODE_SYSTEM,
    ACT_REASON_SYSTEM,
    ConsentDirective,
    DataClass,
    ObjectionAction,
    ObjectionKind,
    PurposeOfUse,
)
from consent_wire.errors import FhirExpansionError, InvalidFhirError
from consent_wire.identity import validate_nhs_number
from consent_wire.model import ANY_RECIPIENT, ConsentDecision, Objection

__all__ = [
    "CONSENT_SCOPE_SYSTEM",
    "LOCAL_DATA_CLASS_SYSTEM",
    "MAX_FHIR_BYTES",
    "MAX_FHIR_EVENTS",
    "NHS_NUMBER_SYSTEM",
    "OBJECTION_KIND_SYSTEM",
    "ODS_SYSTEM",
    "consent_to_fhir",
    "fhir_nhs_number",
    "fhir_to_events_payloads",
]

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC_SYSTEM = "http://loinc.org"
PATIENT_CONSENT_LOINC = "59284-0"  # LOINC "Patient Consent", the R4 Consent category example
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
RECIPIENT_ROLE = "IRCP"  # v3 ParticipationType "information recipient"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SNOMED_SYSTEM = "http://snomed.info/sct"
TYPE1_SNOMED = "827241000000103"  # "Dissent from secondary use of GP patient identifiable data"
LOCAL_DATA_CLASS_SYSTEM = "urn:uk-nhs-consent:data-class"  # local: GENERAL, CONTACT (no HL7 code)
OBJECTION_KIND_SYSTEM = "urn:uk-nhs-consent:objection-kind"  # local: codes.ObjectionKind
MAX_FHIR_BYTES = 256 * 1024  # a Consent is a few KiB; bound parsing of hostile JSON
# Events one Consent may expand into (each provision: purposes x data classes x recipients, plus its nested
# provisions). A real directive is a handful; the edge agent's outbox batch is 500 events
# (edge_agent.config batch_max_events), so one resource fills at most half a batch. 219 KiB of FHIR
# expanded into 99,000 events before this bound; more is FHIR_TOO_MANY_EVENTS, checked before building any.
MAX_FHIR_EVENTS = 256
_LOCAL_CLASSES = {DataClass.GENERAL, DataClass.CONTACT}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
Json = dict[str, Any]


def consent_to_fhir(
    decision: ConsentDecision | Objection,
    *,
    nhs_number: str,
    recorded_ms: int,
    exceptions: Sequence[ConsentDecision] = (),
    consent_id: str | None = None,
) -> Json:
    """A validated FHIR R4 Consent (JSON dict) for one decision (with nested exceptions) or objection."""
    resource: Json = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC_SYSTEM, "code": PATIENT_CONSENT_LOINC}]}],
        "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": validate_nhs_number(nhs_number)}},
        "dateTime": _to_datetime(recorded_ms),
    }
    if consent_id is not None:
        resource["id"] = consent_id
    if isinstance(decision, Objection):
        resource.update(_objection_parts(decision))
    else:
        resource["policyRule"] = {"coding": [{"system": ACT_CODE_SYSTEM, "code": decision.directive.value}]}
        provision = _provision(decision, None)
        if exceptions:
            provision["provision"] = [_provision(x, decision) for x in exceptions]
        resource["provision"] = provision
    _validate(resource)
    return resource


def fhir_to_events_payloads(resource: Json | bytes) -> list[ConsentDecision | Objection]:
    """Consent decisions or an objection from a FHIR R4 Consent; InvalidFhirError if it is not one."""
    data = _load(resource)
    consent = _validate(data)
    scope_codes = _codes(consent.scope, CONSENT_SCOPE_SYSTEM)
    if "patient-privacy" not in scope_codes:
        raise InvalidFhirError("Consent.scope must be patient-privacy for consent directives")
    kinds = _codes(consent.policyRule, OBJECTION_KIND_SYSTEM)
    if kinds:
        return [_objection_from(consent, kinds[0])]
    if consent.status != "active":
        raise InvalidFhirError(f"Consent.status {consent.status!r} is not active; only active directives import")
    if consent.provision is None:
        raise InvalidFhirError("Consent.provision is missing: nothing says what is permitted or denied")
    return _decisions_from(consent.provision, _Scope(), [MAX_FHIR_EVENTS])


def fhir_nhs_number(resource: Json) -> str:
    """The validated NHS number of ``Consent.patient.identifier``."""
    identifier = (resource.get("patient") or {}).get("identifier") or {}
    if identifier.get("system") != NHS_NUMBER_SYSTEM or not isinstance(identifier.get("value"), str):
        raise InvalidFhirError(f"Consent.patient.identifier must be an NHS number ({NHS_NUMBER_SYSTEM})")
    return validate_nhs_number(identifier["value"])


def _objection_parts(objection: Objection) -> Json:
    codings = [{"system": OBJECTION_KIND_SYSTEM, "code": objection.kind.value}]
    if objection.kind is ObjectionKind.TYPE1:
        codings.append({"system": SNOMED_SYSTEM, "code": TYPE1_SNOMED})
    return {
        "status": "active" if objection.action is ObjectionAction.REGISTER else "inactive",
        "policyRule": {"coding": codings},
        "provision": {"type": "deny"},
    }


def _provision(d: ConsentDecision, parent: ConsentDecision | None) -> Json:
    p: Json = {"type": "permit" if d.directive is ConsentDirective.OPTIN else "deny"}
    if d.purpose is not PurposeOfUse.ANY and (parent is None or d.purpose is not parent.purpose):
        p["purpose"] = [{"system": ACT_REASON_SYSTEM, "code": d.purpose.value}]
    if d.data_class is not DataClass.ALL and (parent is None or d.data_class is not parent.data_class):
        system = LOCAL_DATA_CLASS_SYSTEM if d.data_class in _LOCAL_CLASSES else ACT_CODE_SYSTEM
        p["securityLabel"] = [{"system": system, "code": d.data_class.value}]
    if d.recipient != ANY_RECIPIENT and (parent is None or d.recipient != parent.recipient):
        p["actor"] = [
            {
                "role": {"coding": [{"system": PARTICIPATION_SYSTEM, "code": RECIPIENT_ROLE}]},
                "reference": {"identifier": {"system": ODS_SYSTEM, "value": d.recipient}},
            }
        ]
    period = (d.period_start_ms, d.period_end_ms)
    if period != (None, None) and (parent is None or period != (parent.period_start_ms, parent.period_end_ms)):
        p["period"] = {k: _to_datetime(v) for k, v in zip(("start", "end"), period, strict=True) if v is not None}
    return p


class _Scope:
    """What a provision inherits from its parent."""

    def __init__(
        self,
        purposes: tuple[PurposeOfUse, ...] = (PurposeOfUse.ANY,),
        classes: tuple[DataClass, ...] = (DataClass.ALL,),
        recipients: tuple[str, ...] = (ANY_RECIPIENT,),
        period: tuple[int | None, int | None] = (None, None),
    ) -> None:
        self.purposes, self.classes, self.recipients, self.period = purposes, classes, recipients, period


def _decisions_from(provision: Any, parent: _Scope, budget: list[int]) -> list[ConsentDecision | Objection]:
    """The provision's decisions; ``budget[0]`` is how many more events the resource may still expand into."""
    if provision.type not in ("permit", "deny"):
        raise InvalidFhirError("every Consent provision must have type permit or deny")
    scope = _Scope(
        _purposes(provision.purpose) or parent.purposes,
        _classes(provision.securityLabel) or parent.classes,
        _recipients(provision.actor) or parent.recipients,
        _period(provision.period) if provision.period is not None else parent.period,
    )
    directive = ConsentDirective.OPTIN if provision.type == "permit" else ConsentDirective.OPTOUT
    budget[0] -= len(scope.purposes) * len(scope.classes) * len(scope.recipients)
    if budget[0] < 0:
        raise FhirExpansionError(
            f"the Consent's provisions expand into more than {MAX_FHIR_EVENTS} consent decisions; "
            "split it into several Consent resources"
        )
    out: list[ConsentDecision | Objection] = [
        ConsentDecision(directive, purpose, data_class, recipient, scope.period[0], scope.period[1])
        for purpose in scope.purposes
        for data_class in scope.classes
        for recipient in scope.recipients
    ]
    for child in provision.provision or ():
        out.extend(_decisions_from(child, scope, budget))
    return out


def _purposes(codings: Any) -> tuple[PurposeOfUse, ...]:
    out = []
    for c in codings or ():
        if c.system != ACT_REASON_SYSTEM or c.code not in PurposeOfUse.__members__:
            raise InvalidFhirError(f"provision.purpose {c.system}|{c.code} is not a supported v3-ActReason code")
        out.append(PurposeOfUse(c.code))
    return tuple(out)


def _classes(codings: Any) -> tuple[DataClass, ...]:
    out = []
    for c in codings or ():
        if c.system not in (ACT_CODE_SYSTEM, LOCAL_DATA_CLASS_SYSTEM) or c.code not in DataClass.__members__:
            raise InvalidFhirError(f"provision.securityLabel {c.system}|{c.code} is not a supported data class")
        out.append(DataClass(c.code))
    return tuple(out)


def _recipients(actors: Any) -> tuple[str, ...]:
    out = []
    for actor in actors or ():
        identifier = actor.reference.identifier if actor.reference is not None else None
        if identifier is None or identifier.system != ODS_SYSTEM or not identifier.value:
            raise InvalidFhirError("provision.actor.reference must identify an organisation by ODS code")
        out.append(str(identifier.value))
    return tuple(out)


def _period(period: Any) -> tuple[int | None, int | None]:
    start, end = _from_datetime(period.start, "start"), _from_datetime(period.end, "end")
    if start is not None and end is not None and end <= start:
        raise InvalidFhirError("provision.period.end is not after its start")
    return start, end


def _objection_from(consent: Any, kind: str) -> Objection:
    if kind not in ObjectionKind.__members__:
        raise InvalidFhirError(f"objection kind {kind!r} is not one of {sorted(ObjectionKind.__members__)}")
    actions = {"active": ObjectionAction.REGISTER, "inactive": ObjectionAction.WITHDRAW}
    if consent.status not in actions:
        raise InvalidFhirError(f"objection Consent.status must be active or inactive, got {consent.status!r}")
    return Objection(ObjectionKind(kind), actions[consent.status])


def _codes(concept: Any, system: str) -> list[str]:
    if concept is None:
        return []
    return [str(c.code) for c in concept.coding or () if c.system == system and c.code]


def _load(resource: Json | bytes) -> Json:
    if isinstance(resource, bytes | bytearray):
        if len(resource) > MAX_FHIR_BYTES:
            raise InvalidFhirError(f"resource is {len(resource)} bytes, over the {MAX_FHIR_BYTES}-byte limit")
        try:
            resource = json.loads(resource)
        except (ValueError, RecursionError) as exc:
            raise InvalidFhirError(f"resource is not JSON: {type(exc).__name__}") from exc
    if not isinstance(resource, dict) or resource.get("resourceType") != "Consent":
        raise InvalidFhirError("resource is not a FHIR Consent (resourceType must be 'Consent')")
    return resource


def _validate(resource: Json) -> Any:
    try:
        return Consent.model_validate(resource)
    except PydanticValidationError as exc:
        where = "; ".join(".".join(str(p) for p in err["loc"]) + f" ({err['type']})" for err in exc.errors()[:5])
        raise InvalidFhirError(f"not a valid FHIR R4 Consent: {exc.error_count()} error(s): {where}") from exc


def _to_datetime(ms: int) -> str:
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _from_datetime(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidFhirError(f"provision.period.{name} must be a full dateTime with a time zone")
    return (value - _EPOCH) // _MS
