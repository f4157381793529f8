"""The API stage's views of the topics (I/O shell): followers feeding the persistent store.

- :class:`StateView` follows the compacted state topic into the store's ``states`` table; reads go
  through a bounded LRU cache of decoded states (``api_view_cache_entries``).
- :class:`EventHistory` follows the events topic: state-changing events into the per-patient
  history ("as at" decisions), objections, breaches and disclosures into the report events. AccessRecord
  events reach the audit log through the elected appender's own reader (:mod:`broker.api.audit_follow`).

- :class:`ReportView` follows the compacted reports topic (the ``reports`` stage's running counts) into the
  store's ``report_aggregates``: the report queries read these, never raw events (issue 16).

All start from the positions stored with the views (:mod:`broker.views.store`) and write each
fetched batch with its positions in one SQLite transaction, so a restart resumes, and memory does
not grow with the topics (issue 16).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from broker.reports.aggregates import decode_aggregate
from broker.views import LruCache, ViewBatch, ViewStore, event_rows, state_row
from broker.views.batching import GroupReader
from consent_io.connection import KafkaConnection
from consent_io.kafka import KafkaTopicReader
from consent_rules.state import PatientState, empty_state
from consent_wire.errors import WireError
from consent_wire.model import Event
from consent_wire.signing import verified_event_payload

__all__ = ["EventHistory", "Follower", "ReportView", "StateView"]

log = logging.getLogger(__name__)

FETCH_RECORDS = 5000  # records per fetch = per SQLite transaction: amortises the commit, bounds the batch


class Follower:
    """Reads every partition of a topic from the stored positions (else the start); ``caught_up`` once at
    the end offsets seen at start."""

    def __init__(self, conn: KafkaConnection, topic: str, store: ViewStore) -> None:
        self.topic = topic
        self.store = store
        self.reader = KafkaTopicReader(conn, topic)
        self.caught_up = asyncio.Event()
        self.batch = ViewBatch(topic)

    async def start(self) -> None:
        await self.start_at(await self.store.positions(self.topic))

    async def start_at(self, positions: dict[int, int]) -> None:
        await self.reader.start(positions=positions)

    async def run(self, stop: asyncio.Event) -> None:
        began, read = time.monotonic(), 0
        try:
            while not stop.is_set():
                fetched = await self.reader.fetch(timeout_ms=200, max_records=FETCH_RECORDS)
                for partition, records in fetched.items():
                    read += len(records)
                    for record in records:
                        await self.handle(partition, record)
                await self.flush()
                if not self.caught_up.is_set() and await self.reader.caught_up():
                    self.caught_up.set()  # where a start's time goes: each view's tail, logged once
                    log.info("view caught up topic=%s records=%d s=%.1f", self.topic, read, time.monotonic() - began)
        finally:
            await self.reader.stop()

    async def handle(self, partition: int, record: Any) -> None:
        raise NotImplementedError

    async def flush(self) -> None:
        """Called after each fetched batch: the batch's rows and positions in one transaction."""
        batch, self.batch = self.batch, ViewBatch(self.topic)
        await self.store.write(batch)
        self.written(batch)

    def written(self, batch: ViewBatch) -> None:
        """Called once ``batch`` is in the store."""


class StateView(Follower):
    def __init__(self, conn: KafkaConnection, topic: str, store: ViewStore, cache_entries: int) -> None:
        super().__init__(conn, topic, store)
        self.cache: LruCache[str, PatientState] = LruCache(cache_entries)
        self.records_seen = 0
        self._generation = 0  # batches written
        # cold reads of concurrent decisions share one trip to the store's reader thread (broker.views.batching)
        self._reads: GroupReader[str, bytes] = GroupReader(store.state_records)

    async def handle(self, partition: int, record: Any) -> None:
        self.records_seen += 1
        value = record.value
        if record.key is not None and value is not None:
            try:
                PatientState.from_bytes(value)  # only records that decode reach the store
            except WireError as exc:
                log.warning(
                    "state record skipped partition=%d offset=%d reason=%s", partition, record.offset, exc.reason
                )
                value = b""
        if value == b"":
            self.batch.advance(partition, record.offset)
            return
        state_row(self.batch, partition, record.offset, record.key, value)

    def written(self, batch: ViewBatch) -> None:
        self._generation += 1
        for key in batch.states:
            self.cache.discard(key)

    async def state(self, key: str) -> PatientState:
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        generation = self._generation
        data = await self._reads.get(key)
        state = empty_state(key) if data is None else PatientState.from_bytes(data)
        if generation == self._generation:  # not cached if a batch was written meanwhile (it may be stale)
            self.cache.put(key, state)
        return state

    async def known_states(self, keys: Sequence[str]) -> dict[str, PatientState]:
        """The states of those of ``keys`` with anything recorded (cache first, then one store query)."""
        found: dict[str, PatientState] = {}
        missing: list[str] = []
        for key in keys:
            cached = self.cache.get(key)
            if cached is None:
                missing.append(key)
            elif cached.version:
                found[key] = cached
        for key, data in (await self.store.state_records(missing)).items():
            state = PatientState.from_bytes(data)
            if state.version:
                found[key] = state
        return found


class EventHistory(Follower):
    def __init__(self, conn: KafkaConnection, topic: str, store: ViewStore) -> None:
        super().__init__(conn, topic, store)
        self.events_seen = 0

    async def handle(self, partition: int, record: Any) -> None:
        data = record.value or b""
        try:
            event: Event | None = verified_event_payload(data)
        except WireError as exc:
            log.warning("event skipped partition=%d offset=%d reason=%s", partition, record.offset, exc.reason)
            event = None
        event_rows(self.batch, partition, record.offset, event, data)
        if event is not None:
            self.events_seen += 1

    async def history(self, key: str) -> list[Event]:
        return [verified_event_payload(r) for r in await self.store.history_records(key)]

    async def report_events(self) -> list[Event]:
        return [verified_event_payload(r) for r in await self.store.report_records()]


class ReportView(Follower):
    """The reports topic into ``report_aggregates``: the latest value per aggregate key, with the positions."""

    def __init__(self, conn: KafkaConnection, topic: str, store: ViewStore) -> None:
        super().__init__(conn, topic, store)
        self.records_seen = 0
        self.generation = 0  # batches of aggregates written: a rendered report is valid while it is unchanged

    def written(self, batch: ViewBatch) -> None:
        if batch.aggregates:
            self.generation += 1

    async def handle(self, partition: int, record: Any) -> None:
        self.records_seen += 1
        self.batch.advance(partition, record.offset)
        if record.key is None or not record.value:
            return
        try:
            aggregate = decode_aggregate(record.value)
        except (ValueError, KeyError, TypeError) as exc:  # only aggregates that decode reach the store
            log.warning("report aggregate skipped partition=%d offset=%d error=%s", partition, record.offset,
                        type(exc).__name__)  # fmt: skip
            return
        key = aggregate.key
        self.batch.aggregates[bytes(record.key)] = (key.kind.value, key.day, bytes(record.value))
