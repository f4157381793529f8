"""Stage ``mirror`` (I/O shell): state and shielding records -> each patient's sites, signed, on MQTT and Kafka.

Follows the events, state and shielding topics from the beginning (``read_committed``, no consumer
group: every run rebuilds who-knows-whom from the events topic) and sends what
:class:`broker.mirror.planner.MirrorPlanner` plans to two sinks, the same bytes on both:

- MQTT: retained at QoS 1 on ``consent/<kind>/<site>/<patient_key>``, waiting for each PUBACK;
- Kafka: the site's compacted feed ``<prefix>.site.<site>`` (``broker.topics.SITE_FEED``), key
  ``<kind>/<patient_key>``, idempotent producer with ``acks=all``. The mirror creates a site's feed
  the first time it has a record for it (sites are learnt at run time from the events topic).

Each record is sealed first (:func:`consent_rules.replica_feed.seal_replica_record`): signed with the
core key (``core_signing_key_file``), re-encoded to its minimal form (no shielding reason ever leaves
the core) and stamped with this process's clock; a deletion is a signed record too. A record that
cannot be sealed (not a valid state or shielding record, or about another patient than its key) is
counted (``broker_mirror_records_total{outcome="unsealable"}``) and never sent.

Only sites with a relationship with a patient (an event recorded there, or a line in the
registrations file) receive that patient's records: see :mod:`broker.mirror.planner`.

One session = two Kafka consumers (the lead lane's and the bulk's) + one producer + one MQTT connection + a
fresh planner. Any Kafka or MQTT error ends the session; the next one (after full-jitter backoff) replays the
topics from the start (or resumes from the store, below) and republishes, which is harmless (retained messages
and compacted keys are replaced; replicas ignore records no fresher than theirs) and covers anything lost with
the broken connection.

A lead lane for shielding (issue 18): the shielding and events topics are read by a consumer of their own, and
each pass of the loop first takes what it holds, publishes and feeds it, and only then the state records polled
with it (at most ``_BULK_RECORDS`` a pass), so a shielding flag - and the event that tells the mirror which site
knows its patient - waits for one bounded pass at most, however far the mirror is behind the state topic.

Resuming (issue 16): with ``state_dir`` set, the mirror keeps a local store (:mod:`broker.mirror.store`):
after each batch is published and fed, the planner's changes and the positions reached are written in one
SQLite transaction, and a session starts from there with the planner as it was, instead of replaying the
topics (``records_read`` counts what a session read).
The MQTT client id is ``<app_id>.mirror`` with a clean session (the mirror subscribes to nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from broker.mirror.planner import (
    MirrorOutcome,
    MirrorPlanner,
    Publication,
    RecordKind,
    Registration,
    Step,
    coalesce,
)
from broker.mirror.store import MirrorStore
from broker.sessions import supervise
from broker.settings import load_registrations, read_hex_file
from broker.topics import TopicNames, create_site_feed
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection
from consent_rules.replica_feed import ReplicaFeedError, feed_key, seal_replica_record
from consent_wire.dsse import AgentSigner
from consent_wire.site_pseudonyms import CorePseudonyms

if TYPE_CHECKING:
    from broker.runtime import Core

__all__ = [
    "MirrorConfig",
    "MqttMirror",
    "Poller",
    "ReplicaMirror",
    "SealedPublication",
    "lanes",
    "load_core_signer",
    "poll",
    "seal",
]

log = logging.getLogger(__name__)

RECORDS = Counter("broker_mirror_records_total", "Kafka records seen by the mirror", ["outcome"])
PUBLISHED = Counter("broker_mirror_publications_total", "Retained MQTT messages published by the mirror")
FED = Counter("broker_mirror_site_feed_records_total", "Records written to the per-site Kafka feeds")
CONNECTED = Gauge("broker_mirror_connected", "1 while the mirror holds its Kafka clients and MQTT session")

_QOS_AT_LEAST_ONCE = 1
# How long an idle mirror's poll waits on the state topic before it looks at the lead lane again (and so how late
# a shielding flag may be read when nothing else is moving; also how late the mirror notices stop)
_IDLE_WAIT_MS = 50
# Publishes awaiting their PUBACK at once: a sliding window, the mirror's client opened with paho's in-flight
# window (default 20) and aiomqtt's warning threshold (default 10) raised to match. Ten at a time in lockstep
# (each chunk waiting for its slowest PUBACK) measured ~4.4 ms per retained publish under `make bench` load: the
# mirror fell up to 57 s behind the state topic and the agents' replicas with it (issue 18's shielding lane).
_IN_FLIGHT = 100
# Most state records one pass takes: bounds one pass of the loop, so a shielding record that arrives meanwhile waits
# for at most this many state records' publishes before it is read, first (see ``poll``).
_BULK_RECORDS = 1_000
CORE_SIGNER_ID = "core"  # the name inside the core's AgentSigner (the envelope carries only its key id)


def load_core_signer(path: str) -> AgentSigner:
    """The core's Ed25519 signing key from ``core_signing_key_file`` (hex, mode 0600)."""
    return AgentSigner.from_private_bytes(CORE_SIGNER_ID, read_hex_file(path, "core_signing_key_file"))


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SealedPublication:
    """A :class:`Publication` as sites receive it: ``record`` is the core-signed replica record."""

    kind: RecordKind
    site: str
    patient_key: str  # the site's own pseudonym of the patient (never the national one)
    record: bytes

    @property
    def topic(self) -> str:
        return Publication(self.kind, self.site, self.patient_key, b"").topic


def seal(
    signer: AgentSigner, publications: Sequence[Publication], now_ms: int
) -> tuple[tuple[SealedPublication, ...], int]:
    """Sign each publication (once per distinct record); returns them and how many could not be sealed."""
    sealed: list[SealedPublication] = []
    cache: dict[tuple[RecordKind, str, str, bytes], bytes | None] = {}
    refused = 0
    for p in publications:
        ident = (p.kind, p.patient_key, p.site_key, p.payload)
        if ident not in cache:
            try:
                cache[ident] = seal_replica_record(
                    signer, p.kind, p.patient_key, p.payload or None, now_ms, site_key=p.site_key
                )
            except ReplicaFeedError as exc:
                log.warning("mirror unsealable kind=%s reason=%s", p.kind.value, exc.reason)
                cache[ident] = None
                refused += 1
        record = cache[ident]
        if record is not None:
            sealed.append(SealedPublication(p.kind, p.site, p.key, record))
    return tuple(sealed), refused


class SiteFeedAdmin(Protocol):
    """Creates a site's feed unless it exists (:func:`broker.topics.create_site_feed` over an admin client)."""

    async def ensure(self, site: str) -> None: ...


@dataclass(frozen=True, slots=True)
class MirrorConfig:
    mqtt: MqttConnection
    kafka: KafkaConnection
    events_topic: str
    state_topic: str
    shielding_topic: str
    client_id: str
    registrations: tuple[Registration, ...] = ()
    backoff_base_s: float = 0.5  # same full-jitter schedule as the bridge and the edge agent
    backoff_cap_s: float = 30.0  # at most one reconnect attempt every 30 s during a long outage
    publish_timeout_s: float = 30.0  # one PUBACK wait; then the session is restarted
    signer: AgentSigner = field(kw_only=True)  # the core key every record sent to a site is signed with
    # the core's pseudonym translations: each site is sent its own pseudonyms (None: keys as read; unit tests)
    pseudonyms: CorePseudonyms | None = field(default=None, kw_only=True)
    site_feeds: TopicNames | None = field(default=None, kw_only=True)  # None: MQTT only, no Kafka site feeds
    site_feed_replication: int = field(default=1, kw_only=True)
    state_file: Path | None = field(default=None, kw_only=True)  # the local store to resume from (None: replay)


class ReplicaMirror:
    def __init__(self, config: MirrorConfig, *, now_ms: Callable[[], int] = _wall_ms) -> None:
        self.config = config
        self.published_total = 0
        self.fed_total = 0
        self.connected = asyncio.Event()
        self._now_ms = now_ms
        self._kinds = {config.state_topic: RecordKind.STATE, config.shielding_topic: RecordKind.SHIELDING}
        self._feeds_ready: set[str] = set()
        self.store = MirrorStore(config.state_file) if config.state_file is not None else None
        self.records_read = 0  # Kafka records read, over every session

    @classmethod
    def for_core(cls, core: Core) -> ReplicaMirror:
        """The stage as :class:`broker.runtime.Core` builds it from its (validated) settings."""
        s = core.settings
        t = core.topics
        config = MirrorConfig(
            s.mqtt_connection("mirror"),
            s.kafka_connection("mirror"),
            t.events,
            t.state,
            t.shielding,
            f"{s.app_id}.mirror",
            load_registrations(s.registrations_file),
            signer=load_core_signer(s.core_signing_key_file),
            pseudonyms=CorePseudonyms(read_hex_file(s.pseudonym_secret_file, "pseudonym_secret_file")),
            site_feeds=t,
            site_feed_replication=s.site_feed_replication,
            state_file=Path(s.state_dir) / s.app_id / f"{t.prefix}.mirror.sqlite3" if s.state_dir else None,
        )
        return cls(config)

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self.run(stop), name="mirror")]

    async def run(self, stop: asyncio.Event) -> None:
        """Mirror until ``stop`` is set; errors restart the session with backoff."""
        try:
            await supervise(
                "mirror", self._session, stop,
                base_s=self.config.backoff_base_s, cap_s=self.config.backoff_cap_s, on_down=self._down,
            )  # fmt: skip
        finally:
            self._down()
            if self.store is not None:
                self.store.close()
            log.info("mirror stopped published=%d fed=%d", self.published_total, self.fed_total)

    def _down(self) -> None:
        self.connected.clear()
        CONNECTED.set(0)

    async def _session(self) -> None:
        c = self.config
        consumer = kafka.consumer(c.kafka, group_id=None, auto_offset_reset="earliest")
        # the lead lane's own consumer (shielding and events): its fetches never wait behind the state topic's (one
        # fetch in flight per broker and client, megabytes each while the mirror is behind the state topic)
        urgent = kafka.consumer(c.kafka, group_id=None, auto_offset_reset="earliest")
        producer = kafka.producer(c.kafka, acks="all", enable_idempotence=True) if c.site_feeds else None
        admin = kafka.admin(c.kafka) if c.site_feeds else None
        self._feeds_ready = set()
        try:
            await consumer.start()
            await urgent.start()
            if producer is not None and admin is not None:
                await producer.start()
                await admin.start()
            async with mqtt.client(c.mqtt, identifier=c.client_id, max_inflight_messages=_IN_FLIGHT) as client:
                client.pending_calls_threshold = _IN_FLIGHT + 1  # the window below, not a leak
                self.connected.set()
                CONNECTED.set(1)
                log.info("mirror connected mqtt=%s:%d client_id=%s", c.mqtt.host, c.mqtt.port, c.client_id)
                planner = MirrorPlanner(c.registrations, c.pseudonyms)
                positions = await self._resume(consumer, urgent, planner)
                feeds = _AdminFeeds(admin, self) if admin is not None else None
                while True:
                    batches = await poll(urgent, consumer)
                    await self._mirror_pass(planner, batches, client, producer, feeds)
                    for tp, records in batches.items():
                        if records:
                            positions[(tp.topic, tp.partition)] = records[-1].offset + 1
                            self.records_read += len(records)
                    changes = planner.drain()
                    if self.store is not None and batches:  # published and fed: now where the mirror is
                        await asyncio.to_thread(self.store.commit, changes, dict(positions))
        finally:
            for reader in (consumer, urgent):
                with contextlib.suppress(KafkaError, OSError):
                    await reader.stop()
            if producer is not None:
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()
            if admin is not None:
                with contextlib.suppress(KafkaError, OSError):
                    await admin.close()

    async def _resume(
        self, bulk: AIOKafkaConsumer, urgent: AIOKafkaConsumer, planner: MirrorPlanner
    ) -> dict[tuple[str, int], int]:
        """Assign every partition of the three topics (the shielding and events topics' to ``urgent``, the state
        topic's to ``bulk``): from the stored positions (planner restored), else the start."""
        c = self.config
        positions: dict[tuple[str, int], int] = {}
        if self.store is not None:
            stored = await asyncio.to_thread(self.store.load)
            planner.restore(stored.sites, stored.held)
            positions = dict(stored.positions)
        for consumer, topics in ((bulk, (c.state_topic,)), (urgent, (c.events_topic, c.shielding_topic))):
            tps: list[TopicPartition] = []
            for topic in topics:
                partitions = await kafka.partitions_for(consumer, topic)
                if not partitions:
                    raise KafkaError(f"topic {topic} has no partitions yet")  # the session restarts with backoff
                tps += [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await kafka.seek_to_start(consumer, tps)
            for tp in tps:
                if (tp.topic, tp.partition) in positions:
                    consumer.seek(tp, positions[(tp.topic, tp.partition)])
        if positions:
            log.info("mirror resumed from its store positions=%d", len(positions))
        return positions

    async def _mirror_pass(
        self,
        planner: MirrorPlanner,
        batches: dict[TopicPartition, list[Any]],
        client: mqtt.MqttLink,
        sink: kafka.RecordSink | None,
        feeds: SiteFeedAdmin | None,
    ) -> None:
        """One poll's records to both sinks, lane by lane (:func:`lanes`): the lead lane published and fed first."""
        for lane in lanes(batches, self.config.state_topic):
            sealed, refused = seal(self.config.signer, self._plan_lane(planner, lane), self._now_ms())
            RECORDS.labels(MirrorOutcome.UNSEALABLE.value).inc(refused)
            await self._publish(client, sealed)
            if sink is not None and feeds is not None:
                await self._feed(sink, feeds, sealed)

    def _plan_lane(self, planner: MirrorPlanner, lane: Sequence[tuple[str, Sequence[Any]]]) -> tuple[Publication, ...]:
        """What one lane's records call for, in the order read, each retained topic once (its last message)."""
        publications: list[Publication] = []
        for topic, records in lane:
            kind = self._kinds.get(topic)
            for record in records:
                value = None if record.value is None else bytes(record.value)
                if kind is None:
                    step: Step = planner.on_event(value)
                else:
                    key = None if record.key is None else bytes(record.key)
                    step = planner.on_record(kind, key, value)
                RECORDS.labels(step.outcome.value).inc()
                publications.extend(step.publications)
        return coalesce(publications)

    async def _publish(self, client: mqtt.MqttLink, publications: Sequence[SealedPublication]) -> None:
        """Publish every message (distinct topics after :func:`coalesce`) retained and await every PUBACK."""
        timeout = self.config.publish_timeout_s
        window = asyncio.Semaphore(_IN_FLIGHT)

        async def one(p: SealedPublication) -> None:
            async with window:
                await client.publish(p.topic, p.record, qos=_QOS_AT_LEAST_ONCE, retain=True, timeout=timeout)

        await asyncio.gather(*(one(p) for p in publications))  # any failure ends the session (its replay covers it)
        PUBLISHED.inc(len(publications))
        self.published_total += len(publications)

    async def _feed(
        self, sink: kafka.RecordSink, feeds: SiteFeedAdmin, publications: Sequence[SealedPublication]
    ) -> None:
        """Write every record to its site's Kafka feed (creating the feed first if new), acks=all, all in flight
        together (one at a time, a busy mirror fed a few hundred records a second and the replicas fell behind).
        The pass's new feeds are created together: one after another, a pass naming several new sites (every
        bench run's first seconds; a fleet joining) held the loop for each site's creation in turn (1-3 s)."""
        names = self.config.site_feeds
        if names is None:
            return
        new = [site for site in dict.fromkeys(p.site for p in publications) if site not in self._feeds_ready]
        if new:
            await asyncio.gather(*(feeds.ensure(site) for site in new))
            self._feeds_ready.update(new)
        records = ((names.site_feed(p.site), feed_key(p.kind, p.patient_key), p.record) for p in publications)
        fed = await kafka.send_all(sink, records)
        FED.inc(fed)
        self.fed_total += fed


class Poller(Protocol):
    """What :func:`poll` needs of a consumer (aiokafka's ``AIOKafkaConsumer.getmany``)."""

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Any]]: ...


async def poll(urgent: Poller, bulk: Poller) -> dict[TopicPartition, list[Any]]:
    """One poll for the mirror's loop: whatever the lead lane's consumer (``urgent``: shielding and events) holds,
    without waiting, then at most :data:`_BULK_RECORDS` from the state topic (``bulk``), waiting up to
    :data:`_IDLE_WAIT_MS` only if nothing was urgent: an idle mirror looks at the lead lane that often."""
    polled = {tp: list(records) for tp, records in (await urgent.getmany(timeout_ms=0)).items() if records}
    wait = 0 if polled else _IDLE_WAIT_MS
    for tp, records in (await bulk.getmany(timeout_ms=wait, max_records=_BULK_RECORDS)).items():
        polled.setdefault(tp, []).extend(records)
    return polled


def lanes(
    batches: dict[TopicPartition, list[Any]], bulk_topic: str
) -> tuple[list[tuple[str, list[Any]]], list[tuple[str, list[Any]]]]:
    """A poll's records as two lanes, each a list of (topic, records) in the order polled: the lead lane (the
    shielding and events topics), then the bulk lane (``bulk_topic``, the state topic). The mirror publishes and
    feeds the lead lane before planning the bulk one, so a shielding flag never queues behind a bulk batch's
    publishes (issue 18's fast lane), and the events that tell which sites know a patient are read as promptly:
    a shielding record for a patient whose site is not yet known is held until that site's event is read, so
    events behind the state backlog held shielding flags for seconds. The lanes run one after the other, never
    together, so neither overtakes the other on a retained topic or a feed key."""
    lead = [(tp.topic, records) for tp, records in batches.items() if tp.topic != bulk_topic and records]
    bulk = [(tp.topic, records) for tp, records in batches.items() if tp.topic == bulk_topic and records]
    return lead, bulk


@dataclass(frozen=True, slots=True)
class _AdminFeeds:
    admin: Any  # aiokafka's AIOKafkaAdminClient (started)
    mirror: ReplicaMirror

    async def ensure(self, site: str) -> None:
        names = self.mirror.config.site_feeds
        if names is not None:
            await create_site_feed(self.admin, names, site, self.mirror.config.site_feed_replication)


MqttMirror = ReplicaMirror  # the name before the mirror also wrote Kafka site feeds (runtime, tests)
