"""Signed replica records: what the core's mirror sends a site, and how its agent checks one (pure).

One record is the MQTT retained payload on ``consent/<kind>/<site>/<patient_key>`` and the value of
key ``<kind>/<patient_key>`` on the site's Kafka feed ``<prefix>.site.<site>``, byte-identical: a
:class:`~consent_wire.dsse.SignedEnvelope` of payload type
:data:`~consent_wire.dsse.REPLICA_PAYLOAD_TYPE`, signed with the core's Ed25519 key, whose payload is
canonical JSON (sorted keys)::

    {"as_at_ms": int, "kind": "state" | "shielding", "patient_key": str, "record": str | null}

``record`` is the state record (canonical :class:`~consent_rules.state.PatientState` JSON, which holds
no shielding reason) or the shielding record (:func:`consent_rules.reconcile.shielding_record`, which
holds none either), as text; ``null`` deletes the site's copy. A deletion is signed too: an
unsigned empty payload (an MQTT "clear retained" or a Kafka tombstone) is refused, never applied.

Freshness comes from the signed record itself, never from a producer's or broker's timestamp: a
state's ``version`` (the number of events folded in; it only grows, states being joins) and a
shielding record's stamp HLC (the core's shielding register is last-writer-wins on that stamp).
``as_at_ms`` (the core's clock at signing) only says how current the record was, and is bounded by
the agent's own clock at receipt, so a record claiming the far future can neither freeze the
replica nor make it look fresher than it is.

Errors (each refused record is counted by reason, never applied)::

    TrustError (consent_wire.errors)
    +-- ReplicaFeedError              REPLICA_REFUSED
        +-- UnsignedReplicaError      REPLICA_UNSIGNED      empty, or not a signed envelope
        +-- ForgedReplicaError        REPLICA_FORGED        signature does not verify with the core key,
        |                                                   or an envelope of another payload type
        +-- ReplicaKeyMismatchError   REPLICA_KEY_MISMATCH  signed kind or patient differs from the
        |                                                   topic/key, or the record names another patient
        +-- MalformedReplicaError     REPLICA_MALFORMED     signed, but not a state or shielding record
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_rules.state import PatientState
from consent_wire.dsse import REPLICA_PAYLOAD_TYPE, AgentSigner, open_envelope, seal_envelope
from consent_wire.errors import DecodeError, PayloadTypeError, TrustError, WireError

__all__ = [
    "ForgedReplicaError",
    "MalformedReplicaError",
    "ReplicaFeedError",
    "ReplicaKeyMismatchError",
    "ReplicaKind",
    "ReplicaUpdate",
    "UnsignedReplicaError",
    "feed_key",
    "open_replica_record",
    "parse_feed_key",
    "seal_replica_record",
]


class ReplicaKind(StrEnum):
    STATE = "state"
    SHIELDING = "shielding"


class ReplicaFeedError(TrustError):
    reason = "REPLICA_REFUSED"


class UnsignedReplicaError(ReplicaFeedError):
    reason = "REPLICA_UNSIGNED"


class ForgedReplicaError(ReplicaFeedError):
    reason = "REPLICA_FORGED"


class ReplicaKeyMismatchError(ReplicaFeedError):
    reason = "REPLICA_KEY_MISMATCH"


class MalformedReplicaError(ReplicaFeedError):
    reason = "REPLICA_MALFORMED"


@dataclass(frozen=True, slots=True)
class ReplicaUpdate:
    """A verified record: store ``record`` (``None``: delete) unless a fresher one is held."""

    kind: ReplicaKind
    patient_key: str
    record: bytes | None
    freshness: int | None  # state version or shielding stamp HLC; None for a deletion
    as_at_ms: int  # min(the core's signing time, the agent's clock at receipt)


def feed_key(kind: ReplicaKind, patient_key: str) -> bytes:
    """The Kafka key of a record on a site feed: ``<kind>/<patient_key>`` (compaction keeps one per key)."""
    return f"{kind.value}/{patient_key}".encode()


def parse_feed_key(key: bytes | None) -> tuple[ReplicaKind, str] | None:
    """Inverse of :func:`feed_key`; ``None`` for a key of no known kind."""
    kind, sep, patient_key = (key or b"").decode("utf-8", "replace").partition("/")
    if not sep or not patient_key or kind not in ReplicaKind.__members__.values():
        return None
    return ReplicaKind(kind), patient_key


def seal_replica_record(
    signer: AgentSigner,
    kind: ReplicaKind,
    patient_key: str,
    record: bytes | None,
    as_at_ms: int,
    *,
    site_key: str = "",
) -> bytes:
    """The signed record for sites; ``record`` is re-encoded so nothing beyond the minimal form leaves.

    With ``site_key`` (the receiving site's pseudonym of the patient whose national key is
    ``patient_key``) the record and its envelope name the patient by ``site_key`` only: no national
    pseudonym reaches a site (issue 12 item 11).

    Raises :class:`MalformedReplicaError` for a record that is not a valid state or shielding record
    and :class:`ReplicaKeyMismatchError` for one about another patient than ``patient_key``.
    """
    minimal = None if record is None else _minimal(kind, patient_key, record)[0]
    if minimal is not None and site_key:
        minimal = _rekeyed(kind, minimal, site_key)
    body = {
        "as_at_ms": as_at_ms,
        "kind": kind.value,
        "patient_key": site_key or patient_key,
        "record": None if minimal is None else minimal.decode("utf-8"),
    }
    return seal_envelope(signer, REPLICA_PAYLOAD_TYPE, orjson.dumps(body, option=orjson.OPT_SORT_KEYS))


def _rekeyed(kind: ReplicaKind, minimal: bytes, key: str) -> bytes:
    """The minimal record with its patient named by ``key`` (a site's pseudonym)."""
    if kind is ReplicaKind.STATE:
        return replace(PatientState.from_bytes(minimal), patient_key=key).to_bytes()
    shield = orjson.loads(minimal)
    shield["patient_key"] = key
    return orjson.dumps(shield, option=orjson.OPT_SORT_KEYS)


def open_replica_record(
    data: bytes | None, core_key: Ed25519PublicKey, kind: ReplicaKind, patient_key: str, now_ms: int
) -> ReplicaUpdate:
    """Verify a record received on ``kind``'s topic/key for ``patient_key``; raises a :class:`ReplicaFeedError`."""
    if not data:
        raise UnsignedReplicaError(f"empty {kind.value} record for a patient: only signed records are applied")
    try:
        envelope = open_envelope(data, REPLICA_PAYLOAD_TYPE, core_key)
    except PayloadTypeError as exc:
        raise ForgedReplicaError(f"{kind.value} record: {exc.message}") from exc
    except TrustError as exc:
        raise ForgedReplicaError(f"{kind.value} record: not signed by the core key ({exc.reason})") from exc
    except WireError as exc:
        raise UnsignedReplicaError(f"{kind.value} record is not a signed envelope ({exc.reason})") from exc
    body = _body(envelope.payload)
    if body["kind"] != kind.value or body["patient_key"] != patient_key:
        raise ReplicaKeyMismatchError(
            f"signed for {body['kind']}/{body['patient_key']!r}, received as {kind.value}/{patient_key!r}"
        )
    as_at_ms = min(body["as_at_ms"], now_ms)
    if body["record"] is None:
        return ReplicaUpdate(kind, patient_key, None, None, as_at_ms)
    record, freshness = _minimal(kind, patient_key, body["record"].encode("utf-8"))
    return ReplicaUpdate(kind, patient_key, record, freshness, as_at_ms)


def _body(payload: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(payload)
        ok = (
            type(body) is dict
            and set(body) == {"as_at_ms", "kind", "patient_key", "record"}
            and type(body["as_at_ms"]) is int
            and type(body["kind"]) is str
            and type(body["patient_key"]) is str
            and (body["record"] is None or type(body["record"]) is str)
        )
    except orjson.JSONDecodeError:
        ok = False
    if not ok:
        raise MalformedReplicaError("signed replica payload is not {as_at_ms, kind, patient_key, record}")
    return dict(body)


def _minimal(kind: ReplicaKind, patient_key: str, record: bytes) -> tuple[bytes, int]:
    """(canonical minimal bytes, freshness) of a state or shielding record for ``patient_key``."""
    if kind is ReplicaKind.STATE:
        try:
            state = PatientState.from_bytes(record)
        except DecodeError as exc:
            raise MalformedReplicaError(f"not a state record: {exc.message}") from exc
        if state.patient_key != patient_key:
            raise ReplicaKeyMismatchError("the state record inside names another patient than its key")
        return state.to_bytes(), state.version
    shield = _shielding(record)
    if shield["patient_key"] != patient_key:
        raise ReplicaKeyMismatchError("the shielding record inside names another patient than its key")
    return orjson.dumps(shield, option=orjson.OPT_SORT_KEYS), int(shield["stamp"]["hlc"])


def _shielding(record: bytes) -> dict[str, Any]:
    """The fields of a shielding record (consent_rules.reconcile.shielding_record), and only those."""
    try:
        obj = orjson.loads(record)
        stamp = obj["stamp"]
        shield = {
            "active": obj["active"],
            "hides": obj["hides"],
            "patient_key": obj["patient_key"],
            "stamp": {"agent_id": stamp["agent_id"], "event_id": stamp["event_id"], "hlc": stamp["hlc"]},
        }
        ok = (
            type(shield["active"]) is bool
            and type(shield["hides"]) is list
            and all(type(h) is str for h in shield["hides"])
            and type(shield["patient_key"]) is str
            and type(stamp["hlc"]) is int
            and type(stamp["agent_id"]) is str
            and type(stamp["event_id"]) is str
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise MalformedReplicaError("not a shielding record {active, hides, patient_key, stamp}")
    return shield
