"""Stage ``mirror`` (I/O shell): state and shielding records -> retained MQTT messages for each patient's sites.

Follows the events, state and shielding topics from the beginning (``read_committed``, no consumer
group: every run rebuilds who-knows-whom from the events topic) and publishes what
:class:`broker.mirror.planner.MirrorPlanner` plans, retained at QoS 1, waiting for each PUBACK. Only sites
with a relationship with a patient (an event recorded there, or a line in the registrations file)
receive that patient's records: see :mod:`broker.mirror.planner`.

One session = one Kafka consumer + one MQTT connection + a fresh planner. Any Kafka or MQTT error
ends the session; the next one (after full-jitter backoff) replays the topics from the start and
republishes, which is harmless (retained messages are replaced; replicas ignore older records) and
covers any publish lost with the broken connection. A record the planner cannot use is counted
(``broker_mirror_records_total{outcome="bad_record"}``) and skipped; it never stops the mirror.
The MQTT client id is ``<app_id>.mirror`` with a clean session (the mirror subscribes to nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from broker.mirror.planner import MirrorPlanner, Publication, RecordKind, Registration, Step, coalesce
from broker.sessions import supervise
from broker.settings import load_registrations
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection

if TYPE_CHECKING:
    from broker.runtime import Core

__all__ = ["MirrorConfig", "MqttMirror"]

log = logging.getLogger(__name__)

RECORDS = Counter("broker_mirror_records_total", "Kafka records seen by the MQTT mirror", ["outcome"])
PUBLISHED = Counter("broker_mirror_publications_total", "Retained MQTT messages published by the mirror")
CONNECTED = Gauge("broker_mirror_connected", "1 while the mirror holds its Kafka consumer and MQTT session")

_QOS_AT_LEAST_ONCE = 1
_POLL_MS = 500  # how long one poll may block: bounds how late the mirror notices stop
# aiomqtt warns above Client.pending_calls_threshold (10) publishes awaiting their PUBACK;
# paho's own in-flight window is 20, so 10 at a time stays within both
_IN_FLIGHT = 10


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


class MqttMirror:
    def __init__(self, config: MirrorConfig) -> None:
        self.config = config
        self.published_total = 0
        self.connected = asyncio.Event()
        self._kinds = {config.state_topic: RecordKind.STATE, config.shielding_topic: RecordKind.SHIELDING}

    @classmethod
    def for_core(cls, core: Core) -> MqttMirror:
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
            log.info("mirror stopped published=%d", self.published_total)

    def _down(self) -> None:
        self.connected.clear()
        CONNECTED.set(0)

    async def _session(self) -> None:
        c = self.config
        consumer = kafka.consumer(
            c.kafka, c.events_topic, c.state_topic, c.shielding_topic, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            async with mqtt.client(c.mqtt, identifier=c.client_id) as client:
                self.connected.set()
                CONNECTED.set(1)
                log.info("mirror connected mqtt=%s:%d client_id=%s", c.mqtt.host, c.mqtt.port, c.client_id)
                planner = MirrorPlanner(c.registrations)
                while True:
                    batches = await consumer.getmany(timeout_ms=_POLL_MS)
                    for tp, records in batches.items():
                        await self._publish(client, self._plan(planner, tp.topic, records))
        finally:
            with contextlib.suppress(KafkaError, OSError):
                await consumer.stop()

    def _plan(self, planner: MirrorPlanner, topic: str, records: Sequence[Any]) -> tuple[Publication, ...]:
        publications: list[Publication] = []
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

    async def _publish(self, client: mqtt.MqttLink, publications: tuple[Publication, ...]) -> None:
        """Publish every message (distinct topics after :func:`coalesce`) and await every PUBACK."""
        timeout = self.config.publish_timeout_s
        for start in range(0, len(publications), _IN_FLIGHT):
            chunk = publications[start : start + _IN_FLIGHT]
            await asyncio.gather(
                *(
                    client.publish(p.topic, p.payload, qos=_QOS_AT_LEAST_ONCE, retain=True, timeout=timeout)
                    for p in chunk
                )
            )
            PUBLISHED.inc(len(chunk))
            self.published_total += len(chunk)
