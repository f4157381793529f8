"""MQTT transport: batches to ``consent/ingress/<agent_id>``, acks from ``consent/ack/<agent_id>``.

A PUBACK only says Mosquitto has the message, not that it reached Kafka. The end-to-end ack is
an application message the core's bridge publishes after its Kafka write: an orjson object
``{"agent_id": ..., "last_seq": n}`` meaning every seq up to ``n`` is in Kafka. The session is
persistent (fixed client id, clean session off, QoS 1) so acks published while the agent was
disconnected are delivered when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

import aiomqtt
import orjson

from consent_io import mqtt
from consent_io.connection import MqttConnection
from edge_agent.errors import AckTimeoutError, TransportError

__all__ = ["MqttTransport", "ack_topic", "ingress_topic", "parse_ack"]

log = logging.getLogger(__name__)

_QOS_AT_LEAST_ONCE = 1


def ingress_topic(agent_id: str) -> str:
    return f"consent/ingress/{agent_id}"


def ack_topic(agent_id: str) -> str:
    return f"consent/ack/{agent_id}"


def parse_ack(payload: bytes, agent_id: str) -> int | None:
    """The acknowledged seq in a bridge ack, or None if the message is not a valid ack for us."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or doc.get("agent_id") != agent_id:
        return None
    seq = doc.get("last_seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        return None
    return seq


class MqttTransport:
    def __init__(self, conn: MqttConnection, agent_id: str, *, ack_timeout_s: float = 30.0) -> None:
        self._conn = conn
        self._agent_id = agent_id
        self._timeout = ack_timeout_s
        self._stack: AsyncExitStack | None = None
        self._client: aiomqtt.Client | None = None
        self._reader: asyncio.Task[None] | None = None
        self._acked = 0
        self._ack_seen = asyncio.Event()

    @property
    def acked_seq(self) -> int:
        return self._acked

    async def send(self, batch: bytes, first_seq: int, last_seq: int) -> None:
        client = await self._connected()
        if self._acked >= last_seq:
            return  # the bridge acked this batch already (our previous wait gave up too early)
        try:
            await client.publish(ingress_topic(self._agent_id), batch, qos=_QOS_AT_LEAST_ONCE)
        except aiomqtt.MqttError as exc:
            await self._reset()
            raise TransportError(f"MQTT publish failed: {exc}") from exc
        await self._wait_for_ack(last_seq)

    async def _wait_for_ack(self, last_seq: int) -> None:
        deadline = asyncio.get_running_loop().time() + self._timeout
        while self._acked < last_seq:
            if self._client is None:
                raise TransportError("MQTT connection lost while waiting for the bridge ack")
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AckTimeoutError(f"no bridge ack for seq {last_seq} within {self._timeout}s")
            self._ack_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ack_seen.wait(), remaining)

    async def close(self) -> None:
        await self._reset()

    async def _connected(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        client = mqtt.client(
            self._conn,
            identifier=f"edge-agent-{self._agent_id}",
            clean_session=False,
            timeout=self._timeout,
        )
        stack = AsyncExitStack()
        try:
            await stack.enter_async_context(client)
            await client.subscribe(ack_topic(self._agent_id), qos=_QOS_AT_LEAST_ONCE)
        except aiomqtt.MqttError as exc:
            await stack.aclose()
            raise TransportError(f"cannot connect to MQTT broker {self._conn.host}:{self._conn.port}: {exc}") from exc
        self._stack, self._client = stack, client
        self._reader = asyncio.create_task(self._read_acks(client), name="mqtt-ack-reader")
        log.info("mqtt connected host=%s port=%d", self._conn.host, self._conn.port)
        return client

    async def _read_acks(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                payload = message.payload
                if not isinstance(payload, bytes | bytearray):
                    continue
                seq = parse_ack(bytes(payload), self._agent_id)
                if seq is None:
                    log.warning("ignored malformed ack on topic=%s", message.topic)
                elif seq > self._acked:
                    self._acked = seq
                    self._ack_seen.set()
        except aiomqtt.MqttError as exc:
            log.warning("mqtt connection lost: %s", exc)
        self._client = None
        self._ack_seen.set()  # wake a waiting send so it fails fast and the publisher backs off

    async def _reset(self) -> None:
        reader, self._reader = self._reader, None
        stack, self._stack = self._stack, None
        self._client = None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if stack is not None:
            with contextlib.suppress(aiomqtt.MqttError, OSError):
                await stack.aclose()
