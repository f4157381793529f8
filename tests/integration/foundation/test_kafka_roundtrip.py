"""The real Kafka broker round-trips records with the producer settings the product relies on."""

from __future__ import annotations

import pytest

from broker.topics import TopicNames
from consent_io import kafka
from consent_io.connection import KafkaConnection

pytestmark = pytest.mark.integration


async def test_idempotent_acks_all_producer_round_trips_records_in_order(
    kafka_connection: KafkaConnection, topic_names: TopicNames, unique_group: str
) -> None:
    producer = kafka.producer(kafka_connection, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = [f"record-{i}".encode() for i in range(200)]
        for value in sent:
            await producer.send(topic_names.ingress, value, key=b"agent-1")
        await producer.flush()
    finally:
        await producer.stop()

    consumer = kafka.consumer(
        kafka_connection, topic_names.ingress, group_id=unique_group, auto_offset_reset="earliest"
    )
    await consumer.start()
    received: list[bytes] = []
    try:
        while len(received) < len(sent):
            batches = await consumer.getmany(timeout_ms=10_000)
            assert batches, f"timed out with {len(received)} of {len(sent)} records"
            for records in batches.values():
                received.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    assert received == sent  # one key -> one partition -> exact order, nothing doubled
