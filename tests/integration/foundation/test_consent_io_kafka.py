"""consent_io.kafka against the real broker: fresh partition metadata and the one topic reader."""

from __future__ import annotations

import asyncio

import pytest

from broker.topics import TopicNames
from consent_io import kafka
from consent_io.connection import KafkaConnection

pytestmark = pytest.mark.integration


async def _write(conn: KafkaConnection, topic: str, values: dict[int, list[bytes]]) -> None:
    producer = kafka.producer(conn, acks="all")
    await producer.start()
    try:
        for partition, batch in values.items():
            for value in batch:
                await producer.send_and_wait(topic, value, partition=partition)
    finally:
        await producer.stop()


async def test_partitions_for_reads_fresh_metadata_of_a_just_created_topic(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    consumer = kafka.consumer(kafka_connection)
    await consumer.start()
    try:
        await kafka.refresh_metadata(consumer)
        partitions: set[int] = set()
        for _ in range(50):  # a just-created topic takes a few metadata rounds to appear
            partitions = await kafka.partitions_for(consumer, topic_names.events)
            if partitions:
                break
            await asyncio.sleep(0.2)
        assert partitions == {0, 1}
        assert await kafka.partitions_for(consumer, f"{topic_names.prefix}.never-created") == set()
    finally:
        await consumer.stop()


async def test_read_to_end_returns_every_record_up_to_the_end_seen_at_start_in_partition_order(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    await _write(kafka_connection, topic_names.events, {1: [b"b0", b"b1"], 0: [b"a0"]})
    records = await kafka.read_to_end(kafka_connection, topic_names.events)
    assert [(r.partition, r.value) for r in records] == [(0, b"a0"), (1, b"b0"), (1, b"b1")]
    only_one = await kafka.read_to_end(kafka_connection, topic_names.events, partitions=[1])
    assert [r.value for r in only_one] == [b"b0", b"b1"]


async def test_a_reader_is_caught_up_at_the_start_offsets_and_still_fetches_later_records(
    kafka_connection: KafkaConnection, topic_names: TopicNames
) -> None:
    await _write(kafka_connection, topic_names.ingress, {0: [b"old"]})
    reader = kafka.KafkaTopicReader(kafka_connection, topic_names.ingress)
    await reader.start()
    try:
        seen: list[bytes] = []
        while not await reader.caught_up():
            seen.extend(r.value for rs in (await reader.fetch()).values() for r in rs)
        assert seen == [b"old"]
        await _write(kafka_connection, topic_names.ingress, {1: [b"new"]})
        for _ in range(20):
            seen.extend(r.value for rs in (await reader.fetch(timeout_ms=500)).values() for r in rs)
            if len(seen) == 2:
                break
        assert seen == [b"old", b"new"]
    finally:
        await reader.stop()


async def test_reading_a_topic_that_does_not_exist_says_how_to_create_it(
    kafka_connection: KafkaConnection, unique_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kafka, "METADATA_ATTEMPTS", 2)
    with pytest.raises(kafka.TopicMissingError, match="consent-broker topics create"):
        await kafka.read_to_end(kafka_connection, f"{unique_prefix}.missing")
