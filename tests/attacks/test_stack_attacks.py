"""Issue 12 items 5, 6 and 7 on the real Kafka: each attack is refused with its reason code by the core's verifier,
honest agents lose nothing (lost = 0) and the partitions flow on afterwards.

(The in-process twins in test_authority.py, test_clocks.py and test_key_registry.py check the rules' edges.)
"""

from __future__ import annotations

import uuid
from hashlib import sha256

import pytest

from broker.keys_admin import publish_key_events
from consent_io import kafka
from consent_wire.avro_codec import encode_event
from consent_wire.codes import Capability, ShieldingAction
from consent_wire.model import Event, Payload
from consent_wire.signing import VerifiedEvent, decode_verified_event
from tests.factories import BASE_MS, SimAgent, consent, patient, shielding
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration

HLC_MAX = 2**63 - 1


def _reasons(records: list) -> list[str]:  # type: ignore[type-arg]
    return sorted(dict(r.headers)["reason"].decode() for r in records)


def _accepted(records: list) -> set[tuple[str, int]]:  # type: ignore[type-arg]
    events: list[VerifiedEvent] = [decode_verified_event(r.value) for r in records]
    return {(ve.agent_id, ve.event.seq) for ve in events}


def _honest(agent: SimAgent, n: int, at_ms: int = BASE_MS) -> bytes:
    return agent.batch([agent.event(patient(100 + i), consent(), at_ms + i) for i in range(n)])


def _as_site(agent: SimAgent, site: str, payload: Payload, at_ms: int) -> bytes:
    honest_site, agent.site = agent.site, site
    try:
        return agent.event(patient(7), payload, at_ms)
    finally:
        agent.site = honest_site


async def test_a_site_cannot_record_for_another_site_nor_beyond_its_capabilities(harness: Harness) -> None:
    """Item 5: SITE_MISMATCH and CAPABILITY_DENIED per event; the hostile agent's own later events still flow."""
    hostile, honest = SimAgent.create(site="VM1001"), SimAgent.create(site="A81001")
    await publish_key_events(
        harness.kafka,
        harness.topics.keys,
        [hostile.register(harness.root, capabilities=(Capability.CONSENT,)), honest.register(harness.root)],
    )
    await harness.start_core(stages="verifier")
    forged = [
        _as_site(hostile, "A81001", consent(), BASE_MS),  # records for the GP practice
        hostile.event(patient(8), shielding(ShieldingAction.CLEAR), BASE_MS + 1),  # not its capability
        hostile.event(patient(9), consent(), BASE_MS + 2),  # its own: accepted
    ]
    await harness.send(hostile, [hostile.batch(forged), _honest(hostile, 2, BASE_MS + 3)])
    await harness.send(honest, [_honest(honest, 5)])

    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 2)
    assert _reasons(letters) == ["CAPABILITY_DENIED", "SITE_MISMATCH"]
    assert sorted(r.value for r in letters) == sorted(forged[:2])  # each event alone, never its batch
    events = await harness.read(harness.topics.events, lambda rs: len(rs) >= 8)
    expected = {(hostile.agent_id, s) for s in (3, 4, 5)} | {(honest.agent_id, s) for s in range(1, 6)}
    assert _accepted(events) == expected  # lost = 0; the hostile agent's partition flows on


def _stamped(agent: SimAgent, hlc: int, recorded_ms: int) -> bytes:
    agent.seq += 1
    event = Event(uuid.uuid4().hex, agent.agent_id, agent.site, agent.seq, agent.last_hash, hlc, recorded_ms,
                  patient(1), shielding(ShieldingAction.CLEAR))  # fmt: skip
    data = encode_event(event)
    agent.last_hash = sha256(data).digest()
    return data


async def test_far_future_clocks_and_back_dated_revoked_keys_are_refused_by_arrival_time(harness: Harness) -> None:
    """Item 6: a clear stamped with HLC 2^63-1 is CLOCK_SKEW; a revoked key's back-dated batch is REVOKED_KEY
    (key validity by LogAppendTime at the broker, which no agent sets)."""
    skewed, thief, honest = SimAgent.create(), SimAgent.create(), SimAgent.create()
    await harness.register(skewed, thief, honest)
    await publish_key_events(
        harness.kafka,
        harness.topics.keys,
        [harness.root.revoke(thief.agent_id, thief.signer.public_key_bytes, BASE_MS)],
    )
    await harness.start_core(stages="verifier")
    await harness.send(skewed, [skewed.batch([_stamped(skewed, HLC_MAX, BASE_MS)])])
    await harness.send(thief, [_honest(thief, 1, BASE_MS - 3_600_000)])  # dated before the revocation
    await harness.send(honest, [_honest(honest, 3), _honest(honest, 3, BASE_MS + 10)])

    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 2)
    assert _reasons(letters) == ["CLOCK_SKEW", "REVOKED_KEY"]
    events = await harness.read(harness.topics.events, lambda rs: len(rs) >= 6)
    assert _accepted(events) == {(honest.agent_id, s) for s in range(1, 7)}


async def test_a_tombstone_on_the_keys_topic_cannot_erase_a_revocation(harness: Harness) -> None:
    """Item 7: an empty record keyed like the REVOKE (what compaction would use to erase it) is refused; the key
    stays revoked across a core start that reads the topic from the beginning."""
    thief, honest = SimAgent.create(), SimAgent.create()
    await harness.register(thief, honest)
    revoke = harness.root.revoke(thief.agent_id, thief.signer.public_key_bytes, BASE_MS)
    await publish_key_events(harness.kafka, harness.topics.keys, [revoke])
    producer = kafka.producer(harness.kafka, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(harness.topics.keys, None, key=sha256(revoke).hexdigest().encode(), partition=0)
    finally:
        await producer.stop()
    await harness.start_core(stages="verifier")
    await harness.send(thief, [_honest(thief, 1, BASE_MS + 1000)])
    await harness.send(honest, [_honest(honest, 4)])

    letters = await harness.read(harness.topics.deadletter, lambda rs: len(rs) >= 1)
    assert _reasons(letters) == ["REVOKED_KEY"]
    events = await harness.read(harness.topics.events, lambda rs: len(rs) >= 4)
    assert _accepted(events) == {(honest.agent_id, s) for s in range(1, 5)}
