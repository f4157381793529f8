"""The API stage's views of the topics (I/O shell): the state view and the event history.

- State view: follows the compacted state topic (read_committed, every partition, from the start)
  into a dict ``patient_key -> PatientState``.
- Event history: follows the events topic into memory, per patient (for "as at" decisions) and in
  full (for the governance reports). Memory grows with the events topic: about 0.5-1 KiB per event
  in CPython, so ~1 GiB per million events. Fine for this release; a bounded store (e.g. the
  state topic's provenance plus a per-patient event index in Kafka or SQLite) is the next step.
  AccessRecord events are appended to the audit log as they are read, from the cursor the audit
  topic gives (see :mod:`broker.api.service`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from broker.audit import AuditError, access_record
from broker.audit.appender import AuditAppender
from consent_io.connection import KafkaConnection
from consent_io.kafka import KafkaTopicReader
from consent_rules.state import PatientState
from consent_wire.errors import WireError
from consent_wire.model import AccessRecord, Event
from consent_wire.signing import decode_verified_event

__all__ = ["EventHistory", "Follower", "StateView"]

log = logging.getLogger(__name__)


class Follower:
    """Reads every partition of a topic from the start; ``caught_up`` once at the end offsets seen at start."""

    def __init__(self, conn: KafkaConnection, topic: str) -> None:
        self.topic = topic
        self.reader = KafkaTopicReader(conn, topic)
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        await self.reader.start()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                for partition, records in (await self.reader.fetch(timeout_ms=200, max_records=5000)).items():
                    for record in records:
                        await self.handle(partition, record)
                await self.flush()
                if not self.caught_up.is_set() and await self.reader.caught_up():
                    self.caught_up.set()
        finally:
            await self.reader.stop()

    async def handle(self, partition: int, record: Any) -> None:
        raise NotImplementedError

    async def flush(self) -> None:
        """Called after each fetched batch."""


class StateView(Follower):
    def __init__(self, conn: KafkaConnection, topic: str) -> None:
        super().__init__(conn, topic)
        self.states: dict[str, PatientState] = {}

    async def handle(self, partition: int, record: Any) -> None:
        if record.key is None:
            return
        key = record.key.decode()
        if record.value is None:
            self.states.pop(key, None)
            return
        try:
            self.states[key] = PatientState.from_bytes(record.value)
        except WireError as exc:
            log.warning("state record skipped partition=%d offset=%d reason=%s", partition, record.offset, exc.reason)


class EventHistory(Follower):
    def __init__(self, conn: KafkaConnection, topic: str, appender: AuditAppender, cursor: dict[int, int]) -> None:
        super().__init__(conn, topic)
        self.appender = appender
        self.cursor = cursor  # partition -> first offset not yet in the audit log
        self.all: list[Event] = []
        self.by_patient: dict[str, list[Event]] = {}
        self.on_entry: list[Any] = []
        self._pending: list[asyncio.Task[None]] = []

    async def handle(self, partition: int, record: Any) -> None:
        try:
            event = decode_verified_event(record.value or b"").event
        except WireError as exc:
            log.warning("event skipped partition=%d offset=%d reason=%s", partition, record.offset, exc.reason)
            return
        self.all.append(event)
        if event.patient_key:
            self.by_patient.setdefault(event.patient_key, []).append(event)
        if isinstance(event.payload, AccessRecord) and record.offset >= self.cursor.get(partition, 0):
            # appends queue on the appender's FIFO lock in creation order; awaited together in flush()
            self._pending.append(asyncio.create_task(self._append_access(partition, record.offset, event)))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)

    async def _append_access(self, partition: int, offset: int, event: Event) -> None:
        try:
            entry = await self.appender.append(access_record(event), source=f"{partition}/{offset}")
        except AuditError as exc:  # a bad record, or the appender is down (a restart re-reads from the cursor)
            log.warning("access record not appended partition=%d offset=%d reason=%s", partition, offset, exc.reason)
            return
        self.cursor[partition] = max(self.cursor.get(partition, 0), offset + 1)
        for callback in self.on_entry:
            callback(entry)
