"""Local, checkpointed copies of a stage's changelog partitions, so a restart restores only the tail.

Issue 13, item 3: every assignment used to read the whole compacted changelog (7-24 s under load) and a
member that restored for that long missed heartbeats and rejoined, again and again. As Kafka Streams
keeps a local store with a checkpoint file, each changelog partition here has a SQLite file (WAL) holding
``key -> value`` and the next changelog offset to read, written in one SQLite transaction.

Why this stays exactly-once: a row is written only *after* the Kafka transaction that produced it committed,
with the changelog offset Kafka assigned it, so the store is always a prefix of the committed changelog;
restoring = the store's rows, then every committed changelog record from the checkpoint on (whoever wrote
it: another instance, or this one before a crash that lost the last SQLite write). A store that cannot be
a prefix (checkpoint below the partition's first offset or beyond its end: records deleted, topic
re-created) is discarded for a full restore. Each row keeps its offset and is only ever replaced by a
higher one, so two instances sharing a directory across a rebalance cannot regress each other.

Restores yield to the event loop every :data:`YIELD_EVERY` records, so the consumer group's heartbeat keeps
running however large the restore (a starved heartbeat is what turned one restore into a storm).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consent_io import kafka
from consent_io.connection import KafkaConnection

__all__ = ["LocalChangelog", "PartitionStore", "RestorePlan", "RestoreStats", "plan_restore", "restore_partition"]

YIELD_EVERY = 1000  # records applied between yields to the loop (~1-5 ms of restore work each)
LOAD_CHUNK = 5000  # rows read from SQLite per thread hop
Entry = tuple[bytes, bytes | None, int]  # key, value (None: tombstone), changelog offset


@dataclass(frozen=True, slots=True)
class RestorePlan:
    start: int  # first changelog offset to read from Kafka
    use_store: bool  # load the local rows first (False: discard them, full restore)


def plan_restore(checkpoint: int | None, first: int, end: int) -> RestorePlan:
    """Where to start reading the changelog partition ``[first, end)`` given the local ``checkpoint``."""
    if checkpoint is None or checkpoint < first or checkpoint > end:
        return RestorePlan(first, use_store=False)
    return RestorePlan(checkpoint, use_store=True)


class PartitionStore:
    """One changelog partition's SQLite file. Blocking: call from a worker thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # losing the last commit only means a longer tail
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL, offset INTEGER)")
        self._db.execute("CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY CHECK (id = 0), next INTEGER)")

    def checkpoint(self) -> int | None:
        row = self._db.execute("SELECT next FROM checkpoint WHERE id = 0").fetchone()
        return None if row is None else int(row[0])

    def rows(self) -> Iterator[list[tuple[bytes, bytes]]]:
        cursor = self._db.execute("SELECT key, value FROM kv")
        while chunk := cursor.fetchmany(LOAD_CHUNK):
            yield chunk

    def apply(self, entries: Sequence[Entry]) -> None:
        """Write ``entries`` and advance the checkpoint past them, in one transaction."""
        if not entries:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO kv (key, value, offset) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE "
                "SET value = excluded.value, offset = excluded.offset WHERE excluded.offset > kv.offset",
                [(k, v, o) for k, v, o in entries if v is not None],
            )
            self._db.executemany(
                "DELETE FROM kv WHERE key = ? AND offset < ?", [(k, o) for k, v, o in entries if v is None]
            )
            self._db.execute(
                "INSERT INTO checkpoint (id, next) VALUES (0, ?) "
                "ON CONFLICT (id) DO UPDATE SET next = MAX(next, excluded.next)",
                (max(o for _, _, o in entries) + 1,),
            )

    def clear(self) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM kv")
            self._db.execute("DELETE FROM checkpoint")

    def close(self) -> None:
        self._db.close()


@dataclass(frozen=True, slots=True)
class RestoreStats:
    local: int  # rows loaded from the store
    tail: int  # changelog records read from Kafka
    start: int  # the changelog offset the Kafka read began at
    end: int  # the changelog's end when the read began: the memory now holds everything below it
    full: bool  # True: the store was empty or unusable


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


class LocalChangelog:
    """The stores of one stage, one per changelog partition, written in order by one worker thread."""

    def __init__(self, directory: Path, stage: str) -> None:
        self.directory = directory / _safe(stage)
        self._stores: dict[tuple[str, int], PartitionStore] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"changelog-{stage}")
        self._pending: list[Future[None]] = []

    def _store(self, topic: str, partition: int) -> PartitionStore:
        key = (topic, partition)
        if key not in self._stores:
            self._stores[key] = PartitionStore(self.directory / f"{_safe(topic)}-{partition}.sqlite")
        return self._stores[key]

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` on the store's worker thread (after every write submitted before it)."""
        return await asyncio.wrap_future(self._worker.submit(fn, *args))

    async def open(self, topic: str, partition: int) -> PartitionStore:
        store: PartitionStore = await self.run(self._store, topic, partition)
        return store

    def record(self, topic: str, partition: int, entries: Sequence[Entry]) -> None:
        """Queue committed changelog records for the store (in order; never awaited by the hot path)."""
        if entries:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._worker.submit(lambda: self._store(topic, partition).apply(entries)))

    async def flush(self) -> None:
        await self.run(lambda: None)

    async def close(self) -> None:
        await self.flush()
        for store in self._stores.values():
            await self.run(store.close)
        self._stores.clear()
        self._worker.shutdown(wait=True)


async def restore_partition(
    conn: KafkaConnection,
    topic: str,
    partition: int,
    apply: Callable[[bytes, bytes], None],
    local: LocalChangelog | None,
    checkpoint: int | None = None,
) -> RestoreStats:
    """Feed ``apply`` the partition's state: local rows (if usable), then the changelog from the checkpoint.

    ``checkpoint``: the caller already holds the state up to this offset in memory (kept across a rebalance):
    only the changelog from there is read, the store is not loaded.
    """
    store = await local.open(topic, partition) if local is not None else None
    reader = kafka.KafkaTopicReader(conn, topic, partitions=[partition])
    await reader.start()
    try:
        (first,) = reader.starts.values()
        (end,) = reader.ends.values()
        in_memory = checkpoint is not None
        if checkpoint is None and store is not None and local is not None:
            checkpoint = await local.run(store.checkpoint)
        plan = plan_restore(checkpoint, first, end)
        loaded = 0
        if plan.use_store and not in_memory and store is not None and local is not None:
            loaded = await _load(local, store, apply)
        elif not plan.use_store and store is not None and local is not None:
            await local.run(store.clear)
        reader.seek(partition, plan.start)
        tail = await _read_tail(reader, apply, local, topic, partition)
    finally:
        await reader.stop()
    return RestoreStats(loaded, tail, plan.start, end, full=not plan.use_store)


async def _load(local: LocalChangelog, store: PartitionStore, apply: Callable[[bytes, bytes], None]) -> int:
    rows = store.rows()
    loaded = 0
    while chunk := await local.run(next, rows, None):
        for key, value in chunk:
            apply(key, value)
        loaded += len(chunk)
        await asyncio.sleep(0)  # let heartbeats and fetches run between chunks
    return loaded


async def _read_tail(
    reader: kafka.KafkaTopicReader,
    apply: Callable[[bytes, bytes], None],
    local: LocalChangelog | None,
    topic: str,
    partition: int,
) -> int:
    read = 0
    entries: list[Entry] = []
    async for record in reader.to_end():
        if record.key is not None:
            entries.append((record.key, record.value, record.offset))
            if record.value is not None:
                apply(record.key, record.value)
        read += 1
        if read % YIELD_EVERY == 0:
            await asyncio.sleep(0)
            if local is not None:
                local.record(topic, partition, entries)
                entries = []
    if local is not None:
        local.record(topic, partition, entries)
    return read
