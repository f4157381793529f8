"""One topic record -> a decoded, checked :class:`Delivered` (pure: bytes and keys in, no I/O, time passed in).

Each topic's records are checked against the committed contract (:mod:`consent_wire.topic_schemas`, JSON
Schema 2020-12, validated with ``jsonschema``); a site feed's records are first verified with the core's
public key (:func:`consent_rules.replica_feed.open_replica_record`), and only what verifies is decoded. A record
that fails is delivered with ``problem`` set to a reason code (``NOT_JSON``, ``SCHEMA_MISMATCH``, or a
replica refusal such as ``REPLICA_FORGED``) and no content: a subscriber never acts on it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import jsonschema
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from consent_rules.replica_feed import ReplicaFeedError, open_replica_record, parse_feed_key
from consent_wire.topic_schemas import latest

__all__ = ["KINDS", "Delivered", "decode_record"]

KINDS = ("state", "shielding", "audit", "deadletter", "site")  # "site" is a site's replica feed (signed)


@dataclass(frozen=True, slots=True)
class Delivered:
    topic: str
    partition: int
    offset: int
    key: str | None
    record: dict[str, Any] | None  # the decoded record; None for a tombstone or a refused record
    verified: bool = False  # its signature verified with the core's key (site feeds)
    problem: str | None = None  # reason code of a refused record

    def to_json(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "record": self.record,
            "verified": self.verified,
            "problem": self.problem,
        }


@cache
def _validator(topic: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(latest(topic))


def _problem(topic: str, record: Any) -> str | None:
    error = jsonschema.exceptions.best_match(_validator(topic).iter_errors(record))
    return None if error is None else f"SCHEMA_MISMATCH: {error.json_path}: {error.message[:200]}"


def decode_record(
    kind: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]] = (),
    core_key: Ed25519PublicKey | None = None,
    now_ms: int = 0,
    show_value: bool = False,
) -> Delivered:
    """Decode and check one record of a topic of ``kind`` (one of :data:`KINDS`)."""
    text_key = None if key is None else key.decode("utf-8", "replace")
    where = Delivered(topic, partition, offset, text_key, None)
    if kind == "site":
        return _site(where, key, value, core_key, now_ms)
    if kind == "deadletter":
        record: dict[str, Any] = {name: raw.decode("utf-8", "replace") for name, raw in headers}
        problem = _problem("deadletter", record)
        if show_value and value is not None:
            record["value_base64"] = base64.b64encode(value).decode()
        return replace(where, record=None if problem else record, problem=problem)
    if value is None:
        return where  # a tombstone (compaction)
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return replace(where, record=None, problem="NOT_JSON")
    problem = _problem(kind, decoded)
    return replace(where, record=None if problem else decoded, problem=problem)


def _site(
    where: Delivered, key: bytes | None, value: bytes | None, core_key: Ed25519PublicKey | None, now_ms: int
) -> Delivered:
    if core_key is None:
        raise ValueError("a site feed is signed by the core: give its public key to verify it")
    parsed = parse_feed_key(key)
    if parsed is None:
        return replace(where, record=None, problem="REPLICA_KEY_MISMATCH")
    kind, patient = parsed
    try:
        update = open_replica_record(value, core_key, kind, patient, now_ms)
    except ReplicaFeedError as exc:
        return replace(where, record=None, problem=exc.reason)
    inner = None if update.record is None else orjson.loads(update.record)
    problem = None if inner is None else _problem(kind.value, inner)
    body = {"kind": kind.value, "patient_key": patient, "as_at_ms": update.as_at_ms, "record": inner}
    return replace(where, record=None if problem else body, verified=True, problem=problem)
