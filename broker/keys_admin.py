"""Operator side of key lifecycle: publish root-signed key events to the keys topic, read the registry back."""

from __future__ import annotations

from hashlib import sha256

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_io import kafka
from consent_io.connection import KafkaConnection
from consent_wire.errors import WireError
from consent_wire.keys import KeyRegistry

__all__ = ["publish_key_events", "read_registry"]


async def read_registry(conn: KafkaConnection, topic: str, root_public_key: bytes) -> tuple[KeyRegistry, list[str]]:
    """The registry the core would build from the keys topic, and the reason of each key event it refused."""
    registry = KeyRegistry(Ed25519PublicKey.from_public_bytes(root_public_key))
    rejected: list[str] = []
    for record in await kafka.read_to_end(conn, topic):
        try:
            registry.apply(record.value)
        except WireError as exc:
            rejected.append(exc.reason)
    return registry, rejected


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
