"""Edge agent against the real Kafka and Mosquitto (proposed for tests/integration/edge/)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest

from broker.infra.local import LocalDeployment
from broker.topics import TopicNames, create_site_feed
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection
from consent_rules.replica_feed import ReplicaKind, feed_key, seal_replica_record
from consent_rules.state import replay
from consent_wire.ack import BatchAck, seal_ack
from consent_wire.avro_codec import decode, decode_event
from consent_wire.dsse import AgentSigner
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher, PublisherSettings
from edge_agent.replica import Replica, ReplicaRecord
from edge_agent.replica_follow import KafkaReplicaFollower, SignedFeed
from edge_agent.transport_kafka import KafkaTransport
from edge_agent.transport_mqtt import MqttTransport, ack_topic, ingress_topic
from edge_agent.wire import AvroEventCodec, WireBatchSigner
from tests.factories import BASE_MS, SimAgent, consent
from tests.fakes import draft

pytestmark = pytest.mark.integration


async def _outbox(tmp_path: Path, agent_id: str) -> Outbox:
    codec = AvroEventCodec()
    return await Outbox.open(tmp_path / "o.db", agent_id=agent_id, site="A12345", codec=codec, cap_bytes=1 << 30)


async def _state_then_stop(replica: Replica, key: str, follower: asyncio.Task[None]) -> ReplicaRecord | None:
    """The patient's replica record once it holds a state (or after 15 s), then the follower is stopped."""
    record = None
    for _ in range(300):
        record = await replica.get(key)
        if record is not None and record.state is not None:
            break
        await asyncio.sleep(0.05)
    follower.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower
    return record


async def _drain(publisher: Publisher, outbox: Outbox, timeout_s: float = 30) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(publisher.run(stop))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while outbox.pending_count and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_kafka_publisher_delivers_signed_batches_keyed_by_agent(
    tmp_path: Path,
    kafka_connection: KafkaConnection,
    topic_names: TopicNames,
    deployment: LocalDeployment,
    app_id: str,
) -> None:
    outbox = await _outbox(tmp_path, "agent-it-1")
    await outbox.submit_many([draft(i) for i in range(25)])
    await deployment.grant(topic_names.prefix, app_id, agents=[("agent-it-1", "A12345")])
    agent_conn = deployment.agent_kafka("agent-it-1", "A12345")  # the agent's own principal: write ingress only
    transport = KafkaTransport(agent_conn, topic_names.ingress, "agent-it-1", ack_timeout_s=20)
    signer = WireBatchSigner(AgentSigner.generate("agent-it-1"))
    publisher = Publisher(outbox, signer, transport, PublisherSettings(batch_max_events=10, linger_ms=0))
    await _drain(publisher, outbox)
    await transport.close()
    await outbox.close()

    records = await kafka.read_to_end(kafka_connection, topic_names.ingress)
    firsts = sorted(decode("SignedBatch", r.value)["first_seq"] for r in records)
    assert firsts == [1, 11, 21]
    assert {r.key for r in records} == {b"agent-it-1"}
    assert outbox.pending_count == 0


async def test_mqtt_waits_for_the_cores_signed_ack_not_puback(tmp_path: Path, deployment: LocalDeployment) -> None:
    agent = f"agent-it-{tmp_path.name[-8:]}"
    outbox = await _outbox(tmp_path, agent)
    await outbox.submit_many([draft(i) for i in range(5)])
    core = AgentSigner.generate("core")
    transport = MqttTransport(deployment.agent_mqtt(agent, "A12345"), agent, core.public_key, ack_timeout_s=1.0)
    signer = WireBatchSigner(AgentSigner.generate(agent))
    publisher = Publisher(outbox, signer, transport, PublisherSettings(batch_max_events=5, linger_ms=0))

    # no bridge yet: PUBACK arrives but no application ack, so nothing may be deleted
    with pytest.raises(Exception, match="no bridge ack"):
        await publisher.publish_once()
    assert outbox.pending_count == 5

    async with mqtt.client(deployment.stage_mqtt("bridge")) as bridge:
        await bridge.subscribe(ingress_topic(agent), qos=1)

        async def fake_bridge() -> None:
            async for message in bridge.messages:
                batch = decode("SignedBatch", bytes(message.payload))  # type: ignore[arg-type]
                last = batch["first_seq"] + len(batch["events"]) - 1
                unsigned = orjson.dumps({"agent_id": agent, "last_seq": last})  # deletes nothing
                await bridge.publish(ack_topic(agent), unsigned, qos=1)
                await bridge.publish(ack_topic(agent), seal_ack(core, BatchAck(agent, last)), qos=1)

        task = asyncio.create_task(fake_bridge())
        assert await publisher.publish_once() == 5
        task.cancel()
    assert outbox.pending_count == 0
    await transport.close()
    await outbox.close()


async def test_kafka_replica_follower_reads_its_sites_feed_and_applies_only_what_the_core_signed(
    tmp_path: Path, kafka_connection: KafkaConnection, topic_names: TopicNames, deployment: LocalDeployment, app_id: str
) -> None:
    site, agent = "A12345", f"agent-{topic_names.prefix}"
    admin = kafka.admin(kafka_connection)
    await admin.start()
    try:
        await create_site_feed(admin, topic_names, site)
    finally:
        await admin.close()
    await deployment.grant(topic_names.prefix, app_id, agents=[(agent, site)])
    core, forger = AgentSigner.generate("core"), AgentSigner.generate("core")
    gp = SimAgent.create(site=site)
    mine = replay("mine", [decode_event(gp.event("mine", consent(), BASE_MS))]).to_bytes()
    theirs = replay("theirs", [decode_event(gp.event("theirs", consent(), BASE_MS))]).to_bytes()
    feed = topic_names.site_feed(site)
    producer = kafka.producer(kafka_connection, acks="all")
    await producer.start()
    try:
        for signer, key, state in ((forger, "mine", mine), (core, "mine", mine), (core, "theirs", theirs)):
            value = seal_replica_record(signer, ReplicaKind.STATE, key, state, 1000)
            await producer.send_and_wait(feed, value, key=feed_key(ReplicaKind.STATE, key))
    finally:
        await producer.stop()
    replica = Replica(tmp_path / "r.db", frozenset({"mine"}))
    await replica.open()
    signed = SignedFeed(replica, core.public_key, now_ms=lambda: 2000)
    follower = KafkaReplicaFollower(deployment.agent_kafka(agent, site), feed, signed)  # as the agent itself
    task = asyncio.create_task(follower.run())
    record = await _state_then_stop(replica, "mine", task)
    theirs_record = await replica.get("theirs")
    refused = dict(replica.refused_by_reason)
    await replica.close()

    assert record is not None
    assert (record.state, record.state_as_at_ms) == (mine, 1000)
    assert theirs_record is None
    assert refused == {"REPLICA_FORGED": 1}


async def test_a_restarted_kafka_replica_follower_resumes_where_its_replica_stopped(
    tmp_path: Path, kafka_connection: KafkaConnection, topic_names: TopicNames, deployment: LocalDeployment, app_id: str
) -> None:
    """Issue 16: the replica keeps its feed position, so a restart reads only what came after it."""
    site, agent = "A12345", f"agent-{topic_names.prefix}"
    admin = kafka.admin(kafka_connection)
    await admin.start()
    try:
        await create_site_feed(admin, topic_names, site)
    finally:
        await admin.close()
    await deployment.grant(topic_names.prefix, app_id, agents=[(agent, site)])
    core = AgentSigner.generate("core")
    gp = SimAgent.create(site=site)
    feed = topic_names.site_feed(site)

    async def publish(*keys: str) -> None:
        producer = kafka.producer(kafka_connection, acks="all")
        await producer.start()
        try:
            for key in keys:
                state = replay(key, [decode_event(gp.event(key, consent(), BASE_MS))]).to_bytes()
                value = seal_replica_record(core, ReplicaKind.STATE, key, state, 1000)
                await producer.send_and_wait(feed, value, key=feed_key(ReplicaKind.STATE, key))
        finally:
            await producer.stop()

    async def follow(key: str) -> KafkaReplicaFollower:
        follower = KafkaReplicaFollower(deployment.agent_kafka(agent, site), feed, signed, replica)
        record = await _state_then_stop(replica, key, asyncio.create_task(follower.run()))
        assert record is not None and record.state is not None
        return follower

    replica = Replica(tmp_path / "r.db", None)
    await replica.open()
    signed = SignedFeed(replica, core.public_key, now_ms=lambda: 2000)
    await publish("p1", "p2", "p3")
    first = await follow("p3")
    await publish("p4")
    second = await follow("p4")
    await replica.close()

    assert first.records_total == 3
    assert second.records_total == 1  # resumed after p3: nothing read twice


async def test_a_follower_started_before_its_sites_feed_exists_waits_quietly_and_then_applies_it(
    tmp_path: Path,
    kafka_connection: KafkaConnection,
    topic_names: TopicNames,
    deployment: LocalDeployment,
    app_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    site, agent = "A54321", f"early-{topic_names.prefix}"
    await deployment.grant(topic_names.prefix, app_id, agents=[(agent, site)])
    core = AgentSigner.generate("core")
    replica = Replica(tmp_path / "r.db", None)
    await replica.open()
    follower = KafkaReplicaFollower(
        deployment.agent_kafka(agent, site),
        topic_names.site_feed(site),
        SignedFeed(replica, core.public_key, now_ms=lambda: 2000),
    )
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(2.0)  # the agent is up before the mirror has written anything for its site
    admin = kafka.admin(kafka_connection)
    await admin.start()
    try:
        await create_site_feed(admin, topic_names, site)
    finally:
        await admin.close()
    gp = SimAgent.create(site=site)
    state = replay("p1", [decode_event(gp.event("p1", consent(), BASE_MS))]).to_bytes()
    producer = kafka.producer(kafka_connection, acks="all")
    await producer.start()
    try:
        value = seal_replica_record(core, ReplicaKind.STATE, "p1", state, 1000)
        await producer.send_and_wait(topic_names.site_feed(site), value, key=feed_key(ReplicaKind.STATE, "p1"))
    finally:
        await producer.stop()
    record = await _state_then_stop(replica, "p1", task)
    await replica.close()
    assert record is not None and record.state == state
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("aiokafka")]
