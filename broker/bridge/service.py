"""Stage ``bridge`` (I/O shell): MQTT gateways -> Mosquitto -> this bridge -> Kafka ingress, then the signed ack.

For each message on ``consent/ingress/+`` (QoS 1, persistent session under a fixed client id):

1. apply key events that arrived since the last message (the bridge follows the keys topic like the
   verifier), then decide with :func:`broker.bridge.forward.plan_forward`: a batch that verifies and
   belongs to the topic's agent is forwarded; anything else is refused;
2. forwarded: produce the bytes to the ingress topic, keyed by the agent id, with an idempotent
   ``acks=all`` producer, and await delivery - retried in place, with backoff, until Kafka takes it
   (a Kafka outage stalls the bridge; it never skips a message) - then publish the ack, signed with
   the core's key (``core_signing_key_file``), on ``consent/ack/<agent_id>`` (QoS 1);
   refused: write a bounded dead letter (:mod:`broker.deadletter`) and send no ack. A record Kafka
   refuses as too large (``MessageSizeTooLargeError``) is refused ``OVERSIZE``, never retried;
3. only then send the MQTT PUBACK (paho manual acks), so a bridge that dies at any point
   gets the message again from Mosquitto when it reconnects.

A message forwarded twice (redelivery after a crash, a gateway retrying after a lost ack) is
harmless: the verifier dedupes on (agent, seq). Messages are handled one at a time, in the order
Mosquitto delivers them, which keeps each agent's batches in order on its ingress partition.
One bridge instance per MQTT client id: the id is ``<app_id>.bridge``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import aiomqtt
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from prometheus_client import Counter, Gauge

from broker.bridge.forward import INGRESS_FILTER, Forward, Refusal, ack_topic, plan_forward
from broker.deadletter import WHOLE_MAX_BYTES, bounded, letter_headers, letter_key, letter_value
from broker.keys_follower import KeysFollower
from broker.sessions import backoff_delay, supervise
from broker.settings import read_hex_file
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection
from consent_wire.ack import seal_ack
from consent_wire.dsse import AgentSigner
from consent_wire.keys import KeyRegistry

if TYPE_CHECKING:
    from broker.runtime import Core

__all__ = ["CORE_SIGNER_ID", "BridgeConfig", "MqttBridge", "RecordWriter"]

log = logging.getLogger(__name__)

MESSAGES = Counter("broker_bridge_messages_total", "MQTT messages handled", ["outcome"])
CONNECTED = Gauge("broker_bridge_mqtt_connected", "1 while the bridge holds an MQTT session")
KAFKA_RETRIES = Counter("broker_bridge_kafka_retries_total", "Kafka writes retried after an error")

_QOS_AT_LEAST_ONCE = 1
CORE_SIGNER_ID = "core"  # the name the core's signing key goes by (never an agent id: agents' ids are registered)
_MAX_TOPIC_LOG_CHARS = 100  # an MQTT topic can be 65,535 bytes: logs show its start only


class RecordWriter(Protocol):
    """What the bridge needs of a started Kafka producer (aiokafka's ``AIOKafkaProducer``; a fake in tests)."""

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Any = None
    ) -> Any: ...

    async def stop(self) -> None: ...


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    mqtt: MqttConnection
    kafka: KafkaConnection
    ingress_topic: str
    deadletter_topic: str
    client_id: str
    backoff_base_s: float = 0.5  # same full-jitter schedule as the edge agent's publisher
    backoff_cap_s: float = 30.0  # at most one reconnect attempt every 30 s during a long outage
    kafka_timeout_s: float = 30.0  # one produce attempt; then the producer is re-created


class MqttBridge:
    """``registry``: agents' keys (kept current by ``keys`` when given); ``signer``: the core key signing acks."""

    def __init__(
        self,
        config: BridgeConfig,
        registry: KeyRegistry,
        signer: AgentSigner,
        *,
        keys: KeysFollower | None = None,
        now_ms: Callable[[], int] = _wall_ms,
        producer: RecordWriter | None = None,
    ) -> None:
        """``producer``: a started one to use (tests); by default the bridge builds its own, rebuilt on errors."""
        self.config = config
        self.registry = registry
        self.signer = signer
        self._keys = keys
        self._now_ms = now_ms
        self._producer: RecordWriter | None = producer
        self.forwarded_total = 0
        self.refused: dict[str, int] = {}  # reason -> messages dead-lettered (also in MESSAGES)
        self.connected = asyncio.Event()

    @classmethod
    def for_core(cls, core: Core) -> MqttBridge:
        """The stage as :class:`broker.runtime.Core` builds it from its settings (validated at load)."""
        s = core.settings
        conn = s.kafka_connection("bridge")
        config = BridgeConfig(
            s.mqtt_connection("bridge"), conn, core.topics.ingress, core.topics.deadletter, f"{s.app_id}.bridge"
        )
        registry = KeyRegistry(Ed25519PublicKey.from_public_bytes(bytes.fromhex(s.root_public_key_hex)))
        keys = KeysFollower(kafka.KafkaTopicReader(conn, core.topics.keys, partitions=[0]), registry)
        raw = read_hex_file(s.core_signing_key_file, "core_signing_key_file")
        signer = AgentSigner(CORE_SIGNER_ID, Ed25519PrivateKey.from_private_bytes(raw))
        return cls(config, registry, signer, keys=keys)

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        if self._keys is not None:
            await self._keys.start()  # every key registered so far, before the first message
        return [asyncio.create_task(self.run(stop), name="bridge")]

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set; MQTT errors reconnect with backoff, nothing is dropped."""
        try:
            await supervise(
                "bridge", self._session, stop,
                base_s=self.config.backoff_base_s, cap_s=self.config.backoff_cap_s, on_down=self._down,
            )  # fmt: skip
        finally:
            self._down()
            await self._close_producer()
            if self._keys is not None:
                await self._keys.stop()
            log.info("bridge stopped forwarded=%d", self.forwarded_total)

    def _down(self) -> None:
        self.connected.clear()
        CONNECTED.set(0)

    async def _session(self) -> None:
        c = self.config
        # PUBACK only after the Kafka write and the app-level ack (manual acks)
        client = mqtt.client(c.mqtt, identifier=c.client_id, clean_session=False, manual_ack=True)
        async with client:
            await client.subscribe(INGRESS_FILTER, qos=_QOS_AT_LEAST_ONCE)
            self.connected.set()
            CONNECTED.set(1)
            log.info("bridge connected mqtt=%s:%d client_id=%s", c.mqtt.host, c.mqtt.port, c.client_id)
            async for message in client.messages:
                await self._handle(client, message)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        payload = message.payload
        data = bytes(payload) if isinstance(payload, bytes | bytearray) else b""
        topic = str(message.topic)
        await self.handle(client, topic, data)
        mqtt.ack(client, message)

    async def handle(self, link: mqtt.MqttLink, topic: str, data: bytes) -> Forward | Refusal:
        """Forward and ack (published on ``link``), or dead-letter, one MQTT message."""
        if self._keys is not None:
            await self._keys.poll(timeout_ms=0)  # a registration that arrived since the last message
        plan = plan_forward(topic, data, self.registry, self._now_ms())
        if isinstance(plan, Forward):
            if await self._produce(self.config.ingress_topic, plan.value, plan.key):
                ack = seal_ack(self.signer, plan.ack)
                await link.publish(ack_topic(plan.ack.agent_id), ack, qos=_QOS_AT_LEAST_ONCE)
                MESSAGES.labels("acked").inc()
                self.forwarded_total += 1
                return plan
            plan = Refusal("OVERSIZE", "Kafka refused the record as too large", data, plan.ack.agent_id)
        await self._dead_letter(topic, plan)
        return plan

    async def _dead_letter(self, topic: str, refusal: Refusal) -> None:
        """Write the refusal's dead letter: the input whole if Kafka takes it, else an excerpt and its hash."""
        for whole_max in (WHOLE_MAX_BYTES, 0):  # 0: excerpt only (Kafka refused the whole input as too large)
            headers = letter_headers(
                reason=refusal.reason,
                message=refusal.message,
                source=f"mqtt:{topic}",
                stage="bridge",
                agent_id=refusal.agent_id,
                data=refusal.data,
                whole_max=whole_max,
            )
            value = letter_value(refusal.data, whole_max)
            if await self._produce(self.config.deadletter_topic, value, letter_key(refusal.agent_id), headers):
                break
        else:
            log.error("bridge dead letter refused by Kafka as too large reason=%s", refusal.reason)
        self.refused[refusal.reason] = self.refused.get(refusal.reason, 0) + 1
        MESSAGES.labels(refusal.reason).inc()
        log.warning(
            "bridge refused message reason=%s topic=%s bytes=%d",
            refusal.reason,
            bounded(topic, _MAX_TOPIC_LOG_CHARS),
            len(refusal.data),
        )

    async def _produce(
        self, topic: str, value: bytes, key: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()
    ) -> bool:
        """Write to Kafka and await acks=all; retry in place (new producer, backoff) until it succeeds.

        False only when Kafka can never take the record (too large): that is not retried.
        """
        attempt = 0
        while True:
            try:
                producer = await self._connected_producer()
                await asyncio.wait_for(
                    producer.send_and_wait(topic, value, key=key, headers=list(headers)), self.config.kafka_timeout_s
                )
            except MessageSizeTooLargeError:
                return False
            except (KafkaError, OSError, TimeoutError) as exc:
                KAFKA_RETRIES.inc()
                await self._close_producer()
                delay = backoff_delay(attempt, self.config.backoff_base_s, self.config.backoff_cap_s)
                log.warning("bridge kafka write failed error=%r retry_in_s=%.2f", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)
            else:
                return True

    async def _connected_producer(self) -> RecordWriter:
        if self._producer is not None:
            return self._producer
        producer = kafka.producer(
            self.config.kafka,
            enable_idempotence=True,
            acks="all",
            linger_ms=0,  # one message = one signed batch; latency is what the gateway waits on
            request_timeout_ms=int(self.config.kafka_timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), self.config.kafka_timeout_s)
        except BaseException:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
            raise
        writer: RecordWriter = producer
        self._producer = writer
        return writer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), self.config.kafka_timeout_s)
