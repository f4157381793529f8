"""The site's local replica of consent state and shielding for its own patients.

Fed by a follower (:mod:`edge_agent.replica_follow`) from the site's own replica feed (Kafka
``<prefix>.site.<site>`` or the retained MQTT mirror), only with records the core signed
(:mod:`consent_rules.replica_feed`); read by the offline decision endpoint. Records are bytes
(``PatientState.to_bytes()`` or the shielding record) with their freshness from the signed content
(state version, shielding stamp HLC) and the time they were current ("as at"). A record less fresh
than the one held is ignored, so a follower may replay safely; producer times play no part.

The table is ``signed_records``; a ``records`` table left by a version that stored unsigned records
from the national topics is dropped on open (the follower re-reads the site feed from its start).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from consent_rules.replica_feed import ReplicaKind, ReplicaUpdate

__all__ = ["Replica", "ReplicaKind", "ReplicaRecord", "load_patient_keys"]

T = TypeVar("T")
_SCHEMA = (
    "DROP TABLE IF EXISTS records",  # unsigned rows from the national topics (before signed site feeds)
    "CREATE TABLE IF NOT EXISTS signed_records (kind TEXT NOT NULL, patient_key TEXT NOT NULL,"
    " data BLOB NOT NULL, freshness INTEGER NOT NULL, as_at_ms INTEGER NOT NULL, PRIMARY KEY (kind, patient_key))",
    # the feed's next offset per partition, written after the records it covers (issue 16: a restart resumes)
    "CREATE TABLE IF NOT EXISTS feed_positions (topic TEXT NOT NULL, partition INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL, PRIMARY KEY (topic, partition))",
)

_SAVE_POSITION = "INSERT OR REPLACE INTO feed_positions (topic, partition, next_offset) VALUES (?, ?, ?)"


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    patient_key: str
    state: bytes | None
    state_as_at_ms: int | None
    shielding: bytes | None
    shielding_as_at_ms: int | None


def load_patient_keys(path: Path) -> frozenset[str]:
    """One patient key per line; blank lines and ``#`` comments ignored."""
    lines = path.read_text(encoding="ascii").splitlines()
    return frozenset(s for line in lines if (s := line.split("#", 1)[0].strip()))


class Replica:
    """SQLite-backed; all SQLite work on one worker thread. ``patients=None`` follows everyone."""

    def __init__(self, path: Path, patients: frozenset[str] | None) -> None:
        self.patients = patients
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica-sqlite")
        self._path = path
        self._db: sqlite3.Connection | None = None
        self.updates_total = 0
        self.refused_by_reason: Counter[str] = Counter()  # records refused by the follower, never applied
        # told of each record stored or deleted by apply_all, once committed (the bench times shielding here)
        self.on_change: Callable[[ReplicaKind, str], None] | None = None

    async def open(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: the MQTT follower acknowledges a record once it is stored (its session resumes after it, issue 16)
        db.execute("PRAGMA synchronous=FULL")
        for ddl in _SCHEMA:
            db.execute(ddl)
        self._db = db

    def follows(self, patient_key: str) -> bool:
        return self.patients is None or patient_key in self.patients

    async def apply_all(
        self, updates: Sequence[ReplicaUpdate], positions: tuple[str, dict[int, int]] | None = None
    ) -> list[bool]:
        """Apply verified records (:func:`consent_rules.replica_feed.open_replica_record`) in order, and save a
        feed's ``(topic, positions)`` reached with them, in one SQLite transaction: one fsync for a follower's whole
        poll, not one per record (synchronous=FULL took ~1.2 ms a record here, so a follower applying them one by
        one fell behind a busy site's feed: issue 18's shielding lane). True per record stored or deleted; False
        where not followed, not fresher or not held."""
        if not updates and not positions:
            return []
        changed = await self._run(lambda: self._apply_all(updates, positions))
        self.updates_total += sum(changed)
        if self.on_change is not None:
            for update, done in zip(updates, changed, strict=True):
                if done:
                    self.on_change(update.kind, update.patient_key)
        return changed

    def _apply_all(self, updates: Sequence[ReplicaUpdate], positions: tuple[str, dict[int, int]] | None) -> list[bool]:
        db = self._conn()
        changed: list[bool] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for u in updates:
                if not self.follows(u.patient_key):
                    changed.append(False)
                elif u.record is None:
                    changed.append(self._delete(u.kind, u.patient_key))
                else:
                    assert u.freshness is not None  # every record (not a deletion) has one
                    changed.append(self._upsert(u.kind, u.patient_key, u.record, u.freshness, u.as_at_ms))
            if positions is not None:
                topic, reached = positions
                db.executemany(_SAVE_POSITION, [(topic, p, o) for p, o in reached.items()])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return changed

    async def upsert(self, kind: ReplicaKind, patient_key: str, data: bytes, freshness: int, as_at_ms: int) -> bool:
        """Store unless a fresher record is held (equal freshness: replaced); False if skipped."""
        if not self.follows(patient_key):
            return False
        changed = await self._run(lambda: self._upsert(kind, patient_key, data, freshness, as_at_ms))
        self.updates_total += int(changed)
        return changed

    async def delete(self, kind: ReplicaKind, patient_key: str) -> bool:
        """Forget a record (the core deleted it); False if none was held."""
        if not self.follows(patient_key):
            return False
        changed = await self._run(lambda: self._delete(kind, patient_key))
        self.updates_total += int(changed)
        return changed

    def _delete(self, kind: ReplicaKind, key: str) -> bool:
        sql = "DELETE FROM signed_records WHERE kind = ? AND patient_key = ?"
        return bool(self._conn().execute(sql, (kind.value, key)).rowcount > 0)

    def _upsert(self, kind: ReplicaKind, key: str, data: bytes, freshness: int, as_at_ms: int) -> bool:
        db = self._conn()
        row = db.execute(
            "SELECT freshness FROM signed_records WHERE kind = ? AND patient_key = ?", (kind.value, key)
        ).fetchone()
        if row is not None and row[0] > freshness:
            return False
        db.execute(
            "INSERT OR REPLACE INTO signed_records (kind, patient_key, data, freshness, as_at_ms)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind.value, key, data, freshness, as_at_ms),
        )
        return True

    async def get(self, patient_key: str) -> ReplicaRecord | None:
        rows = await self._run(lambda: self._get(patient_key))
        if not rows:
            return None
        found = {kind: (bytes(data), int(at)) for kind, data, at in rows}
        state = found.get(ReplicaKind.STATE.value)
        shield = found.get(ReplicaKind.SHIELDING.value)
        return ReplicaRecord(
            patient_key,
            state[0] if state else None,
            state[1] if state else None,
            shield[0] if shield else None,
            shield[1] if shield else None,
        )

    def _get(self, key: str) -> list[tuple[str, bytes, int]]:
        sql = "SELECT kind, data, as_at_ms FROM signed_records WHERE patient_key = ?"
        return self._conn().execute(sql, (key,)).fetchall()

    async def count(self) -> int:
        return await self._run(lambda: int(self._conn().execute("SELECT count(*) FROM signed_records").fetchone()[0]))

    async def positions(self, topic: str) -> dict[int, int]:
        """Where the follower of ``topic`` stopped: partition -> next offset (empty: from the start)."""
        sql = "SELECT partition, next_offset FROM feed_positions WHERE topic = ?"
        return await self._run(lambda: {int(p): int(o) for p, o in self._conn().execute(sql, (topic,)).fetchall()})

    async def save_positions(self, topic: str, positions: dict[int, int]) -> None:
        """Called after the records below ``positions`` are applied (re-applying one is harmless: freshness)."""
        rows = [(topic, p, o) for p, o in positions.items()]
        await self._run(lambda: self._conn().executemany(_SAVE_POSITION, rows))

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await self._run(db.close)
        self._executor.shutdown(wait=True)

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("replica is not open")
        return self._db

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
