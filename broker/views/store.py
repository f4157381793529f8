"""The API's persistent, indexed views in SQLite (WAL) on local disk (the I/O module; issue 16).

Tables: ``positions`` (topic, partition -> next offset), ``states`` (patient -> latest state record), ``history``
(patient, hlc, event id -> state-changing event: what an "as at" decision replays), ``report_events`` (objections,
breaches, disclosures: the governance metrics), ``report_aggregates`` (the reports topic, by kind and day), the
sums the report queries read (``report_totals`` and ``report_firsts`` per day, ``report_alltime`` per group for a
report with no window) and ``audit_index`` (audit entries by patient: the access log, read a page at a time through
the ``(patient_key, idx)`` index), with ``audit_tree`` (the audit follower's Merkle tree size, root and newest
cosigned checkpoint; its hashes are in files beside the store, :mod:`broker.audit.tree_files`). Each
:class:`~broker.views.rows.ViewBatch` is written in one transaction with the positions it advances to, so a
restart resumes where the views are instead of replaying the topics.

SQLite rather than RocksDB: in the standard library (no new dependency), WAL gives one writer with
concurrent readers, and the agent's outbox already runs on it; every query here is a primary-key or
index range read. Writes and reads run on two dedicated threads (one connection each), never on the
event loop. Memory: SQLite's page cache (``cache_size`` below) plus the callers' LRU caches.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypeVar

import orjson

from broker.audit import AuditEntry
from broker.reports.aggregates import AggKind, count_rows, decode_aggregate
from broker.views.rows import AuditTreeRow, ViewBatch

__all__ = ["AuditIndex", "ViewStore"]

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (topic TEXT, partition INTEGER, next_offset INTEGER,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS states (patient_key TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (patient_key TEXT, hlc INTEGER, event_id TEXT, record BLOB NOT NULL,
    PRIMARY KEY (patient_key, hlc, event_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_events (event_id TEXT PRIMARY KEY, recorded_ms INTEGER, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS audit_index (idx INTEGER PRIMARY KEY, patient_key TEXT NOT NULL, prev_hash BLOB,
    hash BLOB, record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS audit_by_patient ON audit_index (patient_key, idx);
CREATE TABLE IF NOT EXISTS audit_tree (name TEXT PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL,
    checkpoint TEXT, checkpoint_size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_aggregates (key BLOB PRIMARY KEY, kind TEXT NOT NULL, day INTEGER NOT NULL,
    value BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS aggregates_by_day ON report_aggregates (kind, day);
CREATE TABLE IF NOT EXISTS report_totals (kind TEXT, day INTEGER, grp TEXT, name TEXT, prev INTEGER,
    n INTEGER NOT NULL, PRIMARY KEY (kind, day, grp, name, prev)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_firsts (kind TEXT, prev INTEGER, day INTEGER, grp TEXT, n INTEGER NOT NULL,
    PRIMARY KEY (kind, prev, day, grp)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS report_alltime (kind TEXT, grp TEXT, counts BLOB NOT NULL,
    PRIMARY KEY (kind, grp)) WITHOUT ROWID;
"""
# 16 MiB of page cache per connection (negative = KiB, SQLite's PRAGMA cache_size): two connections
# stay well inside the API's 512 MiB goal whatever the size of the database.
_CACHE_PRAGMA = "PRAGMA cache_size=-16384"


_AUDIT_PAGE = (
    "SELECT idx, prev_hash, hash, record FROM audit_index WHERE patient_key = ? AND idx > ? ORDER BY idx LIMIT ?"
)
_AGGREGATES = "SELECT value FROM report_aggregates WHERE kind = ? AND day >= ? AND day < ?"
# the totals of a window: the rows of its days (one index range each), summed over partitions and days by the
# caller; the "first" counts whose previous day is before the window are its distinct patients (their own table,
# ordered by previous day: a window from the start reads only the patients' first days). Not GROUP BY: SQLite sorts
# the rows into a temporary B-tree for it, which took longer than summing them in Python (issue 16's report
# latency: 2,420 disclosure groups, 9,680 rows: 33 ms grouped, 19 ms not, each with the sums)
_TOTALS = (
    "SELECT grp, name, n FROM report_totals WHERE kind = ? AND day >= ? AND day < ? "
    "UNION ALL SELECT grp, 'patients', n FROM report_firsts WHERE kind = ? AND prev < ? AND day >= ? AND day < ?"
)
# a report with no window (the usual query): one row per group, its all-time counts as one JSON object (distinct
# patients as "patients"), so it reads a row per group however many days the aggregates span. Day by day, a QUICK
# scale bench's fresh disclosure report summed ~10,000 rows (p50 51 ms), and a year of days would be ~365 times that
_ALLTIME = "SELECT grp, counts FROM report_alltime WHERE kind = ?"
_ALLTIME_ROW = "SELECT counts FROM report_alltime WHERE kind = ? AND grp = ?"
_PUT_ALLTIME = "INSERT OR REPLACE INTO report_alltime (kind, grp, counts) VALUES (?, ?, ?)"
# a store written before report_alltime existed: its all-time rows from the per-day sums, once, at open
_ALLTIME_FROM_DAYS = (
    "SELECT kind, grp, name, sum(n) FROM report_totals GROUP BY kind, grp, name "
    "UNION ALL SELECT kind, grp, 'patients', sum(n) FROM report_firsts WHERE prev < 0 GROUP BY kind, grp"
)
_ADD_TOTAL = (
    "INSERT INTO report_totals (kind, day, grp, name, prev, n) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, day, grp, name, prev) DO UPDATE SET n = n + excluded.n"
)
_ADD_FIRST = (
    "INSERT INTO report_firsts (kind, day, grp, prev, n) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, prev, day, grp) DO UPDATE SET n = n + excluded.n"
)


class AuditIndex(Protocol):
    """Where audit entries are indexed by patient (fed by whoever appends or follows the audit log)."""

    async def add_audit(self, entries: Sequence[tuple[str, AuditEntry]]) -> None: ...

    async def audit_entries(self, patient_key: str, after: int = -1, limit: int = -1) -> list[AuditEntry]: ...


def _report_records(db: sqlite3.Connection) -> list[bytes]:
    return [bytes(r[0]) for r in db.execute("SELECT record FROM report_events")]


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints; the topics can refill the rest
    db.execute(_CACHE_PRAGMA)
    return db


class ViewStore:
    """One SQLite file; async methods run the SQL on the store's writer or reader thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _connect(path)
        self._writer.executescript(_SCHEMA)
        _fill_alltime(self._writer)
        self._reader = _connect(path)
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="views-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="views-read")

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._write_thread, fn, self._writer)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._read_thread, fn, self._reader)

    def close(self) -> None:
        self._write_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)
        self._writer.close()
        self._reader.close()

    # --- positions and batches -----------------------------------------------------------------
    async def positions(self, topic: str) -> dict[int, int]:
        def run(db: sqlite3.Connection) -> dict[int, int]:
            rows = db.execute("SELECT partition, next_offset FROM positions WHERE topic = ?", (topic,))
            return {int(p): int(o) for p, o in rows}

        return await self._read(run)

    async def write(self, batch: ViewBatch) -> None:
        """The batch's rows and positions in one transaction."""
        if batch:
            await self._write(lambda db: _write_batch(db, batch))

    # --- queries --------------------------------------------------------------------------------
    async def state_record(self, patient_key: str) -> bytes | None:
        def run(db: sqlite3.Connection) -> bytes | None:
            row = db.execute("SELECT record FROM states WHERE patient_key = ?", (patient_key,)).fetchone()
            return None if row is None else bytes(row[0])

        return await self._read(run)

    async def state_records(self, patient_keys: Sequence[str]) -> dict[str, bytes]:
        """The stored records of those of ``patient_keys`` that have one (one query per 500 keys)."""

        def run(db: sqlite3.Connection) -> dict[str, bytes]:
            found: dict[str, bytes] = {}
            for i in range(0, len(patient_keys), 500):
                chunk = patient_keys[i : i + 500]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT patient_key, record FROM states WHERE patient_key IN ({marks})"  # noqa: S608 - placeholders only
                found.update((str(k), bytes(r)) for k, r in db.execute(sql, chunk))
            return found

        return await self._read(run) if patient_keys else {}

    async def state_records_containing(self, text: str) -> list[bytes]:
        """The state records whose bytes contain ``text`` (a full scan; callers decode and check)."""

        def run(db: sqlite3.Connection) -> list[bytes]:
            rows = db.execute("SELECT record FROM states WHERE instr(record, ?) > 0", (text.encode(),))
            return [bytes(r[0]) for r in rows]

        return await self._read(run)

    async def history_records(self, patient_key: str) -> list[bytes]:
        def run(db: sqlite3.Connection) -> list[bytes]:
            rows = db.execute("SELECT record FROM history WHERE patient_key = ? ORDER BY hlc, event_id", (patient_key,))
            return [bytes(r[0]) for r in rows]

        return await self._read(run)

    def report_records_blocking(self) -> list[bytes]:
        """:meth:`report_records` for a thread without an event loop (the metrics server's): waits for it."""
        return self._read_thread.submit(_report_records, self._reader).result()

    async def report_records(self) -> list[bytes]:
        return await self._read(_report_records)

    async def counts(self) -> dict[str, int]:
        def run(db: sqlite3.Connection) -> dict[str, int]:
            tables = (
                "states",
                "history",
                "report_events",
                "audit_index",
                "report_aggregates",
                "report_totals",
                "report_firsts",
                "report_alltime",
            )
            return {t: int(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in tables}  # noqa: S608 - fixed names

        return await self._read(run)

    # --- the audit index (AuditIndex) ------------------------------------------------------------
    async def add_audit(self, entries: Sequence[tuple[str, AuditEntry]]) -> None:
        if entries:
            await self._write(lambda db: _add_audit(db, entries))

    async def audit_entries(self, patient_key: str, after: int = -1, limit: int = -1) -> list[AuditEntry]:
        """``patient_key``'s entries with an index above ``after``, in log order, at most ``limit`` (-1: all).

        One range read of the ``audit_by_patient`` index (``(patient_key, idx)``: no sort, no scan; a test checks
        the plan), so a page costs the same whatever the patient's or the log's size.
        """

        def run(db: sqlite3.Connection) -> list[AuditEntry]:
            rows = db.execute(_AUDIT_PAGE, (patient_key, after, limit))
            return [AuditEntry(int(i), bytes(p), bytes(h), bytes(r)) for i, p, h, r in rows]

        return await self._read(run)

    async def query_plan(self, sql: str, parameters: Sequence[object]) -> list[str]:
        """SQLite's plan for ``sql`` (EXPLAIN QUERY PLAN details): for tests that pin a query to its index."""

        def run(db: sqlite3.Connection) -> list[str]:
            return [str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", parameters)]

        return await self._read(run)

    # --- report aggregates -------------------------------------------------------------------------
    async def report_totals(
        self, kind: str, first_day: int = -1, end_day: int | None = None
    ) -> dict[tuple[str, ...], Counter[str]]:
        """The counts of ``kind`` per group, summed over partitions and the days ``[first_day, end_day)`` (one
        index range read, summed by SQLite): :func:`broker.reports.aggregates.totals_of` of the stored aggregates.
        With no window (``first_day`` <= 0, no end) the all-time row of each group, which also counts the kinds
        that are not per day (objectors: day -1)."""

        def run(db: sqlite3.Connection) -> dict[tuple[str, ...], Counter[str]]:
            if first_day <= 0 and end_day is None:
                return {tuple(orjson.loads(g)): Counter(orjson.loads(c)) for g, c in db.execute(_ALLTIME, (kind,))}
            end = end_day if end_day is not None else 2**62
            by_text: dict[str, Counter[str]] = {}  # each group's JSON decoded once, not once per row
            for grp, name, n in db.execute(_TOTALS, (kind, first_day, end, kind, max(first_day, 0), first_day, end)):
                tally = by_text.get(grp)
                if tally is None:
                    tally = by_text[grp] = Counter()
                tally[str(name)] += int(n)
            return {tuple(orjson.loads(grp)): tally for grp, tally in by_text.items()}

        return await self._read(run)

    async def report_aggregates(self, kind: str, first_day: int = -1, end_day: int | None = None) -> list[bytes]:
        """The aggregate values of ``kind`` with ``first_day <= day < end_day`` (one index range read)."""

        def run(db: sqlite3.Connection) -> list[bytes]:
            end = end_day if end_day is not None else 2**62
            rows = db.execute(_AGGREGATES, (kind, first_day, end))
            return [bytes(r[0]) for r in rows]

        return await self._read(run)

    async def audit_tree(self) -> AuditTreeRow | None:
        """The audit follower's tree as of its stored position (None: never written)."""

        def run(db: sqlite3.Connection) -> AuditTreeRow | None:
            row = db.execute(
                "SELECT size, root, checkpoint, checkpoint_size FROM audit_tree WHERE name = 'follower'"
            ).fetchone()
            return None if row is None else AuditTreeRow(int(row[0]), bytes(row[1]), row[2], int(row[3]))

        return await self._read(run)

    async def audit_next_index(self) -> int:
        def run(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT max(idx) FROM audit_index").fetchone()
            return 0 if row[0] is None else int(row[0]) + 1

        return await self._read(run)


def _write_batch(db: sqlite3.Connection, batch: ViewBatch) -> None:
    with _transaction(db):
        live = [(k, v) for k, v in batch.states.items() if v is not None]
        db.executemany("INSERT OR REPLACE INTO states (patient_key, record) VALUES (?, ?)", live)
        gone = [(k,) for k, v in batch.states.items() if v is None]
        db.executemany("DELETE FROM states WHERE patient_key = ?", gone)
        db.executemany(
            "INSERT OR IGNORE INTO history (patient_key, hlc, event_id, record) VALUES (?, ?, ?, ?)",
            [(h.patient_key, h.hlc, h.event_id, h.record) for h in batch.history],
        )
        db.executemany(
            "INSERT OR IGNORE INTO report_events (event_id, recorded_ms, record) VALUES (?, ?, ?)",
            [(r.event_id, r.recorded_ms, r.record) for r in batch.reports],
        )
        for key, (_, _, value) in batch.aggregates.items():
            _add_totals(db, key, value)
        db.executemany(
            "INSERT OR REPLACE INTO report_aggregates (key, kind, day, value) VALUES (?, ?, ?, ?)",
            [(k, kind, day, v) for k, (kind, day, v) in batch.aggregates.items()],
        )
        if batch.audit:
            _insert_audit(db, batch.audit)
        if (tree := batch.audit_tree) is not None:
            db.execute(
                "INSERT OR REPLACE INTO audit_tree (name, size, root, checkpoint, checkpoint_size) "
                "VALUES ('follower', ?, ?, ?, ?)",
                (tree.size, tree.root, tree.checkpoint, tree.checkpoint_size),
            )
        db.executemany(
            "INSERT OR REPLACE INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)",
            [(batch.topic, p, o) for p, o in batch.positions.items()],
        )


def _add_totals(db: sqlite3.Connection, key: bytes, value: bytes) -> None:
    """Move the report totals from the key's stored aggregate to its new one (before the new one is stored)."""
    new = decode_aggregate(value)
    if new.key.kind is AggKind.BREACH:
        return  # breaches are read one by one (report_aggregates)
    deltas: Counter[tuple[str, int]] = Counter()
    row = db.execute("SELECT value FROM report_aggregates WHERE key = ?", (key,)).fetchone()
    if row is not None:
        for name, prev, n in count_rows(decode_aggregate(bytes(row[0]))):
            deltas[(name, prev)] -= n
    for name, prev, n in count_rows(new):
        deltas[(name, prev)] += n
    grp = orjson.dumps(list(new.key.group)).decode()
    kind, day = new.key.kind.value, new.key.day
    changed = [(name, prev, n) for (name, prev), n in deltas.items() if n]
    db.executemany(_ADD_TOTAL, [(kind, day, grp, name, prev, n) for name, prev, n in changed if name != "first"])
    db.executemany(_ADD_FIRST, [(kind, day, grp, prev, n) for name, prev, n in changed if name == "first"])
    alltime: Counter[str] = Counter()
    for name, prev, n in changed:
        if name != "first":
            alltime[name] += n
        elif prev < 0:  # a patient's first disclosure day in the group: one more distinct patient, all time
            alltime["patients"] += n
    if alltime:
        row = db.execute(_ALLTIME_ROW, (kind, grp)).fetchone()
        counts = Counter(orjson.loads(row[0])) if row is not None else Counter()
        counts.update(alltime)  # adds, negative deltas included (Counter.update never drops a key)
        db.execute(_PUT_ALLTIME, (kind, grp, orjson.dumps(dict(counts))))


def _fill_alltime(db: sqlite3.Connection) -> None:
    """Give a store from before ``report_alltime`` its all-time rows (from the per-day sums), in one transaction."""
    if db.execute("SELECT 1 FROM report_alltime LIMIT 1").fetchone() is not None:
        return
    if db.execute("SELECT 1 FROM report_totals LIMIT 1").fetchone() is None:
        return
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for kind, grp, name, n in db.execute(_ALLTIME_FROM_DAYS):
        groups.setdefault((str(kind), str(grp)), {})[str(name)] = int(n)
    with _transaction(db):
        db.executemany(_PUT_ALLTIME, [(k, g, orjson.dumps(c)) for (k, g), c in groups.items()])


def _add_audit(db: sqlite3.Connection, entries: Iterable[tuple[str, AuditEntry]]) -> None:
    with _transaction(db):
        _insert_audit(db, entries)


def _insert_audit(db: sqlite3.Connection, entries: Iterable[tuple[str, AuditEntry]]) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO audit_index (idx, patient_key, prev_hash, hash, record) VALUES (?, ?, ?, ?, ?)",
        [(e.index, key, e.prev_hash, e.hash, e.record) for key, e in entries],
    )


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
