"""Followers that keep the :class:`~edge_agent.replica.Replica` current from the site's own feed.

- :class:`KafkaReplicaFollower` reads the site's compacted feed ``<prefix>.site.<site>`` from where
  the replica stopped (positions kept in the replica's SQLite after the records they cover; the start
  the first time; no consumer group; keys ``<kind>/<patient_key>``) with ``read_committed`` isolation. The
  agent's credential may read that topic only: never the national state and shielding topics.
- :class:`MqttReplicaFollower` subscribes to the retained mirrors
  ``consent/state/<site>/<patient_key>`` and ``consent/shielding/<site>/<patient_key>``. It resumes (issue 16)
  with a persistent session (``clean_session=False``, a fixed client id): each message is acknowledged only
  after the replica's SQLite transaction holding it has committed, and when the broker kept the session it does
  not subscribe again, so it receives what was published while it was away and none of the retained messages
  it already applied (the broker's session is the MQTT counterpart of a Kafka position). When the broker lost
  the session (e.g. an expired one), it subscribes again and the retained messages bring it up to date.

Both hand every record to :class:`SignedFeed`, which applies it only if the core signed it for
exactly that kind and patient (:func:`consent_rules.replica_feed.open_replica_record`); anything
else - an empty or unsigned payload, a forged signature, a record signed for another patient - is
refused, counted by reason (``edge_replica_refused_total{reason}``) and never applied. Freshness
comes from the signed content; broker and producer timestamps are never read.

Both run until cancelled; the owner (:mod:`edge_agent.app`) cancels them at shutdown.
Connection failures are retried with full-jitter backoff, like the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence

import aiomqtt
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection
from consent_rules.backoff import full_jitter_delay
from consent_rules.replica_feed import (
    ReplicaFeedError,
    ReplicaKeyMismatchError,
    ReplicaUpdate,
    open_replica_record,
    parse_feed_key,
)
from edge_agent.replica import Replica, ReplicaKind

__all__ = [
    "KafkaReplicaFollower",
    "MqttReplicaFollower",
    "SignedFeed",
    "mqtt_replica_topics",
    "parse_mqtt_replica_topic",
]

log = logging.getLogger(__name__)

_BACKOFF_BASE_S = 0.5
_BACKOFF_CAP_S = 60.0  # same ceiling as the publisher: at most one reconnect attempt a minute
_FEED_WAIT_CAP_S = 5.0  # a new site's feed appears with its first record: look again within seconds
_QOS_AT_LEAST_ONCE = 1
# Most records applied in one replica transaction (a poll, or the MQTT messages already queued): one fsync for them
# all, yet short enough (~15 ms here) that the offline decision endpoint's reads, on the same thread, barely wait.
_BATCH_RECORDS = 250


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


class SignedFeed:
    """Verifies each received record with the core's key and applies only what verifies."""

    def __init__(self, replica: Replica, core_key: Ed25519PublicKey, *, now_ms: Callable[[], int]) -> None:
        self._replica = replica
        self._core_key = core_key
        self._now_ms = now_ms

    def open(self, kind: ReplicaKind, patient_key: str, payload: bytes | None) -> ReplicaUpdate | None:
        """The record as the core signed it for exactly this kind and patient; None if refused (counted)."""
        try:
            return open_replica_record(payload, self._core_key, kind, patient_key, self._now_ms())
        except ReplicaFeedError as exc:
            self.refuse(exc.reason, kind)
            return None

    async def apply_all(
        self, updates: Sequence[ReplicaUpdate], positions: tuple[str, dict[int, int]] | None = None
    ) -> list[bool]:
        """Opened records (and a feed's positions reached) applied in one replica transaction."""
        return await self._replica.apply_all(updates, positions)

    def refuse(self, reason: str, kind: ReplicaKind | None) -> None:
        self._replica.refused_by_reason[reason] += 1
        log.warning("replica record refused reason=%s kind=%s", reason, kind.value if kind else "?")


class KafkaReplicaFollower:
    def __init__(
        self, conn: KafkaConnection, feed_topic: str, feed: SignedFeed, replica: Replica | None = None
    ) -> None:
        self._conn = conn
        self._topic = feed_topic
        self._feed = feed
        self._replica = replica  # where positions are kept; None: read from the start at every run
        self.records_total = 0

    async def run(self) -> None:
        attempt = 0
        while True:
            consumer = kafka.consumer(self._conn, group_id=None, auto_offset_reset="earliest")
            try:
                await consumer.start()
                attempt = 0
                partitions = await self._wait_for_feed(consumer)
                await self._assign(consumer, partitions)
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

    async def _assign(self, consumer: AIOKafkaConsumer, partitions: set[int]) -> None:
        tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        stored = {} if self._replica is None else await self._replica.positions(self._topic)
        for tp in tps:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])

    async def _wait_for_feed(self, consumer: AIOKafkaConsumer) -> set[int]:
        """The mirror creates a site's feed with the site's first record: until then, wait quietly (subscribing to
        a missing topic makes the client log an error on every metadata refresh)."""
        attempt = 0
        while not (partitions := await kafka.partitions_for(consumer, self._topic)):
            if attempt == 0:
                log.info("replica feed topic=%s not created yet (the mirror creates it); waiting", self._topic)
            delay = full_jitter_delay(
                attempt, base_s=_BACKOFF_BASE_S, cap_s=_FEED_WAIT_CAP_S, unit_random=random.random()
            )
            await asyncio.sleep(delay)
            attempt += 1
        return partitions

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        """Each poll's records applied in one replica transaction with the positions they reach (when kept)."""
        while True:
            batches = await consumer.getmany(timeout_ms=1000, max_records=_BATCH_RECORDS)
            updates: list[ReplicaUpdate] = []
            positions: dict[int, int] = {}
            for tp, records in batches.items():
                for record in records:
                    if (update := self._open(record.key, record.value)) is not None:
                        updates.append(update)
                    positions[tp.partition] = record.offset + 1
            if positions:
                await self._feed.apply_all(updates, (self._topic, positions) if self._replica is not None else None)

    async def handle(self, key: bytes | None, value: bytes | None) -> bool:
        """One record of the site feed (key ``<kind>/<patient_key>``) applied alone; False if refused or not fresher."""
        update = self._open(key, value)
        return False if update is None else (await self._feed.apply_all((update,)))[0]

    def _open(self, key: bytes | None, value: bytes | None) -> ReplicaUpdate | None:
        """One record of the site feed, verified; None if refused (counted)."""
        self.records_total += 1
        parsed = parse_feed_key(None if key is None else bytes(key))
        if parsed is None:
            self._feed.refuse(ReplicaKeyMismatchError.reason, None)
            return None
        kind, patient_key = parsed
        return self._feed.open(kind, patient_key, None if value is None else bytes(value))


class MqttReplicaFollower:
    def __init__(
        self, conn: MqttConnection, site: str, agent_id: str, feed: SignedFeed, *, resume: bool = True
    ) -> None:
        self._conn = conn
        self._site = site
        self._client_id = f"edge-agent-{agent_id}-replica"
        self._feed = feed
        self._resume = resume  # False: a clean session, every retained message again at each connection
        self.records_total = 0
        self.subscribed = 0  # connections that had to subscribe (no session kept by the broker)

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                client = mqtt.client(
                    self._conn, identifier=self._client_id, clean_session=not self._resume, manual_ack=self._resume
                )
                async with client:
                    if not (self._resume and mqtt.session_present(client)):
                        self.subscribed += 1
                        for topic in mqtt_replica_topics(self._site):
                            await client.subscribe(topic, qos=_QOS_AT_LEAST_ONCE)
                    attempt = 0
                    messages = client.messages
                    async for message in messages:
                        batch = [message]  # and what else is already queued: one replica transaction for all
                        while len(messages) and len(batch) < _BATCH_RECORDS:
                            batch.append(await anext(messages))
                        await self._handle_all(batch)
                        if self._resume:
                            for done in batch:  # after the replica's commit: a crash before re-delivers them
                                mqtt.ack(client, done)
            except aiomqtt.MqttError as exc:
                delay = full_jitter_delay(
                    attempt, base_s=_BACKOFF_BASE_S, cap_s=_BACKOFF_CAP_S, unit_random=random.random()
                )
                log.warning("replica follower mqtt error=%s retry_in_s=%.2f", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def _handle(self, topic: str, payload: object) -> bool:
        update = self._open(topic, payload)
        return False if update is None else (await self._feed.apply_all((update,)))[0]

    async def _handle_all(self, messages: Sequence[aiomqtt.Message]) -> list[bool]:
        updates = [u for m in messages if (u := self._open(str(m.topic), m.payload)) is not None]
        return await self._feed.apply_all(updates) if updates else []

    def _open(self, topic: str, payload: object) -> ReplicaUpdate | None:
        parsed = parse_mqtt_replica_topic(topic, self._site)
        if parsed is None:
            return None  # not a topic of this site's feed (the subscriptions name only those)
        self.records_total += 1
        kind, key = parsed
        return self._feed.open(kind, key, bytes(payload) if isinstance(payload, bytes | bytearray) else None)
