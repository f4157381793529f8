"""The mirror's local store (I/O, SQLite WAL): what it learnt and where it is, so a restart resumes (issue 16).

Tables: ``positions`` (topic, partition -> next offset), ``sites`` (national key, site, the site's pseudonym:
the relationships learnt from the events topic) and ``held`` (kind, patient -> the latest state or shielding
record). Each batch the mirror has published and fed is written with its positions in one transaction
(:meth:`MirrorStore.commit`), so after a restart the mirror reads only what came after, with the planner as it
was; a crash between publishing and the commit re-publishes that batch only (harmless: retained messages and
compacted keys are replaced, replicas ignore records no fresher than theirs).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from broker.mirror.planner import PlannerChanges, RecordKind, SiteLink

__all__ = ["MirrorStore", "Stored"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (topic TEXT, partition INTEGER, next_offset INTEGER,
    PRIMARY KEY (topic, partition)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sites (patient_key TEXT, site TEXT, site_key TEXT NOT NULL,
    PRIMARY KEY (patient_key, site)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held (kind TEXT, patient_key TEXT, record BLOB NOT NULL,
    PRIMARY KEY (kind, patient_key)) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True)
class Stored:
    positions: dict[tuple[str, int], int]  # (topic, partition) -> next offset
    sites: list[SiteLink]
    held: list[tuple[RecordKind, str, bytes]]


class MirrorStore:
    """One SQLite file; the mirror calls it from one task at a time (in a worker thread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a committed position must not outlive lost data
        self._db.executescript(_SCHEMA)

    def load(self) -> Stored:
        db = self._db
        positions = {
            (str(t), int(p)): int(o) for t, p, o in db.execute("SELECT topic, partition, next_offset FROM positions")
        }
        sites = [
            SiteLink(str(s), str(k), str(sk))
            for k, s, sk in db.execute("SELECT patient_key, site, site_key FROM sites")
        ]
        held = [
            (RecordKind(k), str(p), bytes(r)) for k, p, r in db.execute("SELECT kind, patient_key, record FROM held")
        ]
        return Stored(positions, sites, held)

    def commit(self, changes: PlannerChanges, positions: Mapping[tuple[str, int], int]) -> None:
        """The planner's changes and the positions they bring the mirror to, in one transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR IGNORE INTO sites (patient_key, site, site_key) VALUES (?, ?, ?)",
                [(r.patient_key, r.site, r.site_key) for r in changes.sites],
            )
            db.executemany(
                "INSERT OR REPLACE INTO held (kind, patient_key, record) VALUES (?, ?, ?)",
                [(k.value, p, v) for (k, p), v in changes.held.items() if v is not None],
            )
            db.executemany(
                "DELETE FROM held WHERE kind = ? AND patient_key = ?",
                [(k.value, p) for (k, p), v in changes.held.items() if v is None],
            )
            db.executemany(
                "INSERT OR REPLACE INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)",
                [(t, p, o) for (t, p), o in positions.items()],
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
