"""Stage ``api``: the HTTP API with its views of the topics and the audit appender (I/O shell).

- Views: :class:`broker.api.views.StateView` and :class:`broker.api.views.EventHistory` follow the
  state and events topics into the persistent store (:mod:`broker.views`, SQLite in ``api_view_dir``,
  resumed from its stored positions); the API answers 503 ``NOT_READY`` until both caught up.
- Audit (issue 16: any number of API instances): every instance joins the appenders' election and answers
  at once; the elected one (:class:`broker.audit.appender.AuditAppender`) owns the chain. Its own decision
  and read records it appends directly (the answer names the entry, ``audit_index``); another instance
  writes them to ``audit-requests`` (:mod:`broker.audit.requests`, durable before the answer, which names
  the request, ``audit_request``) and the holder moves them into the log exactly once. Access records come
  from AccessRecord events, appended by the holder's :class:`broker.api.audit_follow.AccessAppender` from
  the cursor the log gives (each access entry carries its events-topic position: nothing lost, nothing
  appended twice). Every instance follows the audit topic (:class:`broker.api.audit_follow.AuditFollower`)
  into its own access-log index, tree and newest cosigned checkpoint: any instance serves access logs and
  inclusion proofs.

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
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web
from aiokafka.errors import KafkaError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.api.audit_follow import AccessAppender, AuditFollower
from broker.api.audit_sink import AuditSink
from broker.api.codec import HealthInfo
from broker.api.handlers import create_app
from broker.api.token_cache import CachingTokenService
from broker.api.views import EventHistory, ReportView, StateView
from broker.audit import AuditEntry, AuditRecord
from broker.audit.appender import AppenderPolicy, AuditAppender
from broker.audit.keyfile import load_signer
from broker.audit.note import ALG_ED25519, Verifier
from broker.audit.requests import AuditReceipt, AuditRequestWriter
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
from consent_wire.identity import Pseudonymiser
from consent_wire.model import Event
from consent_wire.signing import verified_event_payload

if TYPE_CHECKING:
    from broker.runtime import Core

__all__ = ["ApiService"]

log = logging.getLogger(__name__)

T = TypeVar("T")
REJOIN_PAUSE_S = 1.0  # between an appender that stopped and its successor joining the election
ELECTION_WAIT_S = 10.0  # start() waits this long to be elected (a lone instance is at once), then answers anyway


class ApiService:
    """The backend behind :func:`broker.api.create_app`, plus the Kafka tasks that feed it."""

    def __init__(self, core: Core, secret: bytes, policy: AppenderPolicy) -> None:
        s = core.settings
        self.core = core
        self.pseudonymiser = Pseudonymiser(secret)
        self.list_sizes: Mapping[str, int] = load_list_sizes(core.settings.list_sizes_file or None)
        topics = core.topics
        self._policy = policy
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if s.api_view_dir:
            folder = Path(s.api_view_dir)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="consent-api-views-")
            folder = Path(self._tmp.name)
        self._folder = folder
        self.appender: AuditSink = self._new_appender()
        self.requests = AuditRequestWriter(s.kafka_connection("api"), topics.audit_requests)
        self._append_directly = s.audit_answer_after == "append"
        self.access_appender: AccessAppender | None = None
        # one file per deployment prefix: views of two deployments never mix
        self.store = ViewStore(folder / f"{core.topics.prefix}.views.sqlite3")
        self.view = StateView(s.kafka_connection("api"), core.topics.state, self.store, s.api_view_cache_entries)
        self.history: EventHistory | None = None
        self.reports = ReportView(s.kafka_connection("api"), core.topics.reports, self.store)
        # the audit tree's hashes in files beside the views (memory stays flat however long the log grows)
        tree_dir = folder / f"{core.topics.prefix}.audit-tree"
        self.audit_view = AuditFollower(s.kafka_connection("api"), topics.audit, self.store, tree_dir)
        self._runner: web.AppRunner | None = None
        self._auth: TokenService | None = None
        self._audit_index: GroupWriter[tuple[str, AuditEntry]] = GroupWriter(self.store.add_audit)
        self.elected = asyncio.Event()  # set once this instance first holds the log (activated, restored, checked)
        self.port = 0

    @property
    def _appender_trees(self) -> Path:
        return self._folder / f"{self.core.topics.prefix}.appender-trees"

    def _new_appender(self) -> AuditSink:
        topics = self.core.topics
        conn = self.core.settings.kafka_connection("api")
        return AuditAppender(conn, topics.audit, self._policy, topics.audit_requests, self._appender_trees)

    @classmethod
    def for_core(cls, core: Core) -> ApiService:
        """The stage as :class:`broker.runtime.Core` builds it, from the (already validated) settings."""
        s = core.settings
        secret = read_hex_file(s.pseudonym_secret_file, "pseudonym_secret_file")
        return cls(core, secret, appender_policy(s))

    # --- ApiBackend ---------------------------------------------------------------------------
    def patient_key(self, nhs_number: str) -> str:
        return self.pseudonymiser(nhs_number)  # the key schedule computed once, not per request

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

    async def record(self, record: AuditRecord) -> AuditReceipt:
        """An audit request, durable before the answer, which the holder appends behind it (the default,
        ``audit_answer_after = "request"``); with ``"append"``, the holder appends directly and answers with the
        entry's index once its transaction commits.

        Measured (loadtests/decision_bench.py, one instance, the same stack; docs/audit-scaling.md): the request
        is one idempotent ``acks=all`` write where a direct append waits for a whole batch transaction, so at 2
        clients p50/p99 7-10/18-25 ms against 17/42 ms, and at 32 clients 602-865 against 450-616 decisions/s with
        a fifth to a quarter less of the API's CPU per decision (the holder appends requests in large batches; the
        follower indexes them).

        A failed direct append is not retried as a request (its transaction's outcome may be unknown): the
        caller gets 503 and retries, by then through the request topic."""
        if self._append_directly and self.appender.holding:
            entry = await self.appender.append(record)
            await self._audit_index.add((record.patient_key, entry))  # one SQLite commit per group of decisions
            self.audit_view.indexed_here(entry.index)
            count_decision(record)
            return AuditReceipt(entry.index)
        position = await self.requests.write(record.to_bytes(), record.patient_key)
        count_decision(record)
        return AuditReceipt(None, position)

    def audit_proof(self, index: int) -> InclusionProof | None:
        """The holder's proof (its checkpoint is newest), else the one this instance's audit view can give."""
        proof = self.appender.proof(index) if self.appender.holding else None
        return proof if proof is not None else self.audit_view.proof(index)

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
        ready = ready and self.reports.caught_up.is_set() and self.audit_view.caught_up.is_set()
        events = 0 if history is None else history.events_seen
        next_index = self.appender.next_index if self.appender.holding else self.audit_view.size
        holding = self.appender.holding
        return HealthInfo(ready, self.view.records_seen, events, next_index, holding, self.audit_view.size)

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """Join the appenders' election, start the views and serve HTTP until ``stop`` is set.

        The views start at once; serving waits up to :data:`ELECTION_WAIT_S` to be elected (a log that does not
        verify is refused here, and nothing is served); past that this instance answers through audit requests
        and takes the log over when elected.
        """
        s = self.core.settings
        await self.appender.join()
        await self.requests.start()
        holding = asyncio.create_task(self._hold_the_log(stop), name="api-audit-holder")
        # the holder task runs until stop: wait for the election (or the task's failure), not for the task
        elected = asyncio.ensure_future(self.elected.wait())
        began = time.monotonic()
        # the views read their tails meanwhile: an appender without a usable saved point (a new host) reads the
        # whole audit log before it holds it (issue 16: 23 s for 1.6 M entries), and the views must not wait for it
        try:
            views = await self._start_views(stop)
        except BaseException:
            holding.cancel()
            elected.cancel()
            raise
        remaining = max(0.0, ELECTION_WAIT_S - (time.monotonic() - began))
        await asyncio.wait({holding, elected}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        elected.cancel()
        if holding.done() and (holding.cancelled() or holding.exception() is not None):
            for task in views:  # nothing is served from a log that does not verify
                task.cancel()
            await asyncio.gather(*views, return_exceptions=True)
            holding.result()  # AuditUnavailableError: the stored log does not verify
        tasks = [*views, holding]
        await self._serve(s.http_host, s.http_port)
        GOVERNANCE.attach(self)
        tasks.append(asyncio.create_task(self._shutdown_when_stopped(stop, tasks[:]), name="api-http"))
        return tasks

    async def _start_views(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        """Open every view at its stored position and follow its topic until ``stop``."""
        self.history = EventHistory(self.core.settings.kafka_connection("api"), self.core.topics.events, self.store)
        await self.view.start()
        await self.history.start()
        await self.reports.start()
        await self.audit_view.start()
        return [
            asyncio.create_task(self.reports.run(stop), name="api-report-view"),
            asyncio.create_task(self.view.run(stop), name="api-state-view"),
            asyncio.create_task(self.history.run(stop), name="api-event-history"),
            asyncio.create_task(self.audit_view.run(stop), name="api-audit-view"),
        ]

    async def _hold_the_log(self, stop: asyncio.Event) -> None:
        """Once elected: append the access records from the log's cursor on, until ``stop``. An appender that
        stops appending (fenced, another took over, a failed write) is replaced by a new one that rejoins the
        election, so the log always has a holder while any instance runs."""
        while True:
            stored = await _first(self.appender.activate(), stop)
            if stored is None:
                return
            log.info("api holds the audit log entries=%d", stored.entries)
            self.elected.set()
            appender = AccessAppender(
                self.core.settings.kafka_connection("api"), self.core.topics.events, self.appender,
                stored.cursor,
            )  # fmt: skip
            self.access_appender = appender
            access = asyncio.create_task(appender.run(stop), name="api-access-appender")
            stopped = asyncio.ensure_future(self.appender.stopped.wait())
            await _first(asyncio.wait({access, stopped}, return_when=asyncio.FIRST_COMPLETED), stop)
            stopped.cancel()
            if stop.is_set():
                with contextlib.suppress(KafkaError):
                    await access
                return
            if access.done() and not access.cancelled() and access.exception() is not None:
                log.warning("access records stopped error=%r", access.exception())
            access.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await access
            log.warning("audit appender stopped appending; rejoining the election")
            old, self.appender = self.appender, self._new_appender()
            await old.stop()
            await asyncio.sleep(REJOIN_PAUSE_S)
            await self.appender.join()

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
        await self.requests.stop()
        GOVERNANCE.detach(self)
        self.audit_view.close()
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()
        log.info("api stopped")


async def _first(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None (``work`` cancelled) if ``stop`` is set first."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        stopping.cancel()
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


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

    def reports_version(self) -> int | None:
        return self._s.reports.generation

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

    async def record(self, record: AuditRecord) -> AuditReceipt:
        return await self._s.record(record)

    def audit_proof(self, index: int) -> InclusionProof | None:
        return self._s.audit_proof(index)

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
