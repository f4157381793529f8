"""The core's signed end-to-end ack to an MQTT gateway: "every seq of ``agent_id`` up to ``last_seq`` is in Kafka".

The bridge (``broker.bridge``) sends one after a batch verified and Kafka took it; the gateway
(``edge_agent.transport_mqtt``) deletes outbox rows only on an ack that opens with the core's public key
and names itself. The ack is a :class:`~consent_wire.dsse.SignedEnvelope` of payload type
:data:`~consent_wire.dsse.MQTT_ACK_PAYLOAD_TYPE` whose payload is::

    last_seq (u64 BE) || agent_id (UTF-8, 1..64 bytes)

Fixed-width field first, the one unprefixed field last: it parses one way only. The signature binds the
payload type, so no other record signed by the core key can pass for an ack.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_wire.dsse import MQTT_ACK_PAYLOAD_TYPE, AgentSigner, open_envelope, seal_envelope
from consent_wire.errors import BadUtf8Error, OversizeError, SchemaMismatchError

__all__ = ["MAX_ACK_BYTES", "BatchAck", "open_ack", "seal_ack"]

_SEQ = struct.Struct(">Q")
_MAX_SEQ = 2**63 - 1  # Event.seq is an Avro long
# Agent ids are 1-64 of [A-Za-z0-9._-] (edge_agent.config); a longer one is not an agent's.
_MAX_AGENT_ID_BYTES = 64
# An envelope: 10-byte header, payload type (~40), key id (16), payload (<= 72), signature (64) and
# length prefixes: under 256 bytes. 1 KiB bounds what a gateway decodes from its ack topic.
MAX_ACK_BYTES = 1024


@dataclass(frozen=True, slots=True)
class BatchAck:
    """Every seq of ``agent_id`` up to ``last_seq`` is in Kafka (signed by the core)."""

    agent_id: str
    last_seq: int

    def payload(self) -> bytes:
        agent = self.agent_id.encode("utf-8")
        if not 0 < len(agent) <= _MAX_AGENT_ID_BYTES:
            raise SchemaMismatchError(f"an ack names an agent id of 1 to {_MAX_AGENT_ID_BYTES} bytes")
        if not 0 <= self.last_seq <= _MAX_SEQ:
            raise SchemaMismatchError(f"ack last_seq {self.last_seq} is outside 0..2**63-1")
        return _SEQ.pack(self.last_seq) + agent


def seal_ack(signer: AgentSigner, ack: BatchAck) -> bytes:
    """The ack as SignedEnvelope bytes, signed by the core's key ``signer``."""
    return seal_envelope(signer, MQTT_ACK_PAYLOAD_TYPE, ack.payload())


def open_ack(data: bytes, core_key: Ed25519PublicKey) -> BatchAck:
    """Decode an ack and verify it with the core's public key; raises a WireError subclass otherwise.

    The caller still checks that the ack names itself and a seq it has sent.
    """
    if len(data) > MAX_ACK_BYTES:
        raise OversizeError(f"an ack is at most {MAX_ACK_BYTES} bytes, got {len(data)}")
    envelope = open_envelope(data, MQTT_ACK_PAYLOAD_TYPE, core_key)
    payload = envelope.payload
    if not _SEQ.size < len(payload) <= _SEQ.size + _MAX_AGENT_ID_BYTES:
        raise SchemaMismatchError(f"an ack payload is 9 to {_SEQ.size + _MAX_AGENT_ID_BYTES} bytes, got {len(payload)}")
    (last_seq,) = _SEQ.unpack_from(payload)
    if last_seq > _MAX_SEQ:
        raise SchemaMismatchError("ack last_seq is over 2**63-1")
    try:
        agent_id = payload[_SEQ.size :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadUtf8Error("ack agent id is not UTF-8") from exc
    return BatchAck(agent_id, last_seq)
