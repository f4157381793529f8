"""MQTT transport: batches to ``consent/ingress/<agent_id>``, signed acks from ``consent/ack/<agent_id>``.

A PUBACK only says Mosquitto has the message, not that it reached Kafka. The end-to-end ack is
an application message the core's bridge publishes after its Kafka write: a record signed by the
core's key (:mod:`consent_wire.ack`) meaning every seq up to ``last_seq`` is in Kafka. The agent
acts on it (and so deletes outbox rows) only when :func:`check_ack` passes: the signature verifies
with ``core_public_key_hex``, it names this agent, and ``last_seq`` is at most the highest seq this
transport has sent. Any other message on the ack topic is refused with a reason code
(:class:`~edge_agent.errors.AckRefusedError`), counted in ``refused_acks`` (metric
``edge_acks_refused_total``), and deletes nothing. The session is persistent (fixed client id,
clean session off, QoS 1) so acks published while the agent was disconnected are delivered when
it comes back; one for a batch sent before a restart is refused (beyond what this run sent) and the
batch is simply sent again (the core dedupes on agent and seq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from contextlib import AsyncExitStack

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_io import mqtt
from consent_io.connection import MqttConnection
from consent_wire.ack import open_ack
from consent_wire.errors import TrustError, WireError
from edge_agent.errors import (
    AckBadSignatureError,
    AckBeyondSentError,
    AckMalformedError,
    AckRefusedError,
    AckTimeoutError,
    AckWrongAgentError,
    TransportError,
)

__all__ = ["MqttTransport", "ack_topic", "check_ack", "ingress_topic"]

log = logging.getLogger(__name__)

_QOS_AT_LEAST_ONCE = 1


def ingress_topic(agent_id: str) -> str:
    return f"consent/ingress/{agent_id}"


def ack_topic(agent_id: str) -> str:
    return f"consent/ack/{agent_id}"


def check_ack(payload: bytes, agent_id: str, core_key: Ed25519PublicKey, highest_sent: int) -> int:
    """The seq up to which a core ack lets this agent delete; :class:`AckRefusedError` (delete nothing) otherwise."""
    try:
        ack = open_ack(payload, core_key)
    except TrustError as exc:
        raise AckBadSignatureError(f"ack is not signed by the core key ({exc.reason})") from exc
    except WireError as exc:
        raise AckMalformedError(f"ack is not a signed ack record ({exc.reason})") from exc
    if ack.agent_id != agent_id:
        raise AckWrongAgentError(f"ack is for another agent ({len(ack.agent_id)} characters), not {agent_id!r}")
    if ack.last_seq > highest_sent:
        raise AckBeyondSentError(f"ack of seq {ack.last_seq}, but the highest seq sent is {highest_sent}")
    return ack.last_seq


class MqttTransport:
    def __init__(
        self,
        conn: MqttConnection,
        agent_id: str,
        core_key: Ed25519PublicKey,
        *,
        ack_timeout_s: float = 30.0,
        link: mqtt.MqttLink | None = None,
    ) -> None:
        """``link``: an MQTT session to publish on, whose owner delivers acks to :meth:`on_ack` (tests, in-process)."""
        self._conn = conn
        self._agent_id = agent_id
        self._core_key = core_key
        self._highest_sent = 0  # the highest seq published in this run: no ack may go beyond it
        self.refused_acks: Counter[str] = Counter()  # reason -> acks refused (edge_acks_refused_total)
        self._timeout = ack_timeout_s
        self._stack: AsyncExitStack | None = None
        self._client: mqtt.MqttLink | None = link
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
        self._highest_sent = max(self._highest_sent, last_seq)  # before publishing: the ack may come at once
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

    async def _connected(self) -> mqtt.MqttLink:
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
                self.on_ack(bytes(payload) if isinstance(payload, bytes | bytearray) else b"")
        except aiomqtt.MqttError as exc:
            log.warning("mqtt connection lost: %s", exc)
        self._client = None
        self._ack_seen.set()  # wake a waiting send so it fails fast and the publisher backs off

    def on_ack(self, payload: bytes) -> None:
        """Act on one message from the ack topic: advance the acked seq, or count and log its refusal."""
        try:
            seq = check_ack(payload, self._agent_id, self._core_key, self._highest_sent)
        except AckRefusedError as exc:
            self.refused_acks[exc.reason] += 1
            log.warning("refused ack reason=%s bytes=%d", exc.reason, len(payload))
            return
        if seq > self._acked:
            self._acked = seq
            self._ack_seen.set()

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
