"""CDS Hooks 2.0 ``patient-consent-consult``: the hook request to a decision document, the answer to cards (pure).

The service follows the shape of the LEAP Consent Decision Service (ONC LEAP, sdhealthconnect/leap-cds), so
EHRs that already call that service call this one unchanged. A request
(``POST /cds-services/patient-consent-consult``)::

    {"hook": "patient-consent-consult", "hookInstance": "<uuid>",
     "context": {"patientId": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
                 "actor": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RX1"},
                           {"system": "urn:uk-nhs-consent:role", "value": "CONSULTANT"},
                           {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "staff-7"}],
                 "purposeOfUse": "TREAT",
                 "category": [{"system": "http://loinc.org", "code": "59284-0"}],
                 "class": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}]},
     "extension": {"uk-nhs-consent": {"registered": true, "relationship": "LEGITIMATE", "care_team": true}}}

- ``patientId``: identifiers; the one with the NHS number system is decided on (others are ignored).
- ``actor``: the organisation (ODS code, required), the requester's role (required) and the person
  (SDS user id, required: every decision names who asked, for the audit trail).
- ``purposeOfUse``: one HL7 v3 ActReason code (a string, or a list of one, as LEAP accepts).
- ``category``: the consent categories the EHR asks about; when given, at least one must be a privacy
  consent category kept here (:data:`PRIVACY_CATEGORIES`), otherwise the answer is ``NO_CONSENT``.
- ``class``: the data classes asked for (v3-ActCode sensitivity codes, the local data-class system, or
  FHIR resource types, which are ordinary clinical data: GENERAL); absent: ALL.
- ``extension["uk-nhs-consent"]`` (CDS Hooks' extension point): what the decision needs beyond LEAP's
  context, ``registered``, ``relationship``, ``care_team``, ``legal_basis``, ``data_holder``, ``evidence``
  (as in ``POST /v1/decisions``). Absent values are the conservative ones: not registered, no
  relationship, not in the care team.

The answer is one card (CDS Hooks 2.0 ``Card``): ``summary`` is the LEAP decision ``CONSENT_PERMIT``
(indicator ``info``), ``CONSENT_DENY`` (``critical``) or ``NO_CONSENT`` (``warning``: nothing the
patient recorded and no legal basis covers a use beyond direct care); ``detail`` the reasons in plain
English; ``extension`` the LEAP ``decision`` and ``obligations`` (``{"id": v3-ActCode REDACT,
"parameters": {"codes": [security labels]}}``) plus this broker's full answer (outcome, codes, legal
basis, state version, ``offline`` and ``as_at_ms``, the audit index).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from consent_rules.decision import Code, Decision, DecisionAnswer, Obligation, Outcome
from consent_rules.decision.document import MAX_TEXT, BadRequestError
from consent_wire.codes import ACT_CODE_SYSTEM, ACT_REASON_SYSTEM, DataClass

__all__ = [
    "HOOK",
    "NHS_NUMBER_SYSTEM",
    "ODS_SYSTEM",
    "PRIVACY_CATEGORIES",
    "ROLE_SYSTEM",
    "SERVICE_ID",
    "USER_SYSTEM",
    "CdsDecision",
    "card_json",
    "decision_document",
    "discovery",
    "example_responses",
    "label_parameters",
]

HOOK = "patient-consent-consult"  # the hook LEAP defined; its service id is the same
SERVICE_ID = "patient-consent-consult"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"  # as consent_wire.fhir (not imported: it loads fhir.resources)
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
USER_SYSTEM = "https://fhir.nhs.uk/Id/sds-user-id"  # NHS Spine Directory Service user id: the person asking
ROLE_SYSTEM = "urn:uk-nhs-consent:role"  # local: the role as registered for the API client
LOCAL_DATA_CLASS_SYSTEM = "urn:uk-nhs-consent:data-class"  # local data classes (GENERAL, CONTACT), as consent_wire.fhir
HIDDEN_FIELD_SYSTEM = (
    "urn:uk-nhs-consent:hidden-field"  # local: what shielding hides with no HL7 code (IDENTITY, CONTACT)
)
RESOURCE_TYPE_SYSTEM = "http://hl7.org/fhir/resource-types"  # LEAP's class system for FHIR resource types
LOINC_SYSTEM = "http://loinc.org"
CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
EXTENSION_KEY = "uk-nhs-consent"
MAX_ITEMS = 32  # identifiers, categories or classes in one context: more than any EHR sends; bounds hostile lists
# Privacy consent categories: LOINC 59284-0 "Patient Consent" (what this broker exports), the R4 consent scope
# patient-privacy, and the v3-ActCode privacy consent directives LEAP's examples use.
PRIVACY_CATEGORIES = frozenset(
    {
        (LOINC_SYSTEM, "59284-0"),
        (CONSENT_SCOPE_SYSTEM, "patient-privacy"),
        (ACT_CODE_SYSTEM, "IDSCL"),
        (ACT_CODE_SYSTEM, "INFA"),
        (ACT_CODE_SYSTEM, "INFAO"),
        (ACT_CODE_SYSTEM, "INFASO"),
        (ACT_CODE_SYSTEM, "OPTIN"),
        (ACT_CODE_SYSTEM, "OPTOUT"),
    }
)
# Security labels of what an obligation redacts. v3-ActCode LOCIS is "location information sensitivity"
# (v3-ActCode has no PATLOC); contact details and identity have no HL7 code, so they carry local codes.
_REDACTED: dict[Obligation, tuple[str, str]] = {
    Obligation.REDACT_LOCATION: (ACT_CODE_SYSTEM, "LOCIS"),
    Obligation.REDACT_CONTACT: (HIDDEN_FIELD_SYSTEM, "CONTACT"),
    Obligation.REDACT_IDENTITY: (HIDDEN_FIELD_SYSTEM, "IDENTITY"),
}
_LOCAL_CLASSES = frozenset({DataClass.ALL, DataClass.GENERAL, DataClass.CONTACT})
REDACT = {"system": ACT_CODE_SYSTEM, "code": "REDACT"}  # v3-ActCode ObligationPolicy REDACT
MINIMUM_NECESSARY = {"system": ACT_CODE_SYSTEM, "code": "MINNEC"}  # v3-ActCode ObligationPolicy "minimum necessary"
# Deny reasons that come from nothing the patient recorded: the answer is then NO_CONSENT, as LEAP's.
_NO_CONSENT_CODES = frozenset({Code.NO_CONSENT_OR_LEGAL_BASIS.value})


class CdsDecision(StrEnum):
    CONSENT_PERMIT = "CONSENT_PERMIT"
    CONSENT_DENY = "CONSENT_DENY"
    NO_CONSENT = "NO_CONSENT"


_INDICATOR = {
    CdsDecision.CONSENT_PERMIT: "info",
    CdsDecision.CONSENT_DENY: "critical",
    CdsDecision.NO_CONSENT: "warning",
}


def discovery(source: str = "consent-broker") -> dict[str, object]:
    """The CDS Hooks discovery document (``GET /cds-services``)."""
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": "Patient consent consult",
                "description": (
                    f"{source}: may this requester have these data of this patient for this purpose? "
                    "Answers CONSENT_PERMIT, CONSENT_DENY or NO_CONSENT with redaction obligations as security "
                    "labels, from the authoritative consent state (LEAP consent decision service shape)."
                ),
                "usageRequirements": (
                    "context.patientId with an NHS number; context.actor with the ODS organisation, the role and "
                    "the SDS user id of the person asking; context.purposeOfUse (HL7 v3 ActReason)."
                ),
            }
        ]
    }


def decision_document(body: object) -> tuple[dict[str, Any], bool]:
    """The ``POST /v1/decisions`` document a hook request asks, and whether its categories are kept here.

    Raises :class:`~consent_rules.decision.document.BadRequestError` naming the element that is wrong.
    """
    if not isinstance(body, dict):
        raise BadRequestError("a CDS Hooks request must be a JSON object")
    if body.get("hook") != HOOK:
        raise BadRequestError(f"hook must be {HOOK!r}")
    instance = body.get("hookInstance")
    if not isinstance(instance, str) or not instance or len(instance) > MAX_TEXT:
        raise BadRequestError("hookInstance must be a UUID string")
    context = body.get("context")
    if not isinstance(context, dict):
        raise BadRequestError("context must be an object")
    actor = _identifiers(context.get("actor"), "context.actor")
    extension = body.get("extension", {})
    extra = extension.get(EXTENSION_KEY, {}) if isinstance(extension, dict) else None
    if not isinstance(extra, dict):
        raise BadRequestError(f'extension["{EXTENSION_KEY}"] must be an object')
    requester = {
        "organisation": _one(actor, ODS_SYSTEM, "context.actor"),
        "role": _one(actor, ROLE_SYSTEM, "context.actor"),
        "accessor_id": _one(actor, USER_SYSTEM, "context.actor"),
        "registered": extra.get("registered", False),
        "relationship": extra.get("relationship", "NONE"),
        "care_team": extra.get("care_team", False),
    }
    document: dict[str, Any] = {
        "nhs_number": _one(
            _identifiers(context.get("patientId"), "context.patientId"), NHS_NUMBER_SYSTEM, "context.patientId"
        ),
        "purpose": _purpose(context.get("purposeOfUse")),
        "data_classes": _classes(context.get("class")),
        "requester": requester,
        "legal_basis": extra.get("legal_basis"),
    }
    for name in ("data_holder", "evidence"):
        if extra.get(name) is not None:
            document[name] = extra[name]
    categories = _codings(context.get("category"), "context.category")
    kept = not categories or any(c in PRIVACY_CATEGORIES for c in categories)
    return document, kept


def card_json(answer: DecisionAnswer | None, source: Mapping[str, str], *, kept: bool = True) -> dict[str, object]:
    """The CDS Hooks response (``{"cards": [card]}``) for ``answer``; None or ``kept`` False: NO_CONSENT."""
    if answer is None or not kept:
        card = {
            "uuid": str(uuid.uuid4()),
            "summary": CdsDecision.NO_CONSENT.value,
            "detail": "No consent of the categories asked for is kept by this service.",
            "indicator": _INDICATOR[CdsDecision.NO_CONSENT],
            "source": dict(source),
            "extension": {"decision": CdsDecision.NO_CONSENT.value, "obligations": []},
        }
        return {"cards": [card]}
    kind = _kind(answer)
    d = answer.decision
    card = {
        "uuid": str(uuid.uuid4()),
        "summary": kind.value,
        "detail": " ".join(d.reasons),
        "indicator": _INDICATOR[kind],
        "source": dict(source),
        "extension": _extension(kind, answer),
    }
    return {"cards": [card]}


def _extension(kind: CdsDecision, answer: DecisionAnswer) -> dict[str, object]:
    """LEAP's ``decision`` and ``obligations``, then the broker's answer (its obligations as ``obligation_codes``)."""
    broker = answer.to_json()
    broker["obligation_codes"] = broker.pop("obligations")
    return {"decision": kind.value, "obligations": obligations(answer), **broker}


def obligations(answer: DecisionAnswer) -> list[dict[str, object]]:
    """LEAP-shaped obligations: REDACT with the security labels to remove; MINNEC for the minimum data set."""
    d = answer.decision
    if d.outcome is Outcome.DENY:
        return []
    labels = [_coding(*_REDACTED[o]) for o in d.obligations if o in _REDACTED]
    labels += [_class_label(c) for c in d.withheld if _class_label(c) not in labels]
    result: list[dict[str, object]] = []
    if labels:
        result.append({"id": REDACT, "parameters": {"codes": labels}})
    if Obligation.MINIMUM_DATA_SET in d.obligations:
        result.append({"id": MINIMUM_NECESSARY, "parameters": {}})
    return result


def label_parameters(cards: Mapping[str, object]) -> dict[str, object]:
    """The FHIR content of a CDS response as an R4 ``Parameters`` resource (decision and every coding it carries).

    Cards hold no FHIR resources, only FHIR Codings (obligation ids and security labels); this puts them in a
    resource an independent FHIR validator can check (see ``tests/unit/rules/test_cds_hooks.py``, ``export``).
    """
    parameters: list[dict[str, object]] = []
    for card in cards.get("cards", []):  # type: ignore[attr-defined]
        ext = card["extension"]
        parameters.append({"name": "decision", "valueString": ext["decision"]})
        for obligation in ext["obligations"]:
            parts = [{"name": "id", "valueCoding": obligation["id"]}]
            parts += [{"name": "code", "valueCoding": c} for c in obligation["parameters"].get("codes", [])]
            parameters.append({"name": "obligation", "part": parts})
    return {"resourceType": "Parameters", "parameter": parameters}


def _kind(answer: DecisionAnswer) -> CdsDecision:
    d = answer.decision
    if d.outcome is not Outcome.DENY:
        return CdsDecision.CONSENT_PERMIT
    if set(d.codes) <= _NO_CONSENT_CODES:
        return CdsDecision.NO_CONSENT
    return CdsDecision.CONSENT_DENY


def _coding(system: str, code: str) -> dict[str, str]:
    return {"system": system, "code": code}


def _class_label(c: DataClass) -> dict[str, str]:
    if c is DataClass.PATLOC:
        return _coding(ACT_CODE_SYSTEM, "LOCIS")
    return _coding(LOCAL_DATA_CLASS_SYSTEM if c in _LOCAL_CLASSES else ACT_CODE_SYSTEM, c.value)


def _identifiers(value: object, where: str) -> list[tuple[str, str]]:
    """``[{"system", "value"}]`` as pairs (LEAP also sends a single identifier object: accepted)."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise BadRequestError(f"{where} must be a non-empty list of identifiers {{system, value}}")
    if len(value) > MAX_ITEMS:
        raise BadRequestError(f"{where} has more than {MAX_ITEMS} identifiers")
    pairs = []
    for item in value:
        if not isinstance(item, dict):
            raise BadRequestError(f"{where} items must be identifiers {{system, value}}")
        system, val = item.get("system", ""), item.get("value")
        if not isinstance(system, str) or not isinstance(val, str) or len(system) > 256 or len(val) > MAX_TEXT:
            raise BadRequestError(f"{where} identifiers need a string system and a short string value")
        pairs.append((system, val))
    return pairs


def _one(pairs: Sequence[tuple[str, str]], system: str, where: str) -> str:
    values = [v for s, v in pairs if s == system]
    if len(values) != 1:
        raise BadRequestError(f"{where} must hold exactly one identifier of system {system}, found {len(values)}")
    return values[0]


def _codings(value: object, where: str) -> list[tuple[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise BadRequestError(f"{where} must be a list of at most {MAX_ITEMS} codings {{system, code}}")
    pairs = []
    for item in value:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("system"), str)
            or not isinstance(item.get("code"), str)
        ):
            raise BadRequestError(f"{where} items must be codings {{system, code}} of strings")
        pairs.append((item["system"], item["code"]))
    return pairs


def _purpose(value: object) -> object:
    if isinstance(value, list):
        if len(value) != 1:
            raise BadRequestError("context.purposeOfUse must name exactly one purpose (HL7 v3 ActReason)")
        value = value[0]
    if isinstance(value, dict):  # a Coding: only ActReason
        if value.get("system") != ACT_REASON_SYSTEM:
            raise BadRequestError(f"context.purposeOfUse codings must be of system {ACT_REASON_SYSTEM}")
        value = value.get("code")
    if value is None:
        raise BadRequestError("context.purposeOfUse is required (HL7 v3 ActReason, e.g. TREAT)")
    return value  # parse_request checks the code


def _classes(value: object) -> list[object]:
    classes: list[object] = []
    for system, code in _codings(value, "context.class"):
        if system == RESOURCE_TYPE_SYSTEM:
            entry: object = DataClass.GENERAL.value
        elif system in (ACT_CODE_SYSTEM, LOCAL_DATA_CLASS_SYSTEM):
            entry = "PATLOC" if (system, code) == (ACT_CODE_SYSTEM, "LOCIS") else code
        else:
            raise BadRequestError(
                f"context.class system must be {ACT_CODE_SYSTEM}, {LOCAL_DATA_CLASS_SYSTEM} or {RESOURCE_TYPE_SYSTEM}"
            )
        if entry not in classes:
            classes.append(entry)
    return classes or [DataClass.ALL.value]


def example_responses() -> dict[str, dict[str, object]]:
    """One CDS response per kind of card (permit, deny, shielded, no consent), for validators and documentation."""
    permit = Decision(
        Outcome.PERMIT, (), ("Direct care on implied consent.",), None, ("DIRECT_CARE_IMPLIED_CONSENT",), 1
    )
    deny = Decision(Outcome.DENY, (), ("National data opt-out.",), None, (Code.NDOP_ACTIVE.value,), 2)
    shielded = Decision(
        Outcome.PERMIT_WITH_OBLIGATIONS,
        (Obligation.REDACT_LOCATION, Obligation.REDACT_CONTACT, Obligation.REDACT_IDENTITY),
        ("Shielded: location, contact and identity redacted.",),
        None,
        (Code.SHIELDED.value,),
        3,
        (DataClass.GENERAL,),
        (DataClass.PATLOC, DataClass.PSY),
    )
    none = Decision(Outcome.DENY, (), ("No consent or legal basis.",), None, (Code.NO_CONSENT_OR_LEGAL_BASIS.value,), 0)
    source = {"label": "consent-broker"}
    return {
        name: card_json(DecisionAnswer(d, 0, None), source)
        for name, d in (("permit", permit), ("deny", deny), ("shielded", shielded), ("no-consent", none))
    }
