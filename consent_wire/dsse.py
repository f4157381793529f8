"""DSSE-style pre-authentication encoding, payload types, Ed25519 signers and envelopes.

We always sign the exact bytes sent, bound to a payload type, using the DSSE
(secure-systems-lab/dsse, protocol v1) pre-authentication encoding::

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where LEN is the ASCII decimal byte length. A signature made for one payload
type can therefore never be accepted as another.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consent_wire.avro_codec import decode, encode
from consent_wire.errors import BadSignatureError, PayloadTypeError

__all__ = [
    "BATCH_PAYLOAD_TYPE",
    "EVENT_PAYLOAD_TYPE",
    "KEY_ENDORSEMENT_PAYLOAD_TYPE",
    "KEY_PAYLOAD_TYPE",
    "MQTT_ACK_PAYLOAD_TYPE",
    "REPLICA_PAYLOAD_TYPE",
    "AgentSigner",
    "SignedEnvelope",
    "key_id",
    "open_envelope",
    "pae",
    "public_key_bytes",
    "seal_envelope",
    "verify_signature",
]

BATCH_PAYLOAD_TYPE = "application/vnd.nhs-consent.batch.v1+merkle-root"
EVENT_PAYLOAD_TYPE = "application/vnd.nhs-consent.event.v1+avro"
KEY_PAYLOAD_TYPE = "application/vnd.nhs-consent.key.v1+avro"
KEY_ENDORSEMENT_PAYLOAD_TYPE = "application/vnd.nhs-consent.key-endorsement.v1"
# The core's end-to-end ack to an MQTT gateway (consent_wire.ack), signed with the core's key
MQTT_ACK_PAYLOAD_TYPE = "application/vnd.nhs-consent.mqtt-ack.v1"
# a state or shielding record the core's mirror sends a site (consent_rules.replica_feed), signed by the core key
REPLICA_PAYLOAD_TYPE = "application/vnd.nhs-consent.replica.v1+json"
_KEY_ID_HEX = 16  # key id = first 16 hex chars (64 bits) of SHA-256(raw public key); a hint only


def pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(body), body)


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(raw_public_key: bytes) -> str:
    """First 16 hex characters of SHA-256 of the raw public key."""
    return sha256(raw_public_key).hexdigest()[:_KEY_ID_HEX]


def verify_signature(key: Ed25519PublicKey, signature: bytes, message: bytes, what: str) -> None:
    try:
        key.verify(signature, message)
    except InvalidSignature as exc:
        raise BadSignatureError(f"{what}: Ed25519 signature does not verify") from exc


@dataclass(frozen=True, slots=True)
class AgentSigner:
    """An agent's (or the operator root's) Ed25519 signing key."""

    agent_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, agent_id: str) -> AgentSigner:
        return cls(agent_id, Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, agent_id: str, raw: bytes) -> AgentSigner:
        return cls(agent_id, Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_key_bytes(self) -> bytes:
        return public_key_bytes(self.public_key)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key_bytes)

    def sign(self, payload_type: str, body: bytes) -> bytes:
        """Ed25519 signature over PAE(payload_type, body)."""
        return self.private_key.sign(pae(payload_type, body))


@dataclass(frozen=True, slots=True)
class SignedEnvelope:
    payload_type: str
    key_id: str
    payload: bytes
    signature: bytes


def seal_envelope(signer: AgentSigner, payload_type: str, payload: bytes) -> bytes:
    """A single-object encoded SignedEnvelope of ``payload`` signed by ``signer``."""
    signature = signer.sign(payload_type, payload)
    record = {"payload_type": payload_type, "key_id": signer.key_id, "payload": payload, "signature": signature}
    return encode("SignedEnvelope", record)


def open_envelope(data: bytes, payload_type: str, key: Ed25519PublicKey) -> SignedEnvelope:
    """Decode an envelope, check its payload type and verify its signature with ``key``."""
    r = decode("SignedEnvelope", data)
    if r["payload_type"] != payload_type:
        raise PayloadTypeError(f"envelope payload type is {r['payload_type']!r}, expected {payload_type!r}")
    verify_signature(key, r["signature"], pae(payload_type, r["payload"]), "envelope")
    return SignedEnvelope(r["payload_type"], r["key_id"], r["payload"], r["signature"])
