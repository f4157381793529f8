"""A CDS Hooks 2.0 client written from the specification (cds-hooks.hl7.org, "Trusting CDS Clients"), for tests.

It knows nothing of the broker's code: it builds the hook request of the LEAP ``patient-consent-consult``
shape and signs a JWT per call (header ``alg``, ``typ: JWT``, ``kid``; claims ``iss``, ``aud`` = the
service URL, ``exp`` 5 minutes ahead, ``iat``, a fresh ``jti``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
ROLE_SYSTEM = "urn:uk-nhs-consent:role"
USER_SYSTEM = "https://fhir.nhs.uk/Id/sds-user-id"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"


def client_jwt(iss: str, kid: str, key: Any, aud: str, now_s: int | None = None, *, jti: str | None = None) -> str:
    now = int(time.time()) if now_s is None else now_s
    claims = {"iss": iss, "aud": aud, "exp": now + 300, "iat": now, "jti": jti or uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "JWT"})


def consult(
    nhs: str,
    *,
    purpose: str = "TREAT",
    organisation: str = "RX1",
    role: str = "CONSULTANT",
    user: str = "staff-7",
    classes: tuple[str, ...] = (),
    care: bool = True,
    legal_basis: str | None = None,
) -> dict[str, Any]:
    """A patient-consent-consult request; ``care`` adds the relationship extension of a care-team clinician."""
    context: dict[str, Any] = {
        "patientId": [{"system": "urn:oid:example-mrn", "value": "MRN-1"}, {"system": NHS_SYSTEM, "value": nhs}],
        "actor": [
            {"system": ODS_SYSTEM, "value": organisation},
            {"system": ROLE_SYSTEM, "value": role},
            {"system": USER_SYSTEM, "value": user},
        ],
        "purposeOfUse": purpose,
        "category": [{"system": "http://loinc.org", "code": "59284-0"}],
    }
    if classes:
        context["class"] = [{"system": ACT_CODE, "code": c} for c in classes]
    extension: dict[str, Any] = {"legal_basis": legal_basis}
    if care:
        extension |= {"registered": True, "relationship": "LEGITIMATE", "care_team": True}
    return {
        "hook": "patient-consent-consult",
        "hookInstance": str(uuid.uuid4()),
        "context": context,
        "extension": {"uk-nhs-consent": extension},
    }


def card(response: dict[str, Any]) -> dict[str, Any]:
    """The one card of a response, checked against the CDS Hooks 2.0 Card's required fields."""
    (only,) = response["cards"]
    assert {"summary", "indicator", "source"} <= set(only), only
    assert len(only["summary"]) < 140 and only["indicator"] in ("info", "warning", "critical")
    assert only["source"]["label"]
    return only


def redacted(c: dict[str, Any]) -> set[tuple[str, str]]:
    """The security labels a card's REDACT obligations name."""
    return {
        (code["system"], code["code"])
        for o in c["extension"]["obligations"]
        if o["id"] == {"system": ACT_CODE, "code": "REDACT"}
        for code in o["parameters"]["codes"]
    }
