"""Issue 14 through the core's decision API (in-process app): consents and objections recorded by a
proxy, and the request-only purposes HLEGAL, THREAT and HDECD.

Sources, cited per test: Children Act 1989 s3 (parental responsibility); Family Law Reform Act 1969 s8
and Gillick v West Norfolk and Wisbech AHA [1986] AC 112 (a young person of 16, or a Gillick-competent
child, decides for themself); Mental Capacity Act 2005 s9 (lasting powers of attorney: s9(1)(a) personal
welfare, s9(1)(b) property and affairs; registered with the Office of the Public Guardian, s9(2)(b)),
s16-18 (deputies); NHS Digital, *Understanding the national data opt-out* (an opt-out remains after
death); Access to Health Records Act 1990 s3(1)(f) (the personal representative); HL7 v3 ActReason
(HLEGAL and HDECD are kinds of HOPERAT, THREAT of PUBHLTH); the Caldicott review, rec 11 and 7.12
(a statutory mandate overrides an objection), principles 6-7 (the overriding public interest).
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from broker.audit import AuditRecord
from consent_rules.reconcile import Outcome as ReconcileOutcome
from consent_rules.reconcile import Reconciler
from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
)
from consent_wire.model import ConsentDecision, Objection, ProxyAuthority
from tests.unit.api.backend import DAY_MS, NOW_MS, MemoryBackend, ev, objection

Client = TestClient  # type: ignore[type-arg]

PARENT = ProxyAuthority(ProxyAuthorityKind.PARENTAL_RESPONSIBILITY)
ATTORNEY = ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678")
FINANCIAL_ATTORNEY = ProxyAuthority(ProxyAuthorityKind.LPA_PROPERTY_FINANCIAL, "7000-8765-4321")
COURT_ORDER = {"instrument": "Court order, Smith v Jones [2026] EWHC 1 (Fam)"}
SAFEGUARDING = {"justification": "Credible threat of serious harm to a named child", "approver": "Caldicott Guardian"}


def _body(purpose: str, *, subject: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": {
            "organisation": "RESLAB1",
            "role": "RESEARCHER",
            "registered": True,
            "relationship": "NONE",
            "care_team": False,
            "accessor_id": "staff-7",
        },
        "purpose": purpose,
        "nhs_number": "9434765919",
        "data_classes": ["GENERAL"],
        **extra,
    }
    if subject is not None:
        body["subject"] = subject
    return body


async def _decide(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/decisions", json=body)
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


def _research_consent(proxy: ProxyAuthority | None, *, at_ms: int = NOW_MS - 10 * DAY_MS) -> Any:
    return ev(
        ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, DataClass.ALL, "*", proxy=proxy), at_ms=at_ms
    )


# --- proxies and children ---------------------------------------------------------------------------


async def test_a_parents_consent_speaks_for_a_young_child_only(client: Client, backend: MemoryBackend) -> None:
    """Children Act 1989 s3; FLRA 1969 s8; Gillick [1986] AC 112: a parent's consent to research binds
    for a child under 16 who is not Gillick competent; not for a competent child, a 16-year-old, or a
    child whose age the request does not give."""
    backend.add(_research_consent(PARENT))
    young = await _decide(client, _body("HRESCH", subject={"age_years": 9}))
    competent = await _decide(client, _body("HRESCH", subject={"age_years": 14, "gillick_competent": True}))
    sixteen = await _decide(client, _body("HRESCH", subject={"age_years": 16}))
    unknown = await _decide(client, _body("HRESCH"))
    assert (young["outcome"], young["legal_basis"]) == ("PERMIT_WITH_OBLIGATIONS", "CONSENT")
    assert "EXPLICIT_CONSENT" in young["codes"]
    for answer in (competent, sixteen, unknown):
        assert answer["outcome"] == "DENY"
        assert answer["codes"] == ["PROXY_CONSENT_NOT_BINDING", "NO_CONSENT_OR_LEGAL_BASIS"]


async def test_a_competent_young_persons_own_later_consent_decides_not_the_parents_refusal(
    client: Client, backend: MemoryBackend
) -> None:
    """Gillick [1986] AC 112; UK GDPR art 7(3): a parent's refusal stays until the young person records
    their own wish, which, being later, decides (and the parent's refusal is never lifted by age alone)."""
    refusal = ConsentDecision(ConsentDirective.OPTOUT, PurposeOfUse.HRESCH, DataClass.ALL, "*", proxy=PARENT)
    backend.add(ev(refusal, at_ms=NOW_MS - 20 * DAY_MS))
    competent = {"age_years": 15, "gillick_competent": True}
    before = await _decide(client, _body("HRESCH", subject=competent))
    backend.add(_research_consent(None, at_ms=NOW_MS - DAY_MS))
    after = await _decide(client, _body("HRESCH", subject=competent))
    assert (before["outcome"], before["codes"]) == ("DENY", ["CONSENT_WITHDRAWN"])
    assert after["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert "EXPLICIT_CONSENT" in after["codes"]


async def test_an_attorneys_opt_out_holds_and_outlives_the_patient(client: Client, backend: MemoryBackend) -> None:
    """MCA 2005 s9(1)(a): a registered health and welfare attorney may record the opt-out; NHS Digital:
    the opt-out continues after death."""
    backend.add(ev(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, proxy=ATTORNEY), at_ms=NOW_MS - DAY_MS))
    living = await _decide(client, _body("HRESCH", legal_basis="S251"))
    dead = await _decide(client, _body("HRESCH", legal_basis="S251", subject={"deceased": True}))
    assert (living["outcome"], living["codes"]) == ("DENY", ["NDOP_ACTIVE"])
    assert (dead["outcome"], dead["codes"]) == ("DENY", ["DECEASED_CONFIDENTIALITY_CONTINUES", "NDOP_ACTIVE"])


async def test_an_attorneys_consent_ends_with_the_patients_death(client: Client, backend: MemoryBackend) -> None:
    """MCA 2005 s9 (the attorney acts for a living donor; the power ends at death); AHRA 1990."""
    backend.add(_research_consent(ATTORNEY))
    living = await _decide(client, _body("HRESCH", subject={"age_years": 80}))
    dead = await _decide(client, _body("HRESCH", subject={"age_years": 80, "deceased": True}))
    assert "EXPLICIT_CONSENT" in living["codes"]
    assert dead["outcome"] == "DENY"
    assert dead["codes"][:2] == ["DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_CONSENT_NOT_BINDING"]


async def test_a_property_and_financial_attorney_cannot_record_a_health_objection(
    client: Client, backend: MemoryBackend
) -> None:
    """MCA 2005 s9(1)(b) and s18: property and affairs powers give no say over health information, so the
    reconciler rejects the event (dead letter) and the decision is as if it was never recorded."""
    event = ev(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, proxy=FINANCIAL_ATTORNEY), at_ms=NOW_MS - DAY_MS)
    result = Reconciler().process(event)
    assert (result.outcome, result.reason) == (ReconcileOutcome.REJECTED, "PROXY_AUTHORITY_NOT_FOR_HEALTH")
    backend.add(event)
    answer = await _decide(client, _body("HRESCH", legal_basis="S251"))
    assert answer["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert answer["state_version"] == 0


async def test_an_attorney_without_the_registration_reference_cannot_record(backend: MemoryBackend) -> None:
    """MCA 2005 s9(2)(b): an LPA is not valid until registered by the Office of the Public Guardian; the
    event names the registration, or it is rejected."""
    unregistered = ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, " ")
    deputy = ProxyAuthority(ProxyAuthorityKind.DEPUTY_PERSONAL_WELFARE, "COP-1234567")
    rejected = Reconciler().process(
        ev(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, proxy=unregistered), at_ms=NOW_MS)
    )
    applied = Reconciler().process(
        ev(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, proxy=deputy), at_ms=NOW_MS)
    )
    assert (rejected.outcome, rejected.reason) == (ReconcileOutcome.REJECTED, "PROXY_REFERENCE_MISSING")
    assert applied.outcome is ReconcileOutcome.APPLIED


# --- HLEGAL, THREAT, HDECD --------------------------------------------------------------------------


async def test_hlegal_is_operations_under_an_evidenced_mandate_and_is_audited_as_its_parent(
    client: Client, backend: MemoryBackend
) -> None:
    """HL7 ActReason HLEGAL (a kind of HOPERAT); rec 11, 7.12 and issue 14 rule 4: a court order named as
    the instrument overrides the opt-out, is recorded and alerted."""
    backend.add(objection(ObjectionKind.NDOP))
    answer = await _decide(client, _body("HLEGAL", legal_basis="STATUTORY_MANDATE", evidence=COURT_ORDER))
    assert answer["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert answer["legal_basis"] == "STATUTORY_MANDATE"
    assert "STATUTORY_MANDATE_OVERRIDES_OBJECTION" in answer["codes"]
    assert {"ALERT_PRIVACY_OFFICER", "RECORD_ACCESS"} <= set(answer["obligations"])
    record = AuditRecord.from_bytes(backend.log.entries[-1].record)
    assert record.purpose is PurposeOfUse.HOPERAT  # the audit trail keeps the wire purpose


async def test_hlegal_without_a_mandate_or_consent_is_denied(client: Client) -> None:
    """HL7 ActReason HLEGAL; issue 14 rule 4: a mandate without its instrument is not relied on."""
    bare = await _decide(client, _body("HLEGAL"))
    no_instrument = await _decide(client, _body("HLEGAL", legal_basis="STATUTORY_MANDATE"))
    assert (bare["outcome"], bare["codes"]) == ("DENY", ["PURPOSE_NEEDS_BASIS"])
    assert no_instrument["codes"] == ["OVERRIDE_EVIDENCE_MISSING", "PURPOSE_NEEDS_BASIS"]


async def test_a_refusal_of_operations_covers_hlegal_unless_a_mandate(client: Client, backend: MemoryBackend) -> None:
    """Issue 14 rule 3 (ActReason: HLEGAL is a kind of HOPERAT) and D4 (a mandate overrides an OPTOUT)."""
    refusal = ConsentDecision(ConsentDirective.OPTOUT, PurposeOfUse.HOPERAT, DataClass.ALL, "*")
    backend.add(ev(refusal, at_ms=NOW_MS - DAY_MS))
    by_consent = await _decide(client, _body("HLEGAL", legal_basis="CONSENT"))
    by_mandate = await _decide(client, _body("HLEGAL", legal_basis="STATUTORY_MANDATE", evidence=COURT_ORDER))
    assert by_consent["outcome"] == "DENY"
    assert by_mandate["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert "STATUTORY_MANDATE_OVERRIDES_OBJECTION" in by_mandate["codes"]


async def test_threat_needs_the_evidenced_public_interest(client: Client) -> None:
    """HL7 ActReason THREAT (a kind of PUBHLTH); principles 6-7 and issue 14 rule 4: the overriding public
    interest rests on a justification and its approver."""
    evidenced = await _decide(client, _body("THREAT", legal_basis="SAFEGUARDING", evidence=SAFEGUARDING))
    unapproved = await _decide(client, _body("THREAT", legal_basis="SAFEGUARDING", evidence={"justification": "harm"}))
    assert (evidenced["outcome"], evidenced["legal_basis"]) == ("PERMIT_WITH_OBLIGATIONS", "SAFEGUARDING")
    assert "ALERT_PRIVACY_OFFICER" in evidenced["obligations"]
    assert (unapproved["outcome"], unapproved["codes"]) == (
        "DENY",
        ["OVERRIDE_EVIDENCE_MISSING", "PURPOSE_NEEDS_BASIS"],
    )


async def test_hdecd_is_for_the_deceased_and_their_personal_representative(
    client: Client, backend: MemoryBackend
) -> None:
    """HL7 ActReason HDECD; AHRA 1990 s3(1)(f); NHS Digital: the opt-out continues after death."""
    backend.add(objection(ObjectionKind.NDOP))
    representative = {
        **_body("HDECD", subject={"deceased": True}),
        "access_right": "PERSONAL_REPRESENTATIVE",
    }
    representative["requester"].update(organisation="PATIENT", role="EXECUTOR", registered=False)
    living = await _decide(client, _body("HDECD", legal_basis="STATUTORY_MANDATE", evidence=COURT_ORDER))
    by_representative = await _decide(client, representative)
    researcher = await _decide(client, _body("HDECD", legal_basis="S251", subject={"deceased": True}))
    coroner = await _decide(
        client, _body("HDECD", legal_basis="STATUTORY_MANDATE", evidence=COURT_ORDER, subject={"deceased": True})
    )
    assert (living["outcome"], living["codes"]) == ("DENY", ["PATIENT_NOT_DECEASED"])
    assert by_representative["codes"] == ["DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_ACCESS"]
    assert (researcher["outcome"], researcher["codes"]) == (
        "DENY",
        ["DECEASED_CONFIDENTIALITY_CONTINUES", "PURPOSE_NEEDS_BASIS"],
    )
    assert coroner["outcome"] == "PERMIT_WITH_OBLIGATIONS"
    assert "STATUTORY_MANDATE_OVERRIDES_OBJECTION" in coroner["codes"]


async def test_an_unknown_purpose_names_the_request_only_codes_too(client: Client) -> None:
    """The error names every code the API accepts (a precise 400, never a 500)."""
    resp = await client.post("/v1/decisions", json=_body("HMARKT"))
    assert resp.status == 400
    error = await resp.json()
    assert error["reason"] == "INVALID_CODE"
    assert "HLEGAL" in error["message"]
    assert "THREAT" in error["message"]
