"""Issue 14 through the core's decision API (in-process app): the patient's death held in the consent
state (a GP practice's statement on Event v5), not only carried on the request.

Sources: NHS Digital, *Understanding the national data opt-out* (an opt-out remains after death); the
GMC, *Confidentiality* (2017) paras 134-136 (the duty of confidence continues after death); Mental
Capacity Act 2005 s9 (a lasting power of attorney acts for a living donor: it ends at death); Access to
Health Records Act 1990 s3(1)(f) (the personal representative's right begins at death); PDS death
notifications may be withdrawn (then the GP practice's later withdrawal clears the status).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp.test_utils import TestClient

from consent_wire.codes import (
    ConsentDirective,
    DataClass,
    ObjectionAction,
    ObjectionKind,
    ProxyAuthorityKind,
    PurposeOfUse,
)
from consent_wire.model import ConsentDecision, Event, Objection, ProxyAuthority
from tests.unit.api.backend import DAY_MS, NHS, NOW_MS, READER, MemoryBackend, ev

Client = TestClient  # type: ignore[type-arg]

ATTORNEY = ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678")


def _stated(event: Event, deceased_ms: int) -> Event:
    """``event`` as the GP practice's agent stamps it: the death (> 0) or its withdrawal (0)."""
    return replace(event, subject_deceased_ms=deceased_ms)


def _death(at_ms: int) -> Event:
    """A death recorded at the practice, stamped on the per-patient event it records with it."""
    consent = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.ALL, "*", recorded_by_role="GP")
    return _stated(ev(consent, at_ms=at_ms), at_ms)


def _withdrawal(at_ms: int) -> Event:
    consent = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.ALL, "*", recorded_by_role="GP")
    return _stated(ev(consent, at_ms=at_ms), 0)


def _body(purpose: str, **extra: Any) -> dict[str, Any]:
    return {
        "requester": {
            "organisation": "RESLAB1",
            "role": "RESEARCHER",
            "registered": True,
            "relationship": "NONE",
            "care_team": False,
            "accessor_id": "staff-7",
        },
        "purpose": purpose,
        "nhs_number": NHS,
        "data_classes": ["GENERAL"],
        **extra,
    }


def _representative() -> dict[str, Any]:
    body = {**_body("HDECD"), "access_right": "PERSONAL_REPRESENTATIVE"}
    body["requester"] = {**body["requester"], "organisation": "PATIENT", "role": "EXECUTOR", "registered": False}
    return body


async def _decide(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post("/v1/decisions", json=body)
    assert resp.status == 200, await resp.text()
    result: dict[str, Any] = await resp.json()
    return result


async def test_a_death_in_the_state_ends_an_attorneys_consent_without_the_request_saying_so(
    client: Client, backend: MemoryBackend
) -> None:
    """MCA 2005 s9: the attorney's consent counted while the patient lived; after the practice records
    the death, the same request (no subject.deceased) is denied."""
    consent = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, DataClass.ALL, "*", proxy=ATTORNEY)
    backend.add(ev(consent, at_ms=NOW_MS - 10 * DAY_MS))
    living = await _decide(client, _body("HRESCH"))
    backend.add(_death(NOW_MS - DAY_MS))
    dead = await _decide(client, _body("HRESCH"))
    assert "EXPLICIT_CONSENT" in living["codes"]
    assert dead["outcome"] == "DENY"
    assert dead["codes"][:2] == ["DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_CONSENT_NOT_BINDING"]


async def test_a_death_in_the_state_opens_hdecd_to_the_personal_representative(
    client: Client, backend: MemoryBackend
) -> None:
    """AHRA 1990 s3(1)(f): without a death (in the request or the state) HDECD is refused; once the practice
    records it, the personal representative's request is decided on their route."""
    before = await _decide(client, _representative())
    backend.add(_death(NOW_MS - DAY_MS))
    after = await _decide(client, _representative())
    assert (before["outcome"], before["codes"]) == ("DENY", ["PATIENT_NOT_DECEASED"])
    assert after["codes"] == ["DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_ACCESS"]
    assert after["outcome"] != "DENY"


async def test_a_death_in_the_state_lifts_no_objection(client: Client, backend: MemoryBackend) -> None:
    """NHS Digital: the opt-out continues after death; death lifts nothing."""
    backend.add(ev(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER), at_ms=NOW_MS - 5 * DAY_MS))
    backend.add(_death(NOW_MS - DAY_MS))
    answer = await _decide(client, _body("HRESCH", legal_basis="S251"))
    assert (answer["outcome"], answer["codes"]) == ("DENY", ["DECEASED_CONFIDENTIALITY_CONTINUES", "NDOP_ACTIVE"])


async def test_a_later_withdrawal_clears_the_death_whatever_the_order_of_arrival(
    client: Client, backend: MemoryBackend
) -> None:
    """A withdrawn PDS death notification: the practice's later statement (0) wins by its stamp, even when
    it arrives before the death it withdraws; the state shows only yes/no and which event said so."""
    withdrawal = _withdrawal(NOW_MS - DAY_MS)
    backend.add(withdrawal)  # arrives first
    backend.add(_death(NOW_MS - 2 * DAY_MS))
    answer = await _decide(client, _representative())
    assert (answer["outcome"], answer["codes"]) == ("DENY", ["PATIENT_NOT_DECEASED"])
    resp = await client.get(f"/v1/patients/{NHS}/consent{READER}")
    assert resp.status == 200
    state = await resp.json()
    assert state["deceased"]["deceased"] is False
    assert state["deceased"]["stamp"]["event_id"] == withdrawal.event_id
    assert set(state["deceased"]) == {"deceased", "stamp", "source"}  # no date of death


async def test_the_requests_word_still_counts_when_the_state_says_nothing(
    client: Client, backend: MemoryBackend
) -> None:
    """The state's status is ORed with subject.deceased: a request that says the patient has died is
    decided so even before any practice has recorded it (and the state shows no statement)."""
    answer = await _decide(client, {**_representative(), "subject": {"deceased": True}})
    state = await (await client.get(f"/v1/patients/{NHS}/consent{READER}")).json()
    assert answer["codes"] == ["DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_ACCESS"]
    assert state["deceased"] is None


def test_a_negative_statement_is_rejected_and_a_rejected_event_states_nothing() -> None:
    """A death is a positive time or 0 (withdrawn): below 0 is dead-lettered INVALID_DECEASED_STATUS; a
    death stamped on an event the reconciler rejects (here a proxy without authority over health) is
    not applied either."""
    from consent_rules.reconcile import Outcome as ReconcileOutcome
    from consent_rules.reconcile import Reconciler
    from consent_rules.state import apply, empty_state

    negative = _stated(_death(NOW_MS), -1)
    result = Reconciler().process(negative)
    assert (result.outcome, result.reason) == (ReconcileOutcome.REJECTED, "INVALID_DECEASED_STATUS")
    financial = ProxyAuthority(ProxyAuthorityKind.LPA_PROPERTY_FINANCIAL, "7000-8765-4321")
    rejected = _stated(ev(Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, proxy=financial), at_ms=NOW_MS), 1)
    state = apply(apply(empty_state(negative.patient_key), negative), rejected)
    assert state.deceased is None and state.version == 0
