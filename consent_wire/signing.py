"""Signed batches of events: one Ed25519 signature over a Merkle root.

The signed message binds everything that gives the events their meaning::

    PAE(BATCH_PAYLOAD_TYPE, root (32) || first_seq (u64 BE) || count (u32 BE)
                            || len(key_id) (u16 BE) || key_id || agent_id)

Fixed-width and length-prefixed fields come first and the one unprefixed field
last, so the message parses one way only. The key id hint is signed too, so no
bit of a signed batch can change without the signature failing. The verifier also checks that event ``i`` carries the
batch's agent id and sequence ``first_seq + i``: a batch cannot be re-labelled
to another agent, shifted in sequence, truncated, extended or reordered.

Order of checks (the cost of a forgery): the outer record is decoded (events stay opaque
bytes), the Merkle root is computed from SHA-256 of each event's bytes, the key is chosen by
agent id and the signed key-id hint, and the one Ed25519 signature over header and root is
checked BEFORE any event is decoded. A forged batch therefore costs the verifier at most
4,096 hashes and one signature check, never 4,096 Avro decodes.

Per-event verification cost is one SHA-256 of the event bytes (reused as the
chain hash), one leaf and about one interior node hash, one decode; the single
Ed25519 check is shared by the batch. Each :class:`VerifiedEvent` keeps its
inclusion proof, so it stays verifiable on its own downstream.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_wire.avro_codec import MAGIC, decode, decode_event, encode, leading_fields, leading_strings
from consent_wire.dsse import BATCH_PAYLOAD_TYPE, AgentSigner, pae, verify_signature
from consent_wire.errors import (
    BadProofError,
    BadSignatureError,
    MalformedBatchError,
    OversizeError,
    PayloadTypeError,
)
from consent_wire.merkle import build_levels, inclusion_proof, verify_inclusion
from consent_wire.model import Event
from consent_wire.schemas import default_store

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_EVENTS",
    "KeyResolver",
    "VerifiedEvent",
    "batch_message",
    "batch_signer",
    "decode_verified_event",
    "encode_verified_event",
    "encode_verified_events",
    "rekeyed",
    "sign_batch",
    "sign_event",
    "verified_event_payload",
    "verify_batch",
    "verify_event_proof",
]

# Kafka's default broker message.max.bytes is 1048588 (1 MiB + 12) and every producer of this product
# sets max_request_size to it (consent_io.kafka.MAX_REQUEST_BYTES). A batch must fit one record with its
# key and record overhead, and a dead letter repeating it whole (broker.deadletter: up to ~2.5 KiB of
# headers and key) must fit too: 1 MiB less 8 KiB leaves that room. Mosquitto refuses larger payloads.
MAX_BATCH_BYTES = 1024 * 1024 - 8 * 1024
# Upper bound on events per batch: agents flush at 1000 (loadtests/wire_bench.py's largest
# case); 4096 leaves headroom and bounds the verifier's per-batch work and memory.
MAX_BATCH_EVENTS = 4096
_HEADER = struct.Struct(">QIH")  # first_seq u64, count u32, key_id length u16
_MAX_SEQ = 2**63 - 1  # Event.seq is an Avro long; sequences start at 1
_MAX_KEY_ID_BYTES = 255  # our key ids are 16 hex chars; room for other schemes (e.g. a URL)


class KeyResolver(Protocol):
    """What the verifier needs from the key registry (see :class:`consent_wire.keys.KeyRegistry`)."""

    def key_by_hint(self, agent_id: str, key_id_hint: str) -> Ed25519PublicKey: ...

    def key_at_arrival(self, agent_id: str, key_id_hint: str, arrival_ms: int) -> Ed25519PublicKey: ...

    def key_for_span(self, agent_id: str, start_ms: int, end_ms: int) -> Ed25519PublicKey: ...

    def key_for(self, agent_id: str, at_ms: int) -> Ed25519PublicKey: ...


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """An event from a verified batch, with what it takes to verify it again alone."""

    event_bytes: bytes
    event: Event
    event_hash: bytes  # SHA-256(event_bytes): the agent chain hash and the Merkle leaf input
    agent_id: str
    key_id: str  # hint only
    payload_type: str
    first_seq: int
    tree_size: int
    leaf_index: int
    proof: tuple[bytes, ...]
    root: bytes
    signature: bytes
    # The patient key inside ``event_bytes`` (the site's pseudonym) when the core's verifier translated it:
    # ``event.patient_key`` is then the national pseudonym (:meth:`translated`); "" = ``event`` is as signed.
    site_key: str = ""

    def translated(self, national_key: str) -> VerifiedEvent:
        """This event as the core uses it: keyed by ``national_key``, the site's pseudonym kept in ``site_key``.

        Built field by field, not with ``dataclasses.replace`` (twice its cost, once per verified event; issue 18).
        """
        return VerifiedEvent(
            self.event_bytes,
            rekeyed(self.event, national_key),
            self.event_hash,
            self.agent_id,
            self.key_id,
            self.payload_type,
            self.first_seq,
            self.tree_size,
            self.leaf_index,
            self.proof,
            self.root,
            self.signature,
            self.event.patient_key,
        )


def rekeyed(event: Event, patient_key: str) -> Event:
    """``dataclasses.replace(event, patient_key=patient_key)`` at half its cost: the verifier re-keys every event
    and the reconciler reads every one re-keyed (issue 18). tests/unit/wire pins that every field is copied."""
    return Event(
        event.event_id,
        event.agent_id,
        event.site,
        event.seq,
        event.prev_hash,
        event.hlc,
        event.recorded_ms,
        patient_key,
        event.payload,
        event.subject_deceased_ms,
    )


def batch_message(root: bytes, agent_id: str, first_seq: int, count: int, key_id: str) -> bytes:
    """The exact bytes the batch signature covers (before PAE)."""
    kid = key_id.encode("utf-8")
    if len(kid) > _MAX_KEY_ID_BYTES:
        raise MalformedBatchError(f"key id hint is {len(kid)} bytes, over {_MAX_KEY_ID_BYTES}")
    if not 0 < count <= MAX_BATCH_EVENTS:
        raise MalformedBatchError(f"a batch holds 1 to {MAX_BATCH_EVENTS} events, got {count}")
    if not 1 <= first_seq <= _MAX_SEQ - count + 1:
        raise MalformedBatchError(f"batch sequence {first_seq}..{first_seq + count - 1} is outside 1..2**63-1")
    return root + _HEADER.pack(first_seq, count, len(kid)) + kid + agent_id.encode("utf-8")


def sign_batch(signer: AgentSigner, events_bytes: Sequence[bytes], *, first_seq: int | None = None) -> bytes:
    """Sign encoded events (in sequence order) as one batch; returns SignedBatch bytes.

    ``first_seq`` defaults to the first event's ``seq`` (one decode).
    """
    if not events_bytes or len(events_bytes) > MAX_BATCH_EVENTS:
        raise MalformedBatchError(f"a batch holds 1 to {MAX_BATCH_EVENTS} events, got {len(events_bytes)}")
    if first_seq is None:
        first_seq = decode_event(events_bytes[0]).seq
    root = build_levels([sha256(e).digest() for e in events_bytes])[-1][0]
    message = batch_message(root, signer.agent_id, first_seq, len(events_bytes), signer.key_id)
    record = {
        "agent_id": signer.agent_id,
        "key_id": signer.key_id,
        "payload_type": BATCH_PAYLOAD_TYPE,
        "first_seq": first_seq,
        "events": list(events_bytes),
        "signature": signer.sign(BATCH_PAYLOAD_TYPE, message),
    }
    return encode("SignedBatch", record, max_bytes=MAX_BATCH_BYTES)


def sign_event(signer: AgentSigner, event_bytes: bytes, *, seq: int | None = None) -> bytes:
    """Per-event signing: a batch of one (its root is the event's leaf hash)."""
    return sign_batch(signer, [event_bytes], first_seq=seq)


def batch_signer(batch_bytes: bytes) -> tuple[str, str]:
    """The agent id and key-id hint a SignedBatch names, unverified and without decoding its events.

    For choosing what to check before the batch is verified (the verifier reads the keys topic to its end
    first when it names a key the registry does not know); raises a WireError when the bytes start no batch.
    """
    agent_id, key_id_hint = leading_strings("SignedBatch", batch_bytes, 2, max_bytes=MAX_BATCH_BYTES)
    return agent_id, key_id_hint


def verify_batch(
    batch_bytes: bytes,
    registry: KeyResolver,
    *,
    payload_type: str = BATCH_PAYLOAD_TYPE,
    arrival_ms: int | None = None,
) -> list[VerifiedEvent]:
    """Verify a SignedBatch and return its events; raises a WireError subclass on any failure.

    With ``arrival_ms`` (the broker's LogAppendTime: the core's verifier) the signing key must
    have been valid when the batch arrived (:meth:`~consent_wire.keys.KeyRegistry.key_at_arrival`);
    the events' own times are the agent's clock and are bounded by the caller. Without it the
    key must be the agent's registered key across the whole span of the events' ``recorded_ms``
    (so a batch cannot straddle a rotation or a revocation).
    """
    batch = decode("SignedBatch", batch_bytes, max_bytes=MAX_BATCH_BYTES)
    if batch["payload_type"] != payload_type:
        raise PayloadTypeError(f"batch payload type is {batch['payload_type']!r}, expected {payload_type!r}")
    raw_events: list[bytes] = batch["events"]
    agent_id: str = batch["agent_id"]
    first_seq: int = batch["first_seq"]
    count = len(raw_events)
    if not 0 < count <= MAX_BATCH_EVENTS:
        raise MalformedBatchError(f"a batch holds 1 to {MAX_BATCH_EVENTS} events, got {count}")
    hashes = [sha256(e).digest() for e in raw_events]
    levels = build_levels(hashes)
    root = levels[-1][0]
    message = pae(payload_type, batch_message(root, agent_id, first_seq, count, batch["key_id"]))
    if arrival_ms is None:
        key = registry.key_by_hint(agent_id, batch["key_id"])
    else:
        key = registry.key_at_arrival(agent_id, batch["key_id"], arrival_ms)
    verify_signature(key, batch["signature"], message, f"batch from agent {agent_id!r}")
    # Only now, with the signature good, is any event decoded.
    events = [decode_event(e) for e in raw_events]
    _check_labels(events, agent_id, first_seq)
    times = [e.recorded_ms for e in events]
    if arrival_ms is None and registry.key_for_span(agent_id, min(times), max(times)) is not key:
        raise BadSignatureError(
            f"batch from agent {agent_id!r} is signed with key {batch['key_id']}, which was not the agent's "
            f"key at the events' times {min(times)}..{max(times)}"
        )
    common = (agent_id, batch["key_id"], payload_type, first_seq, count)
    return [
        VerifiedEvent(
            raw_events[i], events[i], hashes[i], *common, i, inclusion_proof(levels, i), root, batch["signature"]
        )
        for i in range(count)
    ]


def _check_labels(events: list[Event], agent_id: str, first_seq: int) -> None:
    for i, event in enumerate(events):
        if event.agent_id != agent_id or event.seq != first_seq + i:
            raise MalformedBatchError(
                f"event {i} is agent {event.agent_id!r} seq {event.seq}; the batch header says "
                f"agent {agent_id!r} seq {first_seq + i}"
            )


def verify_event_proof(ve: VerifiedEvent, registry: KeyResolver) -> None:
    """Verify one event on its own: bytes -> leaf -> root -> batch signature by the agent's key.

    The key is the agent's key named by the signed key-id hint: whether it was valid when the
    batch arrived was decided once, by the verifier (an honest backlog recorded before a
    rotation is signed with the new key, so the event's own time cannot choose the key).
    """
    event = decode_event(ve.event_bytes)
    if ve.site_key:  # translated by the core: the signed bytes carry the site's pseudonym, the event the national one
        if event.patient_key != ve.site_key:
            raise BadProofError("the signed event carries another patient key than the site key recorded with it")
        event = rekeyed(event, ve.event.patient_key)
    if event != ve.event:
        raise BadProofError("decoded event differs from the event bytes it claims to be")
    if event.agent_id != ve.agent_id or event.seq != ve.first_seq + ve.leaf_index:
        raise BadProofError(
            f"event is agent {event.agent_id!r} seq {event.seq}, but its proof places it at agent "
            f"{ve.agent_id!r} seq {ve.first_seq + ve.leaf_index}"
        )
    event_hash = sha256(ve.event_bytes).digest()
    verify_inclusion(event_hash, ve.leaf_index, ve.tree_size, ve.proof, ve.root)
    key = registry.key_by_hint(ve.agent_id, ve.key_id)
    message = pae(ve.payload_type, batch_message(ve.root, ve.agent_id, ve.first_seq, ve.tree_size, ve.key_id))
    verify_signature(key, ve.signature, message, f"event proof for agent {ve.agent_id!r}")


def encode_verified_event(ve: VerifiedEvent) -> bytes:
    record = {
        "event": ve.event_bytes,
        "patient_key": ve.event.patient_key if ve.site_key else "",
        "agent_id": ve.agent_id,
        "key_id": ve.key_id,
        "payload_type": ve.payload_type,
        "first_seq": ve.first_seq,
        "tree_size": ve.tree_size,
        "leaf_index": ve.leaf_index,
        "proof": list(ve.proof),
        "root": ve.root,
        "signature": ve.signature,
    }
    return encode("VerifiedEvent", record, max_bytes=MAX_BATCH_BYTES)


def encode_verified_events(verified: Sequence[VerifiedEvent]) -> list[bytes]:
    """:func:`encode_verified_event` of each, byte for byte, with the batch-level fields encoded once per batch.

    A VerifiedEvent record is the event bytes and the national patient key, then the batch header (agent,
    key id, payload type, first seq, tree size), the leaf index and proof, then the batch root and signature:
    only the event, its key, index and proof differ between the events of one batch, so the rest is
    Avro-encoded once (issue 18: the generic encoder was a quarter of the verifier's CPU). A record that does
    not fit the fast path (a fixed field of the wrong size) goes through the generic encoder, which raises as
    before.
    """
    out: list[bytes] = []
    common: tuple[object, ...] | None = None
    head = tail = b""
    header = MAGIC + default_store().current("VerifiedEvent").fingerprint
    for ve in verified:
        batch = (ve.agent_id, ve.key_id, ve.payload_type, ve.first_seq, ve.tree_size, ve.root, ve.signature)
        if batch != common:
            common = batch
            if len(ve.root) != ROOT_BYTES or len(ve.signature) != SIGNATURE_BYTES:
                common = None
                out.append(encode_verified_event(ve))
                continue
            head = b"".join(
                (_avro_bytes(ve.agent_id.encode()), _avro_bytes(ve.key_id.encode()),
                 _avro_bytes(ve.payload_type.encode()), _avro_long(ve.first_seq), _avro_long(ve.tree_size))
            )  # fmt: skip
            tail = bytes(ve.root) + bytes(ve.signature)
        proof = ve.proof
        national = ve.event.patient_key.encode() if ve.site_key else b""  # VerifiedEvent v2 (issue 12 item 11)
        body = [header, _avro_bytes(ve.event_bytes), _avro_bytes(national), head, _avro_long(ve.leaf_index)]
        if proof:
            body.append(_avro_long(len(proof)))
            body.extend(_HASH_PREFIX + h if len(h) == ROOT_BYTES else _avro_bytes(h) for h in proof)
        body.append(b"\x00")
        body.append(tail)
        data = b"".join(body)
        if len(data) > MAX_BATCH_BYTES:
            raise OversizeError(f"encoded VerifiedEvent is {len(data)} bytes, over the {MAX_BATCH_BYTES}-byte limit")
        out.append(data)
    return out


ROOT_BYTES = 32  # the schema's Sha256 fixed
SIGNATURE_BYTES = 64  # the schema's Ed25519Signature fixed


def _avro_long(value: int) -> bytes:
    """Avro long: zig-zag, then base-128 varint (least significant group first)."""
    if 0 <= value < _SMALL:
        return _SMALL_LONGS[value]
    n = (value << 1) ^ (value >> 63)
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = 64  # non-negative longs below this are one byte: 2 * value
_SMALL_LONGS = tuple(bytes((2 * v,)) for v in range(_SMALL))
_HASH_PREFIX = bytes((2 * ROOT_BYTES,))  # the length of a 32-byte proof hash, as an Avro long


def _avro_bytes(data: bytes) -> bytes:
    return _avro_long(len(data)) + data


def verified_event_payload(data: bytes) -> Event:
    """Only the event inside a VerifiedEvent record, keyed by its national pseudonym (no proof decoded,
    nothing verified): the reconciler's hot path, reading the verifier's own read_committed output."""
    event_bytes, national_key = leading_fields("VerifiedEvent", data, max_bytes=MAX_BATCH_BYTES)
    event = decode_event(event_bytes)
    return rekeyed(event, national_key) if national_key else event


def decode_verified_event(data: bytes) -> VerifiedEvent:
    """Decode (not verify: call :func:`verify_event_proof`) a VerifiedEvent record."""
    r = decode("VerifiedEvent", data, max_bytes=MAX_BATCH_BYTES)
    event_bytes: bytes = r["event"]
    event = decode_event(event_bytes)
    national_key: str = r["patient_key"]
    site_key = event.patient_key if national_key else ""
    return VerifiedEvent(
        event_bytes,
        rekeyed(event, national_key) if national_key else event,
        sha256(event_bytes).digest(),
        r["agent_id"],
        r["key_id"],
        r["payload_type"],
        r["first_seq"],
        r["tree_size"],
        r["leaf_index"],
        tuple(r["proof"]),
        r["root"],
        r["signature"],
        site_key,
    )
