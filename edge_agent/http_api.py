"""The agent's local HTTP API (aiohttp), bound to loopback by default.

=========================  =========================================================
POST /v1/events            one submission -> 202 {event_id, seq} once durably on disk
POST /v1/events/batch      {"events": [...]} -> 202 {"receipts": [...]}, all or none
POST /v1/fhir/Consent      a FHIR R4 Consent -> 202 {"receipts": [...]}
POST /v1/decisions         the core's decision request -> its answer from the replica (offline: true)
GET  /cds-services         CDS Hooks discovery (edge_agent.cds)
POST /cds-services/patient-consent-consult   CDS Hooks consent consult, cards from the replica (offline)
GET  /v1/health            liveness and backlog
GET  /metrics              Prometheus text format
=========================  =========================================================

Submissions are idempotent on a client-supplied ``event_id``: a retry with the same body
answers the original receipt (durably, across restarts) and is not enqueued twice.

Every error is ``{"reason": CODE, "message": text}`` with the status :data:`STATUS_BY_ERROR` gives
its class: 400 for invalid input (any :class:`~consent_wire.errors.WireError`, e.g. a ValidationError
or an OVERSIZE event), 409 EVENT_ID_CONFLICT for an event_id re-used with another body, 507
Insufficient Storage with reason OUTBOX_FULL at the disk cap (retry later; nothing already accepted is
lost), 503 while shutting down; 404 ``NOT_FOUND``, 405 ``METHOD_NOT_ALLOWED`` and 413
``BODY_TOO_LARGE`` from :mod:`consent_io.http`. Each route has its own body limit (:data:`BODY_LIMITS`);
the application's ``client_max_size`` is only the largest of them. Documented in ``docs/edge-openapi.yaml``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry

from consent_io.http import StatusTable, error_middleware, json_response
from consent_rules.decision import parse_request
from consent_rules.decision.policy import DEFAULT_POLICY, DecisionPolicy
from consent_wire.errors import WireError
from edge_agent.api_auth import token_middleware
from edge_agent.cds import SERVICE_PATH as CDS_SERVICE_PATH
from edge_agent.cds import CdsRoutes
from edge_agent.errors import EdgeError, EventIdConflictError, OutboxFullError
from edge_agent.intake import Intake
from edge_agent.metrics import SubmissionCounts
from edge_agent.offline import decide_offline
from edge_agent.outbox import Outbox, Receipt
from edge_agent.replica import Replica
from edge_agent.submission import (
    MAX_BATCH_BYTES,
    MAX_SUBMISSION_BYTES,
    Pseudonymiser,
    load_json,
    parse_fhir_consent,
)

__all__ = ["BODY_LIMITS", "STATUS_BY_ERROR", "ApiContext", "make_app"]

log = logging.getLogger(__name__)

_STATUS_INSUFFICIENT_STORAGE = 507  # RFC 4918 section 11.5
# consent_wire.fhir.MAX_FHIR_BYTES, not imported here: fhir.resources loads on the first FHIR submission only
FHIR_BODY_BYTES = 256 * 1024
# The largest body each route reads (issue 12 item 10: one limit for every route let a 10 MB Consent through).
BODY_LIMITS: dict[str, int] = {
    "/v1/events": MAX_SUBMISSION_BYTES,
    "/v1/events/batch": MAX_BATCH_BYTES,
    "/v1/fhir/Consent": FHIR_BODY_BYTES,
    "/v1/decisions": MAX_SUBMISSION_BYTES,  # a decision request is under 1 KiB, as on the core (64 KiB)
    CDS_SERVICE_PATH: MAX_SUBMISSION_BYTES,  # a CDS Hooks consult is under 2 KiB
}

# The HTTP status of each error class, first match wins (the one place statuses are chosen).
STATUS_BY_ERROR: StatusTable = (
    (EventIdConflictError, 409),
    (WireError, 400),  # ValidationError, or an event too big to encode (OVERSIZE)
    (OutboxFullError, _STATUS_INSUFFICIENT_STORAGE),
    (EdgeError, 503),  # OUTBOX_CLOSED while shutting down, DECISION_UNAVAILABLE without a replica
)


@dataclass(frozen=True, slots=True)
class ApiContext:
    agent_id: str
    site: str
    intake: Intake
    outbox: Outbox
    pseudonymise: Pseudonymiser
    counts: SubmissionCounts
    registry: CollectorRegistry
    now_ms: Callable[[], int]
    replica: Replica | None = None
    publisher_connected: Callable[[], bool] = lambda: False
    policy: DecisionPolicy = DEFAULT_POLICY  # decision_policy_file: the same document as the core's


def make_app(ctx: ApiContext, token: bytes | None) -> web.Application:
    """The agent's API; ``token`` None is the insecure_api debug mode (no bearer token checked)."""
    middlewares = [error_middleware(STATUS_BY_ERROR)]
    if token is not None:
        middlewares.append(token_middleware(token))
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BATCH_BYTES)
    api = _Api(ctx)
    cds = CdsRoutes(
        lambda: ctx.replica, lambda nhs: ctx.pseudonymise(nhs), lambda: ctx.now_ms(), _body, lambda: ctx.policy
    )
    app.add_routes(
        [
            web.post("/v1/events", api.submit_one),
            web.post("/v1/events/batch", api.submit_batch),
            web.post("/v1/fhir/Consent", api.submit_fhir),
            web.post("/v1/decisions", api.decide),
            web.get("/v1/health", api.health),
            web.get("/metrics", api.metrics),
            web.get("/cds-services", cds.services),
            web.post(CDS_SERVICE_PATH, cds.consult),
        ]
    )
    return app


async def _body(request: web.Request) -> bytes:
    """The body, refused (413 BODY_TOO_LARGE) over its route's limit before or after reading it."""
    limit = BODY_LIMITS[request.path]
    length = request.content_length
    if length is not None and length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=length)
    body = await request.read()
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


def _receipts(receipts: list[Receipt]) -> web.Response:
    return json_response({"receipts": [{"event_id": r.event_id, "seq": r.seq} for r in receipts]}, 202)


class _Api:
    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx

    async def submit_one(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            receipt = await self._ctx.intake.submit_json(load_json(await _body(request)))
            self._ctx.counts.add("accepted")
            return json_response({"event_id": receipt.event_id, "seq": receipt.seq}, 202)

        return await self._guard(run)

    async def submit_batch(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            receipts = await self._ctx.intake.submit_json_batch(load_json(await _body(request)))
            self._ctx.counts.add("accepted", len(receipts))
            return _receipts(receipts)

        return await self._guard(run)

    async def submit_fhir(self, request: web.Request) -> web.Response:
        async def run() -> web.Response:
            subs = parse_fhir_consent(await _body(request), self._ctx.pseudonymise)
            receipts = await self._ctx.intake.submit_many(subs)
            self._ctx.counts.add("accepted", len(receipts))
            return _receipts(receipts)

        return await self._guard(run)

    async def _guard(self, run: Callable[[], Awaitable[web.Response]]) -> web.Response:
        """Count refused submissions by reason; the middleware answers them."""
        try:
            return await run()
        except (WireError, EventIdConflictError, OutboxFullError) as exc:
            self._ctx.counts.add(exc.reason)
            raise

    async def decide(self, request: web.Request) -> web.Response:
        now_ms = self._ctx.now_ms()
        parsed = parse_request(load_json(await _body(request)), self._ctx.pseudonymise, now_ms)
        key = parsed.request.patient_key
        record = await self._ctx.replica.get(key) if self._ctx.replica else None
        answer = decide_offline(parsed, record, now_ms, self._ctx.policy)
        return json_response(answer.to_json(), 200)

    async def health(self, request: web.Request) -> web.Response:
        outbox = self._ctx.outbox
        body = {
            "status": "degraded" if outbox.full else "ok",
            "agent_id": self._ctx.agent_id,
            "site": self._ctx.site,
            "outbox_pending": outbox.pending_count,
            "outbox_full": outbox.full,
            "quarantined": outbox.quarantined_count,
            "publisher_connected": self._ctx.publisher_connected(),
        }
        return json_response(body, 200)

    async def metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._ctx.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
