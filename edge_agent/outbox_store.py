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

Idempotence: every committed event id is remembered in ``submitted`` (id, seq, fingerprint of
the patient key and payload) for :data:`IDEMPOTENCY_WINDOW_MS`, surviving acknowledgement and
restarts. A retried submission with an id already committed is answered with the original
receipt and not enqueued again; the same id with another body is refused
(:class:`~edge_agent.errors.EventIdConflictError`, 409).
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
from edge_agent.errors import AckOutOfRangeError, EventIdConflictError, OutboxFullError, OutboxOwnerError

__all__ = ["GENESIS_HASH", "IDEMPOTENCY_WINDOW_MS", "Draft", "EventCodec", "OutboxRow", "OutboxStore", "Receipt"]

log = logging.getLogger(__name__)

GENESIS_HASH = bytes(32)  # prev_hash of seq 1 (consent_wire.model.Event)
# SQLite row + index overhead per event, measured ~60-90 bytes; rounded up for the cap estimate.
_ROW_OVERHEAD = 128
_REPAIR_CHUNK = 1000  # rows re-chained per read while repairing after a quarantine
# How long a client may retry a POST with the same event_id and get the original receipt: far
# longer than any client retry policy (minutes) or agent outage; about 100 bytes per event.
IDEMPOTENCY_WINDOW_MS = 7 * 24 * 3600 * 1000

# CAST: a damaged cell may no longer be a BLOB; read bytes regardless and let the checksum judge
_SELECT_ROWS = "SELECT seq, event_id, CAST(data AS BLOB), CAST(digest AS BLOB) FROM outbox"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL,"
    " data BLOB NOT NULL, digest BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL,"
    " event_id TEXT NOT NULL, data BLOB NOT NULL, digest BLOB NOT NULL, reason TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS submitted (event_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " fingerprint BLOB NOT NULL, recorded_ms INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS submitted_by_time ON submitted (recorded_ms)",
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
    subject_deceased: bool | None = None  # the patient's death stated or withdrawn (issue 14; Event v5)


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
        """Insert every group in one transaction; a group over the disk cap, one that cannot be
        encoded (:class:`~consent_wire.errors.WireError`) or one re-using an event id for another
        body, is refused whole and alone: its neighbours in the transaction still commit. Drafts
        whose id was already committed with the same body get their original receipt."""
        results: list[list[Receipt] | Exception] = []
        used = self.used_bytes()
        seq, head, hlc = self.next_seq, self.last_hash, self.last_hlc
        seen: dict[str, tuple[int, bytes]] = {}  # event ids committed earlier in this transaction
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for drafts in groups:
                try:
                    earlier, fresh = self._split_retries(drafts, seen)
                    rows, new_head = self._chain(fresh, seq, head)
                except (WireError, EventIdConflictError) as exc:  # one bad group fails alone
                    results.append(exc)
                    continue
                cost = sum(len(r[2]) + _ROW_OVERHEAD for r in rows)
                if used + cost > cap_bytes:
                    results.append(OutboxFullError(f"outbox is at its disk cap of {cap_bytes} bytes"))
                    continue
                self._db.executemany("INSERT INTO outbox (seq, event_id, data, digest) VALUES (?, ?, ?, ?)", rows)
                new_seqs = {r[1]: r[0] for r in rows}
                for d in fresh:
                    fingerprint = _fingerprint(d)
                    seen[d.event_id] = (new_seqs[d.event_id], fingerprint)
                    self._db.execute(
                        "INSERT INTO submitted (event_id, seq, fingerprint, recorded_ms) VALUES (?, ?, ?, ?)",
                        (d.event_id, new_seqs[d.event_id], fingerprint, d.recorded_ms),
                    )
                results.append([Receipt(d.event_id, earlier.get(d.event_id) or new_seqs[d.event_id]) for d in drafts])
                used, seq, head = used + cost, seq + len(rows), new_head
                hlc = max([hlc, *(d.hlc for d in fresh)])
            self._prune_submitted(groups)
            self._set_meta("last_hlc", hlc)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self.pending_count += seq - self.next_seq
        self.next_seq, self.last_hash, self.last_hlc = seq, head, hlc
        return results

    def _split_retries(
        self, drafts: Sequence[Draft], seen: dict[str, tuple[int, bytes]]
    ) -> tuple[dict[str, int], list[Draft]]:
        """(event id -> original seq for retried drafts, drafts to enqueue); raises on a conflict."""
        earlier: dict[str, int] = {}
        fresh: list[Draft] = []
        in_group: dict[str, bytes] = {}
        for d in drafts:
            fingerprint = _fingerprint(d)
            known = seen.get(d.event_id) or self._submitted(d.event_id)
            if known is None and d.event_id in in_group:
                if in_group[d.event_id] != fingerprint:
                    raise EventIdConflictError(f"event_id {d.event_id} is used twice with different bodies")
                continue
            if known is None:
                in_group[d.event_id] = fingerprint
                fresh.append(d)
            elif known[1] != fingerprint:
                raise EventIdConflictError(
                    f"event_id {d.event_id} was already submitted (seq {known[0]}) with a different body; "
                    "a retry must resend the same body, a new event needs a new event_id"
                )
            else:
                earlier[d.event_id] = known[0]
        return earlier, fresh

    def _submitted(self, event_id: str) -> tuple[int, bytes] | None:
        row = self._db.execute("SELECT seq, fingerprint FROM submitted WHERE event_id = ?", (event_id,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def _prune_submitted(self, groups: Sequence[Sequence[Draft]]) -> None:
        newest = max((d.recorded_ms for g in groups for d in g), default=None)
        if newest is not None:
            self._db.execute("DELETE FROM submitted WHERE recorded_ms < ?", (newest - IDEMPOTENCY_WINDOW_MS,))

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
                _deceased_ms(d),
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


def _fingerprint(draft: Draft) -> bytes:
    """What makes a retry the same submission: the patient and the payload (not the clock stamps), and
    the death stated with them if any (left out otherwise, so earlier fingerprints are unchanged)."""
    same: tuple[object, ...] = (draft.patient_key, draft.payload)
    if draft.subject_deceased is not None:
        same = (*same, draft.subject_deceased)
    return hashlib.sha256(repr(same).encode("utf-8")).digest()


def _deceased_ms(draft: Draft) -> int | None:
    """Event v5's ``subject_deceased_ms``: when the death was recorded here (> 0), 0 for a withdrawal."""
    if draft.subject_deceased is None:
        return None
    return max(draft.recorded_ms, 1) if draft.subject_deceased else 0
