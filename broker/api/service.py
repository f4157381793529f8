"""Stage ``api``: the HTTP API with its views of the topics and the audit appender (I/O shell).

- Views: :class:`broker.api.views.StateView` and :class:`broker.api.views.EventHistory` follow the
  state and events topics into memory; the API answers 503 ``NOT_READY`` until both caught up.
- Audit: :class:`broker.audit.appender.AuditAppender` owns the chain. Decision records come from the
  API; access records from AccessRecord events on the events topic. Each access entry carries its
  events-topic position, so after a restart the follower appends only the accesses not yet in the
  log (the audit topic is the cursor: nothing lost, nothing appended twice).

Settings (validated when :class:`broker.settings.CoreSettings` loads): ``pseudonym_secret_file``
(hex, ``openssl rand -hex 32``); ``audit_key_file`` (hex of a raw 32-byte Ed25519 private key; if
unset a key is generated per run and its public key is published in every checkpoint);
``audit_checkpoint_every``; ``list_sizes_file`` (CSV ``practice,list_size``); ``http_host`` and
``http_port`` (0: any free port, read back from :attr:`ApiService.port`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api.codec import HealthInfo
from broker.api.handlers import create_app
from broker.api.views import EventHistory, StateView
from broker.audit import AuditEntry, AuditRecord
from broker.audit.appender import AuditAppender
from broker.auth import ClientRegistry, TokenService
from broker.ops_metrics import GOVERNANCE, api_timing, count_decision
from broker.settings import CoreSettings, load_list_sizes, read_hex_file
from consent_rules.state import PatientState, empty_state
from consent_wire.identity import patient_key
from consent_wire.model import Event

if TYPE_CHECKING:
    from broker.runtime import Core

__all__ = ["ApiService"]

log = logging.getLogger(__name__)


class ApiService:
    """The backend behind :func:`broker.api.create_app`, plus the Kafka tasks that feed it."""

    def __init__(self, core: Core, secret: bytes, signer: Ed25519PrivateKey, checkpoint_every: int) -> None:
        s = core.settings
        self.core = core
        self._secret = secret
        self.list_sizes: Mapping[str, int] = load_list_sizes(core.settings.list_sizes_file or None)
        self.appender = AuditAppender(s.kafka_connection("api"), core.topics.audit, signer, checkpoint_every)
        self.view = StateView(s.kafka_connection("api"), core.topics.state)
        self.history: EventHistory | None = None
        self._entries: dict[str, list[AuditEntry]] = {}
        self._runner: web.AppRunner | None = None
        self._auth: TokenService | None = None
        self.port = 0

    @classmethod
    def for_core(cls, core: Core) -> ApiService:
        """The stage as :class:`broker.runtime.Core` builds it, from the (already validated) settings."""
        s = core.settings
        secret = read_hex_file(s.pseudonym_secret_file, "pseudonym_secret_file")
        return cls(core, secret, _signer(s.audit_key_file), s.audit_checkpoint_every)

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
        count_decision(record)
        return entry

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def audit_status(self) -> tuple[float, int]:
        return self.appender.checkpoint_age_s, self.appender.unsigned_entries

    def health(self) -> HealthInfo:
        history = self.history
        ready = self.view.caught_up.is_set() and history is not None and history.caught_up.is_set()
        return HealthInfo(ready, len(self.view.states), len(self.events()), self.appender.next_index)

    # --- lifecycle ----------------------------------------------------------------------------
    def _index(self, entry: AuditEntry) -> None:
        record = AuditRecord.from_bytes(entry.record)
        self._entries.setdefault(record.patient_key, []).append(entry)

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """Restore the audit chain, start the views and serve HTTP until ``stop`` is set."""
        s = self.core.settings
        stored = await self.appender.start()
        cursor: dict[int, int] = {}
        for entry, source in zip(stored.entries, stored.sources, strict=True):
            self._index(entry)
            if source is not None:
                partition, _, offset = source.partition("/")
                cursor[int(partition)] = max(cursor.get(int(partition), 0), int(offset) + 1)
        self.history = EventHistory(s.kafka_connection("api"), self.core.topics.events, self.appender, cursor)
        self.history.on_entry.append(self._index)
        await self.view.start()
        await self.history.start()
        tasks = [
            asyncio.create_task(self.view.run(stop), name="api-state-view"),
            asyncio.create_task(self.history.run(stop), name="api-event-history"),
        ]
        await self._serve(s.http_host, s.http_port)
        GOVERNANCE.attach(self)
        tasks.append(asyncio.create_task(self._shutdown_when_stopped(stop, tasks[:]), name="api-http"))
        return tasks

    async def _serve(self, host: str, port: int) -> None:
        s = self.core.settings
        tls = None if s.insecure_http else _server_tls(s.http_tls_cert_file, s.http_tls_key_file)
        auth = None if s.insecure_http else _token_service(s)
        if auth is None:
            log.warning("api runs with insecure_http: plaintext and NO authentication (debugging only)")
        self._auth = auth
        app = create_app(_Backend(self), auth)
        app.middlewares.insert(0, api_timing)  # outermost: sees the status the error middleware made
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=tls)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else port
        if auth is not None and not s.api_token_url:
            auth.token_url = f"https://{host}:{self.port}/oauth2/token"
        log.info("api listening host=%s port=%d tls=%s", host, self.port, tls is not None)

    async def _shutdown_when_stopped(self, stop: asyncio.Event, followers: list[asyncio.Task[None]]) -> None:
        await stop.wait()
        if self._runner is not None:
            await self._runner.cleanup()
        for task in followers:
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await task
        await self.appender.stop()  # final signed checkpoint
        GOVERNANCE.detach(self)
        log.info("api stopped")


class _Backend:
    """Adapts :class:`ApiService` to :class:`broker.api.handlers.ApiBackend` (``history`` is a method there)."""

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
    return Ed25519PrivateKey.from_private_bytes(read_hex_file(path, "audit_key_file"))


def _server_tls(cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS 1.2+ server context (Mozilla "intermediate": the library defaults of Python 3.11 meet it)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def _token_service(s: CoreSettings) -> TokenService:
    registry = ClientRegistry.load(Path(s.api_clients_file))
    key = Ed25519PrivateKey.from_private_bytes(read_hex_file(s.api_token_key_file, "api_token_key_file"))
    return TokenService(registry, key, s.api_token_url or "https://pending/oauth2/token")
