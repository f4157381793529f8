"""Provisioning creates every registered topic with the configuration the registry declares."""

from __future__ import annotations

import pytest

from broker.topics import TopicNames, create_topics, describe_topics, specs
from consent_io import kafka
from consent_io.connection import KafkaConnection

pytestmark = pytest.mark.integration


async def test_create_topics_provisions_every_registered_topic_with_its_config(
    kafka_connection: KafkaConnection, unique_prefix: str
) -> None:
    names = TopicNames(unique_prefix)
    created = await create_topics(kafka_connection, names)
    assert sorted(created) == sorted(names.name(s.topic) for s in specs())

    described = await describe_topics(kafka_connection, names)
    for spec in specs():
        info = described[names.name(spec.topic)]
        assert info["partitions"] == spec.partitions
        assert info["replication"] == 1
        assert info["cleanup.policy"] == ("compact" if spec.compacted else "delete")
        assert info["min.insync.replicas"] == "1"
        assert info["retention.ms"] == str(spec.retention_ms)


async def test_create_topics_twice_is_harmless(kafka_connection: KafkaConnection, unique_prefix: str) -> None:
    names = TopicNames(unique_prefix)
    await create_topics(kafka_connection, names)
    assert await create_topics(kafka_connection, names) == []


async def test_broker_refuses_to_auto_create_topics(kafka_connection: KafkaConnection, unique_prefix: str) -> None:
    from aiokafka.errors import KafkaError

    missing = f"{unique_prefix}.never-created"
    producer = kafka.producer(kafka_connection, request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(KafkaError):
            await producer.send_and_wait(missing, b"x")
    finally:
        await producer.stop()
    admin = kafka.admin(kafka_connection)
    await admin.start()
    try:
        assert missing not in await admin.list_topics()
    finally:
        await admin.close()
