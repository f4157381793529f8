"""FHIR Consent export (R4) and import (R4 and R5), validated by ``fhir.resources``.

Validation uses the ``fhir.resources.R4B`` models for R4: R4B's Consent is structurally identical to
R4's (R4B changed no Consent element), so a resource valid here is valid R4; R5 resources use the
package's R5 models. The import rules are in :mod:`consent_wire.fhir_import`; refusals are
``FHIR_INVALID`` (not valid FHIR) or ``FHIR_UNSUPPORTED`` (valid FHIR the product cannot represent).
Export mapping (R4):

============================  ================================================
ConsentDecision               Consent (status active, scope patient-privacy,
                              category LOINC 59284-0, policyRule v3-ActCode
                              OPTIN / OPTOUT)
directive                     provision.type permit / deny
purpose (ANY = omitted)       provision.purpose, v3-ActReason coding
data_class (ALL = omitted)    provision.securityLabel: v3-ActCode
                              InformationSensitivityPolicy coding (PATLOC as
                              LOCIS), local system for GENERAL / CONTACT
recipient ("*" = omitted)     provision.actor: role v3-ParticipationType IRCP,
                              reference.identifier ODS organisation code
period                        provision.period (dateTime with time zone)
exceptions                    nested provision.provision; unspecified elements
                              inherit from the enclosing provision
Objection                     Consent whose policyRule codes the objection
                              kind (status active = REGISTER, inactive =
                              WITHDRAW), provision.type deny
============================  ================================================

Objection exemptions have no standard Consent element and are not exported. docs/fhir.md has the
full picture (and the HAPI validator's remaining warnings).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

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
from consent_wire.errors import FhirInvalidError, FhirUnsupportedError
from consent_wire.fhir_import import (
    CONSENT_SCOPE_SYSTEM,
    DATA_CLASS_CODES,
    LOCAL_DATA_CLASS_SYSTEM,
    MAX_FHIR_EVENTS,
    OBJECTION_KIND_SYSTEM,
    ODS_SYSTEM,
    PARTICIPATION_SYSTEM,
    r4_events,
    r5_events,
)
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
    "is_r5",
]

LOINC_SYSTEM = "http://loinc.org"
PATIENT_CONSENT_LOINC = "59284-0"  # LOINC "Patient Consent", the R4 Consent category example
RECIPIENT_ROLE = "IRCP"  # v3 ParticipationType "information recipient"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED_SYSTEM = "http://snomed.info/sct"
TYPE1_SNOMED = "827241000000103"  # "Dissent from secondary use of GP patient identifiable data"
MAX_FHIR_BYTES = 256 * 1024  # a Consent is a few KiB; bound parsing of hostile JSON
# Elements only R5's Consent has (R4's scope, patient, dateTime, policyRule are gone in R5).
_R5_ONLY = ("subject", "date", "period", "grantor", "grantee", "manager", "controller", "policyBasis",
            "policyText", "regulatoryBasis", "decision")  # fmt: skip
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
    resource: Json = {"resourceType": "Consent"}
    if consent_id is not None:
        resource["id"] = consent_id
    resource.update(
        {
            "text": {"status": "generated", "div": _narrative(decision)},
            "status": "active",
            "scope": {"coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": LOINC_SYSTEM, "code": PATIENT_CONSENT_LOINC}]}],
            "patient": {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": validate_nhs_number(nhs_number)}},
            "dateTime": _to_datetime(recorded_ms),
        }
    )
    if isinstance(decision, Objection):
        resource.update(_objection_parts(decision))
    else:
        resource["policyRule"] = {"coding": [{"system": ACT_CODE_SYSTEM, "code": decision.directive.value}]}
        provision = _provision(decision, None)
        if exceptions:
            provision["provision"] = [_provision(x, decision) for x in exceptions]
        resource["provision"] = provision
    _validate_r4(resource)
    return resource


def fhir_to_events_payloads(resource: Json | bytes) -> list[ConsentDecision | Objection]:
    """Consent decisions or an objection from a FHIR R4 or R5 Consent.

    Raises :class:`FhirInvalidError` (not valid FHIR) or :class:`FhirUnsupportedError` (valid, but the
    product cannot carry its meaning); both are :class:`consent_wire.errors.InvalidFhirError`.
    """
    data = _load(resource)
    if is_r5(data):
        return r5_events(_validate_r5(data))
    return r4_events(_validate_r4(data))


def is_r5(resource: Json) -> bool:
    """Whether a Consent is R5-shaped (an R5-only element, or ``provision`` as a list)."""
    return any(k in resource for k in _R5_ONLY) or isinstance(resource.get("provision"), list)


def fhir_nhs_number(resource: Json) -> str:
    """The validated NHS number of ``Consent.patient.identifier`` (R4) or ``Consent.subject.identifier`` (R5)."""
    element = "subject" if is_r5(resource) else "patient"
    reference = resource.get(element)
    identifier = (reference.get("identifier") if isinstance(reference, dict) else None) or {}
    if not isinstance(identifier, dict) or identifier.get("system") != NHS_NUMBER_SYSTEM:
        raise FhirUnsupportedError(
            f"Consent.{element}.identifier must be an NHS number ({NHS_NUMBER_SYSTEM}); a literal reference "
            "cannot be resolved here"
        )
    if not isinstance(identifier.get("value"), str):
        raise FhirInvalidError(f"Consent.{element}.identifier.value must be a string")
    return validate_nhs_number(identifier["value"])


def _narrative(decision: ConsentDecision | Objection) -> str:
    """A short human-readable summary (no personal data): FHIR's dom-6 asks every resource for one."""
    if isinstance(decision, Objection):
        what = f"Objection {decision.kind.value} ({decision.action.value.lower()})"
    else:
        verb = "Permit" if decision.directive is ConsentDirective.OPTIN else "Deny"
        who = "any recipient" if decision.recipient == ANY_RECIPIENT else f"organisation {decision.recipient}"
        what = f"{verb} sharing for purpose {decision.purpose.value}, data {decision.data_class.value}, to {who}"
    return f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{what}</p></div>'


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
        system, code = DATA_CLASS_CODES[d.data_class]
        p["securityLabel"] = [{"system": system, "code": code}]
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


def _load(resource: Json | bytes) -> Json:
    if isinstance(resource, bytes | bytearray):
        if len(resource) > MAX_FHIR_BYTES:
            raise FhirUnsupportedError(f"resource is {len(resource)} bytes, over the {MAX_FHIR_BYTES}-byte limit")
        try:
            resource = json.loads(resource)
        except (ValueError, RecursionError) as exc:
            raise FhirInvalidError(f"resource is not JSON: {type(exc).__name__}") from exc
    if not isinstance(resource, dict) or resource.get("resourceType") != "Consent":
        raise FhirInvalidError("resource is not a FHIR Consent (resourceType must be 'Consent')")
    return resource


def _validate_r4(resource: Json) -> Any:
    from fhir.resources.R4B.consent import Consent  # lazy: the models are large

    return _validate(Consent, resource, "R4")


def _validate_r5(resource: Json) -> Any:
    from fhir.resources.consent import Consent  # the package's default models are R5

    return _validate(Consent, resource, "R5")


def _validate(model: Any, resource: Json, version: str) -> Any:
    try:
        return model.model_validate(resource)
    except PydanticValidationError as exc:
        where = "; ".join(".".join(str(p) for p in err["loc"]) + f" ({err['type']})" for err in exc.errors()[:5])
        raise FhirInvalidError(f"not a valid FHIR {version} Consent: {exc.error_count()} error(s): {where}") from exc
    except RecursionError as exc:
        raise FhirUnsupportedError("Consent nests too deeply to validate") from exc


def _to_datetime(ms: int) -> str:
    dt = _EPOCH + timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
