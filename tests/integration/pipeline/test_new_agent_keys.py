"""A new agent's first batch reaching the verifier before its keys follower has read the registration (issue 12).

On the real broker: the verifier's follower is a real consumer that is behind the keys topic when the agent's
first batch is polled; the batch must be verified, not dead-lettered UNKNOWN_KEY (an acknowledged event lost).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from broker.keys_follower import KeysFollower
from broker.pipeline import VerifierLogic
from broker.verifier import VerifierCore
from consent_io import kafka
from consent_wire.keys import KeyRegistry
from tests.factories import BASE_MS, SimAgent, consent, patient
from tests.integration.pipeline.conftest import Harness

pytestmark = pytest.mark.integration

# The follower's fetch waits for 1 MiB or this long: a registration written after the follower started reaches
# it only when the wait ends, so until then it is behind the keys topic (deterministically: a default consumer is
# behind only for the milliseconds of a fetch round trip, the intermittent failure of the per-site pseudonym test).
FOLLOWER_FETCH_WAIT_MS = 15_000


async def test_a_new_agents_first_batch_polled_before_the_follower_read_its_registration_is_verified(
    harness: Harness,
) -> None:
    conn = harness.settings().kafka_connection("verifier")
    reader = kafka.KafkaTopicReader(
        conn,
        harness.topics.keys,
        partitions=[0],
        fetch_min_bytes=1024 * 1024,
        fetch_max_wait_ms=FOLLOWER_FETCH_WAIT_MS,
    )
    registry = KeyRegistry(harness.root.public_key)
    follower = KeysFollower(reader, registry)
    await follower.start()
    try:
        agent = SimAgent.create()
        await harness.register(agent)  # on the keys topic (acks=all) before the batch is on ingress
        await harness.send(agent, [agent.batch([agent.event(patient(i), consent(), BASE_MS + i) for i in range(3)])])
        polled = await harness.read(harness.topics.ingress, lambda rs: len(rs) >= 1)
        logic = VerifierLogic(harness.topics, VerifierCore(registry), follower, catch_up_s=60.0)

        await logic.prepare([polled])  # what the stage does with each poll, before processing it
        outputs = logic.process(0, polled, int(time.time() * 1000))

        assert [o.reject_reason for o in outputs if o.topic == harness.topics.deadletter] == []
        assert [o.topic for o in outputs].count(harness.topics.events) == 3
        assert logic.core.cursors[agent.agent_id].next_seq == 4
    finally:
        await follower.stop()


async def test_agents_registered_a_moment_before_their_first_batches_lose_nothing(harness: Harness) -> None:
    """The whole core: two sites registered and recording at the same moment, right after the core started."""
    await harness.start_core()
    sites = [SimAgent.create(site="A81001"), SimAgent.create(site="VM123")]
    batches = {a.agent_id: a.batch([a.event(patient(i), consent(), BASE_MS + i) for i in range(2)]) for a in sites}

    async def register_then_send(agent: SimAgent) -> None:
        await harness.register(agent)
        await harness.send(agent, [batches[agent.agent_id]])

    await asyncio.gather(*(register_then_send(a) for a in sites))

    events = await harness.read(harness.topics.events, lambda rs: len(rs) >= 4)
    assert len(events) == 4
    letters = [r async for r in kafka.iter_to_end(harness.kafka, harness.topics.deadletter)]
    assert [dict(r.headers)["reason"] for r in letters] == []
