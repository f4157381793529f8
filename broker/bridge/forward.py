"""The MQTT bridge's pure rules: which gateway message to forward to Kafka, which to refuse, which ack to sign.

A gateway publishes signed batch bytes to ``consent/ingress/<agent_id>`` (QoS 1, persistent session)
and deletes them from its outbox only on a core-signed ack (:mod:`consent_wire.ack`) on
``consent/ack/<agent_id>``. The bridge (:mod:`broker.bridge.service`) forwards a message and acks it
only when it verifies, in this order:

1. the topic names one agent (``BAD_TOPIC`` otherwise);
2. the payload is at most :data:`~consent_wire.signing.MAX_BATCH_BYTES`, the most the bridge can
   forward in one Kafka record (``OVERSIZE``, refused before decoding: never retried for ever);
3. the batch verifies against the key registry (:func:`consent_wire.signing.verify_batch` with the
   bridge's clock as arrival time, as the verifier does with the broker's): its signature, its key
   valid now, every event labelled with the batch's agent and consecutive sequences in 1..2**63-1
   (the wire reason, e.g. ``BAD_SIGNATURE``, ``UNKNOWN_KEY``, otherwise);
4. the signed agent id is the topic's agent (``TOPIC_AGENT_MISMATCH``: a gateway publishing on another
   gateway's topic, which would put one agent's cursor on two partitions).

Anything else is refused: dead-lettered by the bridge (bounded, :mod:`broker.deadletter`), never written
to ingress, never acked. The gateway keeps the batch and retries, so a refusal caused by a key
registration the bridge has not read yet loses nothing. The ack covers ``last_seq`` of a batch the
agent's own key signed, so a forger can make no gateway delete anything; the gateway also checks
``last_seq`` against the highest seq it sent. Acceptance (chain, duplicates, clocks) stays the
verifier's job: the ack says "in Kafka", not "accepted".
"""

from __future__ import annotations

from dataclasses import dataclass

from consent_wire.ack import BatchAck
from consent_wire.errors import WireError
from consent_wire.signing import MAX_BATCH_BYTES, KeyResolver, verify_batch

__all__ = [
    "ACK_PREFIX",
    "INGRESS_FILTER",
    "INGRESS_PREFIX",
    "Forward",
    "Refusal",
    "ack_topic",
    "agent_from_topic",
    "plan_forward",
]

INGRESS_PREFIX = "consent/ingress/"
INGRESS_FILTER = INGRESS_PREFIX + "+"
ACK_PREFIX = "consent/ack/"
_MAX_AGENT_CHARS = 64  # agent ids are 1-64 characters (edge_agent.config); a longer topic level names none


@dataclass(frozen=True, slots=True)
class Forward:
    """Produce ``value`` keyed ``key`` to ingress, then sign and send ``ack``."""

    key: bytes
    value: bytes
    ack: BatchAck


@dataclass(frozen=True, slots=True)
class Refusal:
    """Dead-letter ``data`` with ``reason``; no ingress record, no ack. ``agent_id``: the topic's, if any."""

    reason: str
    message: str
    data: bytes
    agent_id: str = ""


def ack_topic(agent_id: str) -> str:
    return ACK_PREFIX + agent_id


def agent_from_topic(topic: str) -> str | None:
    """``consent/ingress/<agent_id>`` -> agent id; None for any other topic, an empty or an overlong level."""
    if not topic.startswith(INGRESS_PREFIX):
        return None
    agent = topic[len(INGRESS_PREFIX) :]
    if not agent or "/" in agent or len(agent) > _MAX_AGENT_CHARS:
        return None
    return agent


def plan_forward(topic: str, payload: bytes, keys: KeyResolver, now_ms: int) -> Forward | Refusal:
    """Forward and ack a batch that verifies and belongs to the topic's agent; refuse anything else."""
    agent = agent_from_topic(topic)
    if agent is None:
        return Refusal("BAD_TOPIC", f"topic is not {INGRESS_PREFIX}<agent id> ({len(topic)} characters)", payload)
    if len(payload) > MAX_BATCH_BYTES:
        return Refusal(
            "OVERSIZE",
            f"payload of {len(payload)} bytes is over the {MAX_BATCH_BYTES}-byte batch limit; split the batch",
            payload,
            agent,
        )
    try:
        events = verify_batch(payload, keys, arrival_ms=now_ms)
    except WireError as exc:
        return Refusal(exc.reason, exc.message, payload, agent)
    signed_agent = events[0].agent_id
    if signed_agent != agent:
        return Refusal(
            "TOPIC_AGENT_MISMATCH",
            f"batch signed by agent {signed_agent!r} was published on the topic of agent {agent!r}",
            payload,
            agent,
        )
    return Forward(agent.encode("utf-8"), payload, BatchAck(agent, events[-1].event.seq))
