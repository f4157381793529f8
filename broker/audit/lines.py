"""The stored audit log: one JSON line per entry or checkpoint, parsing, and verifying a stored log (pure).

The audit topic has one partition (one total order, :mod:`broker.topics`). Each Kafka record
value is one JSON line, the same bytes as one line of an export (``audit export``)::

    {"type": "entry", "index": i, "prev_hash": hex, "hash": hex, "record": "<canonical JSON>",
     "source": "<partition>/<offset>" | null}
    {"type": "checkpoint", "index": i, "head_hash": hex, "signature": hex, "public_key": hex}   (before issue 15)
    {"type": "tlog-head", "note": "<C2SP checkpoint signed by the log key, awaiting cosignatures>"}
    {"type": "tlog-checkpoint", "note": "<the same, with the witness quorum's cosignatures>"}

``record`` holds the exact canonical bytes of :class:`broker.audit.records.AuditRecord` (the
hashed bytes), so an exported log verifies with nothing but this file. ``source`` is the
events-topic position of an access record: the appender's cursor, not covered by the hash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker.audit.errors import AuditLineError
from broker.audit.log import (
    AuditEntry,
    AuditProblem,
    AuditVerification,
    ChainPosition,
    Checkpoint,
    Tamper,
    verify,
)
from broker.audit.tree import MerkleLog

__all__ = [
    "LogScan",
    "RestoredLog",
    "StoredCheckpoint",
    "StoredLog",
    "add_source",
    "checkpoint_line",
    "entry_line",
    "note_line",
    "parse_log",
    "position_of",
    "sources_cursor",
    "verify_stored",
]


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    checkpoint: Checkpoint
    public_key: bytes  # raw 32-byte Ed25519 key published with the checkpoint


@dataclass(frozen=True, slots=True)
class StoredLog:
    entries: tuple[AuditEntry, ...]  # in stored order (not re-sorted: order is evidence)
    checkpoints: tuple[StoredCheckpoint, ...]
    sources: tuple[str | None, ...]  # parallel to entries
    heads: tuple[str, ...] = ()  # log-signed checkpoint notes, stored order
    notes: tuple[str, ...] = ()  # cosigned checkpoint notes, stored order


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


def note_line(note: str, *, cosigned: bool) -> bytes:
    return orjson.dumps({"type": "tlog-checkpoint" if cosigned else "tlog-head", "note": note})


_Parsed = StoredCheckpoint | tuple[AuditEntry, str | None] | tuple[str, str]


def _parse_line(line: bytes, number: int) -> _Parsed:
    try:
        o: dict[str, Any] = orjson.loads(line)
        if o["type"] in ("tlog-head", "tlog-checkpoint"):
            return str(o["type"]), str(o["note"])
        if o["type"] == "entry":
            entry = AuditEntry(
                int(o["index"]), bytes.fromhex(o["prev_hash"]), bytes.fromhex(o["hash"]), o["record"].encode("utf-8")
            )
            source = o.get("source")
            return entry, None if source is None else str(source)
        if o["type"] == "checkpoint":
            cp = Checkpoint(int(o["index"]), bytes.fromhex(o["head_hash"]), bytes.fromhex(o["signature"]))
            return StoredCheckpoint(cp, bytes.fromhex(o["public_key"]))
        raise ValueError(f"unknown line type {o['type']!r}")  # noqa: TRY301 - one except names every bad line
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise AuditLineError(f"line {number} is not an audit line: {exc}") from exc


def parse_log(lines: Iterable[bytes]) -> StoredLog:
    """Parse topic values or export lines (blank lines skipped) into a :class:`StoredLog`."""
    entries: list[AuditEntry] = []
    sources: list[str | None] = []
    checkpoints: list[StoredCheckpoint] = []
    heads: list[str] = []
    notes: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parsed = _parse_line(line, number)
        if isinstance(parsed, StoredCheckpoint):
            checkpoints.append(parsed)
        elif isinstance(parsed[0], str):
            (heads if parsed[0] == "tlog-head" else notes).append(str(parsed[1]))
        else:
            entries.append(parsed[0])
            sources.append(None if parsed[1] is None else str(parsed[1]))
    return StoredLog(tuple(entries), tuple(checkpoints), tuple(sources), tuple(heads), tuple(notes))


def sources_cursor(sources: Iterable[str | None]) -> dict[int, int]:
    """Events partition -> first offset whose access record is not yet in the log (from the entries' sources)."""
    cursor: dict[int, int] = {}
    for source in sources:
        if source is not None:
            add_source(cursor, source)
    return cursor


def add_source(cursor: dict[int, int], source: str) -> None:
    """Advance ``cursor`` past the events-topic position ``source`` (``"<partition>/<offset>"``)."""
    partition, _, offset = source.partition("/")
    cursor[int(partition)] = max(cursor.get(int(partition), 0), int(offset) + 1)


@dataclass(frozen=True, slots=True)
class RestoredLog:
    """What an appender's restore found: how many entries the log holds, and the access-record cursor."""

    entries: int
    cursor: dict[int, int]


class LogScan:
    """A stored log read line by line into ``tree``, keeping only what a restore needs: memory does not grow
    with the entries (issue 16; :func:`parse_log` keeps them all). ``in_order`` turns False at the first entry
    whose index is not the next one; such an entry is not added (the caller names the problem from a full parse).
    ``start`` and ``cursor`` continue a scan a resumed appender made earlier (``tree`` then holds its entries).
    """

    def __init__(
        self, tree: MerkleLog, start: ChainPosition | None = None, cursor: dict[int, int] | None = None
    ) -> None:
        self.tree = tree
        self._start = start or ChainPosition()
        self.in_order = True
        self.lines = 0
        self.heads: list[str] = []
        self.notes: list[str] = []
        self.cursor: dict[int, int] = dict(cursor or {})
        self._last: AuditEntry | None = None
        self._newest_checkpoint: int | None = None

    def add(self, line: bytes) -> None:
        self.lines += 1
        if not line.strip():
            return
        parsed = _parse_line(line, self.lines)
        if isinstance(parsed, StoredCheckpoint):
            index = parsed.checkpoint.index
            self._newest_checkpoint = index if self._newest_checkpoint is None else max(self._newest_checkpoint, index)
        elif isinstance(parsed[0], str):
            (self.heads if parsed[0] == "tlog-head" else self.notes).append(str(parsed[1]))
        else:
            entry, source = parsed[0], parsed[1]
            if entry.index != self.tree.size or not self.in_order:
                self.in_order = False
                return
            self.tree.append(entry.record)
            self._last = entry
            if source is not None:
                add_source(self.cursor, str(source))

    def position(self) -> ChainPosition:
        """As :func:`position_of` the same log."""
        last = self._last
        start = self._start
        position = start if last is None else ChainPosition(last.index + 1, last.hash, start.last_checkpoint)
        if self._newest_checkpoint is not None:
            newest = max(self._newest_checkpoint, position.last_checkpoint)
            position = ChainPosition(position.next_index, position.head_hash, newest)
        return position

    def restored(self) -> RestoredLog:
        return RestoredLog(self.tree.size, self.cursor)


def position_of(stored: StoredLog) -> ChainPosition:
    """Where the stored chain stands: after its last stored entry, signed up to its newest checkpoint."""
    position = ChainPosition()
    if stored.entries:
        last = stored.entries[-1]
        position = ChainPosition(last.index + 1, last.hash)
    if stored.checkpoints:
        newest = max(c.checkpoint.index for c in stored.checkpoints)
        position = ChainPosition(position.next_index, position.head_hash, newest)
    return position


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
