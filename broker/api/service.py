"""Stage ``api``: the HTTP API with its views of the topics and the audit appender (I/O shell).

- Views: :class:`broker.api.views.StateView` and :class:`broker.api.views.EventHistory` follow the
  state and events topics into the persistent store (:mod:`broker.views`, SQLite in ``api_view_dir``,
  resumed from its stored positions); the API answers 503 ``NOT_READY`` until both caught up.
- Audit: :class:`broker.audit.appender.AuditAppender` owns the chain. Decision records come from the
  API; access records from AccessRecord events on the events topic. Each access entry carries its
  events-topic position, so after a restart the follower appends only the accesses not yet in the
  log (the audit topic is the cursor: nothing lost, nothing appended twice).

Settings (validated when :class:`broker.settings.CoreSettings` loads): ``pseudonym_secret_file``
(hex, ``openssl rand -hex 32``); ``audit_key_file`` (hex of a raw 32-byte Ed25519 private key, mode 0600,
required), ``audit_origin``, ``audit_witnesses`` and ``audit_witness_quorum`` (the appender's witness policy);
``list_sizes_file`` (CSV ``practice,list_size``); ``http_host`` and
``http_port`` (0: any free port, read back from :attr:`ApiService.port`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api.audit_sink import AuditSink
from broker.api.codec import HealthInfo
from broker.api.handlers import create_app
from broker.api.token_cache import CachingTokenService
from broker.api.views import EventHistory, ReportView, StateView
from broker.audit import AuditEntry, AuditRecord
from broker.audit.appender import AppenderPolicy, AuditAppender
from broker.audit.keyfile import load_signer
from broker.audit.note import ALG_ED25519, Verifier
from broker.audit.tlog import InclusionProof
from broker.auth import ClientRegistry, TokenService
from broker.ops_metrics import GOVERNANCE, api_timing, count_decision
from broker.reports.aggregates import AggKind, Aggregate, decode_aggregate
from broker.settings import CoreSettings, audit_origin, load_decision_policy, load_list_sizes, read_hex_file
from broker.views import ViewStore
from broker.views.batching import GroupWriter
from broker.witness.client import WitnessClient
from consent_io.tls import client_ssl_context
from consent_rules.state import PatientState
from consent_wire.identity import Pseudonymiser, patient_key
from consent_wire.model import Event
from consent_wire.signing import verified_event_payload

if TYPE_CHECKING:
    from broker.runtime import Core

__all__ = ["ApiService"]

log = logging.getLogger(__name__)


class ApiService:
    """The backend behind :func:`broker.api.create_app`, plus the Kafka tasks that feed it."""

    def __init__(self, core: Core, secret: bytes, policy: AppenderPolicy) -> None:
        s = core.settings
        self.core = core
        self._secret = secret
        self.pseudonymiser = Pseudonymiser(secret)
        self.list_sizes: Mapping[str, int] = load_list_sizes(core.settings.list_sizes_file or None)
        self.appender: AuditSink = AuditAppender(s.kafka_connection("api"), core.topics.audit, policy)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if s.api_view_dir:
            folder = Path(s.api_view_dir)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="consent-api-views-")
            folder = Path(self._tmp.name)
        # one file per deployment prefix: views of two deployments never mix
        self.store = ViewStore(folder / f"{core.topics.prefix}.views.sqlite3")
        self.view = StateView(s.kafka_connection("api"), core.topics.state, self.store, s.api_view_cache_entries)
        self.history: EventHistory | None = None
        self.reports = ReportView(s.kafka_connection("api"), core.topics.reports, self.store)
        self._runner: web.AppRunner | None = None
        self._auth: TokenService | None = None
        self._unindexed: list[tuple[str, AuditEntry]] = []  # audit entries not yet in the store's index
        self._audit_index: GroupWriter[tuple[str, AuditEntry]] = GroupWriter(self.store.add_audit)
        self.port = 0

    @classmethod
    def for_core(cls, core: Core) -> ApiService:
        """The stage as :class:`broker.runtime.Core` builds it, from the (already validated) settings."""
        s = core.settings
        secret = read_hex_file(s.pseudonym_secret_file, "pseudonym_secret_file")
        return cls(core, secret, appender_policy(s))

    # --- ApiBackend ---------------------------------------------------------------------------
    def patient_key(self, nhs_number: str) -> str:
        return patient_key(self._secret, nhs_number)

    async def state(self, key: str) -> PatientState:
        return await self.view.state(key)

    async def history_of(self, key: str) -> Sequence[Event]:
        return () if self.history is None else await self.history.history(key)

    async def report_aggregates(self, kind: AggKind) -> list[Aggregate]:
        return [decode_aggregate(v) for v in await self.store.report_aggregates(kind.value)]

    async def report_totals(
        self, kind: AggKind, first_day: int = -1, end_day: int | None = None
    ) -> Mapping[tuple[str, ...], Mapping[str, int]]:
        return await self.store.report_totals(kind.value, first_day, end_day)

    async def audit_entries(self, key: str, after: int = -1, limit: int = -1) -> Sequence[AuditEntry]:
        return await self.store.audit_entries(key, after, limit)

    async def state_with_event(self, event_id: str) -> PatientState | None:
        """A scan of the stored states (O(patients), in SQLite): reads by id are rare next to searches by patient."""
        for data in await self.store.state_records_containing(event_id):
            state = PatientState.from_bytes(data)
            stamps = [r.stamp for r in state.consents.values()] + [r.stamp for r in state.objections.values()]
            if any(stamp.event_id == event_id for stamp in stamps):
                return state
        return None

    async def record(self, record: AuditRecord) -> AuditEntry:
        entry = await self.appender.append(record)
        await self._audit_index.add((record.patient_key, entry))  # one SQLite commit per group of decisions
        count_decision(record)
        return entry

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def audit_status(self) -> tuple[float, int]:
        return self.appender.checkpoint_age_s, self.appender.unsigned_entries

    def report_events_now(self) -> Sequence[Event]:
        """The report events, read from the store while the caller waits (the metrics thread: it has no loop)."""
        return [verified_event_payload(r) for r in self.store.report_records_blocking()]

    def health(self) -> HealthInfo:
        history = self.history
        ready = self.view.caught_up.is_set() and history is not None and history.caught_up.is_set()
        ready = ready and self.reports.caught_up.is_set()
        events = 0 if history is None else history.events_seen
        return HealthInfo(ready, self.view.records_seen, events, self.appender.next_index)

    # --- lifecycle ----------------------------------------------------------------------------
    def _index(self, entry: AuditEntry) -> None:
        self._unindexed.append((AuditRecord.from_bytes(entry.record).patient_key, entry))

    async def _flush_index(self) -> None:
        pending, self._unindexed = self._unindexed, []
        await self.store.add_audit(pending)

    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """Restore the audit chain, start the views and serve HTTP until ``stop`` is set."""
        s = self.core.settings
        stored = await self.appender.start()
        cursor: dict[int, int] = {}
        indexed_up_to = await self.store.audit_next_index()
        for entry, source in zip(stored.entries, stored.sources, strict=True):
            if entry.index >= indexed_up_to:
                self._index(entry)
            if source is not None:
                partition, _, offset = source.partition("/")
                cursor[int(partition)] = max(cursor.get(int(partition), 0), int(offset) + 1)
        await self._flush_index()
        history = EventHistory(s.kafka_connection("api"), self.core.topics.events, self.store, self.appender, cursor)
        history.on_entry.append(self._index)
        history.after_flush.append(self._flush_index)
        self.history = history
        await self.view.start()
        await history.start()  # stored positions never pass an access record the audit log did not take
        await self.reports.start()
        tasks = [
            asyncio.create_task(self.reports.run(stop), name="api-report-view"),
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
        policy = load_decision_policy(s.decision_policy_file)  # validated when the settings loaded
        app = create_app(_Backend(self), auth, policy)
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
        await self.appender.stop()
        GOVERNANCE.detach(self)
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        log.info("api stopped")


class _Backend:
    """Adapts :class:`ApiService` to :class:`broker.api.handlers.ApiBackend` (``history`` is a method there)."""

    def __init__(self, service: ApiService) -> None:
        self._s = service
        self.list_sizes = service.list_sizes

    def patient_key(self, nhs_number: str) -> str:
        return self._s.patient_key(nhs_number)

    async def state(self, patient_key: str) -> PatientState:
        return await self._s.state(patient_key)

    async def history(self, patient_key: str) -> Sequence[Event]:
        return await self._s.history_of(patient_key)

    async def known_states(self, patient_keys: Sequence[str]) -> Mapping[str, PatientState]:
        """The states of those keys with anything recorded (broker.api.checks.BatchBackend)."""
        return await self._s.view.known_states(patient_keys)

    def key_of_digits(self, digits: str) -> str:
        """The patient key of an already validated NHS number (broker.api.checks.BatchBackend)."""
        return self._s.pseudonymiser.of_digits(digits)

    async def report_aggregates(self, kind: AggKind) -> list[Aggregate]:
        return await self._s.report_aggregates(kind)

    async def report_totals(
        self, kind: AggKind, first_day: int = -1, end_day: int | None = None
    ) -> Mapping[tuple[str, ...], Mapping[str, int]]:
        return await self._s.report_totals(kind, first_day, end_day)

    async def audit_entries(self, patient_key: str, after: int = -1, limit: int = -1) -> Sequence[AuditEntry]:
        return await self._s.audit_entries(patient_key, after, limit)

    async def state_with_event(self, event_id: str) -> PatientState | None:
        return await self._s.state_with_event(event_id)

    async def record(self, record: AuditRecord) -> AuditEntry:
        return await self._s.record(record)

    def audit_proof(self, index: int) -> InclusionProof | None:
        return self._s.appender.proof(index)

    def now_ms(self) -> int:
        return self._s.now_ms()

    def health(self) -> HealthInfo:
        return self._s.health()


def appender_policy(s: CoreSettings) -> AppenderPolicy:
    """The audit appender's key, witnesses (reached with the api stage's certificate) and fencing ids."""
    origin = audit_origin(s)
    signer = load_signer(s.audit_key_file, origin, ALG_ED25519, "audit_key_file")
    conn = s.kafka_connection("api")
    tls = client_ssl_context(conn.ca_file, conn.cert_file, conn.key_file) if conn.security_protocol == "SSL" else None
    witnesses = []
    for w in s.audit_witnesses:
        url, _, vkey = w.strip().partition(" ")
        witnesses.append(WitnessClient(url.rstrip("/"), Verifier.parse(vkey.strip()), tls))
    quorum = s.audit_witness_quorum
    if s.insecure_unwitnessed_audit:
        log.warning("insecure_unwitnessed_audit: audit checkpoints are published without witness cosignatures")
        quorum = 0 if not witnesses else min(quorum, len(witnesses))
    stage = f"{s.app_id}.api"
    return AppenderPolicy(origin, signer, tuple(witnesses), quorum, f"{stage}.audit", stage)


def _server_tls(cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS 1.2+ server context (Mozilla "intermediate": the library defaults of Python 3.11 meet it)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def _token_service(s: CoreSettings) -> TokenService:
    registry = ClientRegistry.load(Path(s.api_clients_file))
    key = Ed25519PrivateKey.from_private_bytes(read_hex_file(s.api_token_key_file, "api_token_key_file"))
    return CachingTokenService(registry, key, s.api_token_url or "https://pending/oauth2/token")
