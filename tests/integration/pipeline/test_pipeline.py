"""The core end to end on the real broker: verify, dedupe, reconcile, dead-letter with reasons."""

from __future__ import annotations

import pytest

from consent_rules.state import PatientState, replay
from consent_wire.avro_codec import decode_event
from consent_wire.codes import ConsentDirective, ObjectionAction, ObjectionKind, ProxyAuthorityKind, ShieldingAction
from consent_wire.model import Objection, ProxyAuthority
from tests.factories import BASE_MS, SimAgent, as_the_core_keys_it, consent, objection, patient, shielding
from tests.integration.pipeline.conftest import Harness, latest_by_key

pytestmark = pytest.mark.integration


def _reasons(records: list) -> list[str]:  # type: ignore[type-arg]
    return [dict(r.headers)["reason"].decode() for r in records]


async def test_happy_path_events_reach_the_state_topic_once(harness: Harness) -> None:
    gp, home = SimAgent.create(site="A81001"), SimAgent.create(site="VM123")
    await harness.register(gp, home)
    await harness.start_core()
    batches = []
    for agent in (gp, home):
        for b in range(5):
            events = [
                agent.event(
                    patient(i),
                    consent(ConsentDirective.OPTOUT if i % 2 else ConsentDirective.OPTIN),
                    BASE_MS + b * 1000 + i,
                )
                for i in range(20)
            ]
            batches.append((agent, agent.batch(events)))
    for agent, batch in batches:
        await harness.send(agent, [batch])

    states = await harness.read(harness.topics.state, lambda rs: _applied(rs) == 200)
    latest = latest_by_key(states)
    assert len(latest) == 20
    all_events = [as_the_core_keys_it(decode_event(e)) for a in (gp, home) for e in a.encoded]
    for key, value in latest.items():
        expected = replay(key.decode(), [e for e in all_events if e.patient_key == key.decode()])
        assert _essence(PatientState.from_bytes(value)) == _essence(expected)  # == reference replay


def _essence(state: PatientState) -> object:
    """The state without source offsets (a reference replay has no offsets to record)."""
    from dataclasses import replace

    consents = {k: replace(r, source=None) for k, r in state.consents.items()}
    objections = {k: replace(r, source=None) for k, r in state.objections.items()}
    shielding = replace(state.shielding, source=None) if state.shielding else None
    return (consents, objections, shielding, state.applied, state.version)


def _applied(records: list) -> int:  # type: ignore[type-arg]
    return sum(PatientState.from_bytes(v).version for v in latest_by_key(records).values())


async def test_bad_inputs_are_dead_lettered_with_reasons_and_never_reach_the_state(harness: Harness) -> None:
    good, unknown, revoked = SimAgent.create(), SimAgent.create(), SimAgent.create()
    await harness.register(good, revoked)
    from broker.keys_admin import publish_key_events

    await publish_key_events(
        harness.kafka,
        harness.topics.keys,
        [harness.root.revoke(revoked.agent_id, revoked.signer.public_key_bytes, BASE_MS)],
    )
    await harness.start_core()

    first = good.batch([good.event(patient(1), consent(), BASE_MS)])
    tampered = bytearray(good.batch([good.event(patient(2), consent(), BASE_MS + 1)]))
    tampered[-1] ^= 0x01  # flip a bit of the signature
    from_unknown = unknown.batch([unknown.event(patient(3), consent(), BASE_MS)])
    from_revoked = revoked.batch([revoked.event(patient(4), consent(), BASE_MS + 10)])
    await harness.send(good, [first, bytes(tampered), first])  # the third is a replay
    await harness.send(unknown, [from_unknown])
    await harness.send(revoked, [from_revoked])
    await harness.send_raw(b"junk", [b"\x00\x01not avro", b""])

    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 6)
    reasons = sorted(_reasons(letters))
    assert reasons == sorted(["BAD_SIGNATURE", "REPLAY", "UNKNOWN_KEY", "REVOKED_KEY", "BAD_MAGIC", "TRUNCATED"])
    by_reason = {dict(r.headers)["reason"].decode(): r for r in letters}
    assert by_reason["BAD_SIGNATURE"].value == bytes(tampered)  # original bytes kept
    assert dict(by_reason["REPLAY"].headers)["source"].decode().startswith(harness.topics.ingress)

    states = await harness.read(harness.topics.state, lambda rs: len(rs) >= 1)
    assert set(latest_by_key(states)) == {patient(1).encode()}


async def test_sequence_regression_is_dead_lettered(harness: Harness) -> None:
    agent = SimAgent.create()
    await harness.register(agent)
    await harness.start_core()
    b1 = agent.batch([agent.event(patient(1), consent(), BASE_MS)])
    # rewind the agent's chain: seq 1 again, different content
    agent.seq, agent.last_hash = 0, bytes(32)
    b_again = agent.batch([agent.event(patient(1), objection(), BASE_MS + 5)])
    await harness.send(agent, [b1, b_again])
    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 1)
    assert _reasons(letters) == ["SEQUENCE_REGRESSION"]


async def test_late_events_from_an_offline_agent_give_the_same_state_as_in_order(harness: Harness) -> None:
    online, offline = SimAgent.create(site="A81001"), SimAgent.create(site="VM123", skew_ms=-3 * 3600 * 1000)
    await harness.register(online, offline)
    await harness.start_core()
    key = patient(7)
    # the offline site recorded an NDOP objection and a consent *earlier* in HLC terms, delivered last
    late = [
        offline.event(key, objection(ObjectionKind.NDOP), BASE_MS),
        offline.event(key, consent(ConsentDirective.OPTIN), BASE_MS + 1),
    ]
    early = [online.event(key, consent(ConsentDirective.OPTOUT), BASE_MS + 60_000)]
    await harness.send(online, [online.batch(early)])
    await harness.send(offline, [offline.batch(late)])
    states = await harness.read(harness.topics.state, lambda rs: _applied(rs) == 3)
    final = latest_by_key(states)[key.encode()]
    in_order = replay(key, [as_the_core_keys_it(decode_event(e)) for e in offline.encoded + online.encoded])
    assert _essence(PatientState.from_bytes(final)) == _essence(in_order)


async def test_shielding_flag_reaches_the_shielding_topic_and_unauthorised_clear_is_rejected(harness: Harness) -> None:
    agent = SimAgent.create()
    await harness.register(agent)
    await harness.start_core()
    key = patient(42)
    events = [
        agent.event(key, shielding(ShieldingAction.SET, "SAFEGUARDING_LEAD"), BASE_MS),
        agent.event(key, shielding(ShieldingAction.CLEAR, "RECEPTIONIST"), BASE_MS + 1000),
    ]
    await harness.send(agent, [agent.batch(events)])
    flags = await harness.read(harness.topics.shielding, lambda rs: len(rs) >= 1)
    import orjson

    record = orjson.loads(latest_by_key(flags)[key.encode()])
    assert record["active"] is True
    assert record["hides"] == ["CONTACT", "LOCATION"]
    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 1)
    assert _reasons(letters) == ["UNAUTHORISED_SHIELDING_CLEAR"]
    states = await harness.read(harness.topics.state, lambda rs: len(rs) >= 1)
    state = PatientState.from_bytes(latest_by_key(states)[key.encode()])
    assert state.shielding is not None and state.shielding.active


async def test_unauthorised_shielding_set_is_quarantined_in_the_state_and_alerted_not_dropped(harness: Harness) -> None:
    """Issue 14, rule 10: a protective request never fails open silently. The SET from a role without
    authority is kept in the state's quarantine register (visible, with its reason code), raised on the
    dead-letter topic as SHIELDING_QUARANTINED for the safeguarding lead, and never reaches the
    shielding topic."""
    agent = SimAgent.create()
    await harness.register(agent)
    await harness.start_core()
    key = patient(43)
    events = [
        agent.event(key, shielding(ShieldingAction.SET, "RECEPTIONIST"), BASE_MS),
        agent.event(key, consent(ConsentDirective.OPTIN), BASE_MS + 1000),
    ]
    await harness.send(agent, [agent.batch(events)])
    states = await harness.read(harness.topics.state, lambda rs: _applied(rs) == 2)
    state = PatientState.from_bytes(latest_by_key(states)[key.encode()])
    assert state.shielding is None
    assert state.quarantine is not None
    assert (state.quarantine.role, state.quarantine.reason) == ("RECEPTIONIST", "UNAUTHORISED_SHIELDING_SET")
    assert state.pending_quarantine == state.quarantine
    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 1)
    assert _reasons(letters) == ["SHIELDING_QUARANTINED"]
    assert b"safeguarding lead" in dict(letters[0].headers)["message"]
    # the shielding topic is written in the same transaction as the state read above: a few fetches
    # from its start would show a record had one been written
    polls = iter(range(4))
    assert await harness.read(harness.topics.shielding, lambda rs: next(polls, 3) >= 3) == []


async def test_a_proxy_without_authority_over_health_is_dead_lettered_and_an_attorneys_objection_kept(
    harness: Harness,
) -> None:
    """Issue 14, proxies (MCA 2005 s9(1)(a)-(b)): on the real broker, an objection recorded by a property
    and financial affairs attorney is dead-lettered with its reason and never reaches the state; one
    recorded by a registered health and welfare attorney is applied, its authority kept in the state."""
    agent = SimAgent.create()
    await harness.register(agent)
    await harness.start_core()
    key = patient(44)
    financial = ProxyAuthority(ProxyAuthorityKind.LPA_PROPERTY_FINANCIAL, "7000-8765-4321")
    welfare = ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678")
    events = [
        agent.event(key, Objection(ObjectionKind.TYPE2, ObjectionAction.REGISTER, proxy=financial), BASE_MS),
        agent.event(key, Objection(ObjectionKind.NDOP, ObjectionAction.REGISTER, proxy=welfare), BASE_MS + 1000),
    ]
    await harness.send(agent, [agent.batch(events)])
    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 1)
    assert _reasons(letters) == ["PROXY_AUTHORITY_NOT_FOR_HEALTH"]
    states = await harness.read(harness.topics.state, lambda rs: _applied(rs) == 1)
    state = PatientState.from_bytes(latest_by_key(states)[key.encode()])
    assert [kind for kind, _ in state.objections] == [ObjectionKind.NDOP]
    assert next(iter(state.objections.values())).proxy == welfare


async def test_a_death_recorded_at_the_gp_reaches_the_state_and_changes_decisions(harness: Harness) -> None:
    """Issue 14, deceased (MCA 2005 s9; AHRA 1990 s3(1)(f)): on the real broker, the practice's statement of
    death (Event v5) reaches the state topic's record; decided against that record with no word of death on
    the request, a health and welfare attorney's consent stops counting and HDECD by the personal
    representative opens. A hospital's key trying to withdraw the death is dead-lettered
    (DECEASED_STATUS_NOT_GP) and does not clear it."""
    from dataclasses import replace

    from consent_rules.decision import AccessRight, Outcome, decide
    from consent_rules.decision.request import DecisionRequest, Requester
    from consent_rules.hierarchy import RequestOnlyPurpose
    from consent_wire.codes import DataClass, PurposeOfUse, Relationship
    from consent_wire.model import ConsentDecision

    gp, hospital = SimAgent.create(site="A81001"), SimAgent.create(site="RXH01")
    await harness.register(gp, hospital)
    await harness.start_core()
    key = patient(45)
    attorney = ProxyAuthority(ProxyAuthorityKind.LPA_HEALTH_WELFARE, "7000-1234-5678")
    research = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.HRESCH, DataClass.ALL, "*", proxy=attorney)
    care = ConsentDecision(ConsentDirective.OPTIN, PurposeOfUse.TREAT, DataClass.ALL, "*", recorded_by_role="GP")
    died_ms = BASE_MS + 2000
    await harness.send(
        gp,
        [gp.batch([gp.event(key, research, BASE_MS), gp.event(key, care, died_ms, subject_deceased_ms=died_ms)])],
    )
    await harness.send(hospital, [hospital.batch([hospital.event(key, care, died_ms + 1000, subject_deceased_ms=0)])])
    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 1)
    assert _reasons(letters) == ["DECEASED_STATUS_NOT_GP"]
    states = await harness.read(harness.topics.state, lambda rs: _applied(rs) == 2)
    state = PatientState.from_bytes(latest_by_key(states)[key.encode()])
    assert state.is_deceased

    researcher = Requester("RESLAB1", "RESEARCHER", True, Relationship.NONE, False)
    asks = DecisionRequest(researcher, PurposeOfUse.HRESCH, key, (DataClass.GENERAL,), None, died_ms + 5000)
    representative = Requester("PATIENT", "EXECUTOR", False, Relationship.NONE, False)
    hdecd = replace(
        asks,
        requester=representative,
        purpose=PurposeOfUse.HOPERAT,
        purpose_detail=RequestOnlyPurpose.HDECD,
        access_right=AccessRight.PERSONAL_REPRESENTATIVE,
    )
    alive = replay(key, [as_the_core_keys_it(decode_event(e)) for e in gp.encoded[:1]])  # the consent, before the death
    assert not alive.is_deceased
    assert "EXPLICIT_CONSENT" in decide(asks, alive).codes
    by_attorney, by_representative = decide(asks, state), decide(hdecd, state)
    assert by_attorney.outcome is Outcome.DENY
    assert by_attorney.codes[:2] == ("DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_CONSENT_NOT_BINDING")
    assert decide(hdecd, alive).codes == ("PATIENT_NOT_DECEASED",)
    assert by_representative.codes == ("DECEASED_CONFIDENTIALITY_CONTINUES", "PROXY_ACCESS")
