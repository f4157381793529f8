"""Stage ``bridge`` (I/O shell): MQTT gateways -> Mosquitto -> this bridge -> Kafka ingress, then the app-level ack.

For each message on ``consent/ingress/+`` (QoS 1, persistent session under a fixed client id):

1. produce the bytes to the ingress topic, keyed by the agent id of the MQTT topic, with an
   idempotent ``acks=all`` producer, and await delivery - retried in place, with backoff,
   until Kafka takes it (a Kafka outage stalls the bridge; it never skips a message);
2. publish ``{"agent_id", "last_seq"}`` on ``consent/ack/<agent_id>`` (QoS 1);
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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiomqtt
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from broker.bridge.forward import INGRESS_FILTER, Forward, plan_forward
from broker.sessions import backoff_delay, supervise
from consent_io import kafka, mqtt
from consent_io.connection import KafkaConnection, MqttConnection

if TYPE_CHECKING:
    from broker.runtime import Core

__all__ = ["BridgeConfig", "MqttBridge"]

log = logging.getLogger(__name__)

MESSAGES = Counter("broker_bridge_messages_total", "MQTT messages forwarded to Kafka", ["outcome"])
CONNECTED = Gauge("broker_bridge_mqtt_connected", "1 while the bridge holds an MQTT session")
KAFKA_RETRIES = Counter("broker_bridge_kafka_retries_total", "Kafka writes retried after an error")

_QOS_AT_LEAST_ONCE = 1
# A signed batch is at most consent_wire.signing.MAX_BATCH_BYTES (1 MiB) plus record overhead;
# Kafka's broker default message.max.bytes is 1048588.
_MAX_REQUEST_BYTES = 1048588


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    mqtt: MqttConnection
    kafka: KafkaConnection
    ingress_topic: str
    client_id: str
    backoff_base_s: float = 0.5  # same full-jitter schedule as the edge agent's publisher
    backoff_cap_s: float = 30.0  # at most one reconnect attempt every 30 s during a long outage
    kafka_timeout_s: float = 30.0  # one produce attempt; then the producer is re-created


class MqttBridge:
    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self._producer: AIOKafkaProducer | None = None
        self.forwarded_total = 0
        self.connected = asyncio.Event()

    @classmethod
    def for_core(cls, core: Core) -> MqttBridge:
        """The stage as :class:`broker.runtime.Core` builds it from its settings."""
        s = core.settings
        config = BridgeConfig(
            s.mqtt_connection("bridge"), s.kafka_connection("bridge"), core.topics.ingress, f"{s.app_id}.bridge"
        )
        return cls(config)

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
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
        forward = plan_forward(str(message.topic), data)
        await self._produce(forward)
        if forward.ack is not None:
            await client.publish(forward.ack.topic, forward.ack.to_bytes(), qos=_QOS_AT_LEAST_ONCE)
            MESSAGES.labels("acked").inc()
        else:
            log.warning("bridge forwarded without ack reason=%s topic=%s", forward.no_ack_reason, message.topic)
            MESSAGES.labels(forward.no_ack_reason or "NO_ACK").inc()
        mqtt.ack(client, message)
        self.forwarded_total += 1

    async def _produce(self, forward: Forward) -> None:
        """Write to Kafka and await acks=all; retry in place (new producer, backoff) until it succeeds."""
        attempt = 0
        while True:
            try:
                producer = await self._connected_producer()
                await asyncio.wait_for(
                    producer.send_and_wait(self.config.ingress_topic, forward.value, key=forward.key),
                    self.config.kafka_timeout_s,
                )
                return
            except (KafkaError, OSError, TimeoutError) as exc:
                KAFKA_RETRIES.inc()
                await self._close_producer()
                delay = backoff_delay(attempt, self.config.backoff_base_s, self.config.backoff_cap_s)
                log.warning("bridge kafka write failed error=%r retry_in_s=%.2f", exc, delay)
                attempt += 1
                await asyncio.sleep(delay)

    async def _connected_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        producer = kafka.producer(
            self.config.kafka,
            enable_idempotence=True,
            acks="all",
            linger_ms=0,  # one message = one signed batch; latency is what the gateway waits on
            max_request_size=_MAX_REQUEST_BYTES,
            request_timeout_ms=int(self.config.kafka_timeout_s * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), self.config.kafka_timeout_s)
        except BaseException:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()
            raise
        self._producer = producer
        return producer

    async def _close_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError, TimeoutError):
                await asyncio.wait_for(producer.stop(), self.config.kafka_timeout_s)
