"""The audit log on Kafka: record format, the single appender, and reading/verifying a stored log.

The audit topic has one partition (one total order, :mod:`broker.topics`). Each Kafka record
value is one JSON line, the same bytes as one line of an export (``audit export``)::

    {"type": "entry", "index": i, "prev_hash": hex, "hash": hex, "record": "<canonical JSON>",
     "source": "<partition>/<offset>" | null}
    {"type": "checkpoint", "index": i, "head_hash": hex, "signature": hex, "public_key": hex}

``record`` holds the exact canonical bytes of :class:`broker.audit.AuditRecord` (the hashed
bytes), so an exported log verifies with nothing but this file. ``source`` is the events-topic
position of an access record: the appender's cursor, not covered by the hash.

One appender (the API service) owns the chain: on start it reads the topic to the end to restore
the chain head, the next index and the events cursor, then appends through an idempotent producer
(acks=all) and writes a signed checkpoint after entries ``N-1, 2N-1, ...`` (``N = checkpoint_every``,
as :class:`broker.audit.AuditLog` does) and on shutdown.
Two appenders on one topic would fork the chain; ``audit verify`` would then report it.

Errors::

    AuditError (broker.audit)
    +-- AuditLineError           BAD_AUDIT_LINE
    +-- AuditUnavailableError    AUDIT_UNAVAILABLE
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.audit import (
    GENESIS_HASH,
    AuditEntry,
    AuditError,
    AuditProblem,
    AuditRecord,
    AuditVerification,
    Checkpoint,
    Tamper,
    chain_hash,
    checkpoint_message,
    verify,
)
from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = [
    "AuditAppender",
    "AuditLineError",
    "AuditUnavailableError",
    "StoredCheckpoint",
    "StoredLog",
    "checkpoint_line",
    "describe_problem",
    "entry_line",
    "parse_log",
    "verify_stored",
]

log = logging.getLogger(__name__)


class AuditLineError(AuditError):
    reason = "BAD_AUDIT_LINE"


class AuditUnavailableError(AuditError):
    """A write to the audit topic failed: the chain head is uncertain until the service restarts."""

    reason = "AUDIT_UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    checkpoint: Checkpoint
    public_key: bytes  # raw 32-byte Ed25519 key published with the checkpoint


@dataclass(frozen=True, slots=True)
class StoredLog:
    entries: tuple[AuditEntry, ...]  # in stored order (not re-sorted: order is evidence)
    checkpoints: tuple[StoredCheckpoint, ...]
    sources: tuple[str | None, ...]  # parallel to entries


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def entry_line(entry: AuditEntry, source: str | None = None) -> bytes:
    return orjson.dumps(
        {
            "type": "entry",
            "index": entry.index,
            "prev_hash": entry.prev_hash.hex(),
            "hash": entry.hash.hex(),
            "record": entry.record.decode("utf-8"),
            "source": source,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def checkpoint_line(cp: Checkpoint, public_key: Ed25519PublicKey) -> bytes:
    return orjson.dumps(
        {
            "type": "checkpoint",
            "index": cp.index,
            "head_hash": cp.head_hash.hex(),
            "signature": cp.signature.hex(),
            "public_key": _raw_public(public_key).hex(),
        },
        option=orjson.OPT_SORT_KEYS,
    )


def _parse_line(line: bytes, number: int) -> AuditEntry | StoredCheckpoint | tuple[AuditEntry, str | None]:
    try:
        o: dict[str, Any] = orjson.loads(line)
        if o["type"] == "entry":
            entry = AuditEntry(
                int(o["index"]), bytes.fromhex(o["prev_hash"]), bytes.fromhex(o["hash"]), o["record"].encode("utf-8")
            )
            source = o.get("source")
            return entry, None if source is None else str(source)
        if o["type"] == "checkpoint":
            cp = Checkpoint(int(o["index"]), bytes.fromhex(o["head_hash"]), bytes.fromhex(o["signature"]))
            return StoredCheckpoint(cp, bytes.fromhex(o["public_key"]))
        raise ValueError(f"unknown line type {o['type']!r}")
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AuditLineError(f"line {number} is not an audit line: {exc}") from exc


def parse_log(lines: Iterable[bytes]) -> StoredLog:
    """Parse topic values or export lines (blank lines skipped) into a :class:`StoredLog`."""
    entries: list[AuditEntry] = []
    sources: list[str | None] = []
    checkpoints: list[StoredCheckpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = _parse_line(line, number)
        if isinstance(parsed, StoredCheckpoint):
            checkpoints.append(parsed)
        elif isinstance(parsed, tuple):
            entries.append(parsed[0])
            sources.append(parsed[1])
    return StoredLog(tuple(entries), tuple(checkpoints), tuple(sources))


def verify_stored(stored: StoredLog, trusted_key: bytes | None = None) -> AuditVerification:
    """Verify the chain and checkpoints; with ``trusted_key`` every checkpoint must be signed by it.

    Without it, each checkpoint is checked against the key published with it (trust on first use:
    detects edits, deletions and reordering, but not a forger who re-signs with a key of their own).
    """
    groups: dict[bytes, list[Checkpoint]] = {}
    for sc in stored.checkpoints:
        groups.setdefault(trusted_key or sc.public_key, []).append(sc.checkpoint)
    if not groups:
        groups[trusted_key or _raw_public(Ed25519PrivateKey.generate().public_key())] = []
    problems: dict[tuple[Tamper, int, int | None], AuditProblem] = {}
    for key, cps in groups.items():
        try:
            public = Ed25519PublicKey.from_public_bytes(key)
        except ValueError as exc:
            raise AuditLineError(f"checkpoint public key is not an Ed25519 key: {exc}") from exc
        for p in verify(stored.entries, cps, public).problems:
            problems.setdefault((p.kind, p.index, p.other_index), p)
    return AuditVerification(tuple(problems.values()), len(stored.entries), len(stored.checkpoints))


def describe_problem(p: AuditProblem) -> str:
    """One line for a terminal: ``EDITED at index 3``, ``REORDERED 4<->5`` ... and the detail."""
    if p.kind is Tamper.REORDERED:
        where = f"{p.index}<->{p.other_index}"
    elif p.kind in (Tamper.DELETED, Tamper.TRUNCATED):
        where = f"after index {p.index}"
    else:
        where = f"at index {p.index}"
    return f"{p.kind.value} {where}: {p.detail}"


class AuditAppender:
    """Owns the chain head; ``append`` returns once the entry is durable (acks=all)."""

    def __init__(
        self,
        conn: KafkaConnection,
        topic: str,
        signer: Ed25519PrivateKey,
        checkpoint_every: int,
    ) -> None:
        if checkpoint_every < 1:
            raise AuditError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        self.conn, self.topic, self.signer = conn, topic, signer
        self.checkpoint_every = checkpoint_every
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._head, self._next = GENESIS_HASH, 0
        self._last_checkpoint = -1
        self._failed = False

    @property
    def next_index(self) -> int:
        return self._next

    async def start(self) -> StoredLog:
        """Restore the chain head from the topic, then open the producer; returns what was read."""
        records = await kafka.read_to_end(self.conn, self.topic)
        stored = parse_log(r.value for r in records if r.value is not None)
        if stored.entries:
            last = stored.entries[-1]
            self._head, self._next = last.hash, last.index + 1
        if stored.checkpoints:
            self._last_checkpoint = max(c.checkpoint.index for c in stored.checkpoints)
        self._producer = kafka.producer(
            self.conn,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,  # a short linger batches concurrent decisions into one produce request
        )
        await self._producer.start()
        log.info("audit restored entries=%d next_index=%d", len(stored.entries), self._next)
        return stored

    async def append(self, record: AuditRecord, source: str | None = None) -> AuditEntry:
        data = record.to_bytes()
        async with self._lock:  # index, hash and enqueue order are one step: the chain order is the topic order
            producer = self._ready()
            entry = AuditEntry(self._next, self._head, chain_hash(self._head, data), data)
            try:
                futures = [await producer.send(self.topic, entry_line(entry, source), partition=0)]
                self._head, self._next = entry.hash, entry.index + 1
                if self._next % self.checkpoint_every == 0:  # as AuditLog: after entries N-1, 2N-1, ...
                    futures.append(await self._enqueue_checkpoint(producer))
            except KafkaError as exc:
                self._fail(exc)
        await self._durable(futures)
        return entry

    async def stop(self) -> None:
        """Write a final checkpoint covering every entry, then close the producer."""
        if self._producer is None:
            return
        try:
            async with self._lock:
                if not self._failed and self._next - 1 > self._last_checkpoint:
                    await self._durable([await self._enqueue_checkpoint(self._producer)])
        except (KafkaError, AuditUnavailableError) as exc:
            log.warning("audit final checkpoint not written error=%r", exc)
        finally:
            await self._producer.stop()
            self._producer = None

    def _ready(self) -> AIOKafkaProducer:
        if self._failed or self._producer is None:
            raise AuditUnavailableError("the audit log is unavailable; restart the API service to restore it")
        return self._producer

    async def _enqueue_checkpoint(self, producer: AIOKafkaProducer) -> asyncio.Future[Any]:
        index = self._next - 1
        cp = Checkpoint(index, self._head, self.signer.sign(checkpoint_message(index, self._head)))
        future: asyncio.Future[Any] = await producer.send(
            self.topic, checkpoint_line(cp, self.signer.public_key()), partition=0
        )
        self._last_checkpoint = index
        return future

    async def _durable(self, futures: Sequence[asyncio.Future[Any]]) -> None:
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            self._fail(exc)

    def _fail(self, exc: KafkaError) -> None:
        self._failed = True
        log.error("audit write failed; appends refused until restart error=%r", exc)
        raise AuditUnavailableError(f"audit write failed: {exc!r}") from exc
