"""FHIR Consent fixtures in the shapes of HL7's own examples (R4 and their R5 equivalents).

Each R4 fixture reproduces the structure of one example published with FHIR R4 (consent-example-*
on hl7.org/fhir/R4/consent-examples.html): which elements it uses, how provisions nest, partial dates,
actor roles. Identifiers are NHS ones (patient by NHS number, organisations by ODS code) where the
product needs them; where HL7's example uses a literal reference, a second fixture keeps that shape to
show the refusal. Used by the import tests and by the HAPI validator test (every fixture here must be
valid FHIR, whether the product imports it or refuses it by policy).
"""

from __future__ import annotations

import copy
from typing import Any

Json = dict[str, Any]

NHS = "9434765919"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
PATIENT = {"identifier": {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}, "display": "P. van de Heuvel"}
TEXT = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><p>example</p></div>'}


def _r4(scope: str, provision: Json | None, *, policy_rule: str | None = "OPTIN", **extra: Any) -> Json:
    resource: Json = {
        "resourceType": "Consent",
        "text": TEXT,
        "status": "active",
        "scope": {"coding": [{"system": SCOPE, "code": scope}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": PATIENT,
        "dateTime": "2018-12-28",
    }
    if policy_rule is not None:
        resource["policyRule"] = {"coding": [{"system": ACT_CODE, "code": policy_rule}]}
    if provision is not None:
        resource["provision"] = provision
    resource.update(extra)
    return resource


def org(code: str, role: str = "PRCP") -> Json:
    return {
        "role": {"coding": [{"system": PARTICIPATION, "code": role}]},
        "reference": {"identifier": {"system": ODS, "value": code}},
    }


def action(code: str) -> Json:
    return {"coding": [{"system": CONSENT_ACTION, "code": code}]}


def purpose(code: str) -> Json:
    return {"system": ACT_REASON, "code": code}


def label(code: str, system: str = ACT_CODE) -> Json:
    return {"system": system, "code": code}


# consent-example-basic: opt-in to everything for a period given as dates only; no provision.type
BASIC = _r4(
    "patient-privacy",
    {"period": {"start": "1964-01-01", "end": "2016-01-01"}},
    organization=[{"identifier": {"system": ODS, "value": "A81001"}}],
    sourceAttachment={"title": "The terms of the consent in lawyer speak."},
)
# consent-example-Out: withhold everything from one organisation (actor PRCP), no provision.type, OPTOUT
OUT = _r4("patient-privacy", {"actor": [org("RXX")]}, policy_rule="OPTOUT")
OUT_LITERAL = _r4(
    "patient-privacy",
    {"actor": [{**org("RXX"), "reference": {"reference": "Organization/f001"}}]},
    policy_rule="OPTOUT",
)
# consent-example-notOrg: deny an organisation access; the example also denies "correct"
NOT_ORG = _r4("patient-privacy", {"type": "deny", "actor": [org("RXX")], "action": [action("access")]})
NOT_ORG_CORRECT = _r4(
    "patient-privacy", {"type": "deny", "actor": [org("RXX")], "action": [action("access"), action("correct")]}
)
# consent-example-notAuthor: deny by the author's role (CST), not by recipient
NOT_AUTHOR = _r4("patient-privacy", {"type": "deny", "actor": [org("RXX", role="CST")]})
# consent-example-notThis: deny one particular resource (provision.data)
NOT_THIS = _r4(
    "patient-privacy",
    {"type": "deny", "data": [{"meaning": "related", "reference": {"reference": "Task/example3"}}]},
)
# consent-example-notTime: deny for a span given as dates only (end is inclusive: the whole last day)
NOT_TIME = _r4("patient-privacy", {"type": "deny", "period": {"start": "2015-01-01", "end": "2015-06-30"}})
# consent-example-smartonfhir: a full-instant period and a nested permit on a resource class
SMART = _r4(
    "patient-privacy",
    {
        "type": "permit",
        "period": {"start": "2016-06-23T17:02:33+10:00", "end": "2016-06-23T17:32:33+10:00"},
        "provision": [
            {
                "type": "permit",
                "action": [action("access")],
                "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "MedicationRequest"}],
            }
        ],
    },
)
# consent-example-pkb: deny by default, nested permits per recipient and sensitivity, and deeper exceptions
PKB = _r4(
    "patient-privacy",
    {
        "type": "deny",
        "provision": [
            {"type": "permit", "actor": [org("A81001")], "action": [action("access")]},
            {
                "type": "permit",
                "actor": [org("B82002", role="IRCP")],
                "purpose": [purpose("TREAT")],
                "provision": [{"type": "deny", "securityLabel": [label("PSY"), label("HIV")]}],
            },
        ],
    },
    policy_rule="OPTOUTE",
)
PKB_CONFIDENTIALITY = _r4(
    "patient-privacy",
    {
        "type": "deny",
        "provision": [
            {
                "type": "permit",
                "securityLabel": [label("N", "http://terminology.hl7.org/CodeSystem/v3-Confidentiality")],
            }
        ],
    },
)
# consent-example-Emergency: deny, except emergency treatment
EMERGENCY = _r4(
    "patient-privacy",
    {"type": "deny", "provision": [{"type": "permit", "purpose": [purpose("ETREAT")]}]},
    policy_rule="OPTOUT",
)
# consent-example-TPO: permit for treatment, payment and operations
TPO = _r4("patient-privacy", {"type": "permit", "purpose": [purpose("TREAT"), purpose("HPAYMT"), purpose("HOPERAT")]})
# research (consent-example-ncr): a policy URI instead of a policyRule (ppc-1 holds either way)
RESEARCH = _r4(
    "research",
    {"type": "permit", "period": {"start": "2024-07", "end": "2025"}},
    policy_rule=None,
    policy=[{"uri": "https://www.hra.nhs.uk/planning-and-improving-research/policies-standards-legislation/"}],
)
# treatment and advance directive scopes (valid, not sharing directives)
TREATMENT = _r4(
    "treatment", {"type": "permit"}, policy_rule=None, policy=[{"uri": "https://example.org/surgery-consent"}]
)
ADR = _r4("adr", {"type": "deny"}, policy_rule=None, policy=[{"uri": "https://example.org/living-will"}])
DRAFT = {**copy.deepcopy(TPO), "status": "draft"}
NO_PROVISION = _r4("patient-privacy", None)


def nested(depth: int) -> Json:
    """Alternating permit/deny provisions ``depth`` deep, each narrowing by one more element."""
    provision: Json = {"type": "permit" if depth % 2 else "deny", "purpose": [purpose("TREAT")]}
    for level in range(depth - 1, 0, -1):
        provision = {"type": "permit" if level % 2 else "deny", "provision": [provision]}
    return _r4("patient-privacy", provision)


# --- R5 equivalents ------------------------------------------------------------------------------


def _r5(decision: str | None, provisions: list[Json] | None = None, **extra: Any) -> Json:
    resource: Json = {
        "resourceType": "Consent",
        "text": TEXT,
        "status": "active",
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "subject": PATIENT,
        "date": "2018-12-28",
        "regulatoryBasis": [{"coding": [{"system": ACT_CODE, "code": "INFA"}]}],
    }
    if decision is not None:
        resource["decision"] = decision
    if provisions is not None:
        resource["provision"] = provisions
    resource.update(extra)
    return resource


R5_BASIC = _r5("permit", period={"start": "1964-01-01", "end": "2016-01-01"})
R5_NOT_ORG = _r5("permit", [{"actor": [org("RXX")], "action": [action("access")]}])
R5_GRANTEE = _r5("permit", grantee=[{"identifier": {"system": ODS, "value": "A81001"}}])
R5_PKB = _r5(
    "deny",
    [
        {"actor": [org("A81001")]},
        {
            "actor": [org("B82002", role="IRCP")],
            "purpose": [purpose("TREAT")],
            "provision": [{"securityLabel": [label("PSY")]}],
        },
    ],
)
R5_NO_DECISION = _r5(None, [{"purpose": [purpose("TREAT")]}])
R5_DRAFT = {**_r5("permit"), "status": "draft"}
R5_DOCUMENT_TYPE = _r5("deny", [{"documentType": [{"system": "http://loinc.org", "code": "34133-9"}]}])

R4_VALID: dict[str, Json] = {
    "basic": BASIC, "out": OUT, "out-literal": OUT_LITERAL, "not-org": NOT_ORG, "not-org-correct": NOT_ORG_CORRECT,
    "not-author": NOT_AUTHOR, "not-this": NOT_THIS, "not-time": NOT_TIME, "smart": SMART, "pkb": PKB,
    "pkb-confidentiality": PKB_CONFIDENTIALITY, "emergency": EMERGENCY, "tpo": TPO, "research": RESEARCH,
    "treatment": TREATMENT, "adr": ADR, "draft": DRAFT, "no-provision": NO_PROVISION, "nested-12": nested(12),
}  # fmt: skip
R5_VALID: dict[str, Json] = {
    "r5-basic": R5_BASIC, "r5-not-org": R5_NOT_ORG, "r5-grantee": R5_GRANTEE, "r5-pkb": R5_PKB,
    "r5-no-decision": R5_NO_DECISION, "r5-draft": R5_DRAFT, "r5-document-type": R5_DOCUMENT_TYPE,
}  # fmt: skip
