"""Edge agent against the real Kafka and Mosquitto (proposed for tests/integration/edge/)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from broker.topics import TopicNames
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection
from consent_wire.avro_codec import decode
from consent_wire.dsse import AgentSigner
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher, PublisherSettings
from edge_agent.replica import Replica
from edge_agent.replica_follow import KafkaReplicaFollower
from edge_agent.transport_kafka import KafkaTransport
from edge_agent.transport_mqtt import MqttTransport, ack_topic, ingress_topic
from edge_agent.wire import AvroEventCodec, WireBatchSigner
from tests.fakes import draft

pytestmark = pytest.mark.integration


async def _outbox(tmp_path: Path, agent_id: str) -> Outbox:
    codec = AvroEventCodec()
    return await Outbox.open(tmp_path / "o.db", agent_id=agent_id, site="A12345", codec=codec, cap_bytes=1 << 30)


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
    tmp_path: Path, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    outbox = await _outbox(tmp_path, "agent-it-1")
    await outbox.submit_many([draft(i) for i in range(25)])
    transport = KafkaTransport(kafka_connection, topic_names.ingress, "agent-it-1", ack_timeout_s=20)
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


async def test_mqtt_waits_for_bridge_ack_not_puback(tmp_path: Path, mqtt_connection: MqttConnection) -> None:
    agent = f"agent-it-{tmp_path.name[-8:]}"
    outbox = await _outbox(tmp_path, agent)
    await outbox.submit_many([draft(i) for i in range(5)])
    transport = MqttTransport(mqtt_connection, agent, ack_timeout_s=1.0)
    signer = WireBatchSigner(AgentSigner.generate(agent))
    publisher = Publisher(outbox, signer, transport, PublisherSettings(batch_max_events=5, linger_ms=0))

    # no bridge yet: PUBACK arrives but no application ack, so nothing may be deleted
    with pytest.raises(Exception, match="no bridge ack"):
        await publisher.publish_once()
    assert outbox.pending_count == 5

    async with mqtt.client(mqtt_connection) as bridge:
        await bridge.subscribe(ingress_topic(agent), qos=1)

        async def fake_bridge() -> None:
            async for message in bridge.messages:
                batch = decode("SignedBatch", bytes(message.payload))  # type: ignore[arg-type]
                last = batch["first_seq"] + len(batch["events"]) - 1
                await bridge.publish(ack_topic(agent), orjson.dumps({"agent_id": agent, "last_seq": last}), qos=1)

        task = asyncio.create_task(fake_bridge())
        assert await publisher.publish_once() == 5
        task.cancel()
    assert outbox.pending_count == 0
    await transport.close()
    await outbox.close()


async def test_kafka_replica_follower_keeps_only_own_patients(
    tmp_path: Path, kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    producer = kafka.producer(kafka_connection)
    await producer.start()
    await producer.send_and_wait(topic_names.state, b"state-1", key=b"mine", timestamp_ms=1000)
    await producer.send_and_wait(topic_names.state, b"state-x", key=b"theirs", timestamp_ms=1000)
    await producer.send_and_wait(topic_names.shielding, b"shield-1", key=b"mine", timestamp_ms=2000)
    await producer.stop()
    replica = Replica(tmp_path / "r.db", frozenset({"mine"}))
    await replica.open()
    topics = (topic_names.state, topic_names.shielding)
    follower = KafkaReplicaFollower(kafka_connection, *topics, replica, now_ms=lambda: 0)
    task = asyncio.create_task(follower.run())
    for _ in range(200):
        record = await replica.get("mine")
        if record is not None and record.shielding is not None:
            break
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    theirs = await replica.get("theirs")
    await replica.close()

    assert record is not None
    assert (record.state, record.state_as_at_ms, record.shielding) == (b"state-1", 1000, b"shield-1")
    assert theirs is None
