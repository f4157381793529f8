"""The MQTT bridge's pure rules: MQTT topic -> Kafka key, signed batch -> application-level ack.

A gateway publishes signed batch bytes to ``consent/ingress/<agent_id>`` (QoS 1, persistent
session) and deletes them from its outbox only when an ack ``{"agent_id", "last_seq"}``
(orjson) arrives on ``consent/ack/<agent_id>``. The bridge (:mod:`broker.bridge.service`)
publishes that ack only after Kafka (idempotent producer, ``acks=all``) has the bytes.

Every payload is forwarded to the ingress topic unchanged, so the verifier dead-letters a bad
one with its reason code and the original bytes. An ack is sent only when the header of the
batch decodes and names the agent of the topic: the bridge never tells agent X that a batch
labelled as agent Y's is safe, and a payload it cannot read gets no ack (the gateway retries,
and the verifier's dead letters explain why). Decoding the header does not verify the
signature: the ack says "in Kafka", not "accepted" - acceptance is the verifier's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from consent_wire.avro_codec import decode
from consent_wire.errors import WireError
from consent_wire.signing import MAX_BATCH_BYTES

__all__ = [
    "ACK_PREFIX",
    "INGRESS_FILTER",
    "INGRESS_PREFIX",
    "BridgeAck",
    "Forward",
    "ack_topic",
    "agent_from_topic",
    "plan_forward",
]

INGRESS_PREFIX = "consent/ingress/"
INGRESS_FILTER = INGRESS_PREFIX + "+"
ACK_PREFIX = "consent/ack/"


@dataclass(frozen=True, slots=True)
class BridgeAck:
    """Every seq of ``agent_id`` up to ``last_seq`` is in Kafka."""

    agent_id: str
    last_seq: int

    @property
    def topic(self) -> str:
        return ack_topic(self.agent_id)

    def to_bytes(self) -> bytes:
        return orjson.dumps({"agent_id": self.agent_id, "last_seq": self.last_seq})


@dataclass(frozen=True, slots=True)
class Forward:
    """What to do with one MQTT message: produce ``value`` keyed ``key``, then send ``ack`` if any."""

    key: bytes | None
    value: bytes
    ack: BridgeAck | None
    no_ack_reason: str | None  # stable code explaining a missing ack (for logs and metrics)


def ack_topic(agent_id: str) -> str:
    return ACK_PREFIX + agent_id


def agent_from_topic(topic: str) -> str | None:
    """``consent/ingress/<agent_id>`` -> agent id; None for any other topic or an empty level."""
    if not topic.startswith(INGRESS_PREFIX):
        return None
    agent = topic[len(INGRESS_PREFIX) :]
    if not agent or "/" in agent:
        return None
    return agent


def plan_forward(topic: str, payload: bytes) -> Forward:
    """Decide the Kafka key and the ack for one message; the payload is always forwarded."""
    agent = agent_from_topic(topic)
    key = agent.encode("utf-8") if agent is not None else None
    if agent is None:
        return Forward(key, payload, None, "BAD_TOPIC")
    try:
        header = decode("SignedBatch", payload, max_bytes=MAX_BATCH_BYTES)
    except WireError as exc:
        return Forward(key, payload, None, exc.reason)
    events = header["events"]
    if header["agent_id"] != agent:
        return Forward(key, payload, None, "AGENT_MISMATCH")
    if not events:
        return Forward(key, payload, None, "MALFORMED_BATCH")
    return Forward(key, payload, BridgeAck(agent, int(header["first_seq"]) + len(events) - 1), None)
