"""Operator side of key lifecycle: publish root-signed key events to the compacted keys topic."""

from __future__ import annotations

from hashlib import sha256

from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = ["publish_key_events"]


async def publish_key_events(conn: KafkaConnection, topic: str, signed_events: list[bytes]) -> None:
    """Each record is keyed by the hash of its bytes, so compaction keeps the whole key history."""
    producer = kafka.producer(conn, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for data in signed_events:
            await producer.send(topic, data, key=sha256(data).hexdigest().encode(), partition=0)
        await producer.flush()
    finally:
        await producer.stop()
