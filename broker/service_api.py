"""Stage ``api``: the HTTP API with its views of the topics and the audit appender (I/O shell).

- State view: follows the compacted state topic (read_committed, every partition, from the start)
  into a dict ``patient_key -> PatientState``.
- Event history: follows the events topic into memory, per patient (for "as at" decisions) and in
  full (for the governance reports). Memory grows with the events topic: about 0.5-1 KiB per event
  in CPython, so ~1 GiB per million events. Fine for this release; a bounded store (e.g. the
  state topic's provenance plus a per-patient event index in Kafka or SQLite) is the next step.
- Audit: :class:`broker.audit_store.AuditAppender` owns the chain. Decision records come from the
  API; access records from AccessRecord events on the events topic. Each access entry carries its
  events-topic position, so after a restart the follower appends only the accesses not yet in the
  log (the audit topic is the cursor: nothing lost, nothing appended twice).

Settings: ``pseudonym_secret_file`` (hex, ``openssl rand -hex 32``) from :class:`CoreSettings`;
``CONSENT_AUDIT_KEY_FILE`` (hex of a raw 32-byte Ed25519 private key; if unset a key is generated per
run and its public key is published in every checkpoint), ``CONSENT_AUDIT_CHECKPOINT_EVERY`` and
``CONSENT_LIST_SIZES_FILE`` (CSV ``practice,list_size``) from the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import logging
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api import HealthInfo, create_app
from broker.audit import AuditEntry, AuditError, AuditRecord, access_record
from broker.audit_store import AuditAppender
from broker.settings import SettingsError
from broker.state import PatientState, empty_state
from consent_io.connection import KafkaConnection
from consent_io.kafka import KafkaTopicReader
from consent_wire.errors import WireError
from consent_wire.identity import patient_key
from consent_wire.model import AccessRecord, Event
from consent_wire.signing import decode_verified_event

if TYPE_CHECKING:
    from broker.runtime import Core

__all__ = ["ApiService", "load_list_sizes", "read_hex_file", "running_service", "start_service"]

log = logging.getLogger(__name__)

_SERVICES: weakref.WeakKeyDictionary[Core, ApiService] = weakref.WeakKeyDictionary()


def read_hex_file(path: str, what: str) -> bytes:
    try:
        return bytes.fromhex(Path(path).read_text().strip())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {what} from {path}: {exc}") from exc


def load_list_sizes(path: str | None) -> dict[str, int]:
    """``practice,list_size`` rows (a header row is skipped) from a CSV file."""
    if not path:
        return {}
    sizes: dict[str, int] = {}
    try:
        with Path(path).open(newline="") as f:
            for row in csv.reader(f):
                if len(row) >= 2 and row[1].strip().isdigit():
                    sizes[row[0].strip()] = int(row[1])
    except OSError as exc:
        raise SettingsError(f"cannot read list sizes from {path}: {exc}") from exc
    return sizes


class _Follower:
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


class _StateView(_Follower):
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


class _EventHistory(_Follower):
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


class ApiService:
    """The backend behind :func:`broker.api.create_app`, plus the Kafka tasks that feed it."""

    def __init__(self, core: Core, secret: bytes, signer: Ed25519PrivateKey, checkpoint_every: int) -> None:
        s = core.settings
        self.core = core
        self._secret = secret
        self.list_sizes: Mapping[str, int] = load_list_sizes(core.settings.list_sizes_file or None)
        self.appender = AuditAppender(s.kafka_connection(), core.topics.audit, signer, checkpoint_every)
        self.view = _StateView(s.kafka_connection(), core.topics.state)
        self.history: _EventHistory | None = None
        self._entries: dict[str, list[AuditEntry]] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- ApiBackend ---------------------------------------------------------------------------
    def patient_key(self, nhs_number: str) -> str:
        return patient_key(self._secret, nhs_number)

    def state(self, key: str) -> PatientState:
        return self.view.states.get(key) or empty_state(key)

    def history_of(self, key: str) -> Sequence[Event]:
        return () if self.history is None else self.history.by_patient.get(key, ())

    def events(self) -> Sequence[Event]:
        return () if self.history is None else self.history.all

    def audit_entries(self, key: str) -> Sequence[AuditEntry]:
        return self._entries.get(key, ())

    async def record(self, record: AuditRecord) -> AuditEntry:
        entry = await self.appender.append(record)
        self._index(entry)
        return entry

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def health(self) -> HealthInfo:
        history = self.history
        ready = self.view.caught_up.is_set() and history is not None and history.caught_up.is_set()
        return HealthInfo(ready, len(self.view.states), len(self.events()), self.appender.next_index)

    # --- lifecycle ----------------------------------------------------------------------------
    def _index(self, entry: AuditEntry) -> None:
        record = AuditRecord.from_bytes(entry.record)
        self._entries.setdefault(record.patient_key, []).append(entry)

    async def start(self) -> list[asyncio.Task[None]]:
        s = self.core.settings
        stored = await self.appender.start()
        cursor: dict[int, int] = {}
        for entry, source in zip(stored.entries, stored.sources, strict=True):
            self._index(entry)
            if source is not None:
                partition, _, offset = source.partition("/")
                cursor[int(partition)] = max(cursor.get(int(partition), 0), int(offset) + 1)
        self.history = _EventHistory(s.kafka_connection(), self.core.topics.events, self.appender, cursor)
        self.history.on_entry.append(self._index)
        await self.view.start()
        await self.history.start()
        stop = self.core.stop_event
        tasks = [
            asyncio.create_task(self.view.run(stop), name="api-state-view"),
            asyncio.create_task(self.history.run(stop), name="api-event-history"),
        ]
        await self._serve(s.http_host, s.http_port)
        tasks.append(asyncio.create_task(self._shutdown_when_stopped(tasks[:]), name="api-http"))
        return tasks

    async def _serve(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(create_app(_Backend(self)), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        log.info("api listening host=%s port=%d", host, self.port)

    async def _shutdown_when_stopped(self, followers: list[asyncio.Task[None]]) -> None:
        await self.core.stop_event.wait()
        if self._runner is not None:
            await self._runner.cleanup()
        for task in followers:
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await task
        await self.appender.stop()  # final signed checkpoint
        log.info("api stopped")


class _Backend:
    """Adapts :class:`ApiService` to :class:`broker.api.ApiBackend` (``history`` is a method there)."""

    def __init__(self, service: ApiService) -> None:
        self._s = service
        self.list_sizes = service.list_sizes

    def patient_key(self, nhs_number: str) -> str:
        return self._s.patient_key(nhs_number)

    def state(self, patient_key: str) -> PatientState:
        return self._s.state(patient_key)

    def history(self, patient_key: str) -> Sequence[Event]:
        return self._s.history_of(patient_key)

    def events(self) -> Sequence[Event]:
        return self._s.events()

    def audit_entries(self, patient_key: str) -> Sequence[AuditEntry]:
        return self._s.audit_entries(patient_key)

    async def record(self, record: AuditRecord) -> AuditEntry:
        return await self._s.record(record)

    def now_ms(self) -> int:
        return self._s.now_ms()

    def health(self) -> HealthInfo:
        return self._s.health()


def _signer(path: str) -> Ed25519PrivateKey:
    if not path:
        log.warning("CONSENT_AUDIT_KEY_FILE not set: audit checkpoints are signed with a key generated for this run")
        return Ed25519PrivateKey.generate()
    return Ed25519PrivateKey.from_private_bytes(read_hex_file(path, "the audit signing key"))


async def start_service(core: Core) -> list[asyncio.Task[None]]:
    """Stage ``api``: restore the audit chain, start the views and serve HTTP until ``core.stop_event``."""
    s = core.settings
    if not s.pseudonym_secret_file:
        raise SettingsError("the api needs pseudonym_secret_file (CONSENT_PSEUDONYM_SECRET_FILE)")
    secret = read_hex_file(s.pseudonym_secret_file, "the pseudonym secret")
    if s.audit_checkpoint_every < 1:
        raise SettingsError(f"audit_checkpoint_every must be positive, got {s.audit_checkpoint_every}")
    service = ApiService(core, secret, _signer(s.audit_key_file), s.audit_checkpoint_every)
    tasks = await service.start()
    _SERVICES[core] = service
    return tasks


def running_service(core: Core) -> ApiService | None:
    """The API service started for ``core`` (tests read its bound port when ``http_port`` is 0)."""
    return _SERVICES.get(core)
