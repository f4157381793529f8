"""The outbox's synchronous SQLite store. Every method runs on the outbox's one worker thread.

Durability: WAL journal with ``synchronous=FULL`` by default. In WAL mode FULL fsyncs the WAL
at every commit, so a committed (acknowledged) event survives power loss; NORMAL only fsyncs
at checkpoints: it survives a process kill -9 but may lose the last commits on power loss.
Group commit makes FULL cheap: one fsync covers every submission that queued meanwhile.

Chain: row ``seq`` holds the encoded event whose ``prev_hash`` is the SHA-256 ``digest`` of
row ``seq - 1`` (or of the last acknowledged event, kept in ``meta``). ``digest`` doubles as
the row checksum. A corrupt row is moved to ``quarantine`` and the rows after it are
re-numbered and re-chained (they have not been signed yet: signing happens at publish time),
so the core never sees a gap. Caveat: rows already sent once but not yet acknowledged are
re-numbered too; the core dedupes on (agent, seq), so such a re-numbered event could be taken
for a replay. Checksum failures are rare (disk bit rot) and always reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from consent_wire.errors import WireError
from consent_wire.model import Event, Payload
from edge_agent.errors import AckOutOfRangeError, OutboxFullError, OutboxOwnerError

__all__ = ["GENESIS_HASH", "Draft", "EventCodec", "OutboxRow", "OutboxStore", "Receipt"]

log = logging.getLogger(__name__)

GENESIS_HASH = bytes(32)  # prev_hash of seq 1 (consent_wire.model.Event)
# SQLite row + index overhead per event, measured ~60-90 bytes; rounded up for the cap estimate.
_ROW_OVERHEAD = 128
_REPAIR_CHUNK = 1000  # rows re-chained per read while repairing after a quarantine

# CAST: a damaged cell may no longer be a BLOB; read bytes regardless and let the checksum judge
_SELECT_ROWS = "SELECT seq, event_id, CAST(data AS BLOB), CAST(digest AS BLOB) FROM outbox"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
    " data BLOB NOT NULL, digest BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL,"
    " event_id TEXT NOT NULL, data BLOB NOT NULL, digest BLOB NOT NULL, reason TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
)


class EventCodec(Protocol):
    def encode(self, event: Event) -> bytes: ...
    def decode(self, data: bytes) -> Event: ...


@dataclass(frozen=True, slots=True)
class Draft:
    """An event before the outbox places it in the agent's chain (no seq, no prev_hash yet)."""

    event_id: str
    hlc: int
    recorded_ms: int
    patient_key: str
    payload: Payload


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class OutboxRow:
    seq: int
    event_id: str
    data: bytes  # the encoded event, exactly as it will be signed and sent


class OutboxStore:
    """Synchronous store; not thread-safe: one thread owns it."""

    def __init__(self, path: Path, *, agent_id: str, site: str, codec: EventCodec, synchronous: str) -> None:
        self._agent_id = agent_id
        self._site = site
        self._codec = codec
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # a damaged TEXT cell must not raise while reading: replace bad bytes, the checksum catches it
        self._db.text_factory = lambda raw: raw.decode("utf-8", "replace")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'FULL' else 'NORMAL'}")
        self._db.execute("PRAGMA journal_size_limit=67108864")  # truncate the WAL back to 64 MiB
        for ddl in _SCHEMA:
            self._db.execute(ddl)
        self._check_owner()
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self.pending_count = int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])
        self.quarantined_count = int(self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0])
        self.next_seq, self.last_hash = self._recover_head()
        self.last_hlc = int(self._get_meta("last_hlc") or 0)

    def close(self) -> None:
        self._db.close()

    # -- writes -------------------------------------------------------------------------------

    def commit_groups(self, groups: Sequence[Sequence[Draft]], cap_bytes: int) -> list[list[Receipt] | Exception]:
        """Insert every group in one transaction; a group over the disk cap, or one that cannot be
        encoded (:class:`~consent_wire.errors.WireError`), is refused whole and alone: its
        neighbours in the transaction still commit."""
        results: list[list[Receipt] | Exception] = []
        used = self.used_bytes()
        seq, head, hlc = self.next_seq, self.last_hash, self.last_hlc
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for drafts in groups:
                try:
                    rows, new_head = self._chain(drafts, seq, head)
                except WireError as exc:  # one unencodable group (oversize, out of range) fails alone
                    results.append(exc)
                    continue
                cost = sum(len(r[2]) + _ROW_OVERHEAD for r in rows)
                if used + cost > cap_bytes:
                    results.append(OutboxFullError(f"outbox is at its disk cap of {cap_bytes} bytes"))
                    continue
                self._db.executemany("INSERT INTO outbox (seq, event_id, data, digest) VALUES (?, ?, ?, ?)", rows)
                results.append([Receipt(r[1], r[0]) for r in rows])
                used, seq, head = used + cost, seq + len(rows), new_head
                hlc = max([hlc, *(d.hlc for d in drafts)])
            self._set_meta("last_hlc", hlc)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.next_seq, self.last_hash, self.last_hlc = seq, head, hlc
        self.pending_count += sum(len(r) for r in results if isinstance(r, list))
        return results

    def _chain(self, drafts: Sequence[Draft], seq: int, head: bytes) -> tuple[list[_Row], bytes]:
        rows: list[_Row] = []
        for i, d in enumerate(drafts):
            event = Event(
                d.event_id,
                self._agent_id,
                self._site,
                seq + i,
                head,
                d.hlc,
                d.recorded_ms,
                d.patient_key,
                d.payload,
            )
            data = self._codec.encode(event)
            head = hashlib.sha256(data).digest()
            rows.append((seq + i, d.event_id, data, head))
        return rows, head

    def ack_upto(self, seq: int) -> int:
        """Delete rows up to ``seq`` (end-to-end acknowledged); returns how many were deleted."""
        if seq >= self.next_seq:
            raise AckOutOfRangeError(f"cannot ack seq {seq}: the last assigned seq is {self.next_seq - 1}")
        row = self._db.execute("SELECT digest FROM outbox WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            return 0  # already acknowledged
        self._db.execute("BEGIN IMMEDIATE")
        try:
            deleted = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,)).rowcount
            self._set_meta("acked_seq", seq)
            self._set_meta("acked_hash", row[0])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.pending_count -= deleted
        return int(deleted)

    # -- reads --------------------------------------------------------------------------------

    def pending(self, limit: int) -> list[OutboxRow]:
        """Up to ``limit`` rows in seq order; corrupt rows are quarantined and the chain repaired."""
        rows = self._db.execute(
            "SELECT seq, event_id, CAST(data AS BLOB), CAST(digest AS BLOB) FROM outbox ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        bad = next((r[0] for r in rows if hashlib.sha256(r[2]).digest() != r[3]), None)
        if bad is None:
            return [OutboxRow(r[0], r[1], r[2]) for r in rows]
        self._repair_from(bad)
        return self.pending(limit)

    def used_bytes(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def acked_seq(self) -> int:
        value = self._get_meta("acked_seq")
        return int(value) if value is not None else 0

    # -- repair -------------------------------------------------------------------------------

    def _repair_from(self, first_bad: int) -> None:
        """Quarantine corrupt rows from ``first_bad`` on and re-chain the rows that follow."""
        seq, head = self._head_before(first_bad)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            cursor_seq = first_bad - 1
            while True:
                chunk = self._db.execute(
                    _SELECT_ROWS + " WHERE seq > ? ORDER BY seq LIMIT ?",
                    (cursor_seq, _REPAIR_CHUNK),
                ).fetchall()
                if not chunk:
                    break
                for row in chunk:
                    seq, head = self._rechain_row(row, seq, head)
                cursor_seq = chunk[-1][0]
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.next_seq, self.last_hash = seq + 1, head

    def _rechain_row(self, row: _Row, seq: int, head: bytes) -> tuple[int, bytes]:
        old_seq, event_id, data, digest = row
        event = self._decode_verified(data, digest)
        self._db.execute("DELETE FROM outbox WHERE seq = ?", (old_seq,))
        if event is None:
            self._db.execute(
                "INSERT INTO quarantine (seq, event_id, data, digest, reason) VALUES (?, ?, ?, ?, ?)",
                (old_seq, event_id, data, digest, "CHECKSUM_MISMATCH"),
            )
            self.quarantined_count += 1
            self.pending_count -= 1
            log.error("outbox row quarantined seq=%d event_id=%s reason=CHECKSUM_MISMATCH", old_seq, event_id)
            return seq, head
        new = self._codec.encode(dataclasses.replace(event, seq=seq + 1, prev_hash=head))
        new_digest = hashlib.sha256(new).digest()
        self._db.execute(
            "INSERT INTO outbox (seq, event_id, data, digest) VALUES (?, ?, ?, ?)",
            (seq + 1, event_id, new, new_digest),
        )
        return seq + 1, new_digest

    def _decode_verified(self, data: bytes, digest: bytes) -> Event | None:
        if hashlib.sha256(data).digest() != digest:
            return None
        try:
            return self._codec.decode(data)
        except WireError:
            return None

    def _head_before(self, seq: int) -> tuple[int, bytes]:
        row = self._db.execute(
            "SELECT seq, digest FROM outbox WHERE seq < ? ORDER BY seq DESC LIMIT 1", (seq,)
        ).fetchone()
        if row is not None:
            return int(row[0]), bytes(row[1])
        return self._acked_head()

    # -- meta ---------------------------------------------------------------------------------

    def _recover_head(self) -> tuple[int, bytes]:
        row = self._db.execute("SELECT seq, digest FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return int(row[0]) + 1, bytes(row[1])
        seq, head = self._acked_head()
        return seq + 1, head

    def _acked_head(self) -> tuple[int, bytes]:
        head = self._get_meta("acked_hash")
        return self.acked_seq(), bytes(head) if head is not None else GENESIS_HASH

    def _check_owner(self) -> None:
        owner = self._get_meta("agent_id")
        if owner is None:
            self._set_meta("agent_id", self._agent_id)
        elif owner != self._agent_id:
            raise OutboxOwnerError(f"outbox belongs to agent {owner!r}, not {self._agent_id!r}: use its own data_dir")

    def _get_meta(self, key: str) -> Any:  # SQLite values are dynamically typed
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


_Row = tuple[int, str, bytes, bytes]
