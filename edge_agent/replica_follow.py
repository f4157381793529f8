"""Followers that keep the :class:`~edge_agent.replica.Replica` current.

- :class:`KafkaReplicaFollower` reads the compacted state and shielding topics from the start
  (no consumer group: every agent reads everything and keeps only its own patients; records
  are keyed by patient key) with ``read_committed`` isolation.
- :class:`MqttReplicaFollower` subscribes to the retained mirrors
  ``consent/state/<site>/<patient_key>`` and ``consent/shielding/<site>/<patient_key>``; an
  empty retained payload deletes the record.

Both run until cancelled; the owner (:mod:`edge_agent.app`) cancels them at shutdown.
Connection failures are retried with full-jitter backoff, like the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import aiomqtt
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection
from consent_rules.backoff import full_jitter_delay
from edge_agent.replica import Replica, ReplicaKind

__all__ = ["KafkaReplicaFollower", "MqttReplicaFollower", "mqtt_replica_topics", "parse_mqtt_replica_topic"]

log = logging.getLogger(__name__)

_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 60.0  # same ceiling as the publisher: at most one reconnect attempt a minute
_QOS_AT_LEAST_ONCE = 1


def mqtt_replica_topics(site: str) -> tuple[str, str]:
    return f"consent/state/{site}/+", f"consent/shielding/{site}/+"


def parse_mqtt_replica_topic(topic: str, site: str) -> tuple[ReplicaKind, str] | None:
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "consent" or parts[2] != site or not parts[3]:
        return None
    try:
        return ReplicaKind(parts[1]), parts[3]
    except ValueError:
        return None


class KafkaReplicaFollower:
    def __init__(
        self,
        conn: KafkaConnection,
        state_topic: str,
        shielding_topic: str,
        replica: Replica,
        *,
        now_ms: Callable[[], int],
    ) -> None:
        self._conn = conn
        self._kinds = {state_topic: ReplicaKind.STATE, shielding_topic: ReplicaKind.SHIELDING}
        self._replica = replica
        self._now_ms = now_ms
        self.records_total = 0

    async def run(self) -> None:
        attempt = 0
        while True:
            consumer = kafka.consumer(self._conn, *self._kinds, group_id=None, auto_offset_reset="earliest")
            try:
                await consumer.start()
                attempt = 0
                await self._consume(consumer)
            except KafkaError as exc:
                delay = full_jitter_delay(
                    attempt, base_s=_BACKOFF_BASE_S, cap_s=_BACKOFF_CAP_S, unit_random=random.random()
                )
                log.warning("replica follower kafka error=%s retry_in_s=%.2f", type(exc).__name__, delay)
                attempt += 1
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(KafkaError):
                    await consumer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                kind = self._kinds[tp.topic]
                for record in records:
                    if record.key is None:
                        continue
                    key = bytes(record.key).decode("ascii", "replace")
                    as_at = record.timestamp if record.timestamp is not None else self._now_ms()
                    value = None if record.value is None else bytes(record.value)
                    await self._replica.upsert(kind, key, value, int(as_at))
                    self.records_total += 1


class MqttReplicaFollower:
    def __init__(
        self, conn: MqttConnection, site: str, agent_id: str, replica: Replica, *, now_ms: Callable[[], int]
    ) -> None:
        self._conn = conn
        self._site = site
        self._client_id = f"edge-agent-{agent_id}-replica"
        self._replica = replica
        self._now_ms = now_ms
        self.records_total = 0

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                async with mqtt.client(self._conn, identifier=self._client_id) as client:
                    for topic in mqtt_replica_topics(self._site):
                        await client.subscribe(topic, qos=_QOS_AT_LEAST_ONCE)
                    attempt = 0
                    async for message in client.messages:
                        await self._handle(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                delay = full_jitter_delay(
                    attempt, base_s=_BACKOFF_BASE_S, cap_s=_BACKOFF_CAP_S, unit_random=random.random()
                )
                log.warning("replica follower mqtt error=%s retry_in_s=%.2f", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def _handle(self, topic: str, payload: object) -> None:
        parsed = parse_mqtt_replica_topic(topic, self._site)
        if parsed is None or not isinstance(payload, bytes | bytearray):
            return
        kind, key = parsed
        await self._replica.upsert(kind, key, bytes(payload) if payload else None, self._now_ms())
        self.records_total += 1
