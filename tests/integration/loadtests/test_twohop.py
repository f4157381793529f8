"""The two-hop pass-through (issue 18) on the test stack: its throughput ceiling and its latency floor."""

from __future__ import annotations

import uuid

import pytest

from consent_io import kafka
from consent_io.connection import KafkaConnection
from loadtests.ceilings import create_scratch_topic
from loadtests.twohop import twohop_latency, twohop_perf

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _topics(conn: KafkaConnection, *names: str) -> tuple[str, ...]:
    scratch = f"t{uuid.uuid4().hex[:10]}.twohop"
    topics = tuple(f"{scratch}.{n}" for n in names)
    for topic in topics:
        await create_scratch_topic(conn, topic, 2)
    return topics


async def test_the_latency_floor_times_every_offered_record(kafka_connection: KafkaConnection) -> None:
    source, middle, sink = await _topics(kafka_connection, "src", "mid", "sink")
    summary = await twohop_latency(kafka_connection, (source, middle, sink), 2, rate_eps=200.0, seconds=1.0, size=300)
    assert summary.count == 200  # every paced record timed once; the warm-up records are not
    assert summary.p50 is not None and summary.p99 is not None and summary.max is not None
    assert 0 < summary.p50 <= summary.p99 <= summary.max


async def test_the_ceiling_moves_every_record_through_both_hops(kafka_connection: KafkaConnection) -> None:
    source, middle, sink = await _topics(kafka_connection, "src", "mid", "sink")
    producer = kafka.producer(kafka_connection, acks="all")
    await producer.start()
    try:
        for i in range(500):
            await producer.send(source, b"x" * 100, key=i.to_bytes(4, "big"))
        await producer.flush()
    finally:
        await kafka.close_producer(producer)
    eps, cpu_us = await twohop_perf(kafka_connection, source, middle, sink, 500)
    assert eps > 0 and cpu_us > 0
